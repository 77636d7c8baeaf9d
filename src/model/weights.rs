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

/// Where a checkpoint's tensors live: in memory (seeded weights, tests), a memory-mapped
/// safetensors file (the Hugging Face checkpoints: tensors are read straight from the page cache
/// onto the target device), or a torch pickle (the multilingual `.pt` files).
enum Store {
    Memory(HashMap<String, Tensor>),
    Mapped(candle_core::safetensors::MmapedSafetensors),
    Pickle(candle_core::pickle::PthTensors),
}

impl Store {
    fn keys(&self) -> Vec<String> {
        match self {
            Self::Memory(tensors) => tensors.keys().cloned().collect(),
            Self::Mapped(mapped) => mapped.tensors().into_iter().map(|(k, _)| k).collect(),
            Self::Pickle(pickle) => pickle.tensor_infos().keys().cloned().collect(),
        }
    }

    fn load(&self, name: &str, device: &Device) -> candle_core::Result<Option<Tensor>> {
        match self {
            Self::Memory(tensors) => tensors.get(name).map(|t| t.to_device(device)).transpose(),
            Self::Mapped(mapped) => match mapped.get(name) {
                Ok(_) => mapped.load(name, device).map(Some),
                Err(_) => Ok(None),
            },
            Self::Pickle(pickle) => pickle.get(name)?.map(|t| t.to_device(device)).transpose(),
        }
    }
}

/// A set of named tensors (a checkpoint, or seeded random weights) and the record of which
/// of them a model read.
pub struct Weights {
    source_name: String,
    store: Arc<Store>,
    /// Only keys under this prefix are visible, with the prefix removed ([`Weights::sub`]).
    prefix: String,
    keys: Arc<Vec<String>>,
}

impl Weights {
    pub fn new(source_name: impl Into<String>, tensors: HashMap<String, Tensor>) -> Self {
        Self::from_store(source_name.into(), Store::Memory(tensors))
    }

    fn from_store(source_name: String, store: Store) -> Self {
        let mut keys = store.keys();
        keys.sort();
        Self {
            source_name,
            store: Arc::new(store),
            prefix: String::new(),
            keys: Arc::new(keys),
        }
    }

    /// Opens a checkpoint by its extension: `.safetensors` memory-mapped, `.pt`/`.pth` as a
    /// torch pickle holding a flat state dict.
    pub fn from_file(path: &Path) -> Result<Self, WeightsError> {
        let source_name = path.display().to_string();
        let read_error = |e: candle_core::Error| WeightsError::Read {
            source_name: source_name.clone(),
            message: e.to_string(),
        };
        let store = match path.extension().and_then(|e| e.to_str()) {
            Some("safetensors") => {
                // SAFETY: checkpoints are written once (downloads land under a temporary name
                // and are renamed into place) and never modified while mapped.
                let mapped = unsafe { candle_core::safetensors::MmapedSafetensors::new(path) }
                    .map_err(read_error)?;
                Store::Mapped(mapped)
            }
            Some("pt" | "pth") => {
                Store::Pickle(candle_core::pickle::PthTensors::new(path, None).map_err(read_error)?)
            }
            _ => {
                return Err(WeightsError::Read {
                    source_name,
                    message: "expected a .safetensors, .pt or .pth file".into(),
                });
            }
        };
        Ok(Self::from_store(source_name, store))
    }

    /// Every visible tensor, on the host; for tests and tools that write checkpoints.
    pub fn into_tensors(self) -> HashMap<String, Tensor> {
        self.keys
            .iter()
            .filter_map(|k| k.strip_prefix(&self.prefix))
            .filter_map(|k| {
                let tensor = self
                    .store
                    .load(&format!("{}{k}", self.prefix), &Device::Cpu);
                tensor.ok().flatten().map(|t| (k.to_string(), t))
            })
            .collect()
    }

    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// The subset under `prefix.` with the prefix removed: one checkpoint file often holds
    /// several modules (`s3gen.safetensors` holds `tokenizer.*`, `speaker_encoder.*`, …).
    pub fn sub(&self, prefix: &str) -> Self {
        Self {
            source_name: format!("{} [{prefix}]", self.source_name),
            store: Arc::clone(&self.store),
            prefix: format!("{}{prefix}.", self.prefix),
            keys: Arc::clone(&self.keys),
        }
    }

    fn visible_keys(&self) -> impl Iterator<Item = &str> {
        self.keys
            .iter()
            .filter_map(|k| k.strip_prefix(&self.prefix))
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
            store: Arc::clone(&self.store),
            prefix: self.prefix.clone(),
            keys: Arc::clone(&self.keys),
            used: Arc::clone(&used),
        };
        let vb = VarBuilder::from_backend(Box::new(backend), dtype, device.clone());
        let module = load(vb).map_err(|e| WeightsError::Mismatch {
            source_name: self.source_name.clone(),
            message: e.to_string(),
        })?;
        let used = used.lock().unwrap_or_else(PoisonError::into_inner);
        let unexpected: BTreeSet<&str> = self
            .visible_keys()
            .filter(|k| !used.contains(*k) && !is_ignored(k, ignored))
            .collect();
        if unexpected.is_empty() {
            return Ok(module);
        }
        let examples: Vec<&str> = unexpected.iter().take(5).copied().collect();
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
    store: Arc<Store>,
    prefix: String,
    keys: Arc<Vec<String>>,
    used: Arc<Mutex<HashSet<String>>>,
}

impl Tracked {
    fn fetch(&self, name: &str, device: &Device) -> candle_core::Result<Tensor> {
        let tensor = self
            .store
            .load(&format!("{}{name}", self.prefix), device)?
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
        let tensor = self.fetch(name, device)?;
        if tensor.shape() != &shape {
            return Err(candle_core::Error::Msg(format!(
                "key {name:?} has shape {:?}, the model expects {:?}",
                tensor.dims(),
                shape.dims()
            )));
        }
        tensor.to_dtype(dtype)
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        self.fetch(name, device)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.keys
            .binary_search(&format!("{}{name}", self.prefix))
            .is_ok()
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
        let loaded = Weights::from_file(&path).unwrap();
        assert!(loaded.build(DType::F32, &Device::Cpu, &[], linear).is_ok());
        let missing = Weights::from_file(&dir.path().join("absent.safetensors"));
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
