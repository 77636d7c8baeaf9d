//! Turbo text to speech end to end (tts_turbo.py `generate`): the checkpoint directory loaded by
//! `ChatterboxTTS::from_local`, the built-in voice, greedy T3 for a fixed number of tokens, then
//! S3Gen with the reference's noise; the waveform is compared before the watermark. One case
//! speaks with a 6.23 s clip's S3Gen prompt, whose mel has one frame more than twice its tokens.
//! Committed:
//! the tiny checkpoint CI runs; `--full`: full-size seeded weights (tools/parity/full_checkpoint.py).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use chatterbox_worker::model::tts::{ChatterboxTTS, Conditionals, SpeechOptions, Variant};

use crate::fixture::{Fixture, assert_close};

// The S3Gen pipeline test's budgets: the text front end and greedy T3 must agree exactly, so
// the waveform differs only by S3Gen's f32 drift.
use crate::s3gen_pipeline::{FULL_WAV_MAX_ABS, FULL_WAV_MAX_REL, WAV_MAX_ABS, WAV_MAX_REL};

#[derive(serde::Deserialize)]
struct Config {
    checkpoint: String,
    text: String,
    tokens: usize,
}

#[test]
fn turbo_generate_matches_the_reference_end_to_end() {
    for fixture in Fixture::all("tts_e2e") {
        let config: Config = fixture.config();
        let full = fixture.case.ends_with("_full");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(&config.checkpoint);
        let tts = ChatterboxTTS::from_local(Variant::Turbo, &dir, &Device::Cpu, DType::F32)
            .unwrap_or_else(|e| panic!("{}: {e}", fixture.case));
        let builtin = tts.builtin_voice().expect("the checkpoint has conds.pt");
        // A fixture with a reference clip replaces S3Gen's half of the built-in voice with the
        // clip's embed_ref, as the reference case did.
        let clip_voice = fixture.has_input("reference").then(|| {
            let prompt = tts
                .s3gen()
                .embed_ref(&fixture.input_f32s("reference"))
                .unwrap();
            Conditionals::new(builtin.t3.clone(), prompt)
        });
        let voice = clip_voice.as_ref().unwrap_or(builtin);
        let mut t3 = Variant::Turbo.default_options();
        t3.sampling.top_k = 1;
        t3.max_new_tokens = config.tokens;
        let options = SpeechOptions {
            t3,
            exaggeration: 0.0,
            language: None,
            seed: 0,
        };

        let tokens = tts.speech_tokens(&config.text, voice, &options).unwrap();
        let expected: Vec<u32> = fixture
            .output("speech_tokens")
            .flatten_all()
            .and_then(|t| t.to_dtype(DType::U32)?.to_vec1())
            .unwrap();
        assert_eq!(tokens, expected, "{} greedy speech tokens", fixture.case);

        let wav = tts
            .s3gen()
            .inference_with(&tokens, &voice.s3gen_prompt, &fixture.s3gen_noise())
            .unwrap();
        let expected_wav = fixture.output("wav").flatten_all().unwrap();
        let wav = Tensor::new(wav, &Device::Cpu).unwrap();
        report_snr(&fixture.case, &wav, &expected_wav);
        let (max_rel, max_abs) = match full {
            true => (FULL_WAV_MAX_REL, FULL_WAV_MAX_ABS),
            false => (WAV_MAX_REL, WAV_MAX_ABS),
        };
        assert_close(
            &format!("{} waveform", fixture.case),
            &wav,
            &expected_wav,
            max_rel,
            max_abs,
        );
    }
}

fn report_snr(case: &str, actual: &Tensor, expected: &Tensor) {
    let signal = expected.sqr().and_then(|t| t.sum_all()?.to_scalar::<f32>());
    let error = (actual - expected).and_then(|d| d.sqr()?.sum_all()?.to_scalar::<f32>());
    if let (Ok(signal), Ok(error)) = (signal, error) {
        println!(
            "{case}: waveform SNR {:.1} dB",
            10.0 * (f64::from(signal) / f64::from(error)).log10()
        );
    }
}
