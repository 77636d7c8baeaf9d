//! Pitch-preserving speed change (OpenAI's `speed`, the seeds' `speed_factor`) by WSOLA: speech
//! stays at its pitch while its tempo changes.

use std::num::{NonZeroU16, NonZeroU32};

/// OpenAI's range for `speed`.
pub const SPEED_RANGE: (f64, f64) = (0.25, 4.0);

#[derive(Debug, thiserror::Error)]
pub enum StretchError {
    #[error("speed must be between 0.25 and 4.0, not {0}")]
    Range(f64),
    #[error("time-stretching failed: {0}")]
    Failed(String),
}

/// `samples` (mono) played `speed` times as fast at the same pitch; 1.0 returns them untouched.
pub fn change_speed(
    samples: &[f32],
    sample_rate: u32,
    speed: f64,
) -> Result<Vec<f32>, StretchError> {
    if !(SPEED_RANGE.0..=SPEED_RANGE.1).contains(&speed) {
        return Err(StretchError::Range(speed));
    }
    if speed == 1.0 || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let rate =
        NonZeroU32::new(sample_rate).ok_or(StretchError::Failed("a zero sample rate".into()))?;
    // WSOLA's output is up to a window off `n / speed`, and slowing down drops the input's
    // last window. A little silence stretched beyond the end, then a cut at the exact length,
    // keeps every input sample and gives the duration the factor promises.
    let exact = (samples.len() as f64 / speed).round() as usize;
    let mut padded = samples.to_vec();
    padded.resize(
        samples.len() + (sample_rate / END_PADDING_DIVISOR) as usize,
        0.0,
    );
    let mut stretched = wsola::stretch(&padded, rate, NonZeroU16::MIN, speed as f32)
        .map_err(|e| StretchError::Failed(e.to_string()))?;
    stretched.resize(exact, 0.0);
    Ok(stretched)
}

/// A tenth of a second of silence after the input: more than WSOLA's largest window.
const END_PADDING_DIVISOR: u32 = 10;

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f32, seconds: f32) -> Vec<f32> {
        (0..(seconds * 24000.0) as usize)
            .map(|i| 0.5 * (i as f32 * hz * std::f32::consts::TAU / 24000.0).sin())
            .collect()
    }

    /// Upward zero crossings per second.
    fn frequency(samples: &[f32]) -> f32 {
        let crossings = samples
            .windows(2)
            .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
            .count();
        crossings as f32 * 24000.0 / samples.len() as f32
    }

    #[test]
    fn speed_changes_duration_by_the_factor_and_keeps_the_pitch() {
        let input = tone(220.0, 2.0);
        for speed in [0.5, 1.25, 2.0] {
            let output = change_speed(&input, 24000, speed).unwrap();
            let ratio = input.len() as f64 / output.len() as f64;
            assert!(
                (ratio / speed - 1.0).abs() < 0.02,
                "speed {speed}: ratio {ratio}"
            );
            let pitch = frequency(&output[2400..output.len() - 2400]);
            assert!(
                (pitch / 220.0 - 1.0).abs() < 0.02,
                "speed {speed}: {pitch} Hz"
            );
        }
    }

    #[test]
    fn speed_one_is_an_exact_no_op_and_the_range_is_enforced() {
        let input = tone(300.0, 0.5);
        assert_eq!(change_speed(&input, 24000, 1.0).unwrap(), input);
        assert!(change_speed(&input, 24000, 4.5).is_err());
        assert!(change_speed(&input, 24000, 0.2).is_err());
    }

    /// Every length a generation can have (down to a handful of samples, where WSOLA has less
    /// than one window), at every output rate and at the ends of the speed range: the duration
    /// is exactly the factor's, and the end of the input survives a slow-down.
    #[test]
    fn any_length_at_any_rate_and_speed_lasts_exactly_as_the_factor_says() {
        for rate in [8_000, 16_000, 22_050, 24_000, 44_100, 48_000] {
            for n in [
                1, 2, 7, 100, 479, 481, 961, 2_399, 4_801, 12_007, 24_001, 73_337,
            ] {
                let mut input: Vec<f32> = (0..n)
                    .map(|i| 0.4 * (i as f32 * 0.037).sin() + 0.1 * (i as f32 * 0.71).cos())
                    .collect();
                for speed in [0.25, 0.5, 0.93, 1.37, 2.0, 4.0] {
                    let output = change_speed(&input, rate, speed)
                        .unwrap_or_else(|e| panic!("{n} samples at {rate} Hz, x{speed}: {e}"));
                    let case = format!("{n} samples at {rate} Hz, x{speed}");
                    assert_eq!(output.len(), (n as f64 / speed).round() as usize, "{case}");
                    assert!(output.iter().all(|s| s.is_finite()), "{case}");
                }
                // A loud last tenth of the input is still heard in the last tenth slowed down.
                if n >= rate as usize / 2 {
                    let tail = n / 10;
                    input[n - tail..].iter_mut().for_each(|s| *s = 0.9);
                    let output = change_speed(&input, rate, 0.25).unwrap();
                    let end = &output[output.len() - output.len() / 20..];
                    let loud = end.iter().filter(|s| s.abs() > 0.5).count();
                    assert!(loud > end.len() / 2, "{n} samples at {rate} Hz: end lost");
                }
            }
        }
    }
}
