//! Audio in and out of the worker. A leaf: no model, HTTP or storage code.

#[cfg(feature = "aac")]
pub mod aac;
pub mod decode;
pub mod flac;
pub mod format;
pub mod join;
pub mod loudness;
pub mod mp3;
pub mod opus;
pub mod resample;
pub mod stream;
pub mod stretch;
pub mod trim;
pub mod wav;

pub use decode::{DecodeError, decode};

/// Mono samples in [-1, 1] at their sample rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

impl Clip {
    pub fn duration_seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate.max(1))
    }

    /// The duration as results report it, to the millisecond.
    pub fn reported_seconds(&self) -> f64 {
        reported_seconds(self.samples.len(), self.sample_rate)
    }

    /// Samples in `ms` milliseconds at this clip's rate.
    pub fn samples_for_ms(&self, ms: f64) -> usize {
        samples_for_ms(ms, self.sample_rate)
    }
}

/// Rounded to the nearest sample, so durations add up exactly at the output rate.
pub fn samples_for_ms(ms: f64, sample_rate: u32) -> usize {
    (ms * f64::from(sample_rate) / 1000.0).round().max(0.0) as usize
}

/// `samples` at `sample_rate` in seconds, to the millisecond, as results report durations.
pub fn reported_seconds(samples: usize, sample_rate: u32) -> f64 {
    (samples as f64 / f64::from(sample_rate.max(1)) * 1000.0).round() / 1000.0
}

/// Averages interleaved frames of `channels` samples into one.
fn downmix(interleaved: &[f32], channels: usize) -> Vec<f32> {
    if channels <= 1 {
        return interleaved.to_vec();
    }
    interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect()
}
