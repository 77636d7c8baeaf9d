//! Port of perth/perth_net/perth_net_implicit/config.py (`PerthConfig`, the fields inference
//! reads), with the values of perth_net/pretrained/implicit/hparams.yaml from resemble-perth
//! 1.0.1. The training fields (batch size, learning rates, loss type) are left out; the STFT
//! window is always Hann, the only `window_fn` the shipped run uses.

use candle_core::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerthConfig {
    pub sample_rate: u32,
    pub n_fft: usize,
    pub hop_size: usize,
    pub window_size: usize,
    pub stft_magnitude_min: f64,
    /// The watermark lives in the bins below this frequency (Hz).
    pub max_wmark_freq: f64,
    pub hidden_size: usize,
}

impl PerthConfig {
    /// The "implicit" run shipped in resemble-perth (`perth_net_250000.pth.tar`), which
    /// chatterbox's `PerthImplicitWatermarker()` loads.
    pub fn implicit() -> Self {
        Self {
            sample_rate: 32000,
            n_fft: 2048,
            hop_size: 320,
            window_size: 2048,
            stft_magnitude_min: 1e-9,
            max_wmark_freq: 2000.0,
            hidden_size: 256,
        }
    }

    pub fn bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// `compute_subband_freq`: how many of the lowest bins the networks see (128 for the
    /// implicit run). Python's `round` rounds half to even.
    pub fn subband(&self) -> usize {
        let top = f64::from(self.sample_rate) / 2.0;
        (self.bins() as f64 * self.max_wmark_freq / top).round_ties_even() as usize
    }

    pub fn validate(&self) -> Result<()> {
        let problem = if self.sample_rate == 0 || self.hop_size == 0 {
            Some("sample_rate and hop_size must be positive".to_string())
        } else if self.window_size == 0 || self.window_size > self.n_fft {
            Some(format!(
                "window_size {} must be in 1..={} (n_fft)",
                self.window_size, self.n_fft
            ))
        } else if self.subband() == 0 || self.subband() > self.bins() {
            Some(format!(
                "max_wmark_freq {} Hz gives {} watermark bins of {}",
                self.max_wmark_freq,
                self.subband(),
                self.bins()
            ))
        } else if !self.stft_magnitude_min.is_finite() || self.stft_magnitude_min <= 0.0 {
            Some(format!(
                "stft_magnitude_min {} must be positive and finite",
                self.stft_magnitude_min
            ))
        } else {
            None
        };
        match problem {
            Some(problem) => Err(Error::Msg(format!("Perth config: {problem}"))),
            None => Ok(()),
        }
    }
}

impl Default for PerthConfig {
    fn default() -> Self {
        Self::implicit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_implicit_run_watermarks_the_lowest_128_bins() {
        let hp = PerthConfig::implicit();
        assert_eq!((hp.bins(), hp.subband()), (1025, 128));
        assert!(hp.validate().is_ok());
    }

    #[test]
    fn validate_names_the_bad_field() {
        let hp = PerthConfig {
            max_wmark_freq: 5.0,
            ..PerthConfig::implicit()
        };
        let err = hp.validate().unwrap_err().to_string();
        assert!(err.contains("max_wmark_freq"), "{err}");
    }
}
