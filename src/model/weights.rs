//! Checkpoint loading under the reference's state_dict key names. Every module is built through
//! [`Weights::build`], which turns a missing key or a wrong shape into an error naming the key
//! and the file, and refuses keys the module never read, so a checkpoint from the wrong model or
//! version fails at load time instead of producing noise.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarBuilder;
use candle_nn::var_builder::SimpleBackend;

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("cannot read weights from {source_name}: {message}")]
    Read {
        source_name: String,
        message: String,
    },
    #[error("weights {source_name} do not fit the model: {message}")]
    Mismatch {
        source_name: String,
        message: String,
    },
    #[error("weights {source_name} hold {count} keys the model does not use, e.g. {examples}")]
    Unexpected {
        source_name: String,
        count: usize,
        examples: String,
    },
}

/// A set of named tensors (a checkpoint, or seeded random weights) and the record of which
/// of them a model read.
pub struct Weights {
    source_name: String,
    tensors: Arc<HashMap<String, Tensor>>,
}

impl Weights {
    pub fn new(source_name: impl Into<String>, tensors: HashMap<String, Tensor>) -> Self {
        Self {
            source_name: source_name.into(),
            tensors: Arc::new(tensors),
        }
    }

    /// Reads a safetensors checkpoint into host memory.
    pub fn from_safetensors(path: &Path) -> Result<Self, WeightsError> {
        let tensors =
            candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| WeightsError::Read {
                source_name: path.display().to_string(),
                message: e.to_string(),
            })?;
        Ok(Self::new(path.display().to_string(), tensors))
    }

    pub fn into_tensors(self) -> HashMap<String, Tensor> {
        Arc::try_unwrap(self.tensors).unwrap_or_else(|shared| (*shared).clone())
    }

    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// The subset under `prefix.` with the prefix removed: one checkpoint file often holds
    /// several modules (`s3gen.safetensors` holds `tokenizer.*`, `speaker_encoder.*`, …).
    pub fn sub(&self, prefix: &str) -> Self {
        let lead = format!("{prefix}.");
        let tensors = self
            .tensors
            .iter()
            .filter_map(|(k, t)| k.strip_prefix(&lead).map(|k| (k.to_string(), t.clone())))
            .collect();
        Self::new(format!("{} [{prefix}]", self.source_name), tensors)
    }

    /// Builds a module, then checks that it read every key but those matching `ignored`
    /// (buffers the reference recomputes, such as mel filters, may or may not be present).
    pub fn build<M>(
        &self,
        dtype: DType,
        device: &Device,
        ignored: &[&str],
        load: impl FnOnce(VarBuilder<'static>) -> candle_core::Result<M>,
    ) -> Result<M, WeightsError> {
        let used = Arc::new(Mutex::new(HashSet::new()));
        let backend = Tracked {
            tensors: Arc::clone(&self.tensors),
            used: Arc::clone(&used),
        };
        let vb = VarBuilder::from_backend(Box::new(backend), dtype, device.clone());
        let module = load(vb).map_err(|e| WeightsError::Mismatch {
            source_name: self.source_name.clone(),
            message: e.to_string(),
        })?;
        let used = used.lock().unwrap_or_else(PoisonError::into_inner);
        let unexpected: BTreeSet<&String> = self
            .tensors
            .keys()
            .filter(|k| !used.contains(*k) && !is_ignored(k, ignored))
            .collect();
        if unexpected.is_empty() {
            return Ok(module);
        }
        let examples: Vec<&str> = unexpected.iter().take(5).map(|k| k.as_str()).collect();
        Err(WeightsError::Unexpected {
            source_name: self.source_name.clone(),
            count: unexpected.len(),
            examples: examples.join(", "),
        })
    }
}

/// BatchNorm's step counter is training state that every PyTorch checkpoint carries.
fn is_ignored(key: &str, ignored: &[&str]) -> bool {
    key.ends_with("num_batches_tracked")
        || ignored
            .iter()
            .any(|pattern| key == *pattern || key.ends_with(&format!(".{pattern}")))
}

struct Tracked {
    tensors: Arc<HashMap<String, Tensor>>,
    used: Arc<Mutex<HashSet<String>>>,
}

impl Tracked {
    fn fetch(&self, name: &str) -> candle_core::Result<&Tensor> {
        let tensor = self
            .tensors
            .get(name)
            .ok_or_else(|| candle_core::Error::Msg(format!("missing key {name:?}")))?;
        self.used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string());
        Ok(tensor)
    }
}

impl SimpleBackend for Tracked {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let tensor = self.fetch(name)?;
        if tensor.shape() != &shape {
            return Err(candle_core::Error::Msg(format!(
                "key {name:?} has shape {:?}, the model expects {:?}",
                tensor.dims(),
                shape.dims()
            )));
        }
        tensor.to_device(device)?.to_dtype(dtype)
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        self.fetch(name)?.to_device(device)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(keys: &[(&str, &[usize])]) -> Weights {
        let tensors = keys
            .iter()
            .map(|(k, shape)| {
                let t = Tensor::zeros(*shape, DType::F32, &Device::Cpu).unwrap();
                (k.to_string(), t)
            })
            .collect();
        Weights::new("test.safetensors", tensors)
    }

    fn linear(vb: VarBuilder) -> candle_core::Result<candle_nn::Linear> {
        candle_nn::linear(3, 2, vb.pp("proj"))
    }

    fn build_error(w: &Weights, ignored: &[&str]) -> String {
        match w.build(DType::F32, &Device::Cpu, ignored, linear) {
            Ok(_) => panic!("the build should fail"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn builds_when_every_key_is_read() {
        let w = weights(&[("proj.weight", &[2, 3]), ("proj.bias", &[2])]);
        assert!(w.build(DType::F32, &Device::Cpu, &[], linear).is_ok());
    }

    #[test]
    fn names_a_missing_key_and_the_file() {
        let w = weights(&[("proj.weight", &[2, 3])]);
        let err = build_error(&w, &[]);
        assert!(
            err.contains("proj.bias") && err.contains("test.safetensors"),
            "{err}"
        );
    }

    #[test]
    fn names_a_wrong_shape() {
        let w = weights(&[("proj.weight", &[3, 3]), ("proj.bias", &[2])]);
        let err = build_error(&w, &[]);
        assert!(
            err.contains("proj.weight") && err.contains("[3, 3]"),
            "{err}"
        );
    }

    #[test]
    fn refuses_unread_keys_but_ignores_named_buffers() {
        let w = weights(&[
            ("proj.weight", &[2, 3]),
            ("proj.bias", &[2]),
            ("bn.num_batches_tracked", &[]),
            ("window", &[4]),
            ("extra.weight", &[1]),
        ]);
        let err = build_error(&w, &["window"]);
        assert!(
            err.contains("1 keys") && err.contains("extra.weight"),
            "{err}"
        );
    }

    #[test]
    fn reads_a_safetensors_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ve.safetensors");
        let w = weights(&[("proj.weight", &[2, 3]), ("proj.bias", &[2])]);
        candle_core::safetensors::save(&w.into_tensors(), &path).unwrap();
        let loaded = Weights::from_safetensors(&path).unwrap();
        assert!(loaded.build(DType::F32, &Device::Cpu, &[], linear).is_ok());
        let missing = Weights::from_safetensors(&dir.path().join("absent.safetensors"));
        assert!(
            missing
                .err()
                .unwrap()
                .to_string()
                .contains("absent.safetensors")
        );
    }

    #[test]
    fn sub_strips_the_prefix() {
        let w = weights(&[("ve.proj.weight", &[2, 3]), ("ve.proj.bias", &[2])]);
        assert!(
            w.sub("ve")
                .build(DType::F32, &Device::Cpu, &[], linear)
                .is_ok()
        );
    }
}
