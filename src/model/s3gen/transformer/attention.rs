//! Port of chatterbox/models/s3gen/transformer/attention.py: `RelPositionMultiHeadedAttention`
//! (Transformer-XL style relative-position self-attention, with ESPnet's `rel_shift`), for
//! full-length inputs, where the reference's mask is all ones and changes nothing; no cache.
//! Dropout is inference's identity.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Module, Result, Shape, Tensor};
use candle_nn::{Linear, VarBuilder};
use rayon::prelude::*;

/// Keys `linear_q`, `linear_k`, `linear_v`, `linear_out` (all with bias), `linear_pos` (no
/// bias), `pos_bias_u` and `pos_bias_v` (heads, d_k).
pub struct RelPositionMultiHeadedAttention {
    /// linear_q, linear_k and linear_v stacked into one (3·n_feat, n_feat) projection.
    qkv: Linear,
    linear_out: Linear,
    linear_pos: Linear,
    /// (heads, 1, d_k), to broadcast over the rows of a head.
    pos_bias_u: Tensor,
    pos_bias_v: Tensor,
    heads: usize,
    d_k: usize,
}

impl RelPositionMultiHeadedAttention {
    pub fn load(vb: VarBuilder, heads: usize, n_feat: usize) -> Result<Self> {
        if heads == 0 || !n_feat.is_multiple_of(heads) {
            candle_core::bail!("rel_selfattn: {n_feat} features do not split into {heads} heads");
        }
        let d_k = n_feat / heads;
        let weight = |name: &str| vb.get((n_feat, n_feat), &format!("{name}.weight"));
        let bias = |name: &str| vb.get(n_feat, &format!("{name}.bias"));
        let qkv = Linear::new(
            Tensor::cat(
                &[
                    weight("linear_q")?,
                    weight("linear_k")?,
                    weight("linear_v")?,
                ],
                0,
            )?,
            Some(Tensor::cat(
                &[bias("linear_q")?, bias("linear_k")?, bias("linear_v")?],
                0,
            )?),
        );
        Ok(Self {
            qkv,
            linear_out: candle_nn::linear(n_feat, n_feat, vb.pp("linear_out"))?,
            linear_pos: candle_nn::linear_no_bias(n_feat, n_feat, vb.pp("linear_pos"))?,
            pos_bias_u: vb.get((heads, d_k), "pos_bias_u")?.unsqueeze(1)?,
            pos_bias_v: vb.get((heads, d_k), "pos_bias_v")?.unsqueeze(1)?,
            heads,
            d_k,
        })
    }

    /// Self-attention of x (B, T, n_feat) with pos_emb (1, 2T − 1, n_feat) from
    /// `EspnetRelPositionalEncoding`: softmax(((q + u)·kᵀ + rel_shift((q + v)·pᵀ)) / √d_k)·v.
    ///
    /// Heads and batch rows run as one batched product per term, in (head, batch) order, so
    /// the positional term, whose p the batch shares, is one product per head over all rows.
    /// The 1/√d_k is applied to q + u and q + v, which for d_k = 64 (a power of two) gives the
    /// reference's scores exactly. On the CPU the query rows go in blocks (see
    /// [`query_block_rows`]); a block of rows needs only T + rows − 1 of the 2T − 1 relative
    /// positions.
    pub fn forward(&self, x: &Tensor, pos_emb: &Tensor) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        self.forward_in_blocks(x, pos_emb, query_block_rows(x, self.heads * b, t))
    }

    fn forward_in_blocks(&self, x: &Tensor, pos_emb: &Tensor, rows: usize) -> Result<Tensor> {
        let (b, t, n_feat) = x.dims3()?;
        let (h, d_k) = (self.heads, self.d_k);
        let qkv = self
            .qkv
            .forward(x)?
            .reshape((b * t, 3, h, d_k))?
            .permute((1, 2, 0, 3))?
            .contiguous()?;
        // Each (h, B·T, d_k), rows ordered (batch, time).
        let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);
        let scale = 1.0 / (d_k as f64).sqrt();
        let q_u = (q.broadcast_add(&self.pos_bias_u)? * scale)?.reshape((h * b, t, d_k))?;
        let q_v = (q.broadcast_add(&self.pos_bias_v)? * scale)?.reshape((h, b, t, d_k))?;
        let k_t = k.reshape((h * b, t, d_k))?.t()?;
        let v = v.reshape((h * b, t, d_k))?;
        // Row k of p encodes relative position T − 1 − k.
        let p = self
            .linear_pos
            .forward(pos_emb)?
            .reshape((2 * t - 1, h, d_k))?
            .transpose(0, 1)?
            .contiguous()?;

        let mut context = Vec::with_capacity(t.div_ceil(rows));
        for start in (0..t).step_by(rows) {
            let m = rows.min(t - start);
            let width = t + m - 1;
            let content = q_u.narrow(1, start, m)?.matmul(&k_t)?;
            let position = q_v
                .narrow(2, start, m)?
                .reshape((h, b * m, d_k))?
                .matmul(&p.narrow(1, t - start - m, width)?.t()?)?
                .reshape((h * b, m, width))?;
            let probs = rel_position_softmax(&content, &position)?;
            context.push(probs.matmul(&v)?);
        }
        let context = Tensor::cat(&context, 1)?
            .reshape((h, b, t, d_k))?
            .permute((1, 2, 0, 3))?
            .reshape((b, t, n_feat))?;
        self.linear_out.forward(&context)
    }
}

/// Query rows per block. At T = 700 the (heads, T, 2T − 1) positional scores alone take 31 MB,
/// and writing them out and reading them back costs more than computing them; blocks of about
/// 4 MB of scores stay in cache between the product that writes them and the softmax that
/// reads them. Other devices, and other dtypes, take all rows at once.
fn query_block_rows(x: &Tensor, matrices: usize, t: usize) -> usize {
    const BLOCK_SCORES: usize = 1 << 20;
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        (BLOCK_SCORES / (matrices * 3 * t)).clamp(16, t.max(16))
    } else {
        t
    }
}

/// softmax(content + rel_shift(position)) over the last axis, for query rows i0 … i0 + m − 1:
/// content (N, m, T) and position (N, m, T + m − 1), whose column c is relative position
/// i0 + m − 1 − c. On the CPU (f32) one pass per row reads the shifted positional scores in
/// place; elsewhere candle's ops on the shifted view.
fn rel_position_softmax(content: &Tensor, position: &Tensor) -> Result<Tensor> {
    if content.device().is_cpu() && content.dtype() == DType::F32 {
        return content
            .contiguous()?
            .apply_op2_no_bwd(&position.contiguous()?, &RelPositionSoftmax);
    }
    candle_nn::ops::softmax_last_dim(&(content + rel_shift(position)?)?)
}

struct RelPositionSoftmax;

impl CustomOp2 for RelPositionSoftmax {
    fn name(&self) -> &'static str {
        "rel-position-softmax"
    }

    fn cpu_fwd(
        &self,
        content_storage: &CpuStorage,
        content_layout: &Layout,
        position_storage: &CpuStorage,
        position_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, m, t) = content_layout.shape().dims3()?;
        let width = t + m - 1;
        if position_layout.shape().dims() != [n, m, width] {
            candle_core::bail!(
                "rel_position_softmax: positional scores {:?} do not match content {:?}",
                position_layout.shape(),
                content_layout.shape()
            );
        }
        let (CpuStorage::F32(content), CpuStorage::F32(position)) =
            (content_storage, position_storage)
        else {
            candle_core::bail!("rel_position_softmax: expected f32 scores");
        };
        let (Some((c_start, c_end)), Some((p_start, p_end))) = (
            content_layout.contiguous_offsets(),
            position_layout.contiguous_offsets(),
        ) else {
            candle_core::bail!("rel_position_softmax: expected contiguous scores");
        };
        let (content, position) = (&content[c_start..c_end], &position[p_start..p_end]);
        let mut out = vec![0f32; content.len()];
        out.par_chunks_mut(t)
            .zip(content.par_chunks(t))
            .zip(position.par_chunks(width))
            .enumerate()
            .for_each(|(row, ((dst, content), position))| {
                let shifted = &position[m - 1 - row % m..][..t];
                for ((d, c), p) in dst.iter_mut().zip(content).zip(shifted) {
                    *d = c + p;
                }
                softmax_in_place(dst);
            });
        Ok((CpuStorage::F32(out), content_layout.shape().clone()))
    }
}

/// Lanes for the reductions below: independent accumulators let the compiler vectorise a max
/// or a sum, which a single running value (a serial dependency) prevents.
const LANES: usize = 8;

/// torch's softmax of one row: exponentials of x − max, times the reciprocal of their sum. The
/// sum is taken in f64, closer to exact than torch's f32 lanes.
fn softmax_in_place(row: &mut [f32]) {
    let mut maxima = [f32::NEG_INFINITY; LANES];
    for chunk in row.chunks(LANES) {
        for (m, &x) in maxima.iter_mut().zip(chunk) {
            *m = if x > *m { x } else { *m };
        }
    }
    let max = maxima.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for x in row.iter_mut() {
        *x = exp_nonpositive(*x - max);
    }
    let mut sums = [0f64; LANES];
    for chunk in row.chunks(LANES) {
        for (s, &x) in sums.iter_mut().zip(chunk) {
            *s += f64::from(x);
        }
    }
    let inverse = (1.0 / sums.iter().sum::<f64>()) as f32;
    for x in row.iter_mut() {
        *x *= inverse;
    }
}

/// eˣ for −87 ≤ x ≤ 0 within 1 ulp of the correctly rounded value (smaller x give e⁻⁸⁷, which
/// is nothing beside a softmax row's largest term, 1): x = n·ln 2 + r
/// with |r| ≤ ln 2 / 2 (Cody–Waite), Cephes' minimax polynomial for eʳ, and 2ⁿ built in the
/// exponent bits. Plain f32 arithmetic, so loops over it vectorise; libm's expf is a scalar
/// call, and was most of the softmax's time.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    /// 1.5·2²³: adding it rounds to an integer held in the low mantissa bits.
    const ROUNDER: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.max(-87.0);
    let rounded = x * std::f32::consts::LOG2_E + ROUNDER;
    let n = rounded - ROUNDER;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let e_r = p * r * r + r + 1.0;
    let n_bits = rounded.to_bits().wrapping_sub(ROUNDER.to_bits());
    e_r * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

/// `rel_shift` of contiguous (N, m, T + m − 1) positional scores laid out as
/// [`rel_position_softmax`] takes them: out[n, r, j] = x[n, r, m − 1 − r + j], the column of
/// relative position (i0 + r) − j. With m = T this is the reference's rel_shift of
/// (N, T, 2T − 1) scores, which it takes by padding, viewing and slicing; the same elements
/// form a strided view of x (rows T + m − 2 apart from offset m − 1), taken here without a copy.
fn rel_shift(x: &Tensor) -> Result<Tensor> {
    let (n, m, width) = x.dims3()?;
    let t = width + 1 - m;
    if m == 1 {
        return x.narrow(2, 0, t);
    }
    let len = m * width;
    x.reshape((n, len))?
        .narrow(1, m - 1, len - (m - 1))?
        .unfold(1, t, width - 1)?
        .narrow(1, 0, m)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, IndexOp};

    use super::*;

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    /// The reference's pad / view / slice, literally.
    fn rel_shift_by_padding(x: &Tensor) -> Tensor {
        let (n, t, width) = x.dims3().unwrap();
        let zero = x.zeros_like().unwrap().narrow(2, 0, 1).unwrap();
        Tensor::cat(&[zero, x.clone()], 2)
            .unwrap()
            .reshape((n, width + 1, t))
            .unwrap()
            .i((.., 1..))
            .unwrap()
            .contiguous()
            .unwrap()
            .reshape((n, t, width))
            .unwrap()
            .i((.., .., ..width / 2 + 1))
            .unwrap()
    }

    fn counting(n: usize, m: usize, width: usize) -> Tensor {
        Tensor::arange(0f32, (n * m * width) as f32, &Device::Cpu)
            .unwrap()
            .reshape((n, m, width))
            .unwrap()
    }

    #[test]
    fn rel_shift_matches_the_padding_trick() {
        for t in [1, 2, 3, 7] {
            let x = counting(2, t, 2 * t - 1);
            let ours: Vec<Vec<Vec<f32>>> = rel_shift(&x).unwrap().to_vec3().unwrap();
            let theirs: Vec<Vec<Vec<f32>>> = if t == 1 {
                x.to_vec3().unwrap()
            } else {
                rel_shift_by_padding(&x).to_vec3().unwrap()
            };
            assert_eq!(ours, theirs, "T = {t}");
        }
    }

    #[test]
    fn block_rel_shift_reads_the_same_relative_positions() {
        let (t, i0, m) = (7, 2, 3);
        let full = counting(1, t, 2 * t - 1);
        // The block's columns are the full table's, from relative position i0 + m − 1 down.
        let block = full
            .narrow(1, i0, m)
            .unwrap()
            .narrow(2, t - i0 - m, t + m - 1)
            .unwrap()
            .contiguous()
            .unwrap();
        let want = rel_shift(&full).unwrap().narrow(1, i0, m).unwrap();
        assert_eq!(max_diff(&rel_shift(&block).unwrap(), &want), 0.0);
    }

    #[test]
    fn fused_softmax_equals_shift_then_softmax() {
        for (m, t) in [(1, 1), (2, 2), (9, 9), (1, 5), (4, 9)] {
            let content = Tensor::randn(0f32, 3.0, (3, m, t), &Device::Cpu).unwrap();
            let position = Tensor::randn(0f32, 3.0, (3, m, t + m - 1), &Device::Cpu).unwrap();
            let fused = rel_position_softmax(&content, &position).unwrap();
            let scores = (&content + rel_shift(&position).unwrap()).unwrap();
            let plain = candle_nn::ops::softmax_last_dim(&scores).unwrap();
            let diff = max_diff(&fused, &plain);
            assert!(diff < 1e-6, "m = {m}, T = {t}: {diff}");
        }
    }

    #[test]
    fn blocks_of_query_rows_change_nothing() {
        let (n_feat, heads, b, t) = (32, 4, 2, 11);
        let device = Device::Cpu;
        let mut tensors = std::collections::HashMap::new();
        for name in [
            "linear_q",
            "linear_k",
            "linear_v",
            "linear_out",
            "linear_pos",
        ] {
            let w = Tensor::randn(0f32, 0.3, (n_feat, n_feat), &device).unwrap();
            tensors.insert(format!("{name}.weight"), w);
            let bias = Tensor::randn(0f32, 0.1, n_feat, &device).unwrap();
            tensors.insert(format!("{name}.bias"), bias);
        }
        for name in ["pos_bias_u", "pos_bias_v"] {
            let bias = Tensor::randn(0f32, 0.3, (heads, n_feat / heads), &device).unwrap();
            tensors.insert(name.to_string(), bias);
        }
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let attention = RelPositionMultiHeadedAttention::load(vb, heads, n_feat).unwrap();
        let x = Tensor::randn(0f32, 1.0, (b, t, n_feat), &device).unwrap();
        let pos_emb = Tensor::randn(0f32, 1.0, (1, 2 * t - 1, n_feat), &device).unwrap();
        let whole = attention.forward_in_blocks(&x, &pos_emb, t).unwrap();
        for rows in [1, 4] {
            let blocked = attention.forward_in_blocks(&x, &pos_emb, rows).unwrap();
            assert!(max_diff(&blocked, &whole) < 1e-5, "{rows} rows per block");
        }
        // One batch row alone gives the same result as in the batch.
        let alone = attention
            .forward(&x.narrow(0, 1, 1).unwrap(), &pos_emb)
            .unwrap();
        assert!(max_diff(&alone, &whole.narrow(0, 1, 1).unwrap()) < 1e-5);
    }

    #[test]
    fn exp_is_within_an_ulp() {
        let mut x = 0f32;
        while x > -87.0 {
            let want = f64::from(x).exp() as f32;
            let got = exp_nonpositive(x);
            assert!(
                got.to_bits().abs_diff(want.to_bits()) <= 1,
                "{x}: {got} vs {want}"
            );
            x -= 3.7e-4;
        }
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-1000.0), exp_nonpositive(-87.0));
    }
}
