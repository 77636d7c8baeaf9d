//! `torch.istft` as the HiFT vocoder calls it: one-sided spectra, a window as long as n_fft,
//! center=True, no normalisation, no explicit length. Each frame's inverse FFT runs in f64.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner};

/// torch refuses to divide by a window envelope below this.
const MIN_ENVELOPE: f64 = 1e-11;

pub struct Istft {
    n_fft: usize,
    hop: usize,
    window: Vec<f64>,
    fft: Arc<dyn ComplexToReal<f64>>,
}

#[derive(Debug, thiserror::Error)]
pub enum IstftError {
    #[error("istft: {got} values are not {bins} bins × {frames} frames")]
    Shape {
        got: usize,
        bins: usize,
        frames: usize,
    },
    #[error("istft: the window envelope vanishes at sample {0} (torch's NOLA check)")]
    Envelope(usize),
}

impl Istft {
    /// A window shorter than `n_fft` is centred in the frame, as torch pads it.
    pub fn new(n_fft: usize, hop: usize, window: &[f64]) -> Self {
        let offset = n_fft.saturating_sub(window.len()) / 2;
        let mut padded = vec![0.0; n_fft];
        for (slot, w) in padded[offset..].iter_mut().zip(window) {
            *slot = *w;
        }
        Self {
            n_fft,
            hop,
            window: padded,
            fft: RealFftPlanner::<f64>::new().plan_fft_inverse(n_fft),
        }
    }

    pub fn bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Samples for `frames` frames: hop·(frames − 1), the centring padding removed.
    pub fn output_len(&self, frames: usize) -> usize {
        self.hop * frames.saturating_sub(1)
    }

    /// The signal whose STFT is (`real` + i·`imag`), each (bins, frames) row-major. The
    /// imaginary parts of the DC and Nyquist bins are ignored, as in torch's C2R transform.
    pub fn inverse(
        &self,
        real: &[f32],
        imag: &[f32],
        frames: usize,
    ) -> Result<Vec<f32>, IstftError> {
        let bins = self.bins();
        for part in [real, imag] {
            if part.len() != bins * frames {
                return Err(IstftError::Shape {
                    got: part.len(),
                    bins,
                    frames,
                });
            }
        }
        let padded_len = self.n_fft + self.output_len(frames);
        let mut signal = vec![0f64; padded_len];
        let mut envelope = vec![0f64; padded_len];
        let mut spectrum = self.fft.make_input_vec();
        let mut frame = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let scale = 1.0 / self.n_fft as f64;
        for f in 0..frames {
            for (k, bin) in spectrum.iter_mut().enumerate() {
                let im = if k == 0 || 2 * k == self.n_fft {
                    0.0
                } else {
                    imag[k * frames + f]
                };
                *bin = Complex::new(f64::from(real[k * frames + f]), f64::from(im));
            }
            self.fft
                .process_with_scratch(&mut spectrum, &mut frame, &mut scratch)
                .expect("buffers come from the plan and the edge bins are real");
            let start = f * self.hop;
            for (i, (value, w)) in frame.iter().zip(&self.window).enumerate() {
                signal[start + i] += value * scale * w;
                envelope[start + i] += w * w;
            }
        }
        let half = self.n_fft / 2;
        let kept = half..padded_len - half;
        if let Some(at) = envelope[kept.clone()]
            .iter()
            .position(|e| *e < MIN_ENVELOPE)
        {
            return Err(IstftError::Envelope(at));
        }
        Ok(signal[kept.clone()]
            .iter()
            .zip(&envelope[kept])
            .map(|(s, e)| (s / e) as f32)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::dsp::stft::{Stft, hann_periodic};

    /// istft(stft(x)) = x for a COLA window, the edges included (center=True).
    #[test]
    fn inverts_the_centred_stft() {
        let (n_fft, hop) = (16, 4);
        let window = hann_periodic(n_fft);
        let signal: Vec<f32> = (0..203)
            .map(|i| ((i as f32 * 0.37).sin() + (i as f32 * 0.05).cos()) * 0.5)
            .collect();
        let stft = Stft::new(n_fft, hop, &window);
        let frames = stft.frames(signal.len(), true);
        let bins = stft.bins();
        // `spectrum` gives (frames, bins); the vocoder's layout is (bins, frames).
        let bin_major = |by_frame: Vec<f32>| -> Vec<f32> {
            (0..bins * frames)
                .map(|i| by_frame[(i % frames) * bins + i / frames])
                .collect()
        };
        let real = bin_major(stft.spectrum(&signal, true, |c| c.re as f32));
        let imag = bin_major(stft.spectrum(&signal, true, |c| c.im as f32));
        let istft = Istft::new(n_fft, hop, &window);
        let back = istft.inverse(&real, &imag, frames).unwrap();
        assert_eq!(back.len(), istft.output_len(frames));
        for (a, b) in back.iter().zip(&signal) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn refuses_a_vanishing_envelope_and_wrong_shapes() {
        let istft = Istft::new(4, 4, &[0.0, 1.0, 1.0, 0.0]);
        let zeros = vec![0f32; 3 * 5];
        assert!(matches!(
            istft.inverse(&zeros, &zeros, 5),
            Err(IstftError::Envelope(_))
        ));
        assert!(matches!(
            istft.inverse(&zeros, &zeros, 4),
            Err(IstftError::Shape { .. })
        ));
    }
}
