//! Seeded stand-ins for the reference's `torch.randn`/`torch.rand` draws (flow-matching noise,
//! the vocoder's source excitation). Each stage draws from its own named stream of the same
//! counter-based generator the seeded weights use, so one request seed reproduces a whole
//! generation and the stages' draws never overlap.

use candle_core::{Device, Result, Shape, Tensor};

use super::random_weights::uniform;

/// N(0, 1) values by Box–Muller on pairs of the stream's 24-bit uniforms (tails reach ±5.8σ).
pub fn normal(seed: u64, stream: &str, shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
    let shape = shape.into();
    let count = shape.elem_count();
    let units = uniform(seed, stream, count.div_ceil(2) * 2, 0.0, 1.0);
    let mut values = Vec::with_capacity(count + 1);
    for pair in units.chunks_exact(2) {
        // 1 − u lies in (0, 1], so the logarithm is finite.
        let radius = (-2.0 * (1.0 - f64::from(pair[0])).ln()).sqrt();
        let angle = std::f64::consts::TAU * f64::from(pair[1]);
        values.push((radius * angle.cos()) as f32);
        values.push((radius * angle.sin()) as f32);
    }
    values.truncate(count);
    Tensor::from_vec(values, shape, device)
}

/// U(low, high) values.
pub fn uniform_tensor(
    seed: u64,
    stream: &str,
    shape: impl Into<Shape>,
    (low, high): (f64, f64),
    device: &Device,
) -> Result<Tensor> {
    let shape = shape.into();
    Tensor::from_vec(
        uniform(seed, stream, shape.elem_count(), low, high),
        shape,
        device,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_draws_have_unit_moments_and_depend_on_seed_and_stream() {
        let draw = |seed, stream| {
            normal(seed, stream, (3, 10_001), &Device::Cpu)
                .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
                .unwrap()
        };
        let values = draw(5, "flow");
        assert_eq!(values.len(), 30_003);
        let mean = values.iter().map(|v| f64::from(*v)).sum::<f64>() / values.len() as f64;
        let var = values
            .iter()
            .map(|v| (f64::from(*v) - mean).powi(2))
            .sum::<f64>()
            / values.len() as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.03, "variance {var}");
        assert_eq!(values, draw(5, "flow"));
        assert_ne!(values, draw(6, "flow"));
        assert_ne!(values, draw(5, "hift"));
    }
}
