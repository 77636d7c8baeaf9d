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
    /// Heads and batch rows run as one batched product per term, in (head, batch) order: then
    /// the positional term, whose p is shared by the batch, is a single (B·T, 2T − 1) product
    /// per head. The 1/√d_k is applied to q + u and q + v, which for d_k = 64 (a power of two)
    /// gives the reference's scores exactly.
    pub fn forward(&self, x: &Tensor, pos_emb: &Tensor) -> Result<Tensor> {
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
        let q_v = (q.broadcast_add(&self.pos_bias_v)? * scale)?;
        let k = k.reshape((h * b, t, d_k))?;
        let v = v.reshape((h * b, t, d_k))?;

        let positions = pos_emb.dim(1)?;
        let p = self
            .linear_pos
            .forward(pos_emb)?
            .reshape((positions, h, d_k))?
            .transpose(0, 1)?
            .contiguous()?;
        let content = q_u.matmul(&k.t()?)?;
        let position = q_v.matmul(&p.t()?)?.reshape((h * b, t, positions))?;
        let probs = rel_position_softmax(&content, &position)?;
        let context = probs
            .matmul(&v)?
            .reshape((h, b, t, d_k))?
            .permute((1, 2, 0, 3))?
            .reshape((b, t, n_feat))?;
        self.linear_out.forward(&context)
    }
}

/// softmax(content + rel_shift(position)) over the last axis, for content (N, T, T) and
/// position (N, T, 2T − 1) scores. On the CPU one pass per row reads the shifted positional
/// scores in place and sums the exponentials in f64 (each (N, T, T) pass costs more than the
/// arithmetic at T = 700); elsewhere candle's ops on the shifted view.
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
        let (n, t, _) = content_layout.shape().dims3()?;
        let width = 2 * t - 1;
        if position_layout.shape().dims() != [n, t, width] {
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
                let i = row % t;
                let shifted = &position[t - 1 - i..][..t];
                let mut max = f32::NEG_INFINITY;
                for ((d, c), p) in dst.iter_mut().zip(content).zip(shifted) {
                    *d = c + p;
                    max = max.max(*d);
                }
                let mut sum = 0f64;
                for d in dst.iter_mut() {
                    *d = (*d - max).exp();
                    sum += f64::from(*d);
                }
                let inverse = (1.0 / sum) as f32;
                for d in dst.iter_mut() {
                    *d *= inverse;
                }
            });
        Ok((CpuStorage::F32(out), content_layout.shape().clone()))
    }
}

/// `rel_shift` of contiguous (N, T, 2T − 1) scores over relative positions T − 1 … −(T − 1):
/// out[n, i, j] = x[n, i, T − 1 − i + j], the column of relative position i − j. The reference
/// pads, views and slices; the same elements form a strided view of x (rows 2T − 2 apart from
/// offset T − 1), taken here without a copy. At T = 1 the reference skips the shift, and the
/// single column is already the result.
fn rel_shift(x: &Tensor) -> Result<Tensor> {
    let (n, t, width) = x.dims3()?;
    if t == 1 {
        return Ok(x.clone());
    }
    let len = t * width;
    x.reshape((n, len))?
        .narrow(1, t - 1, len - (t - 1))?
        .unfold(1, t, width - 1)?
        .narrow(1, 0, t)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, IndexOp};

    use super::*;

    /// The reference's pad / view / slice, literally.
    fn rel_shift_by_padding(x: &Tensor) -> Tensor {
        let (n, t, width) = x.dims3().unwrap();
        let padded = Tensor::cat(
            &[x.zeros_like().unwrap().narrow(2, 0, 1).unwrap(), x.clone()],
            2,
        )
        .unwrap();
        padded
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

    #[test]
    fn fused_softmax_equals_shift_then_softmax() {
        for t in [1, 2, 9] {
            let content = Tensor::randn(0f32, 2.0, (3, t, t), &Device::Cpu).unwrap();
            let position = Tensor::randn(0f32, 2.0, (3, t, 2 * t - 1), &Device::Cpu).unwrap();
            let fused = rel_position_softmax(&content, &position).unwrap();
            let scores = (&content + rel_shift(&position).unwrap()).unwrap();
            let plain = candle_nn::ops::softmax_last_dim(&scores).unwrap();
            let diff: f32 = (fused - plain)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            assert!(diff < 1e-6, "T = {t}: {diff}");
        }
    }

    #[test]
    fn rel_shift_matches_the_padding_trick() {
        for t in [2, 3, 7] {
            let width = 2 * t - 1;
            let x = Tensor::arange(0f32, (2 * t * width) as f32, &Device::Cpu)
                .unwrap()
                .reshape((2, t, width))
                .unwrap();
            let ours: Vec<Vec<Vec<f32>>> = rel_shift(&x).unwrap().to_vec3().unwrap();
            let theirs: Vec<Vec<Vec<f32>>> = rel_shift_by_padding(&x).to_vec3().unwrap();
            assert_eq!(ours, theirs, "T = {t}");
        }
    }
}
