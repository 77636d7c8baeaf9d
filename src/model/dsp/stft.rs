//! Short-time Fourier transforms as torch.stft and librosa.stft compute them for the
//! front-ends: periodic Hann windows, optional reflect centring, one-sided spectra. The FFT runs
//! in f64 (numpy's precision; torch's f32 FFT differs from it by ~1e-7 relative).

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

/// `torch.hann_window(n)` / `scipy.signal.get_window("hann", n, fftbins=True)`.
pub fn hann_periodic(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
        .collect()
}

/// `F.pad(x, (left, right), mode="reflect")`: mirrors without repeating the edge sample. The
/// caller guarantees `left` and `right` are shorter than the signal, as torch requires.
pub fn reflect_pad(signal: &[f32], left: usize, right: usize) -> Vec<f32> {
    let n = signal.len();
    let mut out = Vec::with_capacity(n + left + right);
    out.extend((1..=left).rev().map(|i| signal[i.min(n - 1)]));
    out.extend_from_slice(signal);
    out.extend((1..=right).map(|i| signal[n.saturating_sub(1 + i)]));
    out
}

/// |X|² with the magnitude taken in f32, as numpy and torch do on complex64 spectra.
pub fn power_f32(c: Complex<f64>) -> f32 {
    let magnitude = (c.re as f32).hypot(c.im as f32);
    magnitude * magnitude
}

pub struct Stft {
    n_fft: usize,
    hop: usize,
    window: Vec<f64>,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl Stft {
    /// A window shorter than `n_fft` is centred in the frame, as torch and librosa pad it.
    pub fn new(n_fft: usize, hop: usize, window: &[f64]) -> Self {
        let offset = (n_fft - window.len()) / 2;
        let mut padded = vec![0.0; n_fft];
        padded[offset..offset + window.len()].copy_from_slice(window);
        Self {
            n_fft,
            hop,
            window: padded,
            fft: RealFftPlanner::<f64>::new().plan_fft_forward(n_fft),
        }
    }

    pub fn bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Number of frames `spectrum` yields for a signal of `len` samples.
    pub fn frames(&self, len: usize, center: bool) -> usize {
        let padded = if center { len + self.n_fft } else { len };
        if padded < self.n_fft {
            0
        } else {
            1 + (padded - self.n_fft) / self.hop
        }
    }

    /// One row of `bins()` values per frame, each bin mapped through `value`. With `center`
    /// the signal is reflect-padded by n_fft/2 on both sides first (torch.stft's default);
    /// signals too short to reflect are zero-padded instead of failing.
    pub fn spectrum(
        &self,
        signal: &[f32],
        center: bool,
        value: impl Fn(Complex<f64>) -> f32,
    ) -> Vec<f32> {
        let half = self.n_fft / 2;
        let padded = if !center {
            signal.to_vec()
        } else if signal.len() > half {
            reflect_pad(signal, half, half)
        } else {
            let mut zeros = vec![0.0; signal.len() + 2 * half];
            zeros[half..half + signal.len()].copy_from_slice(signal);
            zeros
        };
        let frames = self.frames(signal.len(), center);
        let bins = self.bins();
        let mut out = Vec::with_capacity(frames * bins);
        let mut input = self.fft.make_input_vec();
        let mut output = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        for frame in 0..frames {
            let start = frame * self.hop;
            for (slot, (sample, w)) in input
                .iter_mut()
                .zip(padded[start..start + self.n_fft].iter().zip(&self.window))
            {
                *slot = f64::from(*sample) * w;
            }
            self.fft
                .process_with_scratch(&mut input, &mut output, &mut scratch)
                .expect("buffers come from the plan");
            out.extend(output.iter().map(|c| value(*c)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_pad_mirrors_without_the_edge() {
        assert_eq!(
            reflect_pad(&[1.0, 2.0, 3.0, 4.0], 2, 2),
            vec![3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0]
        );
    }

    #[test]
    fn a_bin_centred_sine_lands_in_its_bin() {
        let n = 64;
        let signal: Vec<f32> = (0..256)
            .map(|i| (2.0 * std::f32::consts::PI * 8.0 * i as f32 / n as f32).sin())
            .collect();
        let stft = Stft::new(n, 16, &hann_periodic(n));
        let spec = stft.spectrum(&signal, true, |c| c.norm() as f32);
        assert_eq!(spec.len(), stft.frames(256, true) * stft.bins());
        let frame = &spec[5 * stft.bins()..6 * stft.bins()];
        let peak = frame
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i);
        assert_eq!(peak, Some(8));
    }
}
