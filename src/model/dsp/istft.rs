//! `torch.istft`: the inverse of a one-sided STFT (the layout [`super::stft::Stft::spectrum`]
//! produces) by windowed overlap-add, divided by the overlap-added squared window. The inverse
//! FFT and the overlap-add run in f64; torch's f32 result differs from that by ~1e-7 relative.

use std::sync::Arc;

use candle_core::{Error, Result};
use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner};

/// torch refuses to divide by a window envelope below this anywhere in the output (the NOLA
/// condition).
const NOLA_FLOOR: f64 = 1e-11;

pub struct Istft {
    n_fft: usize,
    hop: usize,
    window: Vec<f64>,
    ifft: Arc<dyn ComplexToReal<f64>>,
}

impl Istft {
    /// A window shorter than `n_fft` is centred in the frame, as torch pads it.
    pub fn new(n_fft: usize, hop: usize, window: &[f64]) -> Self {
        let offset = (n_fft - window.len()) / 2;
        let mut padded = vec![0.0; n_fft];
        padded[offset..offset + window.len()].copy_from_slice(window);
        Self {
            n_fft,
            hop,
            window: padded,
            ifft: RealFftPlanner::<f64>::new().plan_fft_inverse(n_fft),
        }
    }

    pub fn bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// `torch.istft(spectrum, n_fft, hop, window=window, center=center, length=length)` with
    /// `normalized=False, onesided=True`. `spectrum` holds `bins()` values per frame, frame after
    /// frame. Without `length` the output has `hop·(frames − 1)` samples when centred (torch cuts
    /// n_fft/2 from both ends) and `n_fft + hop·(frames − 1)` otherwise; a longer `length` is
    /// zero-filled at the end, as torch does. The imaginary parts of the DC and Nyquist bins are
    /// ignored, as every real inverse FFT does.
    pub fn process(
        &self,
        spectrum: &[Complex<f64>],
        center: bool,
        length: Option<usize>,
    ) -> Result<Vec<f32>> {
        let bins = self.bins();
        if spectrum.is_empty() || !spectrum.len().is_multiple_of(bins) {
            return Err(Error::Msg(format!(
                "istft: {} spectrum values are not whole frames of {bins} bins",
                spectrum.len()
            )));
        }
        let frames = spectrum.len() / bins;
        let total = self.n_fft + self.hop * (frames - 1);
        let mut signal = vec![0.0f64; total];
        let mut envelope = vec![0.0f64; total];
        let mut input = self.ifft.make_input_vec();
        let mut output = self.ifft.make_output_vec();
        let mut scratch = self.ifft.make_scratch_vec();
        let scale = 1.0 / self.n_fft as f64;
        for (frame, bins_of_frame) in spectrum.chunks_exact(bins).enumerate() {
            input.copy_from_slice(bins_of_frame);
            input[0].im = 0.0;
            if self.n_fft.is_multiple_of(2) {
                input[bins - 1].im = 0.0;
            }
            self.ifft
                .process_with_scratch(&mut input, &mut output, &mut scratch)
                .map_err(|e| Error::Msg(format!("istft: {e}")))?;
            let start = frame * self.hop;
            for (i, (sample, w)) in output.iter().zip(&self.window).enumerate() {
                signal[start + i] += sample * scale * w;
                envelope[start + i] += w * w;
            }
        }
        let start = if center { self.n_fft / 2 } else { 0 };
        let end = match length {
            Some(length) => start + length,
            None if center => total - self.n_fft / 2,
            None => total,
        };
        let available = end.min(total);
        let mut out = Vec::with_capacity(end - start);
        for (sample, weight) in signal[start..available]
            .iter()
            .zip(&envelope[start..available])
        {
            if weight.abs() < NOLA_FLOOR {
                return Err(Error::Msg(format!(
                    "istft: window overlap-add falls to {weight:e} (hop {} too long for the window)",
                    self.hop
                )));
            }
            out.push((sample / weight) as f32);
        }
        out.resize(end - start, 0.0);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::dsp::stft::{Stft, hann_periodic};

    fn chirp(len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let t = i as f32 / len as f32;
                (40.0 * t * t * std::f32::consts::TAU).sin() * (0.3 + 0.7 * t)
            })
            .collect()
    }

    fn round_trip(n_fft: usize, hop: usize, len: usize) -> (Vec<f32>, Vec<f32>) {
        let signal = chirp(len);
        let window = hann_periodic(n_fft);
        let stft = Stft::new(n_fft, hop, &window);
        let re = stft.spectrum(&signal, true, |c| c.re as f32);
        let im = stft.spectrum(&signal, true, |c| c.im as f32);
        let spectrum: Vec<Complex<f64>> = re
            .iter()
            .zip(&im)
            .map(|(&re, &im)| Complex::new(f64::from(re), f64::from(im)))
            .collect();
        let istft = Istft::new(n_fft, hop, &window);
        (signal, istft.process(&spectrum, true, None).unwrap())
    }

    #[test]
    fn inverts_a_centred_stft_up_to_the_last_whole_hop() {
        let (signal, restored) = round_trip(64, 16, 1000);
        assert_eq!(restored.len(), 16 * (1000 / 16));
        for (a, b) in restored.iter().zip(&signal) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn length_cuts_or_zero_fills_the_tail() {
        let window = hann_periodic(16);
        let istft = Istft::new(16, 4, &window);
        let spectrum = vec![Complex::new(1.0, 0.0); 9 * 5];
        assert_eq!(istft.process(&spectrum, true, Some(10)).unwrap().len(), 10);
        let long = istft.process(&spectrum, true, Some(30)).unwrap();
        assert_eq!(long.len(), 30);
        assert!(long[16..].iter().all(|v| *v == 0.0));
    }

    #[test]
    fn refuses_ragged_spectra_and_gaps_between_windows() {
        let window = hann_periodic(16);
        let istft = Istft::new(16, 4, &window);
        assert!(
            istft
                .process(&[Complex::new(0.0, 0.0); 10], true, None)
                .is_err()
        );
        let gappy = Istft::new(16, 20, &window);
        let err = gappy
            .process(&[Complex::new(1.0, 0.0); 9 * 3], false, None)
            .unwrap_err();
        assert!(err.to_string().contains("overlap-add"), "{err}");
    }
}
