//! T3 against the reference's own generation loops (tools/parity/cases/t3.py), fed the same
//! forced tokens: conditioning embeddings, the logits of every step after classifier-free
//! guidance, the multilingual alignment guard's decisions, and greedy decoding.
//! Budget: rel 1e-5 on embeddings and logits (reference f32-vs-f64 floor ~1e-6), identical
//! argmax at every step, identical guard decisions and greedy tokens.

use candle_core::{D, DType, Device, Tensor};
use chatterbox_worker::model::t3::inference::alignment_stream_analyzer::{
    AlignmentStreamAnalyzer, LLAMA_ALIGNED_HEADS, LogitsAction,
};
use chatterbox_worker::model::t3::inference::sampling::{SamplingParams, Uniforms};
use chatterbox_worker::model::t3::{GenerateOptions, T3Cond};

use crate::fixture::{Fixture, assert_close};
use crate::t3_case::{Case, Loaded, ids, load};

fn argmax(t: &Tensor) -> u32 {
    t.argmax(D::Minus1).unwrap().to_scalar().unwrap()
}

fn action_code(action: LogitsAction) -> i64 {
    match action {
        LogitsAction::Keep => 0,
        LogitsAction::SuppressEos => 1,
        LogitsAction::ForceEos => 2,
    }
}

#[test]
fn t3_teacher_forced_logits_match_the_reference() {
    for f in Fixture::all("t3") {
        println!("{}", f.case);
        let Loaded {
            case,
            t3,
            cond,
            text,
        } = load(&f);
        let cond_emb = t3.prepare_conditioning(&cond).unwrap();
        assert_close("cond_emb", &cond_emb, &f.output("cond_emb"), 1e-5, 1e-5);

        let turbo = case.variant == "turbo";
        let rows = if !turbo && case.cfg_weight > 0.0 {
            2
        } else {
            1
        };
        let watch: &[(usize, usize)] = if case.variant == "multilingual" {
            &LLAMA_ALIGNED_HEADS
        } else {
            &[]
        };
        let forced = ids(&f.input("forced_tokens"));
        let expected = f.output("guided_logits");
        let steps = expected.dim(0).unwrap();
        let prefix = t3.prefill_conditioning(&cond).unwrap();
        let mut decoding = t3.start(&prefix, &text, rows, steps, watch).unwrap();
        let prefill = f.output("prefill_logits").narrow(0, 0, rows).unwrap();
        assert_close("prefill logits", decoding.logits(), &prefill, 1e-5, 1e-4);

        let mut analyzer = AlignmentStreamAnalyzer::new(text.len());
        let mut actions = Vec::new();
        for step in 0..steps {
            let guided = decoding.guided_logits(case.cfg_weight).unwrap();
            let want = expected.get(step).unwrap();
            assert_close(&format!("step {step} logits"), &guided, &want, 1e-5, 1e-4);
            assert_eq!(argmax(&guided), argmax(&want), "step {step}: argmax");
            // The reference consults the guard before each forced token, not after the last.
            if !watch.is_empty() && step < forced.len() {
                let last = if step == 0 {
                    t3.hp.start_speech_token
                } else {
                    forced[step - 1]
                };
                let chunk = decoding.aligned_text_attention().unwrap();
                actions.push(action_code(analyzer.step(&chunk, last)));
            }
            if step + 1 < steps {
                let token = Tensor::new(&[forced[step]], &Device::Cpu).unwrap();
                decoding.step(&token).unwrap();
            }
        }
        if !watch.is_empty() {
            let want: Vec<i64> = f.output("guard_actions").to_vec1().unwrap();
            assert_eq!(actions, want, "alignment guard decisions");
        }
    }
}

/// Runs the port's generation loop on a fixture with the given temperature and uniforms.
fn generate(
    f: &Fixture,
    temperature: f32,
    uniforms: impl Fn(&Case, usize) -> Uniforms,
) -> Vec<u32> {
    let Loaded {
        case,
        t3,
        cond,
        text,
    } = load(f);
    let sampling = &case.sampling;
    let steps = f.input("forced_tokens").dim(0).unwrap();
    let opts = GenerateOptions {
        sampling: SamplingParams {
            temperature,
            top_k: sampling.top_k,
            top_p: sampling.top_p,
            min_p: sampling.min_p,
            repetition_penalty: sampling.repetition_penalty,
        },
        cfg_weight: case.cfg_weight,
        max_new_tokens: steps,
        stop: Default::default(),
    };
    let uniforms = uniforms(&case, steps);
    let prefix = t3.prefill_conditioning(&cond).unwrap();
    if case.variant == "turbo" {
        t3.inference_turbo(&prefix, &text, &opts, &uniforms)
    } else {
        t3.inference(&prefix, &text, &opts, &uniforms)
    }
    .unwrap()
}

#[test]
fn t3_greedy_decoding_matches_the_reference() {
    for f in Fixture::all("t3") {
        println!("{}", f.case);
        let tokens = generate(&f, 0.0, |_, steps| {
            Uniforms::from_values(&vec![0.5; steps], &Device::Cpu).unwrap()
        });
        assert_eq!(tokens, ids(&f.output("greedy_tokens")), "greedy tokens");
    }
}

/// The reference's loop with torch.multinomial replaced by the port's draw on the same seeded
/// uniforms: the whole sampled generation (penalty history, warper order, guard) must agree.
#[test]
fn t3_seeded_sampling_matches_the_reference() {
    for f in Fixture::all("t3") {
        println!("{}", f.case);
        let temperature = f.config::<Case>().sampling.temperature;
        let tokens = generate(&f, temperature, |case, steps| {
            Uniforms::from_seed(case.sampling_seed, steps, &Device::Cpu).unwrap()
        });
        assert_eq!(tokens, ids(&f.output("sampled_tokens")), "sampled tokens");
    }
}

#[test]
fn a_token_budget_beyond_the_model_is_refused_before_allocating() {
    for f in Fixture::all("t3") {
        let Loaded { t3, cond, text, .. } = load(&f);
        let prefix = t3.prefill_conditioning(&cond).unwrap();
        let error = t3
            .start(&prefix, &text, 2, usize::MAX / 4, &[])
            .err()
            .unwrap_or_else(|| panic!("{}: an impossible budget was accepted", f.case));
        assert!(
            error.to_string().contains("do not fit"),
            "{}: {error}",
            f.case
        );
    }
}

#[test]
fn malformed_conditioning_and_text_are_errors_not_panics() {
    let f = Fixture::all("t3").into_iter().next().unwrap();
    let Loaded { t3, cond, .. } = load(&f);
    let empty_prompt = T3Cond {
        cond_prompt_speech_tokens: Some(Tensor::zeros((1, 0), DType::U32, &Device::Cpu).unwrap()),
        ..cond.clone()
    };
    let bad_prompt = T3Cond {
        cond_prompt_speech_tokens: Some(Tensor::new(&[[9000u32]], &Device::Cpu).unwrap()),
        ..cond.clone()
    };
    let bad_speaker = T3Cond {
        speaker_emb: Tensor::zeros((1, 7), DType::F32, &Device::Cpu).unwrap(),
        ..cond.clone()
    };
    let message = |c: &T3Cond| t3.prefill_conditioning(c).err().map(|e| e.to_string());
    assert!(message(&empty_prompt).is_some_and(|m| m.contains("empty")));
    assert!(message(&bad_prompt).is_some_and(|m| m.contains("outside the vocabulary")));
    assert!(t3.prefill_conditioning(&bad_speaker).is_err());
    let prefix = t3.prefill_conditioning(&cond).unwrap();
    assert!(
        t3.start(&prefix, &[u32::MAX], 2, 4, &[]).is_err(),
        "out-of-range text id"
    );
    assert!(
        t3.start(&prefix, &[], 2, 4, &[]).is_ok(),
        "empty text still runs"
    );
}
