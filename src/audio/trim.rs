//! Leading and trailing silence removal. Conservative by design: only silences at least
//! `threshold_ms` long are cut, a guard is left before the first and after the last sound, and
//! "silence" is judged against the clip's own loudest moment, so quiet speech is never cut.

use std::ops::Range;

use serde::Serialize;

use super::samples_for_ms;

/// The `trim_threshold_ms` range and default of the seeds.
pub const THRESHOLD_RANGE_MS: (u64, u64) = (50, 1000);
pub const DEFAULT_THRESHOLD_MS: u64 = 200;
/// Analysis frames: short enough to find a word's edge within a few milliseconds.
const FRAME_MS: f64 = 10.0;
/// A frame this far below the loudest frame counts as silence: breaths and room tone stay
/// above it in real speech, encoder noise and digital silence fall below.
const SILENCE_BELOW_PEAK_DB: f64 = 40.0;
/// Kept before the first and after the last sound, so soft onsets and decays survive.
const GUARD_MS: f64 = 40.0;

/// What trimming did to one clip, in the seeds' terms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TrimInfo {
    pub trimmed: bool,
    pub original_duration_ms: f64,
    pub trimmed_duration_ms: f64,
    pub leading_silence_removed_ms: f64,
    pub trailing_silence_removed_ms: f64,
}

/// Where `samples` keeps sound: the whole clip less any leading and trailing silence of at
/// least `threshold_ms`, short of the guard.
pub fn bounds(samples: &[f32], sample_rate: u32, threshold_ms: u64) -> Range<usize> {
    let frame = samples_for_ms(FRAME_MS, sample_rate).max(1);
    let energies: Vec<f64> = samples
        .chunks(frame)
        .map(|chunk| chunk.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / chunk.len() as f64)
        .collect();
    let peak = energies.iter().copied().fold(0.0, f64::max);
    let floor = peak * 10f64.powf(-SILENCE_BELOW_PEAK_DB / 10.0);
    let sounding = |energy: &f64| peak > 0.0 && *energy > floor;
    let first = energies.iter().position(sounding);
    let last = energies.iter().rposition(sounding);

    let (mut start, mut end) = (0, samples.len());
    if let (Some(first), Some(last)) = (first, last) {
        let guard = samples_for_ms(GUARD_MS, sample_rate);
        // A silence no longer than the guard has nothing to give, whatever the threshold.
        let minimum = samples_for_ms(threshold_ms as f64, sample_rate).max(guard);
        let sound_start = first * frame;
        let sound_end = ((last + 1) * frame).min(samples.len());
        if sound_start >= minimum {
            start = sound_start - guard;
        }
        if samples.len() - sound_end >= minimum {
            end = sound_end + guard;
        }
    }
    start..end
}

/// The part of `samples` to keep: leading and trailing silences of at least `threshold_ms`
/// shortened to the guard. A clip that is all silence is kept whole.
pub fn trim(samples: &[f32], sample_rate: u32, threshold_ms: u64) -> (Vec<f32>, TrimInfo) {
    let Range { start, end } = bounds(samples, sample_rate, threshold_ms);
    // Reported to a tenth of a millisecond.
    let ms = |n: usize| (n as f64 * 10_000.0 / f64::from(sample_rate.max(1))).round() / 10.0;
    let info = TrimInfo {
        trimmed: start > 0 || end < samples.len(),
        original_duration_ms: ms(samples.len()),
        trimmed_duration_ms: ms(end - start),
        leading_silence_removed_ms: ms(start),
        trailing_silence_removed_ms: ms(samples.len() - end),
    };
    (samples[start..end].to_vec(), info)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 24_000;

    /// `lead` ms of silence, `sound` ms of a 200 Hz tone, `tail` ms of silence.
    fn padded_tone(lead: f64, sound: f64, tail: f64) -> Vec<f32> {
        let tone = (0..samples_for_ms(sound, RATE))
            .map(|i| 0.3 * (i as f32 * 200.0 * std::f32::consts::TAU / RATE as f32).sin());
        std::iter::repeat_n(0.0, samples_for_ms(lead, RATE))
            .chain(tone)
            .chain(std::iter::repeat_n(0.0, samples_for_ms(tail, RATE)))
            .collect()
    }

    #[test]
    fn long_silences_are_cut_to_the_guard() {
        let clip = padded_tone(500.0, 1000.0, 300.0);
        let (kept, info) = trim(&clip, RATE, 200);
        assert!(info.trimmed);
        assert_eq!(info.leading_silence_removed_ms, 500.0 - GUARD_MS);
        assert_eq!(info.trailing_silence_removed_ms, 300.0 - GUARD_MS);
        assert_eq!(info.trimmed_duration_ms, 1000.0 + 2.0 * GUARD_MS);
        assert_eq!(kept.len(), samples_for_ms(info.trimmed_duration_ms, RATE));
        // Every sounding sample survives.
        let energy = |s: &[f32]| s.iter().map(|v| v * v).sum::<f32>();
        assert!((energy(&kept) - energy(&clip)).abs() < 1e-3);
    }

    #[test]
    fn silences_shorter_than_the_threshold_stay() {
        let clip = padded_tone(150.0, 1000.0, 600.0);
        let (kept, info) = trim(&clip, RATE, 200);
        assert_eq!(info.leading_silence_removed_ms, 0.0);
        assert_eq!(info.trailing_silence_removed_ms, 600.0 - GUARD_MS);
        assert_eq!(kept[..100], clip[..100]);
        let (_, strict) = trim(&clip, RATE, 1000);
        assert!(!strict.trimmed);
    }

    #[test]
    fn quiet_passages_and_all_silence_are_not_cut() {
        // A tone 30 dB below the loud one is sound, not silence.
        let mut clip = padded_tone(0.0, 500.0, 0.0);
        clip.extend(padded_tone(0.0, 500.0, 0.0).iter().map(|s| s * 0.03));
        let (kept, info) = trim(&clip, RATE, 50);
        assert!(!info.trimmed, "{info:?}");
        assert_eq!(kept, clip);
        let silence = vec![0.0; 24_000];
        assert_eq!(trim(&silence, RATE, 50).0, silence);
        assert!(trim(&[], RATE, 50).0.is_empty());
    }

    /// Silences on either side just under, at and over the threshold, at every rate and at
    /// both ends of the threshold range: what is cut is exactly silence, the guard is kept, and
    /// no sounding sample is lost.
    #[test]
    fn every_silence_around_the_threshold_at_every_rate_is_cut_exactly() {
        for rate in [8_000, 16_000, 22_050, 24_000, 44_100, 48_000] {
            for threshold in [
                THRESHOLD_RANGE_MS.0,
                DEFAULT_THRESHOLD_MS,
                THRESHOLD_RANGE_MS.1,
            ] {
                let minimum = samples_for_ms(threshold as f64, rate);
                let guard = samples_for_ms(GUARD_MS, rate);
                for silence in [0, 1, minimum - 1, minimum, minimum + 1, 3 * minimum + 7] {
                    for sound in [1, 333, rate as usize / 2 + 1] {
                        let mut clip = vec![0.0; silence];
                        clip.extend((0..sound).map(|i| 0.3 + 0.1 * (i as f32 * 0.3).sin()));
                        clip.extend(std::iter::repeat_n(0.0, silence + 3));
                        let range = bounds(&clip, rate, threshold);
                        let case = format!("{rate} Hz, {threshold} ms, {silence}+{sound}");
                        assert!(
                            range.start <= silence && range.end >= silence + sound,
                            "{case}"
                        );
                        assert!(clip[..range.start].iter().all(|&s| s == 0.0), "{case}");
                        assert!(clip[range.end..].iter().all(|&s| s == 0.0), "{case}");
                        let frame = samples_for_ms(FRAME_MS, rate);
                        if silence >= minimum + frame {
                            assert!(range.start > 0 && silence - range.start <= guard + frame);
                        }
                        if silence < minimum {
                            assert_eq!(range.start, 0, "{case}");
                        }
                        let (kept, info) = trim(&clip, rate, threshold);
                        assert_eq!(kept.len(), range.len(), "{case}");
                        assert_eq!(info.trimmed, range.len() < clip.len(), "{case}");
                    }
                }
            }
        }
    }
}
