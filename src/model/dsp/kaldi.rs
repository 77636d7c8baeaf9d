//! Kaldi filter-bank features as `torchaudio.compliance.kaldi.fbank(wav, num_mel_bins=80)`
//! computes them with its defaults, which is how CAMPPlus (s3gen/xvector.py) calls it: 16 kHz,
//! 25 ms frames every 10 ms that must fit entirely in the signal (snip_edges), no dither, DC
//! removal then preemphasis 0.97 per frame, povey window, FFT size rounded up to 512, power
//! spectrum, Kaldi mel filters from 20 Hz to Nyquist, natural log floored at FLT_EPSILON and no
//! energy column. Audio stays in ±1: Kaldi's int16 scale (×32768) is not applied, as in the
//! reference. Frames are processed in f64 with torchaudio's (f32) mel filters, bit for bit, and
//! the log energies rounded to f32: this matches torchaudio run on float64 input to f32
//! rounding. On f32 input torchaudio rounds every step in f32, which moves near-silent bands by
//! up to ~5e-4 in the log; the f64 path is the exact one.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

pub const SAMPLE_RATE: usize = 16_000;
pub const NUM_MEL_BINS: usize = 80;
const FRAME_LENGTH: usize = SAMPLE_RATE * 25 / 1000;
const FRAME_SHIFT: usize = SAMPLE_RATE * 10 / 1000;
const PREEMPHASIS: f64 = 0.97;
const POVEY_EXPONENT: f64 = 0.85;
const LOW_FREQ: f64 = 20.0;

/// Number of frames [`KaldiFbank::compute`] yields for `len` samples: only whole frames (snip_edges).
pub fn num_frames(len: usize) -> usize {
    if len < FRAME_LENGTH {
        0
    } else {
        1 + (len - FRAME_LENGTH) / FRAME_SHIFT
    }
}

/// Kaldi's mel scale (natural log, 1127), not Slaney's.
fn mel_scale(freq: f64) -> f64 {
    1127.0 * (1.0 + freq / 700.0).ln()
}

pub struct KaldiFbank {
    n_fft: usize,
    window: Vec<f64>,
    /// `NUM_MEL_BINS` rows of `n_fft / 2 + 1` weights; the Nyquist bin's weight is always 0.
    mel_banks: Vec<f64>,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl Default for KaldiFbank {
    fn default() -> Self {
        Self::new()
    }
}

impl KaldiFbank {
    pub fn new() -> Self {
        let n_fft = FRAME_LENGTH.next_power_of_two();
        Self {
            n_fft,
            window: povey_window(FRAME_LENGTH),
            mel_banks: mel_banks(n_fft),
            fft: RealFftPlanner::<f64>::new().plan_fft_forward(n_fft),
        }
    }

    /// Row-major (`num_frames(wav.len())` × `NUM_MEL_BINS`) log mel energies; empty when the
    /// signal is shorter than one frame.
    pub fn compute(&self, wav: &[f32]) -> Vec<f32> {
        let bins = self.n_fft / 2 + 1;
        let frames = num_frames(wav.len());
        let mut out = Vec::with_capacity(frames * NUM_MEL_BINS);
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut power = vec![0.0f64; bins];
        for frame in 0..frames {
            let samples = &wav[frame * FRAME_SHIFT..frame * FRAME_SHIFT + FRAME_LENGTH];
            let mean = samples.iter().map(|&s| f64::from(s)).sum::<f64>() / FRAME_LENGTH as f64;
            // Kaldi filters the first sample against itself. The FFT overwrites its input, so
            // the zero padding up to n_fft is restored every frame.
            input.fill(0.0);
            for j in 0..FRAME_LENGTH {
                let current = f64::from(samples[j]) - mean;
                let previous = f64::from(samples[j.saturating_sub(1)]) - mean;
                input[j] = (current - PREEMPHASIS * previous) * self.window[j];
            }
            self.fft
                .process(&mut input, &mut spectrum)
                .expect("buffers come from the plan");
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            out.extend(self.mel_banks.chunks_exact(bins).map(|bank| {
                let energy: f64 = bank.iter().zip(&power).map(|(w, p)| w * p).sum();
                energy.max(f64::from(f32::EPSILON)).ln() as f32
            }));
        }
        out
    }
}

/// `torch.hann_window(n, periodic=False) ** 0.85`: like Hann but reaching zero at both ends.
fn povey_window(n: usize) -> Vec<f64> {
    let step = 2.0 * std::f64::consts::PI / (n - 1) as f64;
    (0..n)
        .map(|i| (0.5 - 0.5 * (step * i as f64).cos()).powf(POVEY_EXPONENT))
        .collect()
}

/// torchaudio's `get_mel_banks` without VTLN warping: triangles evenly spaced on the mel scale
/// from `LOW_FREQ` to Nyquist, evaluated at the mel value of each FFT bin's frequency. torchaudio
/// builds them in f32 whatever the input's dtype, with only the band edges' scalars in f64; the
/// steps are mirrored here because the rounding shows in low bands of noisy input (1.7e-4 in the
/// log with f64 banks).
fn mel_banks(n_fft: usize) -> Vec<f64> {
    let bins = n_fft / 2 + 1;
    let bin_width = (SAMPLE_RATE as f64 / n_fft as f64) as f32;
    let mel_low = mel_scale(LOW_FREQ);
    let mel_high = mel_scale(SAMPLE_RATE as f64 / 2.0);
    let mel_delta = ((mel_high - mel_low) / (NUM_MEL_BINS + 1) as f64) as f32;
    let mel_low = mel_low as f32;
    let mut banks = vec![0.0; NUM_MEL_BINS * bins];
    for (band, row) in banks.chunks_exact_mut(bins).enumerate() {
        let left = mel_low + band as f32 * mel_delta;
        let center = mel_low + (band + 1) as f32 * mel_delta;
        let right = mel_low + (band + 2) as f32 * mel_delta;
        // The last (Nyquist) bin is left at zero, as torchaudio pads the banks with a zero
        // column.
        for (bin, weight) in row.iter_mut().enumerate().take(bins - 1) {
            // The f32 log is taken in f64 and rounded: glibc's logf is 1 ulp off torch's
            // at some bins, which moves a band weight by 1e-6 and its log energy by 1.7e-5.
            let ratio = 1.0 + bin_width * bin as f32 / 700.0;
            let mel = 1127.0 * f64::from(ratio).ln() as f32;
            let up = (mel - left) / (center - left);
            let down = (right - mel) / (right - center);
            *weight = f64::from(up.min(down).max(0.0));
        }
    }
    banks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, amplitude: f64, len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let t = i as f64 / SAMPLE_RATE as f64;
                (amplitude * (2.0 * std::f64::consts::PI * freq * t).sin()) as f32
            })
            .collect()
    }

    #[test]
    fn counts_only_whole_frames() {
        assert_eq!(num_frames(399), 0);
        assert_eq!(num_frames(400), 1);
        assert_eq!(num_frames(559), 1);
        assert_eq!(num_frames(560), 2);
        assert_eq!(num_frames(10 * SAMPLE_RATE), 998);
        let fbank = KaldiFbank::new();
        assert!(fbank.compute(&[0.1; 399]).is_empty());
        assert_eq!(fbank.compute(&[0.1; 16_000]).len(), 98 * NUM_MEL_BINS);
    }

    #[test]
    fn silence_sits_at_the_log_floor() {
        let floor = f32::EPSILON.ln();
        let features = KaldiFbank::new().compute(&[0.25; 800]);
        // A constant signal is all DC, which the per-frame mean removal takes out entirely.
        assert!(features.iter().all(|&v| (v - floor).abs() < 1e-6));
    }

    #[test]
    fn a_tone_peaks_in_the_band_around_its_frequency() {
        let features = KaldiFbank::new().compute(&tone(1000.0, 0.5, 4000));
        let first_frame = &features[..NUM_MEL_BINS];
        let peak = (0..NUM_MEL_BINS)
            .max_by(|&a, &b| first_frame[a].total_cmp(&first_frame[b]))
            .unwrap_or_default();
        let mel_low = mel_scale(LOW_FREQ);
        let delta = (mel_scale(8000.0) - mel_low) / (NUM_MEL_BINS + 1) as f64;
        let center = mel_low + (peak + 1) as f64 * delta;
        assert!(
            (center - mel_scale(1000.0)).abs() < delta,
            "band {peak} peaks"
        );
    }

    #[test]
    fn gain_shifts_every_band_by_twice_its_log() {
        // Power spectrum: scaling the waveform by g adds ln(g²) to each log energy, which also
        // shows no int16 scale is applied anywhere.
        let fbank = KaldiFbank::new();
        let quiet = fbank.compute(&tone(440.0, 0.1, 2000));
        let loud = fbank.compute(&tone(440.0, 0.4, 2000));
        let shift = 2.0 * 4.0f32.ln();
        for (q, l) in quiet.iter().zip(&loud) {
            if *q > -10.0 {
                assert!((l - q - shift).abs() < 1e-3, "{q} -> {l}");
            }
        }
    }
}
