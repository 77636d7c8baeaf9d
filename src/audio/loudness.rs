//! ITU-R BS.1770-4 integrated loudness as pyloudnorm 0.2 measures it (RBJ-cookbook K-weighting,
//! 400 ms blocks at 75 % overlap, −70 LUFS absolute and −10 LU relative gates; parity in
//! tests/parity/loudness.rs), and normalisation to a target: Turbo brings every reference clip
//! to −27 LUFS, concatenation evens segments out.

const BLOCK_SECONDS: f64 = 0.4;
const BLOCK_STEP: f64 = 0.25;
const ABSOLUTE_GATE: f64 = -70.0;
const RELATIVE_GATE: f64 = -10.0;

/// One RBJ biquad, normalised by a0, run as scipy's `lfilter` (direct form II transposed).
struct Biquad {
    b: [f64; 3],
    a: [f64; 3],
}

impl Biquad {
    /// pyloudnorm's `IIRfilter(4.0, 1/√2, 1500, rate, 'high_shelf')`.
    fn high_shelf(rate: f64) -> Self {
        let gain = 10f64.powf(4.0 / 40.0);
        let w0 = 2.0 * std::f64::consts::PI * 1500.0 / rate;
        let alpha = w0.sin() / (2.0 * std::f64::consts::FRAC_1_SQRT_2);
        let (cos, root) = (w0.cos(), gain.sqrt());
        Self::normalised(
            [
                gain * ((gain + 1.0) + (gain - 1.0) * cos + 2.0 * root * alpha),
                -2.0 * gain * ((gain - 1.0) + (gain + 1.0) * cos),
                gain * ((gain + 1.0) + (gain - 1.0) * cos - 2.0 * root * alpha),
            ],
            [
                (gain + 1.0) - (gain - 1.0) * cos + 2.0 * root * alpha,
                2.0 * ((gain - 1.0) - (gain + 1.0) * cos),
                (gain + 1.0) - (gain - 1.0) * cos - 2.0 * root * alpha,
            ],
        )
    }

    /// pyloudnorm's `IIRfilter(0.0, 0.5, 38, rate, 'high_pass')`.
    fn high_pass(rate: f64) -> Self {
        let w0 = 2.0 * std::f64::consts::PI * 38.0 / rate;
        let alpha = w0.sin() / (2.0 * 0.5);
        let cos = w0.cos();
        Self::normalised(
            [(1.0 + cos) / 2.0, -(1.0 + cos), (1.0 + cos) / 2.0],
            [1.0 + alpha, -2.0 * cos, 1.0 - alpha],
        )
    }

    fn normalised(b: [f64; 3], a: [f64; 3]) -> Self {
        Self {
            b: b.map(|v| v / a[0]),
            a: a.map(|v| v / a[0]),
        }
    }

    fn apply(&self, signal: &mut [f64]) {
        let (mut z1, mut z2) = (0.0, 0.0);
        for x in signal.iter_mut() {
            let y = self.b[0] * *x + z1;
            z1 = self.b[1] * *x - self.a[1] * y + z2;
            z2 = self.b[2] * *x - self.a[2] * y;
            *x = y;
        }
    }
}

fn block_loudness(mean_square: f64) -> f64 {
    -0.691 + 10.0 * mean_square.log10()
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, count) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    sum / count as f64
}

/// Integrated loudness of a mono signal in LUFS; `None` when it is shorter than one 400 ms
/// block (pyloudnorm raises there). Silence gives −∞, as in pyloudnorm.
pub fn integrated_loudness(signal: &[f32], rate: u32) -> Option<f64> {
    let rate = f64::from(rate);
    if (signal.len() as f64) < BLOCK_SECONDS * rate {
        return None;
    }
    let mut filtered: Vec<f64> = signal.iter().map(|&v| f64::from(v)).collect();
    for stage in [Biquad::high_shelf(rate), Biquad::high_pass(rate)] {
        stage.apply(&mut filtered);
        // pyloudnorm stores each stage's output back into the caller's f32 array.
        filtered.iter_mut().for_each(|v| *v = f64::from(*v as f32));
    }

    let seconds = signal.len() as f64 / rate;
    let blocks = ((seconds - BLOCK_SECONDS) / (BLOCK_SECONDS * BLOCK_STEP)).round() as usize + 1;
    let powers: Vec<f64> = (0..blocks)
        .map(|j| {
            let bound = |offset: f64| {
                ((BLOCK_SECONDS * (j as f64 * BLOCK_STEP + offset) * rate) as usize)
                    .min(filtered.len())
            };
            let sum: f64 = filtered[bound(0.0)..bound(1.0)].iter().map(|v| v * v).sum();
            sum / (BLOCK_SECONDS * rate)
        })
        .collect();

    let above_absolute = powers
        .iter()
        .copied()
        .filter(|&z| block_loudness(z) >= ABSOLUTE_GATE);
    let relative_gate = block_loudness(mean(above_absolute)) + RELATIVE_GATE;
    let gated = mean(powers.iter().copied().filter(|&z| {
        let loudness = block_loudness(z);
        loudness > relative_gate && loudness > ABSOLUTE_GATE
    }));
    // numpy's nan_to_num: no gated block counts as zero power.
    Some(block_loudness(if gated.is_nan() { 0.0 } else { gated }))
}

/// `norm_loudness` of tts_turbo.py: the gain that brings the signal to `target_lufs`, skipped
/// (the signal returned unchanged) when the loudness cannot be measured or the gain is not a
/// finite positive number.
pub fn normalize(signal: &[f32], rate: u32, target_lufs: f64) -> Vec<f32> {
    let gain = integrated_loudness(signal, rate)
        .map(|loudness| 10f64.powf((target_lufs - loudness) / 20.0))
        .filter(|gain| gain.is_finite() && *gain > 0.0);
    match gain {
        Some(gain) => signal
            .iter()
            .map(|&v| (f64::from(v) * gain) as f32)
            .collect(),
        None => signal.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, amplitude: f64, seconds: f64, rate: u32) -> Vec<f32> {
        (0..(seconds * f64::from(rate)) as usize)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (amplitude * (2.0 * std::f64::consts::PI * freq * t).sin()) as f32
            })
            .collect()
    }

    #[test]
    fn full_scale_1khz_sine_reads_about_minus_3_lufs() {
        // BS.1770's calibration: a 0 dBFS 997 Hz sine on one channel reads −3.01 LUFS.
        let loudness = integrated_loudness(&sine(997.0, 1.0, 5.0, 48000), 48000).unwrap();
        assert!((loudness + 3.01).abs() < 0.05, "{loudness}");
    }

    #[test]
    fn normalize_reaches_the_target_and_skips_what_it_cannot_measure() {
        let quiet = sine(440.0, 0.05, 6.0, 24000);
        let loud = normalize(&quiet, 24000, -27.0);
        let measured = integrated_loudness(&loud, 24000).unwrap();
        assert!((measured + 27.0).abs() < 1e-6, "{measured}");
        let silence = vec![0.0; 24000];
        assert_eq!(
            integrated_loudness(&silence, 24000),
            Some(f64::NEG_INFINITY)
        );
        assert_eq!(normalize(&silence, 24000, -27.0), silence);
        assert_eq!(integrated_loudness(&[0.1; 100], 24000), None);
    }
}
