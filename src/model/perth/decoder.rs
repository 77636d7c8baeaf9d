//! Port of perth/perth_net/perth_net_implicit/model/decoder.py: the watermark detector. Three
//! conv stacks read the lowest `subband` bins at 1.25×, 1× and 0.75× the frame rate; each gives
//! a per-frame watermark score and attention logit, averaged over the energetic frames, and a
//! softmax over the three attention values weighs the three scores into one confidence.

use candle_core::{DType, Error, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::layers::{ConvStack, magmask};

/// The slow and fast branches' time scales (`int(T * 1.25)`, `int(T * 0.75)`).
const SLOW_SCALE: f64 = 1.25;
const FAST_SCALE: f64 = 0.75;

pub struct Decoder {
    subband: usize,
    slow_layers: ConvStack,
    normal_layers: ConvStack,
    fast_layers: ConvStack,
}

/// `F.interpolate(x, size, mode='linear', align_corners=True)` along the last axis of
/// (B, C, T). Positions and weights are computed in f32, as torch computes them for f32 input.
fn lerp(x: &Tensor, size: usize) -> Result<Tensor> {
    let len = x.dim(2)?;
    let scale = if size > 1 {
        (len - 1) as f32 / (size - 1) as f32
    } else {
        0.0
    };
    let (mut left, mut right) = (Vec::with_capacity(size), Vec::with_capacity(size));
    let (mut left_weight, mut right_weight) = (Vec::with_capacity(size), Vec::with_capacity(size));
    for i in 0..size {
        let position = scale * i as f32;
        let index = (position.floor() as usize).min(len - 1);
        let lambda = (position - index as f32).clamp(0.0, 1.0);
        left.push(index as u32);
        right.push((index + usize::from(index < len - 1)) as u32);
        left_weight.push(1.0 - lambda);
        right_weight.push(lambda);
    }
    let device = x.device();
    let take = |indices: Vec<u32>, weights: Vec<f32>| -> Result<Tensor> {
        let indices = Tensor::from_vec(indices, size, device)?;
        let weights = Tensor::from_vec(weights, (1, 1, size), device)?.to_dtype(x.dtype())?;
        x.index_select(&indices, 2)?.broadcast_mul(&weights)
    };
    take(left, left_weight)? + take(right, right_weight)?
}

/// `F.interpolate(x, size, mode='nearest')` along the last axis: output i takes input
/// ⌊i·(T/size)⌋, with the ratio in f32 as torch computes it.
fn nerp(x: &Tensor, size: usize) -> Result<Tensor> {
    let len = x.dim(2)?;
    let scale = len as f32 / size as f32;
    let indices: Vec<u32> = (0..size)
        .map(|i| ((i as f32 * scale).floor() as usize).min(len - 1) as u32)
        .collect();
    x.index_select(&Tensor::from_vec(indices, size, x.device())?, 2)
}

/// `_masked_mean` over time: (B, C, T) and (B, 1, T) → (B, C).
fn masked_mean(x: &Tensor, mask: &Tensor) -> Result<Tensor> {
    x.broadcast_mul(mask)?.sum(2)?.broadcast_div(&mask.sum(2)?)
}

impl Decoder {
    pub fn load(hidden: usize, subband: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            subband,
            slow_layers: ConvStack::load(subband, hidden, 2, vb.pp("slow_layers"))?,
            normal_layers: ConvStack::load(subband, hidden, 2, vb.pp("normal_layers"))?,
            fast_layers: ConvStack::load(subband, hidden, 2, vb.pp("fast_layers"))?,
        })
    }

    /// One branch on the sub-band resampled to its time scale: (watermark score, attention
    /// logit), each (B, 1) f32.
    fn branch(layers: &ConvStack, subband: &Tensor, mask: &Tensor) -> Result<(Tensor, Tensor)> {
        let out = layers
            .forward(&subband.to_dtype(layers.dtype())?)?
            .to_dtype(DType::F32)?;
        let mask = nerp(mask, out.dim(2)?)?;
        let attention = masked_mean(&out.narrow(1, 0, 1)?, &mask)?;
        let watermark = masked_mean(&out.narrow(1, 1, 1)?, &mask)?;
        Ok((watermark, attention))
    }

    /// (B, nfreq, T) f32 normalised magnitudes → (B,) f32 watermark confidence, unclipped.
    /// NaN when no frame passes the energy mask (silence), as in the reference.
    pub fn forward(&self, magspec: &Tensor) -> Result<Tensor> {
        let (_, bins, frames) = magspec.dims3()?;
        let slow_frames = (frames as f64 * SLOW_SCALE) as usize;
        let fast_frames = (frames as f64 * FAST_SCALE) as usize;
        if bins < self.subband || fast_frames < 1 || magspec.dtype() != DType::F32 {
            return Err(Error::Msg(format!(
                "Perth decoder: expects f32 magnitudes with at least {} bins and 2 frames, got {:?} {:?}",
                self.subband,
                magspec.dtype(),
                magspec.dims()
            )));
        }
        let mask = magmask(magspec)?.unsqueeze(1)?;
        let subband = magspec.narrow(1, 0, self.subband)?;
        let (slow, slow_attention) =
            Self::branch(&self.slow_layers, &lerp(&subband, slow_frames)?, &mask)?;
        let (normal, normal_attention) = Self::branch(&self.normal_layers, &subband, &mask)?;
        let (fast, fast_attention) =
            Self::branch(&self.fast_layers, &lerp(&subband, fast_frames)?, &mask)?;
        let attention = Tensor::cat(&[slow_attention, normal_attention, fast_attention], 1)?;
        let attention = candle_nn::ops::softmax(&attention, 1)?;
        let watermarks = Tensor::cat(&[slow, normal, fast], 1)?;
        (watermarks * attention)?.sum(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn ramp(len: usize) -> Tensor {
        let values: Vec<f32> = (0..len).map(|i| i as f32).collect();
        Tensor::from_vec(values, (1, 1, len), &Device::Cpu).unwrap()
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn lerp_with_aligned_corners_keeps_both_ends() {
        // F.interpolate(arange(5.)[None, None], 7, mode='linear', align_corners=True)
        let out = values(&lerp(&ramp(5), 7).unwrap());
        let expected = [
            0.0,
            0.666_666_7,
            1.333_333_4,
            2.0,
            2.666_666_7,
            3.333_333_5,
            4.0,
        ];
        for (got, want) in out.iter().zip(&expected) {
            assert!((got - want).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn nearest_takes_the_floor_of_the_scaled_index() {
        // F.interpolate(arange(5.)[None, None], 3) and size 7
        assert_eq!(values(&nerp(&ramp(5), 3).unwrap()), vec![0.0, 1.0, 3.0]);
        assert_eq!(
            values(&nerp(&ramp(5), 7).unwrap()),
            vec![0.0, 0.0, 1.0, 2.0, 2.0, 3.0, 4.0]
        );
    }

    #[test]
    fn masked_mean_ignores_masked_frames() {
        let x = ramp(4);
        let mask = Tensor::new(&[[[1.0f32, 0.0, 1.0, 0.0]]], &Device::Cpu).unwrap();
        assert_eq!(values(&masked_mean(&x, &mask).unwrap()), vec![1.0]);
    }
}
