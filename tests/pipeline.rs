//! The whole pipeline on the tiny random checkpoints (tests/fixtures/checkpoints/tiny, made by
//! tools/parity/tiny_checkpoint.py in the real file layout): text to a 24 kHz waveform for
//! Turbo, English and multilingual, with the built-in voice and with a reference clip, and voice conversion.
//! The weights are random, so the audio is measured, not listened to.

use std::path::PathBuf;

use candle_core::{DType, Device};
use chatterbox_worker::model::tts::{ChatterboxTTS, SpeechOptions, Variant};
use chatterbox_worker::model::vc::ChatterboxVC;

fn tiny(repo: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/checkpoints/tiny")
        .join(repo)
}

fn options(variant: Variant, seed: u64, tokens: usize) -> SpeechOptions {
    let mut t3 = variant.default_options();
    t3.max_new_tokens = tokens;
    SpeechOptions {
        t3,
        exaggeration: variant.default_exaggeration(),
        language: None,
        seed,
    }
}

/// A vowel-like test clip: a 140 Hz pulse train with harmonics and a slow envelope.
fn voice_clip(seconds: f64, rate: u32) -> Vec<f32> {
    (0..(seconds * f64::from(rate)) as usize)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let tone: f64 = (1..8)
                .map(|h| (std::f64::consts::TAU * 140.0 * h as f64 * t).sin() / h as f64)
                .sum();
            (0.2 * tone * (0.6 + 0.4 * (std::f64::consts::TAU * 3.0 * t).sin())) as f32
        })
        .collect()
}

fn assert_audio(samples: &[f32], min_len: usize) {
    assert!(samples.len() >= min_len, "{} samples", samples.len());
    assert!(
        samples.len().is_multiple_of(480),
        "{} samples",
        samples.len()
    );
    assert!(samples.iter().all(|s| s.is_finite() && s.abs() <= 0.99));
    // S3Gen silences the first 20 ms.
    assert!(samples[..480].iter().all(|s| *s == 0.0));
    let rms = (samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32).sqrt();
    assert!(rms > 1e-4, "rms {rms}");
}

#[test]
fn turbo_speaks_with_the_builtin_voice_and_a_reference_clip() {
    let tts = ChatterboxTTS::from_local(
        Variant::Turbo,
        &tiny("chatterbox-turbo"),
        &Device::Cpu,
        DType::F32,
    )
    .unwrap();
    let builtin = tts.builtin_voice().expect("conds.pt loads");
    let first = tts
        .generate("Hello there.", builtin, &options(Variant::Turbo, 7, 20))
        .unwrap();
    // At most 20 tokens plus Turbo's three silence tokens, 960 samples each, and the usage
    // counts what was made.
    assert!(
        (4..=23).contains(&first.speech_tokens),
        "{}",
        first.speech_tokens
    );
    assert_eq!(first.samples.len(), first.speech_tokens * 960);
    assert!(first.text_tokens >= 2, "{}", first.text_tokens);
    let first = first.samples;
    assert_audio(&first, 3 * 960);
    let again = tts
        .generate("Hello there.", builtin, &options(Variant::Turbo, 7, 20))
        .unwrap()
        .samples;
    assert_eq!(first, again, "one seed, one waveform");

    let clip = voice_clip(6.0, 22050);
    let voice = tts.prepare_conditionals(&clip, 22050, 0.0, true).unwrap();
    let speech = tts
        .generate("A new voice.", &voice, &options(Variant::Turbo, 3, 12))
        .unwrap()
        .samples;
    assert_audio(&speech, 3 * 960);

    let short = tts.prepare_conditionals(&voice_clip(4.0, 24000), 24000, 0.0, true);
    let error = short.err().expect("Turbo needs more than 5 s").to_string();
    assert!(error.contains("5 seconds"), "{error}");
}

#[test]
fn bf16_decode_weights_speak_on_the_cpu() {
    let dir = tiny("chatterbox-turbo");
    let mut tts =
        ChatterboxTTS::from_local(Variant::Turbo, &dir, &Device::Cpu, DType::F32).unwrap();
    tts.store_t3_decode_weights_as(DType::BF16).unwrap();
    let speech = tts
        .generate(
            "Hello there.",
            tts.builtin_voice().unwrap(),
            &options(Variant::Turbo, 7, 20),
        )
        .unwrap()
        .samples;
    assert_audio(&speech, 3 * 960);
    // Turbo's mean-flow S3Gen is not voice conversion's.
    assert!(ChatterboxVC::sharing(&tts).is_none());

    // Compact weights are a CPU f32 option; an f16 model is already compact.
    let mut f16 =
        ChatterboxTTS::from_local(Variant::Turbo, &dir, &Device::Cpu, DType::F16).unwrap();
    let error = f16.store_t3_decode_weights_as(DType::BF16).unwrap_err();
    assert!(error.to_string().contains("f32 models"), "{error}");
}

#[test]
fn f16_models_take_f32_voices_and_noise() {
    // CHATTERBOX_DTYPE=f16: conds.pt, embed_ref and the noise streams stay f32. (bf16 is a
    // CUDA option: candle's CPU matmul has no bf16 kernel, and the configuration refuses it.)
    let dtype = DType::F16;
    let dir = tiny("chatterbox-turbo");
    let tts = ChatterboxTTS::from_local(Variant::Turbo, &dir, &Device::Cpu, dtype).unwrap();
    let options = options(Variant::Turbo, 7, 12);
    let speech = tts
        .generate("Hello there.", tts.builtin_voice().unwrap(), &options)
        .unwrap()
        .samples;
    assert_audio(&speech, 3 * 960);
    let voice = tts
        .prepare_conditionals(&voice_clip(6.0, 24000), 24000, 0.0, true)
        .unwrap();
    assert_audio(
        &tts.generate("A voice.", &voice, &options).unwrap().samples,
        3 * 960,
    );

    let vc = ChatterboxVC::from_local(&tiny("chatterbox"), &Device::Cpu, dtype).unwrap();
    let source = voice_clip(1.0, 16000);
    let converted = vc
        .generate(&source, 16000, vc.builtin_voice().unwrap(), 5)
        .unwrap();
    assert_audio(&converted, 20 * 960);
}

#[test]
fn multilingual_speaks_a_language_from_pt_checkpoint_files() {
    // The multilingual repository's layout: t3_mtl23ls_v2.safetensors, s3gen.pt and ve.pt
    // (torch pickles), the grapheme tokenizer and Cangjie table, conds.pt.
    let dir = tiny("chatterbox-multilingual");
    let tts =
        ChatterboxTTS::from_local(Variant::Multilingual, &dir, &Device::Cpu, DType::F32).unwrap();
    let builtin = tts.builtin_voice().expect("conds.pt loads");
    let mut opts = options(Variant::Multilingual, 5, 16);
    opts.t3.sampling.temperature = 0.0;
    opts.language = Some("fr".into());
    let speech = tts
        .generate("Bonjour à tous.", builtin, &opts)
        .unwrap()
        .samples;
    assert_audio(&speech, 960);
    assert!(speech.len() <= 16 * 960);

    opts.language = Some("xx".into());
    let error = tts.generate("Bonjour.", builtin, &opts).unwrap_err();
    assert!(
        error.to_string().contains("unsupported language"),
        "{error}"
    );
}

#[test]
fn english_speaks_with_guidance_and_voice_conversion_runs() {
    let dir = tiny("chatterbox");
    let tts = ChatterboxTTS::from_local(Variant::English, &dir, &Device::Cpu, DType::F32).unwrap();
    let builtin = tts.builtin_voice().unwrap();
    let mut opts = options(Variant::English, 11, 16);
    // Random weights rarely stop by themselves; greedy decoding is deterministic either way.
    opts.t3.sampling.temperature = 0.0;
    match tts.generate("Guided speech.", builtin, &opts) {
        Ok(speech) => assert_audio(&speech.samples, 960),
        Err(e) => assert!(e.to_string().contains("stopped before"), "{e}"),
    }

    let vc = ChatterboxVC::from_local(&dir, &Device::Cpu, DType::F32).unwrap();
    let source = voice_clip(2.0, 16000);
    let target = vc.target_voice(&voice_clip(3.0, 24000), 24000).unwrap();
    let converted = vc.generate(&source, 16000, &target, 5).unwrap();
    // 2 s of source at 25 tokens/s, 960 output samples per token.
    assert_audio(&converted, 45 * 960);
    let builtin = vc.builtin_voice().unwrap();
    let with_builtin = vc.generate(&source, 16000, builtin, 5).unwrap();
    assert_audio(&with_builtin, 45 * 960);

    // The engine's English deployment converts on the TTS model's S3Gen: the same audio.
    let shared = ChatterboxVC::sharing(&tts).expect("English shares its S3Gen");
    let shared_builtin = shared.builtin_voice().unwrap();
    assert_eq!(
        shared.generate(&source, 16000, shared_builtin, 5).unwrap(),
        with_builtin
    );
}
