//! Port of chatterbox/models/s3tokenizer/s3tokenizer.py: S3TokenizerV2 fed by its Whisper-style
//! 128-band log mel (16 kHz, n_fft 400, hop 160, centred, last frame dropped).

use candle_core::{Device, Result, Tensor};
use candle_nn::VarBuilder;

use super::model_v2::{ModelConfig, S3TokenizerV2};

use crate::model::dsp::mel::{apply_filters, mel_filters};
use crate::model::dsp::stft::{Stft, hann_periodic, power_f32};

pub const S3_SR: u32 = 16000;
pub const S3_HOP: usize = 160;
pub const S3_TOKEN_HOP: usize = 640;
pub const S3_TOKEN_RATE: usize = 25;
pub const SPEECH_VOCAB_SIZE: u32 = 6561;

const N_FFT: usize = 400;
const N_MELS: usize = 128;

/// Buffers `s3gen.safetensors` may carry under `tokenizer.`; they are recomputed here.
pub const RECOMPUTED_BUFFERS: &[&str] = &["_mel_filters", "window"];

/// (128, len/160) log mel of a 16 kHz signal, floored 8 (log10) below its maximum and scaled.
pub fn log_mel_spectrogram(wav: &[f32], device: &Device) -> Result<Tensor> {
    if wav.len() < S3_HOP {
        candle_core::bail!(
            "audio of {} samples is too short for the speech tokenizer (needs {S3_HOP})",
            wav.len()
        );
    }
    let stft = Stft::new(N_FFT, S3_HOP, &hann_periodic(N_FFT));
    let frames = stft.frames(wav.len(), true) - 1;
    let bins = stft.bins();
    let mut power = stft.spectrum(wav, true, power_f32);
    power.truncate(frames * bins);
    let filters = mel_filters(S3_SR, N_FFT, N_MELS, 0.0, f64::from(S3_SR) / 2.0);
    let mel = apply_filters(power, filters, bins, device)?;
    let log_spec = (mel.clamp(1e-10, f32::MAX)?.log()? / 10f64.ln())?;
    let floor = log_spec.max_all()?.to_scalar::<f32>()? - 8.0;
    (log_spec.maximum(floor)? + 4.0)? / 4.0
}

/// Mel frames per speech token (100 frames/s against 25 tokens/s).
const FRAMES_PER_TOKEN: usize = 4;

pub struct S3Tokenizer {
    model: S3TokenizerV2,
    device: Device,
}

impl S3Tokenizer {
    /// Loads from the `tokenizer.` weights of s3gen.safetensors; build it with
    /// [`RECOMPUTED_BUFFERS`] ignored.
    pub fn load(vb: VarBuilder, config: &ModelConfig) -> Result<Self> {
        let device = vb.device().clone();
        Ok(Self {
            model: S3TokenizerV2::load(vb, config)?,
            device,
        })
    }

    /// `S3Tokenizer.forward([wav], max_len)`: the speech tokens of one 16 kHz utterance, at most
    /// `max_len` of them (the mel is cut to `max_len`·4 frames after normalisation, as the
    /// reference cuts it).
    pub fn forward(&self, wav_16k: &[f32], max_len: Option<usize>) -> Result<Vec<u32>> {
        let mut mel = log_mel_spectrogram(wav_16k, &self.device)?;
        if let Some(max_len) = max_len {
            let frames = mel.dim(1)?.min(max_len * FRAMES_PER_TOKEN);
            mel = mel.narrow(1, 0, frames)?;
        }
        self.model.quantize(&mel)
    }
}
