//! Two element-wise steps of the prefill that candle's generic CPU ops make expensive at T3's
//! sizes: the causally masked softmax (candle would add a −∞ mask and then exponentiate the
//! masked half too) and GPT-2's tanh GELU (candle calls `tanhf` per element). On the CPU they
//! run as one pass each; other devices use the plain candle ops.

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor};
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

fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
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

    use super::{causal_mask, causal_softmax, gelu_new};

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
    fn gelu_new_equals_the_tanh_form() {
        let x = Tensor::new(&[-30f32, -3.0, -0.5, 0.0, 0.7, 2.0, 30.0], &Device::Cpu).unwrap();
        assert!(max_diff(&gelu_new(&x).unwrap(), &x.gelu().unwrap()) < 1e-6);
    }
}
