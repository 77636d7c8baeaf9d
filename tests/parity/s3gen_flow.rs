//! S3Gen's flow matching (s3gen/flow_matching.py with the decoder.py estimator) against the
//! reference's `CausalConditionalCFM.forward` run with injected noise: the time schedule, each
//! recorded estimator call on the reference's own inputs, then the whole solve from the same z.
//! Prints the port's timings, which at full size (release) are the figures docs/parity.md
//! compares with the reference's (printed by tools/parity/cases/s3gen_flow.py).

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use chatterbox_worker::model::s3gen::decoder::{ConditionalDecoder, ConditionalDecoderConfig};
use chatterbox_worker::model::s3gen::estimator_ops::Kernels;
use chatterbox_worker::model::s3gen::flow_matching::{CausalConditionalCFM, t_span};

use crate::fixture::{Fixture, assert_close};

/// One estimator call: the reference's own f32-vs-f64 gap is 2e-6 (chatterbox-engine.md §7.3).
const CALL_MAX_REL: f64 = 1e-5;
/// Ten guided steps compound the per-call differences (the guidance amplifies them by 1.7 + 0.7).
const CFG_SOLVE_MAX_REL: f64 = 1e-4;
const MEANFLOW_SOLVE_MAX_REL: f64 = 1e-5;
/// The velocities and mels of the seeded fixtures stay within a few units.
const CALL_MAX_ABS: f64 = 1e-4;
const SOLVE_MAX_ABS: f64 = 1e-3;

#[derive(serde::Deserialize)]
struct Case {
    decoder: ConditionalDecoderConfig,
    steps: usize,
    kept_steps: Vec<usize>,
}

fn scalar(t: &Tensor) -> f32 {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0]
}

/// One recorded estimator call: the CFG batch [x; x] with the unconditioned row's mu, spks and
/// cond zeroed, or for meanflow x alone with its end time r.
fn estimator_call(
    estimator: &ConditionalDecoder,
    fixture: &Fixture,
    step: usize,
) -> candle_core::Result<Tensor> {
    let (mu, spks, cond) = (
        fixture.input("mu"),
        fixture.input("spks"),
        fixture.input("cond"),
    );
    let x = fixture.output(&format!("step{step}.x"));
    let t = scalar(&fixture.output(&format!("step{step}.t")));
    if estimator.config().meanflow {
        let r = scalar(&fixture.output(&format!("step{step}.r")));
        let time = estimator.time_embeddings(&[t], Some(&[r]), &Device::Cpu)?;
        let conditioning = ConditionalDecoder::conditioning(&mu, &spks, &cond)?;
        return estimator.forward(&x, &conditioning, &time);
    }
    let with_unconditioned = |c: &Tensor| Tensor::cat(&[c, &c.zeros_like()?], 0);
    let conditioning = ConditionalDecoder::conditioning(
        &with_unconditioned(&mu)?,
        &with_unconditioned(&spks)?,
        &with_unconditioned(&cond)?,
    )?;
    let time = estimator.time_embeddings(&[t], None, &Device::Cpu)?;
    estimator.forward(&Tensor::cat(&[&x, &x], 0)?, &conditioning, &time)
}

/// The kernels `load` picks for f32 on this CPU (AVX-512 where present).
#[test]
fn s3gen_flow_matches_reference_solvers() {
    for fixture in Fixture::all("s3gen_flow") {
        let kernels = Kernels::select(&Device::Cpu, DType::F32);
        check(&fixture, kernels);
    }
}

/// candle's generic ops, the path other devices and dtypes take.
#[test]
fn s3gen_flow_on_candle_ops_matches_reference_solvers() {
    for fixture in Fixture::all("s3gen_flow") {
        check(&fixture, Kernels::Candle);
    }
}

fn check(fixture: &Fixture, kernels: Kernels) {
    let case: Case = fixture.config();
    let label = match kernels {
        Kernels::Candle => "candle ops",
        _ => "selected kernels",
    };
    let name = &format!("{} ({label})", fixture.case);
    let cfm = fixture
        .weights()
        .build(DType::F32, &Device::Cpu, &[], |vb| {
            CausalConditionalCFM::load_with_kernels(vb, &case.decoder, kernels)
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let meanflow = case.decoder.meanflow;
    {
        let times = t_span(case.steps, !meanflow).unwrap();
        for &k in &case.kept_steps {
            let t = scalar(&fixture.output(&format!("step{k}.t")));
            assert_eq!(times[k].to_bits(), t.to_bits(), "{name}: t[{k}]");
            if meanflow {
                let r = scalar(&fixture.output(&format!("step{k}.r")));
                assert_eq!(times[k + 1].to_bits(), r.to_bits(), "{name}: r[{k}]");
            }
        }

        for &k in &case.kept_steps {
            let started = Instant::now();
            let dxdt = estimator_call(cfm.estimator(), fixture, k).unwrap();
            let seconds = started.elapsed().as_secs_f64();
            assert_close(
                &format!("{name} estimator call {k} ({seconds:.2} s)"),
                &dxdt,
                &fixture.output(&format!("step{k}.dxdt")),
                CALL_MAX_REL,
                CALL_MAX_ABS,
            );
        }

        let started = Instant::now();
        let mel = cfm
            .forward(
                &fixture.input("mu"),
                &fixture.input("spks"),
                &fixture.input("cond"),
                &fixture.noise("z"),
                case.steps,
            )
            .unwrap();
        let seconds = started.elapsed().as_secs_f64();
        let budget = if meanflow {
            MEANFLOW_SOLVE_MAX_REL
        } else {
            CFG_SOLVE_MAX_REL
        };
        assert_close(
            &format!("{name} {}-step solve ({seconds:.2} s)", case.steps),
            &mel,
            &fixture.output("mel"),
            budget,
            SOLVE_MAX_ABS,
        );
    }
}

#[test]
fn s3gen_flow_refuses_mismatched_inputs() {
    let fixture = &Fixture::all("s3gen_flow")[0];
    let case: Case = fixture.config();
    let cfm = fixture
        .weights()
        .build(DType::F32, &Device::Cpu, &[], |vb| {
            CausalConditionalCFM::load(vb, &case.decoder)
        })
        .unwrap();
    let mu = fixture.input("mu");
    let short = mu.narrow(2, 0, 10).unwrap();
    let err = cfm
        .forward(&mu, &fixture.input("spks"), &short, &mu, 2)
        .expect_err("cond shorter than mu");
    assert!(err.to_string().contains("must be equal"), "{err}");
}
