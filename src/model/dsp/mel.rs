//! `librosa.filters.mel` with its defaults (Slaney mel scale, `norm="slaney"`, float32 result),
//! computed in f64 and rounded where librosa rounds.

use candle_core::{Device, Result, Tensor};

/// `filters @ spectrum.T`: a row-major (frames × bins) spectrum through a row-major
/// (n_mels × bins) filter bank, giving (n_mels, frames).
pub fn apply_filters(
    spectrum: Vec<f32>,
    filters: Vec<f32>,
    bins: usize,
    device: &Device,
) -> Result<Tensor> {
    let frames = spectrum.len() / bins;
    let n_mels = filters.len() / bins;
    let spec = Tensor::from_vec(spectrum, (frames, bins), device)?;
    let filters = Tensor::from_vec(filters, (n_mels, bins), device)?;
    filters.matmul(&spec.t()?)
}

/// Slaney's mel scale: linear below 1 kHz, logarithmic above.
fn hz_to_mel(hz: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_mel = 1000.0 / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= 1000.0 {
        min_log_mel + (hz / 1000.0).ln() / logstep
    } else {
        hz / f_sp
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_mel = 1000.0 / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        1000.0 * (logstep * (mel - min_log_mel)).exp()
    } else {
        f_sp * mel
    }
}

/// The (n_mels × (n_fft/2 + 1)) filter bank, row-major.
pub fn mel_filters(
    sample_rate: u32,
    n_fft: usize,
    n_mels: usize,
    fmin: f64,
    fmax: f64,
) -> Vec<f32> {
    let bins = n_fft / 2 + 1;
    // Rounded as np.fft.rfftfreq and np.linspace round, so bins on a band edge agree.
    let bin_hz = 1.0 / (n_fft as f64 * (1.0 / f64::from(sample_rate)));
    let fft_freqs: Vec<f64> = (0..bins).map(|i| i as f64 * bin_hz).collect();
    let (low, high) = (hz_to_mel(fmin), hz_to_mel(fmax));
    let points = n_mels + 2;
    let step = (high - low) / (points - 1) as f64;
    let mel_f: Vec<f64> = (0..points)
        .map(|i| {
            mel_to_hz(if i == points - 1 {
                high
            } else {
                i as f64 * step + low
            })
        })
        .collect();
    let mut weights = Vec::with_capacity(n_mels * bins);
    for m in 0..n_mels {
        let (lower_gap, upper_gap) = (mel_f[m + 1] - mel_f[m], mel_f[m + 2] - mel_f[m + 1]);
        let enorm = 2.0 / (mel_f[m + 2] - mel_f[m]);
        for &f in &fft_freqs {
            let rising = (f - mel_f[m]) / lower_gap;
            let falling = (mel_f[m + 2] - f) / upper_gap;
            // librosa stores the triangle in float32, then scales it in float64.
            let triangle = rising.min(falling).max(0.0) as f32;
            weights.push((f64::from(triangle) * enorm) as f32);
        }
    }
    weights
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_round_trips_and_bends_at_one_kilohertz() {
        for hz in [0.0, 440.0, 1000.0, 4000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9);
        }
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
    }

    #[test]
    fn filters_are_triangles_inside_the_band() {
        let f = mel_filters(16000, 400, 40, 0.0, 8000.0);
        assert_eq!(f.len(), 40 * 201);
        assert!(f.iter().all(|w| *w >= 0.0));
        assert!(f[..201].iter().any(|w| *w > 0.0));
    }
}
