//! Putting clips together: silences, equal-power crossfades and evening out levels.

use super::loudness::integrated_loudness;

/// One piece of a joined clip, all at one sample rate.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Audio(Vec<f32>),
    Silence(usize),
}

/// Joins `parts` in order. Where audio directly follows audio, the two overlap by up to
/// `crossfade` samples (never more than the shorter of the two), faded with equal power so the
/// loudness does not dip. Returns the joined samples and the overlap used at each such join.
pub fn assemble(parts: &[Part], crossfade: usize) -> (Vec<f32>, Vec<usize>) {
    let total = parts
        .iter()
        .map(|part| match part {
            Part::Audio(samples) => samples.len(),
            Part::Silence(n) => *n,
        })
        .sum();
    let mut out = Vec::with_capacity(total);
    let mut overlaps = Vec::new();
    // The length of the audio part that ends `out`, if the last part was audio.
    let mut previous_audio: Option<usize> = None;
    for part in parts {
        match part {
            Part::Silence(n) => {
                out.resize(out.len() + n, 0.0);
                previous_audio = None;
            }
            Part::Audio(samples) => {
                if let Some(previous) = previous_audio {
                    let overlap = crossfade.min(previous).min(samples.len());
                    crossfade_into(&mut out, samples, overlap);
                    overlaps.push(overlap);
                } else {
                    out.extend_from_slice(samples);
                }
                previous_audio = Some(samples.len());
            }
        }
    }
    (out, overlaps)
}

/// Overlaps the last `overlap` samples of `out` with the start of `next`: cos² + sin² = 1, so
/// uncorrelated signals keep their power through the fade.
fn crossfade_into(out: &mut Vec<f32>, next: &[f32], overlap: usize) {
    let start = out.len() - overlap;
    for (i, (existing, incoming)) in out[start..].iter_mut().zip(next).enumerate() {
        let t = (i as f32 + 0.5) / overlap as f32 * std::f32::consts::FRAC_PI_2;
        *existing = *existing * t.cos() + incoming * t.sin();
    }
    out.extend_from_slice(&next[overlap..]);
}

/// Full scale minus 1 dB: levelling never pushes a peak past this.
const PEAK_CEILING: f32 = 0.891;

/// Brings every clip that has a measurable loudness to the clips' mean loudness (in LU), a gain
/// capped so no peak passes −1 dBFS. Returns each clip's gain in dB (`None`: too short or
/// silent to measure, left as it was).
pub fn level(clips: &mut [Vec<f32>], sample_rate: u32) -> Vec<Option<f64>> {
    let measured: Vec<Option<f64>> = clips
        .iter()
        .map(|clip| integrated_loudness(clip, sample_rate).filter(|l| l.is_finite()))
        .collect();
    let known: Vec<f64> = measured.iter().flatten().copied().collect();
    if known.is_empty() {
        return vec![None; clips.len()];
    }
    let target = known.iter().sum::<f64>() / known.len() as f64;
    clips
        .iter_mut()
        .zip(measured)
        .map(|(clip, loudness)| {
            let loudness = loudness?;
            let peak = clip.iter().fold(0f32, |m, s| m.max(s.abs()));
            let wanted = 10f64.powf((target - loudness) / 20.0);
            let gain = wanted.min(f64::from(PEAK_CEILING / peak.max(f32::MIN_POSITIVE)));
            clip.iter_mut()
                .for_each(|s| *s = (f64::from(*s) * gain) as f32);
            Some(20.0 * gain.log10())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(amplitude: f32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| amplitude * (i as f32 * 300.0 * std::f32::consts::TAU / 24_000.0).sin())
            .collect()
    }

    #[test]
    fn lengths_add_up_minus_the_crossfades() {
        let parts = [
            Part::Silence(100),
            Part::Audio(vec![1.0; 1000]),
            Part::Audio(vec![1.0; 500]),
            Part::Silence(250),
            Part::Audio(vec![1.0; 40]),
            Part::Audio(vec![1.0; 800]),
        ];
        let (joined, overlaps) = assemble(&parts, 200);
        // No fade across a silence; the 40-sample clip limits its fade.
        assert_eq!(overlaps, [200, 40]);
        assert_eq!(joined.len(), 100 + 1000 + 500 + 250 + 40 + 800 - 200 - 40);
        assert_eq!(joined[..100], [0.0; 100]);
        let (direct, none) = assemble(&parts, 0);
        assert_eq!((direct.len(), none), (2690, vec![0, 0]));
    }

    #[test]
    fn equal_power_fades_keep_a_steady_level_through_the_join() {
        let (joined, _) = assemble(
            &[Part::Audio(vec![0.5; 400]), Part::Audio(vec![-0.5; 400])],
            200,
        );
        let power_mid = joined[200..400].iter().map(|s| s * s).sum::<f32>() / 200.0;
        // Correlated DC fades to zero in the middle; what matters here is the gain law:
        // cos² + sin² = 1 at every point.
        assert!(power_mid < 0.25);
        let t = |i: usize| (i as f32 + 0.5) / 200.0 * std::f32::consts::FRAC_PI_2;
        assert!((0..200).all(|i| (t(i).cos().powi(2) + t(i).sin().powi(2) - 1.0).abs() < 1e-6));
        assert!((joined[200] - 0.5 * (t(0).cos() - t(0).sin())).abs() < 1e-6);
    }

    #[test]
    fn levelling_meets_in_the_middle_without_clipping() {
        let mut clips = vec![
            tone(0.05, 24_000),
            tone(0.2, 24_000),
            vec![0.0; 24_000],
            vec![0.1; 10],
        ];
        let gains = level(&mut clips, 24_000);
        let quiet = integrated_loudness(&clips[0], 24_000).unwrap();
        let loud = integrated_loudness(&clips[1], 24_000).unwrap();
        assert!((quiet - loud).abs() < 0.01, "{quiet} vs {loud}");
        assert!((gains[0].unwrap() - 6.02).abs() < 0.05 && (gains[1].unwrap() + 6.02).abs() < 0.05);
        assert_eq!((gains[2], gains[3]), (None, None));
        // A quiet clip with one click: the click caps the gain.
        let mut hot = vec![tone(0.9, 24_000), tone(0.01, 24_000)];
        hot[1][100] = 0.5;
        let gains = level(&mut hot, 24_000);
        // +19 dB wanted, about +5 dB allowed by the click.
        assert!(gains[1].unwrap() < 6.0, "{gains:?}");
        let peak = hot[1].iter().fold(0f32, |m, s| m.max(s.abs()));
        assert!(peak <= PEAK_CEILING + 1e-6, "{peak}");
    }
}
