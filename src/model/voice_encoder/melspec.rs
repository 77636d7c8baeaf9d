//! Port of chatterbox/models/voice_encoder/melspec.py with the voice encoder's settings: a
//! 40-band power mel, no log and no normalisation (`mel_type="amp"`, `normalized_mels=False`).

use candle_core::{Device, Result, Tensor};

use super::config::VoiceEncConfig;
use crate::model::dsp::mel::{apply_filters, mel_filters};
use crate::model::dsp::stft::{Stft, hann_periodic, power_f32};

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
    let power = stft.spectrum(wav, true, power_f32);
    let filters = mel_filters(hp.sample_rate, hp.n_fft, hp.num_mels, hp.fmin, hp.fmax);
    apply_filters(power, filters, stft.bins(), device)
}
