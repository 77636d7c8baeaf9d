//! Reads the fixtures tools/parity/generate.py writes (format: tools/parity/README.md) and
//! compares tensors with a stated tolerance, printing the figures either way.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Shape, Tensor};
use chatterbox_worker::model::random_weights::Manifest;
use chatterbox_worker::model::s3gen::hifigan::SourceExcitation;
use chatterbox_worker::model::s3gen::s3gen::S3GenNoise;
use chatterbox_worker::model::weights::Weights;
use serde::de::DeserializeOwned;

/// Recorded S3Gen draws, handed over whatever shape is asked for: the stages check them
/// against the tensors they join, so a length the port gets wrong fails there.
pub struct RecordedNoise {
    flow_z: Tensor,
    phases: Tensor,
    sine: Tensor,
}

impl S3GenNoise for RecordedNoise {
    fn flow(&self, _: Shape) -> candle_core::Result<Tensor> {
        Ok(self.flow_z.clone())
    }

    fn excitation(&self, _: Shape, _: Shape) -> candle_core::Result<SourceExcitation> {
        Ok(SourceExcitation {
            phases: self.phases.clone(),
            noise: self.sine.clone(),
        })
    }
}

pub struct Fixture {
    pub case: String,
    tensors: HashMap<String, Tensor>,
    metadata: HashMap<String, String>,
}

/// Committed fixtures, plus those in `CHATTERBOX_PARITY_DIR` (full-size ones made with
/// `generate.py --full`) when that variable is set.
fn directories() -> Vec<PathBuf> {
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity")];
    if let Some(extra) = std::env::var_os("CHATTERBOX_PARITY_DIR") {
        dirs.push(PathBuf::from(extra));
    }
    dirs
}

impl Fixture {
    /// Every fixture whose `module` metadata equals `module`; panics when there is none, so a
    /// lost fixture cannot turn a parity test green.
    pub fn all(module: &str) -> Vec<Fixture> {
        let mut found = Vec::new();
        for dir in directories() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut paths: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
                .collect();
            paths.sort();
            for path in paths {
                let fixture = Fixture::load(&path);
                if fixture.metadata.get("module").map(String::as_str) == Some(module) {
                    found.push(fixture);
                }
            }
        }
        assert!(!found.is_empty(), "no parity fixture for module {module}");
        found
    }

    fn load(path: &Path) -> Fixture {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let metadata = header.metadata().clone().unwrap_or_default();
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Fixture {
            case: metadata.get("case").cloned().unwrap_or_default(),
            tensors,
            metadata,
        }
    }

    fn tensor(&self, kind: &str, name: &str) -> Tensor {
        let key = format!("{kind}.{name}");
        self.tensors
            .get(&key)
            .unwrap_or_else(|| panic!("{}: no tensor {key}", self.case))
            .clone()
    }

    pub fn input(&self, name: &str) -> Tensor {
        self.tensor("input", name)
    }

    /// An input only some fixtures of a module carry.
    pub fn has_input(&self, name: &str) -> bool {
        self.tensors.contains_key(&format!("input.{name}"))
    }

    pub fn output(&self, name: &str) -> Tensor {
        self.tensor("output", name)
    }

    pub fn noise(&self, name: &str) -> Tensor {
        self.tensor("noise", name)
    }

    /// S3Gen's draws as the reference made them: `flow_z`, `phases` and `sine`.
    pub fn s3gen_noise(&self) -> RecordedNoise {
        RecordedNoise {
            flow_z: self.noise("flow_z"),
            phases: self.noise("phases"),
            sine: self.noise("sine"),
        }
    }

    pub fn input_f32s(&self, name: &str) -> Vec<f32> {
        self.input(name)
            .to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .unwrap_or_else(|e| panic!("{}: input {name}: {e}", self.case))
    }

    pub fn config<T: DeserializeOwned>(&self) -> T {
        let raw = self.metadata.get("config").map_or("{}", String::as_str);
        serde_json::from_str(raw).unwrap_or_else(|e| panic!("{}: config: {e}", self.case))
    }

    /// The seeded weights of the manifest, plus any `weight.*` tensors stored literally.
    pub fn weights(&self) -> Weights {
        let raw = self
            .metadata
            .get("weights")
            .unwrap_or_else(|| panic!("{}: no weight manifest", self.case));
        let manifest: Manifest =
            serde_json::from_str(raw).unwrap_or_else(|e| panic!("{}: manifest: {e}", self.case));
        let seeded = manifest.weights().expect("seeded weights");
        let mut tensors = seeded.into_tensors();
        for (key, tensor) in &self.tensors {
            if let Some(name) = key.strip_prefix("weight.") {
                tensors.insert(name.to_string(), tensor.clone());
            }
        }
        Weights::new(format!("fixture {}", self.case), tensors)
    }
}

/// Relative L2 error and max absolute error of `actual` against `expected`, printed, then
/// checked against the budget.
pub fn assert_close(what: &str, actual: &Tensor, expected: &Tensor, max_rel: f64, max_abs: f64) {
    let actual = actual
        .to_dtype(DType::F64)
        .and_then(|t| t.flatten_all())
        .unwrap();
    let expected = expected
        .to_dtype(DType::F64)
        .and_then(|t| t.flatten_all())
        .unwrap();
    assert_eq!(
        actual.dims(),
        expected.dims(),
        "{what}: {} values, expected {}",
        actual.elem_count(),
        expected.elem_count()
    );
    let a: Vec<f64> = actual.to_vec1().unwrap();
    let e: Vec<f64> = expected.to_vec1().unwrap();
    let (mut diff2, mut ref2, mut max_abs_seen) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(&e) {
        let d = x - y;
        diff2 += d * d;
        ref2 += y * y;
        max_abs_seen = max_abs_seen.max(d.abs());
    }
    let rel = diff2.sqrt() / ref2.sqrt().max(f64::MIN_POSITIVE);
    println!(
        "{what}: rel L2 {rel:.2e} (budget {max_rel:.0e}), max abs {max_abs_seen:.2e} (budget {max_abs:.0e})"
    );
    assert!(
        rel <= max_rel && max_abs_seen <= max_abs && a.iter().all(|v| v.is_finite()),
        "{what}: rel L2 {rel:.3e} > {max_rel:.0e} or max abs {max_abs_seen:.3e} > {max_abs:.0e}"
    );
}
