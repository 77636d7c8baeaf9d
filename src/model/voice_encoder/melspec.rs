//! Port of chatterbox/models/voice_encoder/melspec.py with the voice encoder's settings: a
//! 40-band power mel, no log and no normalisation (`mel_type="amp"`, `normalized_mels=False`).

use candle_core::{Device, Result, Tensor};

use super::config::VoiceEncConfig;
use crate::model::dsp::mel::mel_filters;
use crate::model::dsp::stft::{Stft, hann_periodic};

/// (num_mels, 1 + len/hop) mel of a 16 kHz signal, librosa.stft-centred with reflect padding.
pub fn melspectrogram(wav: &[f32], hp: &VoiceEncConfig, device: &Device) -> Result<Tensor> {
    if wav.len() <= hp.n_fft / 2 {
        candle_core::bail!(
            "audio of {} samples is too short for the voice encoder (needs more than {})",
            wav.len(),
            hp.n_fft / 2
        );
    }
    let stft = Stft::new(hp.n_fft, hp.hop_size, &hann_periodic(hp.win_size));
    let frames = stft.frames(wav.len(), true);
    // librosa keeps the spectrum as complex64, so the magnitude and its square are float32.
    let power = stft.spectrum(wav, true, |c| {
        let magnitude = (c.re as f32).hypot(c.im as f32);
        magnitude * magnitude
    });
    let spec = Tensor::from_vec(power, (frames, stft.bins()), device)?;
    let filters = Tensor::from_vec(
        mel_filters(hp.sample_rate, hp.n_fft, hp.num_mels, hp.fmin, hp.fmax),
        (hp.num_mels, stft.bins()),
        device,
    )?;
    filters.matmul(&spec.t()?)
}
