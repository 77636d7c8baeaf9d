//! Seeded weights that the Python parity harness (tools/parity/common.py) derives identically:
//! element i of tensor `name` is a function of (seed, name, i) only. Fixtures therefore carry a
//! manifest instead of the weights, and benchmarks run full-size models without checkpoints.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use serde::Deserialize;

use super::weights::Weights;

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// One tensor of the manifest: its state_dict key, shape and uniform range.
#[derive(Debug, Clone, Deserialize)]
pub struct RandomTensor(pub String, pub Vec<usize>, pub f64, pub f64);

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub seed: u64,
    pub tensors: Vec<RandomTensor>,
}

impl Manifest {
    pub fn weights(&self) -> candle_core::Result<Weights> {
        let mut tensors = HashMap::with_capacity(self.tensors.len());
        for RandomTensor(name, shape, low, high) in &self.tensors {
            let values = uniform(self.seed, name, shape.iter().product(), *low, *high);
            let tensor = Tensor::from_vec(values, shape.as_slice(), &Device::Cpu)?;
            tensors.insert(name.clone(), tensor);
        }
        Ok(Weights::new(
            format!("seeded random weights (seed {})", self.seed),
            tensors,
        ))
    }
}

fn fnv1a64(text: &str) -> u64 {
    text.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    })
}

/// Counter-based splitmix64 mapped to U(low, high) through 24 random bits.
pub fn uniform(seed: u64, name: &str, count: usize, low: f64, high: f64) -> Vec<f32> {
    let base = seed ^ fnv1a64(name);
    (1..=count as u64)
        .map(|i| {
            let mut z = base.wrapping_add(i.wrapping_mul(GOLDEN));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let unit = (z >> 40) as f64 / (1u64 << 24) as f64;
            (low + (high - low) * unit) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_python_harness() {
        // tools/parity/common.py: uniform(1, "x", [4], -1.0, 1.0)
        let python = [
            -0.188_269_138_336_181_64,
            0.954_031_229_019_165,
            0.375_962_495_803_833,
            0.445_120_334_625_244_14,
        ];
        let expected: Vec<f32> = python.iter().map(|v: &f64| *v as f32).collect();
        assert_eq!(uniform(1, "x", 4, -1.0, 1.0), expected);
    }

    #[test]
    fn values_stay_in_range_and_depend_on_the_name() {
        let a = uniform(7, "lstm.weight_ih_l0", 1000, -0.5, 0.5);
        let b = uniform(7, "lstm.weight_hh_l0", 1000, -0.5, 0.5);
        assert!(a.iter().all(|v| (-0.5..0.5).contains(v)));
        assert_ne!(a, b);
        assert_eq!(a, uniform(7, "lstm.weight_ih_l0", 1000, -0.5, 0.5));
    }
}
