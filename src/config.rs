//! The worker's settings from the environment (every variable is in docs/configuration.md).

use std::path::PathBuf;

use crate::engine::checkpoints::CheckpointSource;
use crate::engine::device::{DeviceChoice, parse_dtype};
use crate::engine::{EngineConfig, Variant};
use crate::storage::fetch::FetchPolicy;
use crate::storage::inputs::MAX_AUDIO_BYTES;
use crate::storage::s3::{DEFAULT_URL_EXPIRY, S3Settings};
use crate::storage::volume::VolumePaths;

pub const MODEL_VAR: &str = "CHATTERBOX_MODEL";
/// RunPod's own workers read their concurrency from this name.
pub const CONCURRENCY_VAR: &str = "MAX_CONCURRENCY";
pub const REFRESH_VAR: &str = "CHATTERBOX_REFRESH_WORKER";
pub const WATERMARK_VAR: &str = "CHATTERBOX_WATERMARK";
/// `true`: T3 keeps its decode weights in bf16 on the CPU (see docs/configuration.md).
pub const T3_BF16_WEIGHTS_VAR: &str = "CHATTERBOX_T3_BF16_WEIGHTS";
pub const DEVICE_VAR: &str = "CHATTERBOX_DEVICE";
pub const DTYPE_VAR: &str = "CHATTERBOX_DTYPE";
pub const PERTH_CHECKPOINT_VAR: &str = "CHATTERBOX_PERTH_CHECKPOINT";
pub const VOICE_CACHE_VAR: &str = "CHATTERBOX_VOICE_CACHE";
pub const MAX_NEW_TOKENS_VAR: &str = "CHATTERBOX_MAX_NEW_TOKENS";
pub const URL_MAX_BYTES_VAR: &str = "CHATTERBOX_URL_MAX_BYTES";
pub const ALLOW_PRIVATE_URLS_VAR: &str = "CHATTERBOX_ALLOW_PRIVATE_URLS";
pub const S3_URL_EXPIRY_VAR: &str = "CHATTERBOX_S3_URL_EXPIRY";
pub const PRELOAD_VAR: &str = "CHATTERBOX_PRELOAD";
/// Bearer keys for `serve`'s `/v1` routes: one key, or a file of them, one per line.
pub const API_KEY_VAR: &str = "API_KEY";
pub const API_KEY_FILE_VAR: &str = "API_KEY_FILE";
/// `*` or a comma-separated list of origins allowed to call `serve` from a browser.
pub const CORS_ORIGINS_VAR: &str = "CORS_ALLOW_ORIGINS";
/// The Perth weights' file name in the resemble-perth package.
pub const PERTH_CHECKPOINT_FILE: &str = "perth_net_250000.pth.tar";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{MODEL_VAR}: {0}")]
    Model(String),
    #[error("{CONCURRENCY_VAR} must be a whole number of at least 1, not {0:?}")]
    Concurrency(String),
    #[error("{0} must be true or false, not {1:?}")]
    Flag(&'static str, String),
    #[error("{VOICE_CACHE_VAR} must be a whole number, not {0:?}")]
    VoiceCache(String),
    #[error("{MAX_NEW_TOKENS_VAR} must be a whole number of at least 1, not {0:?}")]
    MaxNewTokens(String),
    #[error("{URL_MAX_BYTES_VAR} must be a whole number of bytes, not {0:?}")]
    UrlMaxBytes(String),
    #[error("{S3_URL_EXPIRY_VAR} must be a whole number of seconds from 1 to 604800, not {0:?}")]
    UrlExpiry(String),
    #[error("{DEVICE_VAR}: {0}")]
    Device(String),
    #[error("{DTYPE_VAR}: {0}")]
    DType(String),
    #[error("{API_KEY_FILE_VAR}: {0}")]
    ApiKeyFile(String),
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub volume: VolumePaths,
    pub engine: EngineConfig,
    pub concurrency: usize,
    pub refresh_worker: bool,
    pub s3: Option<S3Settings>,
    /// The most speech tokens one request may generate (the model's own limit when unset).
    pub max_new_tokens: Option<usize>,
    /// How long presigned result URLs stay valid.
    pub s3_url_expiry: std::time::Duration,
    /// How audio named by a URL is fetched.
    pub fetch: FetchPolicy,
    /// Load the model at start instead of at the first request.
    pub preload: bool,
    pub api: ApiSettings,
}

/// Who may call `serve`'s HTTP API.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiSettings {
    /// Bearer keys `/v1` requires; none: open.
    pub keys: Vec<String>,
    pub cors: CorsOrigins,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub enum CorsOrigins {
    /// No CORS headers: browsers on other origins are refused by their own rules.
    #[default]
    None,
    Any,
    List(Vec<String>),
}

impl ApiSettings {
    fn from_lookup(set: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut keys: Vec<String> = set(API_KEY_VAR).into_iter().collect();
        if let Some(path) = set(API_KEY_FILE_VAR) {
            let text = std::fs::read_to_string(path.trim())
                .map_err(|e| ConfigError::ApiKeyFile(format!("cannot read {path}: {e}")))?;
            let listed: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .map(str::to_string)
                .collect();
            if listed.is_empty() {
                return Err(ConfigError::ApiKeyFile(format!("{path} lists no key")));
            }
            keys.extend(listed);
        }
        let keys = keys.into_iter().map(|k| k.trim().to_string()).collect();
        let cors = match set(CORS_ORIGINS_VAR) {
            None => CorsOrigins::None,
            Some(v) if v.trim() == "*" => CorsOrigins::Any,
            Some(v) => CorsOrigins::List(
                v.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_string())
                    .filter(|o| !o.is_empty())
                    .collect(),
            ),
        };
        Ok(Self { keys, cors })
    }
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let model = match set(MODEL_VAR) {
            Some(name) => name.parse().map_err(ConfigError::Model)?,
            None => Variant::Turbo,
        };
        let flag = |name: &'static str, default: bool| match set(name)
            .map(|v| v.trim().to_ascii_lowercase())
        {
            None => Ok(default),
            Some(v) if matches!(v.as_str(), "1" | "true" | "yes" | "on") => Ok(true),
            Some(v) if matches!(v.as_str(), "0" | "false" | "no" | "off") => Ok(false),
            Some(v) => Err(ConfigError::Flag(name, v)),
        };
        let concurrency = match set(CONCURRENCY_VAR) {
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or(ConfigError::Concurrency(v))?,
            None => 1,
        };
        let refresh_worker = flag(REFRESH_VAR, false)?;
        let voice_cache = match set(VOICE_CACHE_VAR) {
            Some(v) => v.trim().parse().map_err(|_| ConfigError::VoiceCache(v))?,
            None => 16,
        };
        let max_new_tokens = set(MAX_NEW_TOKENS_VAR)
            .map(|v| {
                v.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or(ConfigError::MaxNewTokens(v))
            })
            .transpose()?;
        let fetch = FetchPolicy {
            max_bytes: match set(URL_MAX_BYTES_VAR) {
                Some(v) => v.trim().parse().map_err(|_| ConfigError::UrlMaxBytes(v))?,
                None => MAX_AUDIO_BYTES,
            },
            allow_private: flag(ALLOW_PRIVATE_URLS_VAR, false)?,
            timeout: crate::storage::fetch::DEFAULT_TIMEOUT,
        };
        let s3_url_expiry = match set(S3_URL_EXPIRY_VAR) {
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|s| (1..=DEFAULT_URL_EXPIRY.as_secs()).contains(s))
                .map(std::time::Duration::from_secs)
                .ok_or(ConfigError::UrlExpiry(v))?,
            None => DEFAULT_URL_EXPIRY,
        };
        let volume = VolumePaths::from_lookup(&var);
        let device = match set(DEVICE_VAR) {
            Some(v) => v.parse().map_err(ConfigError::Device)?,
            None => DeviceChoice::Cpu,
        };
        let dtype = match set(DTYPE_VAR) {
            Some(v) => parse_dtype(&v).map_err(ConfigError::DType)?,
            None => candle_core::DType::F32,
        };
        if device == DeviceChoice::Cpu && dtype == candle_core::DType::BF16 {
            return Err(ConfigError::DType(
                "bf16 needs CUDA: on the CPU use f32 (and CHATTERBOX_T3_BF16_WEIGHTS for speed) or f16"
                    .into(),
            ));
        }
        let t3_bf16_weights = flag(T3_BF16_WEIGHTS_VAR, false)?;
        if t3_bf16_weights && (device != DeviceChoice::Cpu || dtype != candle_core::DType::F32) {
            return Err(ConfigError::DType(format!(
                "{T3_BF16_WEIGHTS_VAR} is a CPU f32 option; on CUDA set {DTYPE_VAR}=bf16 instead"
            )));
        }
        let engine = EngineConfig {
            model,
            checkpoints: CheckpointSource::from_lookup(&var, volume.models()),
            watermark_checkpoint: Some(
                set(PERTH_CHECKPOINT_VAR)
                    .map(PathBuf::from)
                    .unwrap_or_else(|| volume.models().join("perth").join(PERTH_CHECKPOINT_FILE)),
            ),
            watermark_by_default: flag(WATERMARK_VAR, true)?,
            device,
            dtype,
            t3_bf16_weights,
            voice_cache,
        };
        Ok(Self {
            volume,
            engine,
            concurrency,
            refresh_worker,
            s3: S3Settings::from_lookup(&var),
            s3_url_expiry,
            max_new_tokens,
            fetch,
            preload: flag(PRELOAD_VAR, false)?,
            api: ApiSettings::from_lookup(set)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_turbo_and_one_job_at_a_time() {
        let settings = Settings::from_lookup(|_| None).unwrap();
        assert_eq!(settings.engine.model, Variant::Turbo);
        assert!(settings.engine.watermark_by_default);
        assert_eq!(settings.concurrency, 1);
        assert!(!settings.refresh_worker);
        assert!(settings.s3.is_none());
    }

    #[test]
    fn bad_values_name_the_variable() {
        let with = |name: &'static str, value: &'static str| {
            move |n: &str| (n == name).then(|| value.to_string())
        };
        let error = Settings::from_lookup(with(CONCURRENCY_VAR, "0")).unwrap_err();
        assert!(error.to_string().contains(CONCURRENCY_VAR));
        let error = Settings::from_lookup(with(MODEL_VAR, "tts-9")).unwrap_err();
        assert!(error.to_string().contains(MODEL_VAR));
        let error = Settings::from_lookup(with(WATERMARK_VAR, "maybe")).unwrap_err();
        assert!(error.to_string().contains(WATERMARK_VAR));
        let error = Settings::from_lookup(with(MAX_NEW_TOKENS_VAR, "0")).unwrap_err();
        assert!(error.to_string().contains(MAX_NEW_TOKENS_VAR));
        let error = Settings::from_lookup(with(DEVICE_VAR, "tpu")).unwrap_err();
        assert!(error.to_string().contains(DEVICE_VAR));
        let error = Settings::from_lookup(with(DTYPE_VAR, "bf16")).unwrap_err();
        assert!(error.to_string().contains("bf16 needs CUDA"), "{error}");
        let cuda_with_compact_weights = |n: &str| match n {
            DEVICE_VAR => Some("cuda".to_string()),
            T3_BF16_WEIGHTS_VAR => Some("true".to_string()),
            _ => None,
        };
        let error = Settings::from_lookup(cuda_with_compact_weights).unwrap_err();
        assert!(error.to_string().contains("CPU f32 option"), "{error}");
        assert_eq!(
            Settings::from_lookup(with(CONCURRENCY_VAR, "4"))
                .unwrap()
                .concurrency,
            4
        );
    }
}
