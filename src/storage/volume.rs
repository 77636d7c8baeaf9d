//! The network volume's layout (see docs/configuration.md).

use std::path::{Path, PathBuf};

use serde::Serialize;

pub const VOLUME_VAR: &str = "CHATTERBOX_VOLUME";
/// Where RunPod mounts a network volume in serverless workers.
pub const RUNPOD_VOLUME: &str = "/runpod-volume";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumePaths {
    root: PathBuf,
}

impl VolumePaths {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `CHATTERBOX_VOLUME`, else `/runpod-volume/chatterbox` when a network volume is mounted,
    /// else `./volume`.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Self {
        match var(VOLUME_VAR).filter(|v| !v.trim().is_empty()) {
            Some(root) => Self::new(root),
            None if Path::new(RUNPOD_VOLUME).is_dir() => {
                Self::new(Path::new(RUNPOD_VOLUME).join("chatterbox"))
            }
            None => Self::new("volume"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn voices_json(&self) -> PathBuf {
        self.root.join("voices.json")
    }

    pub fn audio_prompts(&self) -> PathBuf {
        self.root.join("audio_prompts")
    }

    pub fn output(&self) -> PathBuf {
        self.root.join("output")
    }

    pub fn models(&self) -> PathBuf {
        self.root.join("models")
    }

    /// What the `info` job reports.
    pub fn summary(&self) -> VolumeSummary {
        VolumeSummary {
            root: self.root.display().to_string(),
            exists: self.root.is_dir(),
            voices_json: self.voices_json().display().to_string(),
            audio_prompts: self.audio_prompts().display().to_string(),
            output: self.output().display().to_string(),
            models: self.models().display().to_string(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct VolumeSummary {
    pub root: String,
    pub exists: bool,
    pub voices_json: String,
    pub audio_prompts: String,
    pub output: String,
    pub models: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_volume_variable_wins() {
        let paths = VolumePaths::from_lookup(|_| Some("/data/cb".into()));
        assert_eq!(paths.voices_json(), Path::new("/data/cb/voices.json"));
        assert_eq!(paths.output(), Path::new("/data/cb/output"));
    }
}
