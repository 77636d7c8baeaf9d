//! Steps that candle's generic CPU ops make expensive at T3's sizes: the causally masked softmax
//! of the prefill (candle would add a −∞ mask and then exponentiate the masked half too), GPT-2's
//! tanh GELU (candle calls `tanhf` per element), and a decode step's attention (candle runs it as
//! one tiny matrix product per head, twice). On the CPU each runs as one pass; other devices use
//! the plain candle ops.

use candle_core::{CpuStorage, CustomOp1, CustomOp3, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Softmax over the last axis of (B, H, T, L) scores where row i may only see columns
/// 0..=L − T + i; masked entries become 0.
pub fn causal_softmax(scores: &Tensor) -> Result<Tensor> {
    let (_, _, t, l) = scores.dims4()?;
    if scores.device().is_cpu() && scores.dtype() == DType::F32 {
        return scores
            .contiguous()?
            .apply_op1_no_bwd(&CausalSoftmax { t, l });
    }
    let mask = causal_mask(t, l, scores.device())?.to_dtype(scores.dtype())?;
    candle_nn::ops::softmax_last_dim(&scores.broadcast_add(&mask)?)
}

fn causal_mask(t: usize, l: usize, device: &Device) -> Result<Tensor> {
    let offset = l - t;
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| {
            (0..l).map(move |j| {
                if j > offset + i {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Tensor::from_vec(mask, (t, l), device)
}

struct CausalSoftmax {
    t: usize,
    l: usize,
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "causal-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let input = contiguous_f32(storage, layout, "causal_softmax")?;
        let (t, l) = (self.t, self.l);
        let offset = l - t;
        let mut out = vec![0f32; input.len()];
        out.par_chunks_mut(l)
            .zip(input.par_chunks(l))
            .enumerate()
            .for_each(|(row, (dst, src))| {
                let visible = offset + row % t + 1;
                let (dst, src) = (&mut dst[..visible], &src[..visible]);
                let max = src.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0f32;
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = (s - max).exp();
                    sum += *d;
                }
                for d in dst.iter_mut() {
                    *d /= sum;
                }
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// Attention of one new position: q (B, H, 1, D) over the cache's k, v (B, H, L, D) views.
/// Returns (context (B, H, 1, D), probabilities (B, H, 1, L)); `q` is already scaled.
pub fn decode_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
    let (_, _, _, d) = q.dims4()?;
    let l = k.dim(2)?;
    if q.device().is_cpu() && q.dtype() == DType::F32 {
        let both = q.contiguous()?.apply_op3_no_bwd(k, v, &DecodeAttention)?;
        return Ok((both.narrow(3, 0, d)?, both.narrow(3, d, l)?));
    }
    let probs = candle_nn::ops::softmax_last_dim(&q.matmul(&k.t()?)?)?;
    Ok((probs.matmul(v)?, probs))
}

/// Output row per (batch, head): the context (D values) followed by the probabilities (L).
struct DecodeAttention;

/// Offset of row 0 of head (b, h) and the row stride, for a (B, H, L, D) view whose rows are
/// contiguous (the KV cache's narrowed views are).
fn head_rows(layout: &Layout, b: usize, h: usize) -> Result<(usize, usize)> {
    let stride = layout.stride();
    if stride.len() != 4 || stride[3] != 1 {
        candle_core::bail!("decode_attention: keys and values need contiguous rows");
    }
    Ok((
        layout.start_offset() + b * stride[0] + h * stride[1],
        stride[2],
    ))
}

impl CustomOp3 for DecodeAttention {
    fn name(&self) -> &'static str {
        "decode-attention"
    }

    fn cpu_fwd(
        &self,
        q_storage: &CpuStorage,
        q_layout: &Layout,
        k_storage: &CpuStorage,
        k_layout: &Layout,
        v_storage: &CpuStorage,
        v_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, h, t, d) = q_layout.shape().dims4()?;
        let (_, _, l, _) = k_layout.shape().dims4()?;
        if t != 1 || v_layout.shape() != k_layout.shape() {
            candle_core::bail!(
                "decode_attention: one query row against equal-shaped keys and values"
            );
        }
        let q = contiguous_f32(q_storage, q_layout, "decode_attention")?;
        let (CpuStorage::F32(k), CpuStorage::F32(v)) = (k_storage, v_storage) else {
            candle_core::bail!("decode_attention: expected f32 keys and values");
        };
        let heads: Vec<(usize, usize, usize, usize)> = (0..b * h)
            .map(|i| {
                let (k_start, k_row) = head_rows(k_layout, i / h, i % h)?;
                let (v_start, v_row) = head_rows(v_layout, i / h, i % h)?;
                Ok((k_start, k_row, v_start, v_row))
            })
            .collect::<Result<_>>()?;
        let mut out = vec![0f32; b * h * (d + l)];
        out.par_chunks_mut(d + l)
            .zip(q.par_chunks(d))
            .zip(heads.par_iter())
            .for_each(|((dst, query), &(k_start, k_row, v_start, v_row))| {
                let (context, probs) = dst.split_at_mut(d);
                for (j, p) in probs.iter_mut().enumerate() {
                    let key = &k[k_start + j * k_row..][..d];
                    *p = query.iter().zip(key).map(|(a, b)| a * b).sum();
                }
                let max = probs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0f32;
                for p in probs.iter_mut() {
                    *p = (*p - max).exp();
                    sum += *p;
                }
                for (j, p) in probs.iter_mut().enumerate() {
                    *p /= sum;
                    let value = &v[v_start + j * v_row..][..d];
                    for (c, x) in context.iter_mut().zip(value) {
                        *c += *p * x;
                    }
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((b, h, 1, d + l))))
    }
}

/// transformers' `gelu_new`: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), evaluated as
/// x·σ(2u), the same function with one `exp` instead of a `tanh`.
pub fn gelu_new(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        return x.contiguous()?.apply_op1_no_bwd(&GeluNew);
    }
    x.gelu()
}

struct GeluNew;

impl CustomOp1 for GeluNew {
    fn name(&self) -> &'static str {
        "gelu-new"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        const SQRT_2_OVER_PI: f32 = 0.797_884_6;
        let input = contiguous_f32(storage, layout, "gelu_new")?;
        let out: Vec<f32> = input
            .par_iter()
            .map(|&x| {
                let u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
                x / (1.0 + (-2.0 * u).exp())
            })
            .collect();
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// The f32 values of a contiguous CPU tensor, or an error naming `op`.
pub(super) fn contiguous_f32<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: expected f32");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: expected a contiguous tensor");
    };
    Ok(&data[start..end])
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::{causal_mask, causal_softmax, decode_attention, gelu_new};

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

    #[test]
    fn causal_softmax_equals_mask_then_softmax() {
        let scores = Tensor::randn(0f32, 3.0, (2, 3, 5, 9), &Device::Cpu).unwrap();
        let mask = causal_mask(5, 9, &Device::Cpu).unwrap();
        let reference =
            candle_nn::ops::softmax_last_dim(&scores.broadcast_add(&mask).unwrap()).unwrap();
        assert!(max_diff(&causal_softmax(&scores).unwrap(), &reference) < 1e-6);
    }

    #[test]
    fn decode_attention_equals_the_matmul_form_on_cache_views() {
        let cache_k = Tensor::randn(0f32, 1.0, (2, 3, 10, 4), &Device::Cpu).unwrap();
        let cache_v = Tensor::randn(0f32, 1.0, (2, 3, 10, 4), &Device::Cpu).unwrap();
        let (k, v) = (
            cache_k.narrow(2, 0, 7).unwrap(),
            cache_v.narrow(2, 0, 7).unwrap(),
        );
        let q = Tensor::randn(0f32, 1.0, (2, 3, 1, 4), &Device::Cpu).unwrap();
        let (context, probs) = decode_attention(&q, &k, &v).unwrap();
        let want_probs =
            candle_nn::ops::softmax_last_dim(&q.matmul(&k.t().unwrap()).unwrap()).unwrap();
        let want_context = want_probs.matmul(&v).unwrap();
        assert!(max_diff(&probs, &want_probs) < 1e-6);
        assert!(max_diff(&context, &want_context) < 1e-5);
    }

    #[test]
    fn gelu_new_equals_the_tanh_form() {
        let x = Tensor::new(&[-30f32, -3.0, -0.5, 0.0, 0.7, 2.0, 30.0], &Device::Cpu).unwrap();
        assert!(max_diff(&gelu_new(&x).unwrap(), &x.gelu().unwrap()) < 1e-6);
    }
}
