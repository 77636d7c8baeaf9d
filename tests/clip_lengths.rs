//! Reference clips of every length class through every model path, on the tiny checkpoints.
//!
//! S3Gen conditions on the clip's mel (one frame per 480 samples at 24 kHz) and its speech
//! tokens (one per 960), and the two disagree by a frame for half of all lengths; the vocoder
//! then gets one frame fewer than twice the tokens. The lengths here step by 0.37 s plus an odd
//! sample count, rotate through the rates users upload, and run past the 6 s and 10 s
//! conditioning windows, so every residue of both hops is met; each is spoken with a few token
//! budgets and must give exactly the audio its tensors call for. `cargo test --test
//! clip_lengths -- --ignored` runs every length at every rate.

use std::path::PathBuf;

use candle_core::{DType, Device};
use chatterbox_worker::model::s3gen::flow::FlowPrompt;
use chatterbox_worker::model::tts::{ChatterboxTTS, SpeechOptions, Variant};
use chatterbox_worker::model::vc::ChatterboxVC;

const RATES: [u32; 5] = [16_000, 22_050, 24_000, 44_100, 48_000];
/// Samples a 24 kHz mel frame covers, and the vocoder's output per frame.
const HOP_24K: usize = 480;
/// S3Gen's reference window: 10 s at 24 kHz.
const DEC_COND_SAMPLES: usize = 240_000;
/// Token budgets: the smallest leaves the Llama variants one token after their start token, whose
/// mel may be a single frame.
const BUDGETS: [usize; 3] = [2, 4, 9];

/// (sample count, rate) of the swept clips: 5.05 s to 16 s in 0.37 s steps and one of 40 s,
/// each a few odd samples longer; `all_rates` gives each length at every rate, otherwise the
/// rates take turns.
fn clips(all_rates: bool) -> Vec<(usize, u32)> {
    let mut seconds: Vec<f64> = (0..30).map(|i| 5.05 + 0.37 * f64::from(i)).collect();
    seconds.push(40.0);
    let mut clips = Vec::new();
    for (i, s) in seconds.iter().enumerate() {
        let rates: Vec<u32> = match all_rates {
            true => RATES.to_vec(),
            false => vec![RATES[i % RATES.len()]],
        };
        for rate in rates {
            clips.push(((s * f64::from(rate)) as usize + 2 * i + 1, rate));
        }
    }
    clips
}

/// A voiced test clip: a 140 Hz pulse train with harmonics and a slow envelope.
fn voice_clip(len: usize, rate: u32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let tone: f64 = (1..8)
                .map(|h| (std::f64::consts::TAU * 140.0 * h as f64 * t).sin() / h as f64)
                .sum();
            (0.2 * tone * (0.6 + 0.4 * (std::f64::consts::TAU * 3.0 * t).sin())) as f32
        })
        .collect()
}

fn tiny(repo: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/checkpoints/tiny")
        .join(repo)
}

/// The clip's length once resampled to 24 kHz, as librosa's resampler rounds it.
fn len_24k(len: usize, rate: u32) -> usize {
    (len * 24_000).div_ceil(rate as usize)
}

/// Mel frames beyond twice the prompt's tokens, after checking the prompt's mel covers the
/// clip's first 10 s and its tokens were cut as the reference cuts them.
fn prompt_excess(case: &str, prompt: &FlowPrompt, clip_24k: usize) -> usize {
    let frames = prompt.prompt_feat.dim(1).unwrap();
    assert_eq!(
        frames,
        clip_24k.min(DEC_COND_SAMPLES) / HOP_24K,
        "{case}: prompt mel frames"
    );
    let excess = frames
        .checked_sub(2 * prompt.prompt_token.len())
        .unwrap_or_else(|| panic!("{case}: more prompt tokens than mel frames allow"));
    assert!(excess <= 1, "{case}: {excess} mel frames beyond the tokens");
    excess
}

fn assert_speech(case: &str, wav: &[f32], mel_frames: usize) {
    assert_eq!(wav.len(), mel_frames * HOP_24K, "{case}: samples");
    assert!(wav.iter().all(|s| s.is_finite()), "{case}: not finite");
    assert!(wav.iter().any(|s| *s != 0.0), "{case}: silent");
}

fn sweep_tts(variant: Variant, repo: &str, language: Option<&str>, all_rates: bool) {
    let tts = ChatterboxTTS::from_local(variant, &tiny(repo), &Device::Cpu, DType::F32).unwrap();
    let mut odd = 0;
    for (i, (len, rate)) in clips(all_rates).into_iter().enumerate() {
        let case = format!("{variant} {len} samples at {rate} Hz");
        let voice = tts
            .prepare_conditionals(&voice_clip(len, rate), rate, 0.5, true)
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        let excess = prompt_excess(&case, &voice.s3gen_prompt, len_24k(len, rate));
        odd += excess;
        let budget = BUDGETS[i % BUDGETS.len()];
        let mut t3 = variant.default_options();
        t3.max_new_tokens = budget;
        let options = SpeechOptions {
            t3,
            exaggeration: variant.default_exaggeration(),
            language: language.map(str::to_string),
            seed: i as u64,
        };
        let case = format!("{case}, {budget} tokens");
        let tokens = tts
            .speech_tokens("Hi.", &voice, &options)
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        let wav = tts
            .s3gen()
            .inference(&tokens, &voice.s3gen_prompt, options.seed)
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_speech(&case, &wav, 2 * tokens.len() - excess);
    }
    assert!(
        odd > 0,
        "{variant}: no clip had a mel frame beyond its tokens"
    );
}

#[test]
fn turbo_speaks_with_clips_of_every_length() {
    sweep_tts(Variant::Turbo, "chatterbox-turbo", None, false);
}

#[test]
fn english_speaks_with_clips_of_every_length() {
    sweep_tts(Variant::English, "chatterbox", None, false);
}

#[test]
fn multilingual_speaks_with_clips_of_every_length() {
    sweep_tts(
        Variant::Multilingual,
        "chatterbox-multilingual",
        Some("en"),
        false,
    );
}

/// Voice conversion with each clip as the target voice (of a fixed source) and as the source
/// (in the built-in voice): the output is the source's length, to within a token.
fn sweep_vc(all_rates: bool) {
    let vc = ChatterboxVC::from_local(&tiny("chatterbox"), &Device::Cpu, DType::F32).unwrap();
    let builtin = vc.builtin_voice().expect("conds.pt").clone();
    let source_rate = 16_000;
    let source = voice_clip(20_803, source_rate);
    let token = 960;
    for (i, (len, rate)) in clips(all_rates).into_iter().enumerate() {
        let clip = voice_clip(len, rate);
        let case = format!("vc target {len} samples at {rate} Hz");
        let target = vc
            .target_voice(&clip, rate)
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        prompt_excess(&case, &target, len_24k(len, rate));
        let wav = vc
            .generate(&source, source_rate, &target, i as u64)
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_within_a_token(&case, &wav, len_24k(source.len(), source_rate), token);

        let case = format!("vc source {len} samples at {rate} Hz");
        let wav = vc
            .generate(&clip, rate, &builtin, i as u64)
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_within_a_token(&case, &wav, len_24k(len, rate), token);
    }
}

fn assert_within_a_token(case: &str, wav: &[f32], source_24k: usize, token: usize) {
    assert!(wav.len().is_multiple_of(HOP_24K), "{case}: {}", wav.len());
    assert!(
        wav.len().abs_diff(source_24k) <= token,
        "{case}: {} samples for a source of {source_24k}",
        wav.len()
    );
    assert_speech(case, wav, wav.len() / HOP_24K);
}

#[test]
fn voice_conversion_takes_clips_of_every_length_as_target_and_source() {
    sweep_vc(false);
}

#[test]
#[ignore = "every length at every rate: minutes on two cores"]
fn every_length_at_every_rate() {
    sweep_tts(Variant::Turbo, "chatterbox-turbo", None, true);
    sweep_tts(Variant::English, "chatterbox", None, true);
    sweep_tts(
        Variant::Multilingual,
        "chatterbox-multilingual",
        Some("en"),
        true,
    );
    sweep_vc(true);
}
