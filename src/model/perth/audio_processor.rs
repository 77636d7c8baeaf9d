//! Port of perth/perth_net/perth_net_implicit/audio_processor.py (`AudioProcessor`) together
//! with the spectrum helpers it calls from perth_net_implicit/utils.py (`normalize`,
//! `denormalize_spectrogram`, `cx_to_magphase`, `magphase_to_cx`): torchaudio's Spectrogram
//! and InverseSpectrogram (periodic Hann, centred with reflect padding), magnitudes as dB
//! normalised to about [0, 1]. Element-wise steps run in f32 in the reference's order, since the
//! reference holds complex64 spectra.
//!
//! One difference in form: the phase is kept as the unit phasor X/|X| rather than the angle the
//! reference computes and later exponentiates (e^{i·angle(X)}); that is the same value up to f32
//! rounding, without an atan2, a sin and a cos per bin.

use candle_core::{Device, Error, Result, Tensor};
use rayon::prelude::*;
use realfft::num_complex::Complex;

use super::config::PerthConfig;
use crate::model::dsp::istft::Istft;
use crate::model::dsp::stft::{Stft, hann_periodic};

/// `normalize`'s default headroom above 0 dB.
const HEADROOM_DB: f32 = 15.0;
/// `magphase_to_cx` clips the exponent (dB / 20) here: at most 10^10.
const MAX_LOG10_MAGNITUDE: f32 = 10.0;

/// A spectrum split as the reference splits it. Both parts are frame-major on the host (one row
/// of `bins` values per frame, the layout of the STFT and iSTFT); [`MagPhase::magspec`] gives the
/// reference's (1, nfreq, T) tensor.
pub struct MagPhase {
    pub bins: usize,
    pub frames: usize,
    /// 20·log10(max(|X|, stft_magnitude_min)), normalised.
    pub magnitude: Vec<f32>,
    /// e^{i·angle(X)}: X/|X|, and 1 where X = 0 (torch.angle(0) = 0).
    pub phase: Vec<Complex<f32>>,
}

impl MagPhase {
    /// The normalised magnitudes as the networks take them: (1, nfreq, T) f32 on `device`.
    pub fn magspec(&self, device: &Device) -> Result<Tensor> {
        Tensor::from_slice(&self.magnitude, (1, self.frames, self.bins), device)?
            .transpose(1, 2)?
            .contiguous()
    }
}

pub struct AudioProcessor {
    stft: Stft,
    istft: Istft,
    n_fft: usize,
    magnitude_min: f32,
    /// `20·log10(stft_magnitude_min)`, −180 dB for the implicit run.
    min_level_db: f32,
}

impl AudioProcessor {
    pub fn new(hp: &PerthConfig) -> Self {
        let window = hann_periodic(hp.window_size);
        Self {
            stft: Stft::new(hp.n_fft, hp.hop_size, &window),
            istft: Istft::new(hp.n_fft, hp.hop_size, &window),
            n_fft: hp.n_fft,
            magnitude_min: hp.stft_magnitude_min as f32,
            min_level_db: (20.0 * hp.stft_magnitude_min.log10()) as f32,
        }
    }

    /// The shortest signal the centred STFT accepts: torch's reflect padding needs more samples
    /// than it adds.
    pub fn min_signal_len(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// `normalize`: dB → (dB − min_level_db) / (−min_level_db + 15).
    fn normalize(&self, db: f32) -> f32 {
        (db - self.min_level_db) / (-self.min_level_db + HEADROOM_DB)
    }

    /// `denormalize_spectrogram`, the inverse of [`Self::normalize`].
    fn denormalize(&self, normalized: f32) -> f32 {
        normalized * (-self.min_level_db + HEADROOM_DB) + self.min_level_db
    }

    /// `signal_to_magphase` on a signal at the model's rate.
    pub fn signal_to_magphase(&self, signal: &[f32]) -> Result<MagPhase> {
        if signal.len() < self.min_signal_len() {
            return Err(Error::Msg(format!(
                "Perth needs at least {} samples at its rate, got {}",
                self.min_signal_len(),
                signal.len()
            )));
        }
        // Stft hands out one real value per bin, so the complex64 spectrum the reference holds
        // is read as its two f32 parts (an FFT pass is a small share of this function).
        let re = self.stft.spectrum(signal, true, |c| c.re as f32);
        let im = self.stft.spectrum(signal, true, |c| c.im as f32);
        let bins = self.stft.bins();
        let mut magnitude = vec![0.0; re.len()];
        let mut phase = vec![Complex::new(1.0, 0.0); re.len()];
        magnitude
            .par_chunks_mut(bins)
            .zip(phase.par_chunks_mut(bins))
            .zip(re.par_chunks(bins).zip(im.par_chunks(bins)))
            .for_each(|((magnitude, phase), (re, im))| {
                for (i, (&re, &im)) in re.iter().zip(im).enumerate() {
                    let abs = re.hypot(im);
                    magnitude[i] = self.normalize(20.0 * abs.max(self.magnitude_min).log10());
                    if abs > 0.0 {
                        phase[i] = Complex::new(re / abs, im / abs);
                    }
                }
            });
        Ok(MagPhase {
            bins,
            frames: re.len() / bins,
            magnitude,
            phase,
        })
    }

    /// `magphase_to_signal`: normalised magnitudes (1, nfreq, T) or (nfreq, T) and the phases
    /// of [`MagPhase::phase`] back to `hop·(T − 1)` samples.
    pub fn magphase_to_signal(&self, magspec: &Tensor, phase: &[Complex<f32>]) -> Result<Vec<f32>> {
        let magspec = magspec.squeeze(0)?;
        let bins = self.istft.bins();
        let (nfreq, frames) = magspec.dims2()?;
        if nfreq != bins || phase.len() != bins * frames {
            return Err(Error::Msg(format!(
                "Perth iSTFT: magnitudes {:?} and {} phases do not make frames of {bins} bins",
                magspec.dims(),
                phase.len()
            )));
        }
        let magnitude: Vec<f32> = magspec.t()?.contiguous()?.flatten_all()?.to_vec1()?;
        let mut spectrum = vec![Complex::new(0.0, 0.0); magnitude.len()];
        spectrum
            .par_chunks_mut(bins)
            .zip(magnitude.par_chunks(bins).zip(phase.par_chunks(bins)))
            .for_each(|(spectrum, (magnitude, phase))| {
                for (bin, (&normalized, phasor)) in magnitude.iter().zip(phase).enumerate() {
                    let db = self.denormalize(normalized);
                    let amplitude = 10f32.powf((db / 20.0).min(MAX_LOG10_MAGNITUDE));
                    spectrum[bin] = Complex::new(
                        f64::from(amplitude * phasor.re),
                        f64::from(amplitude * phasor.im),
                    );
                }
            });
        self.istft.process(&spectrum, true, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magnitudes_and_phases_restore_the_signal() {
        let hp = PerthConfig {
            sample_rate: 8000,
            n_fft: 256,
            hop_size: 40,
            window_size: 256,
            ..PerthConfig::implicit()
        };
        let ap = AudioProcessor::new(&hp);
        let signal: Vec<f32> = (0..2000)
            .map(|i| 0.5 * (i as f32 * 0.07).sin() + 0.2 * (i as f32 * 0.9).cos())
            .collect();
        let mp = ap.signal_to_magphase(&signal).unwrap();
        assert_eq!((mp.bins, mp.frames), (129, 1 + 2000 / 40));
        let magspec = mp.magspec(&Device::Cpu).unwrap();
        assert_eq!(magspec.dims(), &[1, 129, 51]);
        let restored = ap.magphase_to_signal(&magspec, &mp.phase).unwrap();
        assert_eq!(restored.len(), 2000);
        let worst = restored
            .iter()
            .zip(&signal)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(worst < 1e-4, "{worst}");
    }

    #[test]
    fn refuses_signals_too_short_to_reflect() {
        let ap = AudioProcessor::new(&PerthConfig::implicit());
        let err = ap.signal_to_magphase(&[0.1; 1024]).err().unwrap();
        assert!(err.to_string().contains("1025"), "{err}");
    }
}
