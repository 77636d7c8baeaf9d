//! `librosa.effects.trim(y, top_db)`: the voice encoder drops leading and trailing frames more
//! than `top_db` below the loudest one (RMS over 2048-sample frames, hop 512, zero-padded).

use std::ops::Range;

const FRAME: usize = 2048;
const HOP: usize = 512;

/// The sample range that survives. Like librosa, a signal of pure zeros is kept whole: every
/// frame is as loud as the loudest.
pub fn trim_range(signal: &[f32], top_db: f64) -> Range<usize> {
    let half = FRAME / 2;
    let mut padded = vec![0.0f32; signal.len() + FRAME];
    padded[half..half + signal.len()].copy_from_slice(signal);
    let frames = 1 + signal.len() / HOP;
    let power: Vec<f64> = (0..frames)
        .map(|f| {
            let frame = &padded[f * HOP..f * HOP + FRAME];
            frame.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / FRAME as f64
        })
        .collect();
    let loudest = power.iter().copied().fold(0.0f64, f64::max);
    let db = |p: f64| 10.0 * p.max(1e-10).log10() - 10.0 * loudest.max(1e-10).log10();
    let is_loud = |f: &usize| db(power[*f]) > -top_db;
    let (Some(first), Some(last)) = ((0..frames).find(is_loud), (0..frames).rfind(is_loud)) else {
        return 0..0;
    };
    first * HOP..signal.len().min((last + 1) * HOP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_silence_around_a_tone() {
        let mut signal = vec![0.0f32; 48000];
        for (i, s) in signal[16000..32000].iter_mut().enumerate() {
            *s = (i as f32 * 0.1).sin();
        }
        let range = trim_range(&signal, 20.0);
        assert!(range.start <= 16000 && range.start > 14000, "{range:?}");
        assert!(range.end >= 32000 && range.end < 34000, "{range:?}");
        assert_eq!(trim_range(&[0.0; 100], 20.0), 0..100);
    }
}
