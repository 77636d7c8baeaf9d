//! `scipy.signal.resample_poly(x, up, down)` with its default Kaiser (β = 5) low-pass, which is
//! what `librosa.resample(res_type="polyphase")` runs. The taps are designed in f64 as
//! `scipy.signal.firwin` does and rounded to f32, as scipy does for f32 signals.

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// scipy's default `window=('kaiser', 5.0)`.
const KAISER_BETA: f64 = 5.0;
/// scipy's filter half-length in units of the larger rate factor.
const HALF_LEN_PER_FACTOR: usize = 10;

pub struct PolyphaseResampler {
    up: usize,
    down: usize,
    half_len: usize,
    /// `2·half_len + 1` taps of the low-pass, already multiplied by `up`.
    taps: Vec<f32>,
}

impl PolyphaseResampler {
    /// The rates are reduced by their gcd, as librosa does before calling scipy.
    pub fn new(from_hz: u32, to_hz: u32) -> Self {
        let g = gcd(from_hz, to_hz).max(1);
        let (up, down) = ((to_hz / g) as usize, (from_hz / g) as usize);
        let max_rate = up.max(down);
        let half_len = HALF_LEN_PER_FACTOR * max_rate;
        let taps = firwin_lowpass(2 * half_len + 1, 1.0 / max_rate as f64)
            .into_iter()
            .map(|h| h as f32 * up as f32)
            .collect();
        Self {
            up,
            down,
            half_len,
            taps,
        }
    }

    /// `ceil(len·up/down)` samples: output m sits at input time m·down/up, and the signal is
    /// zero outside its ends (scipy's `padtype='constant'`).
    pub fn process(&self, signal: &[f32]) -> Vec<f32> {
        if self.up == self.down {
            return signal.to_vec();
        }
        let out_len = (signal.len() * self.up).div_ceil(self.down);
        (0..out_len)
            .map(|m| {
                // Input q meets tap half_len + m·down − q·up, which must lie in [0, 2·half_len].
                let centre = m * self.down + self.half_len;
                let first = centre.saturating_sub(2 * self.half_len).div_ceil(self.up);
                let last = (centre / self.up).min(signal.len() - 1);
                (first..=last)
                    .map(|q| {
                        let tap = self.taps[centre - q * self.up];
                        f64::from(signal[q]) * f64::from(tap)
                    })
                    .sum::<f64>() as f32
            })
            .collect()
    }
}

/// `scipy.signal.firwin(numtaps, cutoff, window=("kaiser", 5.0))`: a windowed-sinc low-pass
/// with `cutoff` relative to Nyquist, scaled to unit gain at DC.
fn firwin_lowpass(numtaps: usize, cutoff: f64) -> Vec<f64> {
    let alpha = 0.5 * (numtaps - 1) as f64;
    let window = kaiser(numtaps, KAISER_BETA);
    let h: Vec<f64> = (0..numtaps)
        .zip(&window)
        .map(|(i, w)| cutoff * sinc(cutoff * (i as f64 - alpha)) * w)
        .collect();
    let gain: f64 = h.iter().sum();
    h.into_iter().map(|v| v / gain).collect()
}

/// `numpy.sinc`: sin(πx)/(πx).
fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let t = std::f64::consts::PI * x;
        t.sin() / t
    }
}

/// The symmetric Kaiser window `scipy.signal.windows.kaiser(m, beta)`.
fn kaiser(m: usize, beta: f64) -> Vec<f64> {
    let alpha = (m - 1) as f64 / 2.0;
    let norm = bessel_i0(beta);
    (0..m)
        .map(|n| {
            let r = (n as f64 - alpha) / alpha;
            bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / norm
        })
        .collect()
}

/// The modified Bessel function I0 by its power series, Σ ((x/2)^k / k!)², which for the
/// arguments here (|x| ≤ 5) reaches f64 precision within 30 terms.
fn bessel_i0(x: f64) -> f64 {
    let quarter_x2 = x * x / 4.0;
    let (mut sum, mut term) = (1.0, 1.0);
    for k in 1..60 {
        term *= quarter_x2 / (k * k) as f64;
        sum += term;
        if term < sum * f64::EPSILON {
            break;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bessel_i0_matches_known_values() {
        // scipy.special.i0(1.0), i0(5.0)
        assert!((bessel_i0(1.0) - 1.266_065_877_752_008_2).abs() < 1e-15);
        assert!((bessel_i0(5.0) - 27.239_871_823_604_442).abs() < 1e-12);
    }

    #[test]
    fn taps_match_scipy() {
        // scipy.signal.firwin(81, 0.25, window=("kaiser", 5.0)) * 4, entries 38..43, as f32
        let expected: [f32; 5] = [
            0.633_476_1,
            0.899_632_6,
            1.000_636_6,
            0.899_632_6,
            0.633_476_1,
        ];
        let r = PolyphaseResampler::new(24000, 32000);
        assert_eq!((r.up, r.down, r.taps.len()), (4, 3, 81));
        for (got, want) in r.taps[38..43].iter().zip(&expected) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn lengths_round_up_and_a_low_tone_keeps_its_level() {
        let r = PolyphaseResampler::new(24000, 32000);
        assert_eq!(r.process(&[0.0; 7]).len(), 10);
        let tone: Vec<f32> = (0..24000)
            .map(|i| (std::f32::consts::TAU * 440.0 * i as f32 / 24000.0).sin())
            .collect();
        let out = r.process(&tone);
        assert_eq!(out.len(), 32000);
        let peak = out[1000..31000].iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!((peak - 1.0).abs() < 0.01, "{peak}");
    }
}
