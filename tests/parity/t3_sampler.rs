//! The T3 sampler against transformers' logits processors in T3.inference / inference_turbo order
//! (tools/parity/cases/t3_sampler.py). Budgets: every chosen token identical; −inf exactly where
//! the reference filtered; finite processed logits within 1e-6 relative (the penalty and the
//! temperature are one f32 multiply or divide, so they are in fact bit-identical).

use candle_core::{Device, IndexOp, Tensor};
use chatterbox_worker::model::random_weights::uniform;
use chatterbox_worker::model::t3::inference::sampling::{
    Sampler, SamplingParams, TokenHistory, Uniforms, WarperOrder,
};
use serde::Deserialize;

use crate::fixture::Fixture;

#[derive(Deserialize)]
struct Config {
    order: String,
    vocab: usize,
    temperature: f32,
    top_k: usize,
    top_p: f32,
    min_p: f32,
    repetition_penalty: f32,
    seed: u64,
    scale: f32,
    steps: usize,
    history: Vec<u32>,
    first_step: usize,
}

/// tools/parity/cases/t3_sampler.py `base_logits`: the same f32 operations in the same order.
fn logits(f: &Fixture, c: &Config, step: usize) -> Vec<f32> {
    let part = |k: usize| {
        let name = format!(
            "{}.logits.{step}.{k}",
            f.case.trim_start_matches("t3_sampler_")
        );
        uniform(c.seed, &name, c.vocab, -1.0, 1.0)
    };
    let (a, b, d, e) = (part(0), part(1), part(2), part(3));
    let mut row: Vec<f32> = (0..c.vocab)
        .map(|i| (((a[i] + b[i]) + d[i]) + e[i]) * c.scale)
        .collect();
    let ids: Vec<i64> = f.input("dominant_ids").i(step).unwrap().to_vec1().unwrap();
    let values: Vec<f32> = f
        .input("dominant_values")
        .i(step)
        .unwrap()
        .to_vec1()
        .unwrap();
    for (id, value) in ids.iter().zip(&values) {
        if let Ok(id) = usize::try_from(*id) {
            row[id] = *value;
        }
    }
    row
}

/// np.packbits order: most significant bit first.
fn unpack(bits: &[u8], len: usize) -> Vec<bool> {
    (0..len)
        .map(|i| bits[i / 8] >> (7 - i % 8) & 1 == 1)
        .collect()
}

#[test]
fn sampler_matches_the_reference() {
    let cpu = Device::Cpu;
    for f in Fixture::all("t3_sampler") {
        let c: Config = f.config();
        let order = match c.order.as_str() {
            "turbo" => WarperOrder::Turbo,
            _ => WarperOrder::Chatterbox,
        };
        let params = SamplingParams {
            temperature: c.temperature,
            top_k: c.top_k,
            top_p: c.top_p,
            min_p: c.min_p,
            repetition_penalty: c.repetition_penalty,
        };
        let sampler = Sampler::new(params, order, c.vocab, &cpu).unwrap();
        let uniforms = Uniforms::from_seed(c.seed, c.steps, &cpu).unwrap();
        let stored: Vec<f32> = f.input_f32s("uniforms");
        let ours: Vec<f32> = (0..c.steps)
            .map(|s| uniforms.at(s).unwrap().to_vec1::<f32>().unwrap()[0])
            .collect();
        assert_eq!(ours, stored, "{}: uniforms", f.case);

        let mut history = TokenHistory::new(c.vocab, &c.history, &cpu).unwrap();
        let expected_tokens: Vec<i64> = f.output("tokens").to_vec1().unwrap();
        assert_eq!(expected_tokens.len(), c.steps, "{}: steps", f.case);
        let mut kept = Kept::new(&f);
        for (step, &expected) in expected_tokens.iter().enumerate() {
            let row = Tensor::new(logits(&f, &c, step).as_slice(), &cpu).unwrap();
            let processed: Vec<f32> = sampler.warp(&row, &history).unwrap().to_vec1().unwrap();
            kept.check(&f.case, step, &processed);
            let token = sampler
                .sample(&row, &history, &uniforms.at(step).unwrap())
                .unwrap();
            let id = token.to_vec1::<u32>().unwrap()[0];
            assert_eq!(i64::from(id), expected, "{} step {step}", f.case);
            sampler
                .record(&mut history, &token, c.first_step + step)
                .unwrap();
        }
        kept.finish(&f.case);
        println!(
            "{}: {} tokens identical, {} finite logits, worst rel {:.1e}",
            f.case, c.steps, kept.next, kept.worst_rel
        );
    }
}

/// The reference's processed logits: a bit per id (finite or −inf) and the finite values in
/// order.
struct Kept {
    bits: Tensor,
    values: Vec<f32>,
    next: usize,
    worst_rel: f32,
}

impl Kept {
    fn new(f: &Fixture) -> Self {
        Kept {
            bits: f.output("kept_bits"),
            values: f.output("kept_values").to_vec1().unwrap(),
            next: 0,
            worst_rel: 0.0,
        }
    }

    fn check(&mut self, case: &str, step: usize, processed: &[f32]) {
        let bits: Vec<u8> = self.bits.i(step).unwrap().to_vec1().unwrap();
        for (i, (&value, kept)) in processed
            .iter()
            .zip(unpack(&bits, processed.len()))
            .enumerate()
        {
            if !kept {
                assert_eq!(value, f32::NEG_INFINITY, "{case} step {step} id {i}");
                continue;
            }
            let expected = self.values[self.next];
            self.next += 1;
            let rel = (value - expected).abs() / expected.abs().max(1e-30);
            assert!(
                rel <= 1e-6,
                "{case} step {step} id {i}: {value} vs {expected}"
            );
            self.worst_rel = self.worst_rel.max(rel);
        }
    }

    fn finish(&self, case: &str) {
        assert_eq!(self.next, self.values.len(), "{case}: finite counts");
    }
}
