//! Sample-rate conversion for audio coming in and going out: rubato's synchronous FFT
//! resampler, a band-limited (windowed-sinc equivalent, Blackman-Harris² anti-aliasing)
//! converter for any pair of integer rates. Its asynchronous sinc resampler was tried first
//! and left a fractional-sample offset after `process_all` (its delay is rounded to whole
//! output samples); this one lines the output up with the input. The model's own
//! 24 kHz → 16 kHz step stays in `model::dsp`, matching the reference bit for bit.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

/// Whole clips go through in chunks of about this many input samples.
const CHUNK: usize = 1024;

#[derive(Debug, thiserror::Error)]
#[error("resampling from {from} Hz to {to} Hz failed: {reason}")]
pub struct ResampleError {
    from: u32,
    to: u32,
    reason: String,
}

/// Mono `samples` at `from` Hz to `to` Hz, delay compensated: the output starts where the input
/// starts and lasts as long. Equal rates return the input unchanged.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, ResampleError> {
    if from == to || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let error = |reason: String| ResampleError { from, to, reason };
    if from == 0 || to == 0 {
        return Err(error("a sample rate of zero".into()));
    }
    let mut resampler = Fft::<f32>::new(from as usize, to as usize, CHUNK, 1, FixedSync::Both)
        .map_err(|e| error(e.to_string()))?;
    let input =
        InterleavedSlice::new(samples, 1, samples.len()).map_err(|e| error(e.to_string()))?;
    let output = resampler
        .process_all(&input, samples.len(), None)
        .map_err(|e| error(e.to_string()))?
        .take_data();
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f32, rate: u32, seconds: f32) -> Vec<f32> {
        let n = (rate as f32 * seconds) as usize;
        (0..n)
            .map(|i| 0.5 * (i as f32 * hz * std::f32::consts::TAU / rate as f32).sin())
            .collect()
    }

    /// Zero crossings per second / 2.
    fn frequency(samples: &[f32], rate: u32) -> f32 {
        let crossings = samples
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        crossings as f32 * rate as f32 / samples.len() as f32 / 2.0
    }

    #[test]
    fn keeps_length_and_pitch_across_rates() {
        for (from, to) in [
            (24_000, 16_000),
            (16_000, 24_000),
            (44_100, 24_000),
            (8_000, 48_000),
        ] {
            let input = tone(440.0, from, 1.0);
            let output = resample(&input, from, to).unwrap();
            let expected = (input.len() as f64 * f64::from(to) / f64::from(from)).round() as isize;
            assert!(
                (output.len() as isize - expected).abs() <= 1,
                "{from}->{to}: {} samples, expected {expected}",
                output.len()
            );
            let hz = frequency(&output, to);
            assert!((hz - 440.0).abs() < 440.0 * 0.01, "{from}->{to}: {hz} Hz");
            // Delay compensated: away from the edges the output is the same tone sampled at
            // the new rate, in phase (44.1 kHz lands within a fifth of a sample).
            let ideal = tone(440.0, to, 1.0);
            let worst = (200..output.len().min(ideal.len()) - 200)
                .map(|i| (output[i] - ideal[i]).abs())
                .fold(0f32, f32::max);
            let allowed = if from == 44_100 { 0.02 } else { 1e-3 };
            assert!(
                worst < allowed,
                "{from}->{to}: off the ideal tone by {worst}"
            );
        }
    }

    #[test]
    fn content_above_the_new_nyquist_is_removed() {
        let output = resample(&tone(10_000.0, 48_000, 0.5), 48_000, 16_000).unwrap();
        let middle = &output[1000..output.len() - 1000];
        let peak = middle.iter().fold(0f32, |m, s| m.max(s.abs()));
        assert!(peak < 0.005, "an alias of {peak} survived");
    }

    #[test]
    fn equal_rates_and_empty_input_are_untouched() {
        let input = tone(100.0, 8000, 0.01);
        assert_eq!(resample(&input, 8000, 8000).unwrap(), input);
        assert!(resample(&[], 8000, 16000).unwrap().is_empty());
        assert!(resample(&input, 0, 16000).is_err());
    }

    /// Lengths around the converter's chunk (and far from it) between every pair of the rates
    /// clips arrive at and leave in: the output always lasts as long as the input.
    #[test]
    fn every_length_between_every_pair_of_rates_keeps_its_duration() {
        let rates = [8_000, 11_025, 16_000, 22_050, 24_000, 44_100, 48_000];
        let lengths = [
            1,
            2,
            3,
            5,
            17,
            331,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            3 * CHUNK + 7,
            48_017,
        ];
        for from in rates {
            for to in rates {
                for n in lengths {
                    let input: Vec<f32> = (0..n).map(|i| 0.5 * (i as f32 * 0.05).sin()).collect();
                    let output =
                        resample(&input, from, to).unwrap_or_else(|e| panic!("{n} samples: {e}"));
                    let expected = n as f64 * f64::from(to) / f64::from(from);
                    assert!(
                        (output.len() as f64 - expected).abs() <= 1.0,
                        "{n} samples {from}->{to}: {} samples, expected {expected}",
                        output.len()
                    );
                    assert!(output.iter().all(|s| s.is_finite()));
                }
            }
        }
    }
}
