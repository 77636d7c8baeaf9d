//! The one resolver for audio a job names (reference voice, VC source, voice upload, concat
//! segment): a file under a volume folder, inline base64 or an http(s) URL, decoded to a
//! clip. Errors name the field and the source at fault.

use std::path::Path;

use crate::audio::{self, Clip};
use crate::config::Settings;
use crate::storage::fetch;
use crate::storage::inputs::{self, InputError};

use super::error::JobError;

/// Where a job's audio comes from.
pub enum Source<'a> {
    /// A name under a volume folder, or an http(s) URL given where a name may stand.
    Named { folder: &'a Path, name: &'a str },
    /// Bare base64 or a `data:` URL.
    Base64(&'a str),
}

impl Source<'_> {
    /// How errors call this source: the name, or "the inline audio".
    fn label(&self) -> String {
        match self {
            Self::Named { name, .. } if is_url(name) => format!("{:?}", fetch::redacted(name)),
            Self::Named { name, .. } => format!("{:?}", name.chars().take(120).collect::<String>()),
            Self::Base64(_) => "the inline audio".into(),
        }
    }
}

pub fn is_url(name: &str) -> bool {
    name.starts_with("http://") || name.starts_with("https://")
}

/// The raw bytes of `source`; `param` is the field blamed when it is wrong.
pub async fn bytes(
    source: &Source<'_>,
    param: &'static str,
    settings: &Settings,
) -> Result<Vec<u8>, JobError> {
    match source {
        Source::Named { name, .. } if is_url(name) => fetch::fetch(name, &settings.fetch)
            .await
            .map_err(|e| JobError::invalid(format!("{param}: {e}"), param)),
        Source::Named { folder, name } => {
            inputs::read_file(folder, name).await.map_err(|e| match e {
                InputError::NotFound(_) => {
                    JobError::not_found(format!("{param}: file not found: {name}"), param)
                }
                other => JobError::invalid(format!("{param}: {other}"), param),
            })
        }
        Source::Base64(text) => inputs::decode_base64(text)
            .map_err(|e| JobError::invalid(format!("{param}: {e}"), param)),
    }
}

/// `source` read and decoded to a mono clip at its own rate.
pub async fn load(
    source: Source<'_>,
    param: &'static str,
    settings: &Settings,
) -> Result<Clip, JobError> {
    let bytes = bytes(&source, param, settings).await?;
    let label = source.label();
    // Decoding a long compressed file takes a while: off the async threads.
    let decoded = tokio::task::spawn_blocking(move || audio::decode(&bytes))
        .await
        .map_err(|e| JobError::Internal(e.into()))?;
    decoded.map_err(|e| JobError::invalid(format!("{param}: {label}: {e}"), param))
}
