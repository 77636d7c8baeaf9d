//! Whole-pipeline speed: `generate()` on a full-size Turbo checkpoint directory (seeded random
//! weights in the real layout, tools/parity/full_checkpoint.py), timed per stage beside the
//! reference's tools/parity/bench_generate.py on the same files, text and token count.
//!
//!     PY=~/.cache/chatterbox-parity/venv/bin/python
//!     $PY tools/parity/full_checkpoint.py
//!     CHATTERBOX_PERTH_CHECKPOINT=<perth_net_250000.pth.tar> \
//!         cargo bench --bench generate -- [checkpoint dir] [tokens] [rounds]
//!
//! `CHATTERBOX_T3_BF16_WEIGHTS=true` times T3 with bf16 decode weights, as the worker runs it.
//!
//! Random weights rarely emit the stop token, so each round produces the requested number of
//! tokens; the figures count what was produced.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device};
use chatterbox_worker::audio;
use chatterbox_worker::config::T3_BF16_WEIGHTS_VAR;
use chatterbox_worker::model::perth::PerthWatermarker;
use chatterbox_worker::model::s3gen::S3GEN_SR;
use chatterbox_worker::model::tts::{ChatterboxTTS, SpeechOptions, Variant};

/// The text of the reference side (tools/parity/bench_generate.py).
const TEXT: &str = "Hello there, this is a serverless worker speaking with a borrowed voice.";

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let dir = args.first().map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var("HOME").unwrap_or_default())
            .join(".cache/chatterbox-parity/full/checkpoint/chatterbox-turbo")
    });
    let tokens: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(150);
    let rounds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);
    let device = Device::Cpu;

    let started = Instant::now();
    let mut tts = ChatterboxTTS::from_local(Variant::Turbo, &dir, &device, DType::F32)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (see the header of benches/generate.rs)",
                dir.display()
            )
        });
    let compact = std::env::var(T3_BF16_WEIGHTS_VAR).is_ok_and(|v| v == "true");
    if compact {
        tts.store_t3_decode_weights_as(DType::BF16)
            .expect("bf16 decode weights");
    }
    let watermarker = std::env::var_os("CHATTERBOX_PERTH_CHECKPOINT")
        .map(|path| PerthWatermarker::load(&PathBuf::from(path), &device).expect("Perth weights"));
    let load_s = started.elapsed().as_secs_f64();

    let clip = audio::decode(&std::fs::read(dir.join("reference.wav")).expect("reference.wav"))
        .expect("reference.wav decodes");
    let started = Instant::now();
    tts.prepare_conditionals(&clip.samples, clip.sample_rate, 0.0, true)
        .expect("prepare_conditionals");
    let prepare_s = started.elapsed().as_secs_f64();
    println!(
        "load {load_s:.2} s (watermark {}, T3 decode weights {}), prepare_conditionals on {:.1} s of audio {prepare_s:.2} s",
        if watermarker.is_some() { "on" } else { "off" },
        if compact { "bf16" } else { "f32" },
        clip.duration_seconds()
    );

    let voice = tts.builtin_voice().expect("the checkpoint has conds.pt");
    for seed in 0..rounds {
        let mut t3 = Variant::Turbo.default_options();
        t3.max_new_tokens = tokens;
        let options = SpeechOptions {
            t3,
            exaggeration: 0.0,
            language: None,
            seed,
        };
        let started = Instant::now();
        let speech_tokens = tts.speech_tokens(TEXT, voice, &options).expect("T3");
        let t3_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let samples = tts
            .s3gen()
            .inference(&speech_tokens, &voice.s3gen_prompt, seed)
            .expect("S3Gen");
        let s3gen_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        if let Some(watermarker) = &watermarker {
            watermarker.apply(&samples, S3GEN_SR).expect("watermark");
        }
        let watermark_s = started.elapsed().as_secs_f64();
        let audio_s = samples.len() as f64 / f64::from(S3GEN_SR);
        let total = t3_s + s3gen_s + watermark_s;
        // Turbo appends three silence tokens after T3's own.
        let generated = speech_tokens.len() - 3;
        println!(
            "round {seed}: {generated} tokens, {audio_s:.2} s of audio in {total:.2} s (RTF {:.3}): \
             T3 {t3_s:.2} s ({:.1} tokens/s), S3Gen {s3gen_s:.2} s, watermark {watermark_s:.2} s",
            total / audio_s,
            generated as f64 / t3_s,
        );
    }
    println!("peak resident memory {}", peak_rss());
}

/// VmHWM of /proc/self/status: the most resident memory the process has held.
fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l["VmHWM:".len()..].trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}
