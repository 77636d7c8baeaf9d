//! pyloudnorm's integrated loudness and Turbo's −27 LUFS reference normalisation.

use chatterbox_worker::audio::loudness;

use crate::fixture::Fixture;

/// Both sides filter in f64 and keep each stage's output in f32; pyloudnorm then squares and
/// sums the blocks in f32 (numpy's pairwise sum) where the port sums in f64. Measured: 1.2e-8 LU.
const LOUDNESS_MAX_ABS_LU: f64 = 1e-6;

#[derive(serde::Deserialize)]
struct Config {
    sample_rate: u32,
}

#[test]
fn loudness_matches_pyloudnorm() {
    for fixture in Fixture::all("loudness") {
        let config: Config = fixture.config();
        let wav = fixture.input_f32s("wav");
        let expected = fixture
            .output("loudness")
            .to_vec1::<f64>()
            .unwrap_or_else(|e| panic!("{}: {e}", fixture.case))[0];
        let measured = loudness::integrated_loudness(&wav, config.sample_rate).unwrap();
        println!("{}: {measured:.6} LUFS vs {expected:.6}", fixture.case);
        assert!(
            (measured - expected).abs() < LOUDNESS_MAX_ABS_LU,
            "{}: {measured} vs {expected}",
            fixture.case
        );
        let normalised = loudness::normalize(&wav, config.sample_rate, -27.0);
        let reference = fixture.output("normalised").to_vec1::<f32>().unwrap();
        let worst = normalised
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs() / b.abs().max(1e-6))
            .fold(0f32, f32::max);
        assert!(
            worst < 1e-6,
            "{}: normalised samples differ by {worst}",
            fixture.case
        );
    }
}
