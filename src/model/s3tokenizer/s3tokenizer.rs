//! Port of chatterbox/models/s3tokenizer/s3tokenizer.py: the Whisper-style 128-band log mel the
//! speech tokenizer reads (16 kHz, n_fft 400, hop 160, centred, last frame dropped).

use candle_core::{Device, Result, Tensor};

use crate::model::dsp::mel::mel_filters;
use crate::model::dsp::stft::{Stft, hann_periodic};

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
    let mut power = stft.spectrum(wav, true, |c| {
        let magnitude = (c.re as f32).hypot(c.im as f32);
        magnitude * magnitude
    });
    power.truncate(frames * bins);
    let spec = Tensor::from_vec(power, (frames, bins), device)?;
    let filters = Tensor::from_vec(
        mel_filters(S3_SR, N_FFT, N_MELS, 0.0, f64::from(S3_SR) / 2.0),
        (N_MELS, bins),
        device,
    )?;
    let log_spec = (filters.matmul(&spec.t()?)?.clamp(1e-10, f32::MAX)?.log()? / 10f64.ln())?;
    let floor = log_spec.max_all()?.to_scalar::<f32>()? - 8.0;
    (log_spec.maximum(floor)? + 4.0)? / 4.0
}
