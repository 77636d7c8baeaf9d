//! Port of chatterbox/models/s3gen/utils/mel.py: the 80-band log mel S3Gen conditions on and
//! generates (24 kHz, n_fft 1920, hop 480, reflect pad 720 each side, no centring).

use candle_core::{Device, Result, Tensor};

use crate::model::dsp::mel::{apply_filters, mel_filters};
use crate::model::dsp::stft::{Stft, hann_periodic, reflect_pad};

const N_FFT: usize = 1920;
const HOP: usize = 480;
const N_MELS: usize = 80;
const SAMPLE_RATE: u32 = 24000;

/// (80, ⌊len/480⌋) natural-log mel of a 24 kHz signal.
pub fn mel_spectrogram(wav: &[f32], device: &Device) -> Result<Tensor> {
    let pad = (N_FFT - HOP) / 2;
    if wav.len() <= pad {
        candle_core::bail!(
            "audio of {} samples is too short for the S3Gen mel (needs more than {pad})",
            wav.len()
        );
    }
    let padded = reflect_pad(wav, pad, pad);
    let stft = Stft::new(N_FFT, HOP, &hann_periodic(N_FFT));
    let magnitudes = stft.spectrum(&padded, false, |c| {
        let (re, im) = (c.re as f32, c.im as f32);
        (re * re + im * im + 1e-9).sqrt()
    });
    let filters = mel_filters(SAMPLE_RATE, N_FFT, N_MELS, 0.0, 8000.0);
    apply_filters(magnitudes, filters, stft.bins(), device)?
        .clamp(1e-5, f32::MAX)?
        .log()
}
