//! T3 decoding speed on full-size seeded random weights (the weights, prompt and text of the
//! full-size parity fixtures, so the reference can be timed on the very same model with
//! tools/parity/bench_t3.py). The real generation loop runs with each variant's default
//! sampling; random weights rarely emit the stop token, and the figures count the tokens
//! actually produced.
//!
//!     PY=~/.cache/chatterbox-parity/venv/bin/python
//!     $PY tools/parity/generate.py --full --only t3
//!     CHATTERBOX_PARITY_DIR=~/.cache/chatterbox-parity/full cargo bench --bench t3 -- [tokens] [english|multilingual|turbo]

#[allow(dead_code)]
#[path = "../tests/parity/fixture.rs"]
mod fixture;
#[allow(dead_code)]
#[path = "../tests/parity/t3_case.rs"]
mod t3_case;

use std::time::Instant;

use candle_core::Device;
use chatterbox_worker::model::t3::inference::sampling::Uniforms;
use chatterbox_worker::model::t3::{ConditioningPrefix, GenerateOptions};
use fixture::Fixture;
use t3_case::{Loaded, load};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tokens: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(100);
    let only: Vec<&String> = args
        .iter()
        .filter(|a| a.parse::<usize>().is_err() && !a.starts_with('-'))
        .collect();
    let device = Device::Cpu;
    let fixtures: Vec<Fixture> = Fixture::all("t3")
        .into_iter()
        .filter(|f| f.case.ends_with("_full"))
        .filter(|f| only.is_empty() || only.iter().any(|o| f.case.contains(o.as_str())))
        .collect();
    if fixtures.is_empty() {
        eprintln!(
            "no full-size T3 fixture: run tools/parity/generate.py --full --only t3 and set \
             CHATTERBOX_PARITY_DIR (see the header of benches/t3.rs)"
        );
        std::process::exit(2);
    }
    for f in fixtures {
        let started = Instant::now();
        let Loaded {
            case,
            t3,
            cond,
            text,
        } = load(&f);
        let build_s = started.elapsed().as_secs_f64();
        let defaults = match case.variant.as_str() {
            "turbo" => GenerateOptions::turbo(),
            "multilingual" => GenerateOptions::multilingual(),
            _ => GenerateOptions::english(),
        };
        let opts = GenerateOptions {
            cfg_weight: case.cfg_weight,
            max_new_tokens: tokens,
            ..defaults
        };
        let uniforms = Uniforms::from_seed(1234, tokens + 1, &device).expect("uniforms");
        let turbo = case.variant == "turbo";
        let rows = if !turbo && case.cfg_weight > 0.0 {
            2
        } else {
            1
        };

        let started = Instant::now();
        let prefix = t3.prefill_conditioning(&cond).expect("conditioning");
        let prefix_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        drop(
            t3.start(&prefix, &text, rows, tokens, &[])
                .expect("prefill"),
        );
        let prefill_s = started.elapsed().as_secs_f64();

        let generate = |prefix: &ConditioningPrefix| {
            if turbo {
                t3.inference_turbo(prefix, &text, &opts, &uniforms)
            } else {
                t3.inference(prefix, &text, &opts, &uniforms)
            }
            .expect("inference")
        };
        // A new voice: conditioning, prefill and decoding, as the reference's loop does them.
        let started = Instant::now();
        let generated = generate(&t3.prefill_conditioning(&cond).expect("conditioning"));
        let new_voice_s = started.elapsed().as_secs_f64();
        // A voice whose conditioning prefix is kept.
        let started = Instant::now();
        let again = generate(&prefix);
        let cached_s = started.elapsed().as_secs_f64();
        assert_eq!(generated, again, "the same seed gives the same tokens");
        let n = generated.len() as f64;
        println!(
            "{}: {rows} rows, weights built in {build_s:.1} s; conditioning prefix {prefix_s:.3} s, \
             text prefill {prefill_s:.3} s; {} tokens: {:.2} tokens/s with a new voice, {:.2} with a \
             cached voice, {:.2} after the prefill",
            f.case,
            generated.len(),
            n / new_voice_s,
            n / cached_s,
            n / (cached_s - prefill_s),
        );
    }
}
