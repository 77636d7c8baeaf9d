//! The parts of chatterbox/models/s3gen/matcha/decoder.py (from Matcha-TTS) that S3Gen's
//! estimator builds on: `SinusoidalPosEmb` and `TimestepEmbedding`. Its residual blocks are the
//! causal variants of ../decoder.rs, which replace `Block1D` and keep `ResnetBlock1D.forward`.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

/// `SinusoidalPosEmb(dim)` applied to each time: rows of [sin | cos](1000·t·fᵢ) with
/// fᵢ = exp(−i·ln(10⁴)/(dim/2 − 1)), i < dim/2. The products are rounded to f32 where torch
/// rounds them; exp, sin and cos are taken in f64 and rounded, which equals torch's f32 results
/// to the last bit or one ulp (one ulp of a frequency would move an angle near 1000 by 6e-5).
pub fn sinusoidal_pos_emb(times: &[f32], dim: usize) -> Result<Vec<f32>> {
    let half = dim / 2;
    if !dim.is_multiple_of(2) || half < 2 {
        candle_core::bail!("SinusoidalPosEmb needs an even dimension of at least 4, got {dim}");
    }
    let step = -(10_000f64.ln() / (half - 1) as f64) as f32;
    let frequencies: Vec<f32> = (0..half)
        .map(|i| f64::from(i as f32 * step).exp() as f32)
        .collect();
    let mut rows = Vec::with_capacity(times.len() * dim);
    for &t in times {
        let angles: Vec<f64> = frequencies
            .iter()
            .map(|&f| f64::from(1000.0 * t * f))
            .collect();
        rows.extend(angles.iter().map(|a| a.sin() as f32));
        rows.extend(angles.iter().map(|a| a.cos() as f32));
    }
    Ok(rows)
}

/// `TimestepEmbedding` with SiLU and neither a condition projection nor a post-activation:
/// `linear_2(silu(linear_1(x)))`.
pub struct TimestepEmbedding {
    linear_1: Linear,
    linear_2: Linear,
}

impl TimestepEmbedding {
    pub fn load(vb: VarBuilder, in_channels: usize, time_embed_dim: usize) -> Result<Self> {
        Ok(Self {
            linear_1: candle_nn::linear(in_channels, time_embed_dim, vb.pp("linear_1"))?,
            linear_2: candle_nn::linear(time_embed_dim, time_embed_dim, vb.pp("linear_2"))?,
        })
    }

    pub fn forward(&self, sample: &Tensor) -> Result<Tensor> {
        self.linear_2
            .forward(&self.linear_1.forward(sample)?.silu()?)
    }
}
