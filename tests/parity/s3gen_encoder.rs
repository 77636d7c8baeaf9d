//! S3Gen's flow encoder (s3gen/transformer/upsample_encoder.py) against
//! tools/parity/cases/s3gen_encoder.py: the output and, where the fixture stores them, the
//! stages on the way (so a failure points at one), plus the reference run in float64 for the
//! full-size case.
//!
//! Budget: rel L2 2e-6 everywhere (chatterbox-engine.md §7.3; the reference's own f32-vs-f64
//! gap on the output is 4.8e-7). Max abs 2e-5 on the output, whose values reach about ±5 (the
//! reference's own gap: 3.4e-6), and 5e-4 on the stages up to `up_layer`, which carry the
//! embedding's ×√512 and reach about ±100.

use std::collections::HashMap;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use chatterbox_worker::model::random_weights::uniform;
use chatterbox_worker::model::s3gen::transformer::upsample_encoder::{
    UpsampleConformerEncoder, UpsampleConformerEncoderConfig,
};
use serde::Deserialize;

use crate::fixture::{Fixture, assert_close};

const MAX_REL: f64 = 2e-6;
const MAX_ABS: f64 = 2e-5;
const STAGE_MAX_ABS: f64 = 5e-4;

#[derive(Deserialize)]
struct Config {
    encoder: UpsampleConformerEncoderConfig,
    xs: SeededInput,
    stages: Vec<String>,
    float64: bool,
}

#[derive(Deserialize)]
struct SeededInput {
    seed: u64,
    shape: Vec<usize>,
    low: f64,
    high: f64,
}

fn seeded_input(spec: &SeededInput) -> Tensor {
    let count = spec.shape.iter().product();
    let values = uniform(spec.seed, "xs", count, spec.low, spec.high);
    Tensor::from_vec(values, spec.shape.as_slice(), &Device::Cpu).unwrap()
}

#[test]
fn s3gen_encoder_matches_the_reference() {
    for fixture in Fixture::all("s3gen_encoder") {
        let case = &fixture.case;
        let config: Config = fixture.config();
        let encoder = fixture
            .weights()
            .build(DType::F32, &Device::Cpu, &[], |vb| {
                UpsampleConformerEncoder::load(vb, &config.encoder)
            })
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        let xs = seeded_input(&config.xs);

        let mut stages = HashMap::new();
        let encoded = encoder
            .forward_traced(&xs, &mut |name, t| {
                stages.insert(name.to_string(), t.clone());
            })
            .unwrap();
        for name in &config.stages {
            assert_close(
                &format!("{case} {name}"),
                &stages[name],
                &fixture.output(name),
                MAX_REL,
                STAGE_MAX_ABS,
            );
        }
        assert_close(
            &format!("{case} output"),
            &encoded,
            &fixture.output("encoded"),
            MAX_REL,
            MAX_ABS,
        );
        if config.float64 {
            assert_close(
                &format!("{case} output vs the float64 reference"),
                &encoded,
                &fixture.output("encoded_float64"),
                MAX_REL,
                MAX_ABS,
            );
        }
        assert_eq!(encoder.output_size(), config.encoder.output_size);

        let runs = 5;
        let best = (0..runs)
            .map(|_| {
                let started = Instant::now();
                encoder.forward(&xs).unwrap();
                started.elapsed()
            })
            .min()
            .unwrap();
        println!(
            "{case}: xs {:?} -> {:?}, forward best of {runs}: {best:.1?}",
            xs.dims(),
            encoded.dims()
        );
    }
}
