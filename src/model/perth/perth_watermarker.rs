//! Port of perth/perth_net/perth_net_implicit/perth_watermarker.py: `PerthImplicitWatermarker`,
//! the neural watermark chatterbox applies to every output (`apply_watermark`) and its detector
//! (`get_watermark`). Both are deterministic: no randomness enters at inference.
//!
//! The signal is resampled to the model's rate (32 kHz) with librosa, split into normalised dB
//! magnitudes and phases, the encoder adds its residual to the lowest 2 kHz, and the original
//! phases rebuild the signal, which is resampled back. Resampling, STFT and iSTFT run on the
//! host; the networks run on the weights' device.

use std::borrow::Cow;
use std::path::Path;

use candle_core::{DType, Device, Error, Result};
use candle_nn::VarBuilder;

use super::audio_processor::AudioProcessor;
use super::config::PerthConfig;
use super::perth_net::{COMPUTED_BUFFERS, PerthNet};
use crate::model::dsp::resample::Resampler;
use crate::model::dsp::resample_poly::PolyphaseResampler;
use crate::model::weights::{Weights, WeightsError};

/// The checkpoint is `{"model": state_dict, "step": 250000}`.
const CHECKPOINT_STATE_KEY: &str = "model";

/// The `res_type` a `librosa.resample` call uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResType {
    /// librosa's default, libsoxr's HQ preset (`apply_watermark`). libsoxr is not ported:
    /// [`Resampler::soxr_like`] stands in for it (docs/parity.md measures the difference).
    SoxrHq,
    /// `scipy.signal.resample_poly` (`get_watermark`), ported exactly.
    Polyphase,
}

/// `librosa.resample(signal, orig_sr=from_hz, target_sr=to_hz, res_type=...)`, including its
/// `fix_length` to ⌈len · to/from⌉ samples (the ratio in f64, as librosa computes it).
pub fn librosa_resample(signal: &[f32], from_hz: u32, to_hz: u32, res_type: ResType) -> Vec<f32> {
    if from_hz == to_hz {
        return signal.to_vec();
    }
    let mut out = match res_type {
        ResType::SoxrHq => Resampler::soxr_like(from_hz, to_hz).process(signal),
        ResType::Polyphase => PolyphaseResampler::new(from_hz, to_hz).process(signal),
    };
    let ratio = f64::from(to_hz) / f64::from(from_hz);
    out.resize((signal.len() as f64 * ratio).ceil() as usize, 0.0);
    out
}

pub struct PerthWatermarker {
    hp: PerthConfig,
    net: PerthNet,
    ap: AudioProcessor,
    device: Device,
}

impl PerthWatermarker {
    /// Builds from weights under the checkpoint's state_dict names (`encoder.*`, `decoder.*`).
    pub fn new(vb: VarBuilder, hp: &PerthConfig) -> Result<Self> {
        Ok(Self {
            net: PerthNet::load(vb.clone(), hp)?,
            ap: AudioProcessor::new(hp),
            hp: hp.clone(),
            device: vb.device().clone(),
        })
    }

    /// Reads resemble-perth's `perth_net/pretrained/implicit/perth_net_250000.pth.tar` (a
    /// torch.save zip) directly, in f32, with the implicit run's configuration.
    pub fn load(path: &Path, device: &Device) -> std::result::Result<Self, WeightsError> {
        let tensors = candle_core::pickle::read_all_with_key(path, Some(CHECKPOINT_STATE_KEY))
            .map_err(|e| WeightsError::Read {
                source_name: path.display().to_string(),
                message: e.to_string(),
            })?;
        let weights = Weights::new(path.display().to_string(), tensors.into_iter().collect());
        let hp = PerthConfig::implicit();
        weights.build(DType::F32, device, COMPUTED_BUFFERS, |vb| {
            Self::new(vb, &hp)
        })
    }

    pub fn config(&self) -> &PerthConfig {
        &self.hp
    }

    pub fn net(&self) -> &PerthNet {
        &self.net
    }

    pub fn audio_processor(&self) -> &AudioProcessor {
        &self.ap
    }

    /// `apply_watermark(wav, sample_rate)`: the watermarked signal at `sample_rate`. Its length
    /// is the reference's: the iSTFT keeps whole hops at the model rate, so it equals the input
    /// length when that is a multiple of 960 samples at 24 kHz (every chatterbox output) and
    /// is up to one model-rate hop shorter otherwise (239 samples at 24 kHz).
    pub fn apply(&self, wav: &[f32], sample_rate: u32) -> Result<Vec<f32>> {
        check_input(wav, sample_rate)?;
        let rate = self.hp.sample_rate;
        let signal = librosa_resample(wav, sample_rate, rate, ResType::SoxrHq);
        let watermarked = self.embed(&signal)?;
        Ok(librosa_resample(
            &watermarked,
            rate,
            sample_rate,
            ResType::SoxrHq,
        ))
    }

    /// The part of `apply` at the model's rate: STFT, encoder, iSTFT with the original phases.
    /// Returns `hop · ⌊len / hop⌋` samples.
    pub fn embed(&self, signal: &[f32]) -> Result<Vec<f32>> {
        let magphase = self.ap.signal_to_magphase(signal)?;
        let (watermarked, _mask) = self.net.encoder.forward(&magphase.magspec(&self.device)?)?;
        self.ap.magphase_to_signal(&watermarked, &magphase.phase)
    }

    /// `get_watermark(wav, sample_rate, round=False)`: the detector's confidence, clipped to
    /// [0, 1] (the reference rounds it by default). About 1 on watermarked audio, 0 on clean
    /// audio; NaN for silence, where no frame passes the energy mask.
    pub fn detect(&self, wav: &[f32], sample_rate: u32) -> Result<f32> {
        check_input(wav, sample_rate)?;
        let rate = self.hp.sample_rate;
        let signal = if sample_rate == rate {
            Cow::Borrowed(wav)
        } else {
            Cow::Owned(librosa_resample(wav, sample_rate, rate, ResType::Polyphase))
        };
        let magspec = self.ap.signal_to_magphase(&signal)?.magspec(&self.device)?;
        let confidence: f32 = self
            .net
            .decoder
            .forward(&magspec)?
            .squeeze(0)?
            .to_scalar()?;
        Ok(confidence.clamp(0.0, 1.0))
    }
}

/// librosa refuses non-finite audio (`valid_audio`); a zero rate has no resampling.
fn check_input(wav: &[f32], sample_rate: u32) -> Result<()> {
    if sample_rate == 0 {
        return Err(Error::Msg("Perth: sample rate 0".into()));
    }
    if let Some(at) = wav.iter().position(|v| !v.is_finite()) {
        return Err(Error::Msg(format!(
            "Perth: audio is not finite everywhere (sample {at} is {})",
            wav[at]
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn librosa_lengths_round_up_with_the_f64_ratio() {
        let x = vec![0.0f32; 24001];
        assert_eq!(
            librosa_resample(&x, 24000, 32000, ResType::SoxrHq).len(),
            32002
        );
        assert_eq!(
            librosa_resample(&x, 24000, 32000, ResType::Polyphase).len(),
            32002
        );
        assert_eq!(
            librosa_resample(&x[..24000], 24000, 32000, ResType::SoxrHq).len(),
            32000
        );
        assert_eq!(
            librosa_resample(&x[..3], 32000, 24000, ResType::SoxrHq).len(),
            3
        );
    }

    #[test]
    fn refuses_non_finite_audio_and_a_zero_rate() {
        let err = check_input(&[0.0, f32::NAN], 24000)
            .unwrap_err()
            .to_string();
        assert!(err.contains("sample 1"), "{err}");
        assert!(check_input(&[0.0], 0).is_err());
    }
}
