//! voices.json on the volume: voice names (and their aliases) mapped to reference clips under
//! `audio_prompts/`, with optional per-voice generation defaults. The file is re-read when it
//! changes, so a voice library is edited without a restart; a broken file is reported while the
//! last good mapping keeps serving, and without a file the classic OpenAI names map to
//! `voice_<name>.wav`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::write_atomically;

/// OpenAI's voice names, mapped to `voice_<name>.wav` when there is no voices.json.
pub const OPENAI_VOICES: &[&str] = &[
    "alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse",
    "marin", "cedar",
];

/// One voice: its clip and the defaults a request may override.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceEntry {
    /// A file name under `audio_prompts/`.
    pub audio_file: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exaggeration: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cfg_weight: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

fn enabled_by_default() -> bool {
    true
}

pub type VoiceMap = BTreeMap<String, VoiceEntry>;

/// A voice a request named.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundVoice {
    pub name: String,
    pub entry: VoiceEntry,
    /// Asked for by one of OpenAI's names: when its clip is not on the volume, the model's
    /// built-in voice speaks instead, so those names work on any volume (voices.json seeded
    /// from the example names clips that are uploaded later).
    pub standard: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoiceError {
    #[error("unknown voice {name:?}; available: {available}")]
    Unknown { name: String, available: String },
    #[error("voice {0:?} is disabled in voices.json")]
    Disabled(String),
}

#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error(transparent)]
    Voice(#[from] VoiceError),
    #[error("voices.json cannot be changed while it is broken ({0}); fix or remove it first")]
    Broken(String),
    #[error("voice {0:?} already exists; send \"overwrite\": true to replace it")]
    Exists(String),
    #[error("writing the voice library failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Where the mapping in use came from, for the `info` task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LibraryStatus {
    /// `file` (voices.json) or `built-in` (no voices.json).
    pub source: &'static str,
    pub voices: usize,
    /// Why the current voices.json could not be used (the last good mapping serves meanwhile).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl LibraryStatus {
    pub fn from_file(&self) -> bool {
        self.source == "file"
    }
}

pub struct VoiceLibrary {
    path: PathBuf,
    state: Mutex<State>,
    /// One change at a time, so concurrent jobs never lose each other's edits.
    writing: tokio::sync::Mutex<()>,
}

struct State {
    /// The modification time and length of the file last read, or `None` for "no file".
    seen: Option<(SystemTime, u64)>,
    voices: Arc<VoiceMap>,
    from_file: bool,
    error: Option<String>,
}

impl VoiceLibrary {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            state: Mutex::new(State {
                seen: None,
                voices: Arc::new(built_in()),
                from_file: false,
                error: None,
            }),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// Applies `change` to the current mapping and writes voices.json atomically (a temporary
    /// file renamed over it). Without a voices.json the built-in mapping is the starting point,
    /// so its names keep working; a broken file is never overwritten.
    pub async fn edit<T>(
        &self,
        change: impl FnOnce(&mut VoiceMap) -> Result<T, LibraryError>,
    ) -> Result<T, LibraryError> {
        let _writing = self.writing.lock().await;
        self.refresh().await;
        let (mut voices, broken) = {
            let state = self.lock();
            ((*state.voices).clone(), state.error.clone())
        };
        if let Some(error) = broken {
            return Err(LibraryError::Broken(error));
        }
        let outcome = change(&mut voices)?;
        let json = serde_json::to_vec_pretty(&voices).map_err(std::io::Error::other)?;
        write_atomically(&self.path, &json).await?;
        self.refresh().await;
        Ok(outcome)
    }

    /// The mapping in use, re-reading voices.json first if it changed since the last call.
    pub async fn voices(&self) -> Arc<VoiceMap> {
        self.refresh().await;
        Arc::clone(&self.lock().voices)
    }

    pub async fn status(&self) -> LibraryStatus {
        self.refresh().await;
        let state = self.lock();
        LibraryStatus {
            source: if state.from_file { "file" } else { "built-in" },
            voices: state.voices.len(),
            error: state.error.clone(),
        }
    }

    /// The voice called `name` (or with `name` among its aliases), ignoring case. OpenAI's
    /// names always resolve: one that voices.json does not list keeps its built-in mapping.
    pub async fn find(&self, name: &str) -> Result<FoundVoice, VoiceError> {
        let voices = self.voices().await;
        let wanted = name.trim();
        let openai_name = OPENAI_VOICES
            .iter()
            .find(|standard| standard.eq_ignore_ascii_case(wanted));
        let found = voices.iter().find(|(key, entry)| {
            key.eq_ignore_ascii_case(wanted)
                || entry.aliases.iter().any(|a| a.eq_ignore_ascii_case(wanted))
        });
        match found {
            Some((key, entry)) if entry.enabled => Ok(FoundVoice {
                name: key.clone(),
                entry: entry.clone(),
                standard: openai_name.is_some(),
            }),
            Some((key, _)) => Err(VoiceError::Disabled(key.clone())),
            None => match openai_name {
                Some(standard) => Ok(FoundVoice {
                    name: standard.to_string(),
                    entry: standard_entry(standard),
                    standard: true,
                }),
                None => Err(VoiceError::Unknown {
                    name: wanted.to_string(),
                    available: available(&voices),
                }),
            },
        }
    }

    async fn refresh(&self) {
        let seen = tokio::fs::metadata(&self.path)
            .await
            .ok()
            .filter(|m| m.is_file())
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
        if seen == self.lock().seen {
            return;
        }
        let outcome = match seen {
            None => Ok(None),
            Some(_) => match tokio::fs::read(&self.path).await {
                Ok(bytes) => parse(&bytes).map(Some),
                Err(e) => Err(format!("cannot read {}: {e}", self.path.display())),
            },
        };
        let mut state = self.lock();
        state.seen = seen;
        match outcome {
            Ok(Some(voices)) => {
                state.voices = Arc::new(voices);
                state.from_file = true;
                state.error = None;
            }
            Ok(None) => {
                state.voices = Arc::new(built_in());
                state.from_file = false;
                state.error = None;
            }
            Err(error) => {
                tracing::error!(
                    "{}: {error}; the last good voice mapping stays in use",
                    self.path.display()
                );
                state.error = Some(error);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The enabled voices' names, for error messages.
fn available(voices: &VoiceMap) -> String {
    let names: Vec<&str> = voices
        .iter()
        .filter(|(_, entry)| entry.enabled)
        .map(|(name, _)| name.as_str())
        .collect();
    match names.is_empty() {
        true => "none (voices.json lists no enabled voice)".into(),
        false => names.join(", "),
    }
}

fn parse(bytes: &[u8]) -> Result<VoiceMap, String> {
    let voices: VoiceMap =
        serde_json::from_slice(bytes).map_err(|e| format!("voices.json is not valid: {e}"))?;
    if let Some((name, _)) = voices
        .iter()
        .find(|(name, entry)| name.trim().is_empty() || entry.audio_file.trim().is_empty())
    {
        return Err(format!(
            "voices.json: voice {name:?} needs a name and an audio_file"
        ));
    }
    Ok(voices)
}

/// The mapping without a voices.json: each OpenAI name to `voice_<name>.wav`.
pub fn built_in() -> VoiceMap {
    OPENAI_VOICES
        .iter()
        .map(|name| (name.to_string(), standard_entry(name)))
        .collect()
}

fn standard_entry(name: &str) -> VoiceEntry {
    VoiceEntry {
        audio_file: format!("voice_{name}.wav"),
        description: format!("OpenAI voice name {name}"),
        enabled: true,
        aliases: Vec::new(),
        exaggeration: None,
        cfg_weight: None,
        temperature: None,
        language: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each version written differs in length, so a change is seen even where the
    /// filesystem's timestamps are coarser than the test.
    fn write(path: &std::path::Path, text: &str) {
        std::fs::write(path, text).unwrap();
    }

    #[tokio::test]
    async fn built_in_names_until_a_file_appears_then_reloads_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("voices.json");
        let library = VoiceLibrary::new(path.clone());
        let alloy = library.find("ALLOY").await.unwrap();
        assert_eq!(
            (alloy.name.as_str(), alloy.entry.audio_file.as_str()),
            ("alloy", "voice_alloy.wav")
        );
        assert!(alloy.standard);
        assert_eq!(library.status().await.source, "built-in");

        write(
            &path,
            r#"{"narrator": {"audio_file": "n.wav", "aliases": ["alloy"], "exaggeration": 0.7}}"#,
        );
        let alloy = library.find("alloy").await.unwrap();
        assert_eq!(alloy.name, "narrator");
        assert_eq!(alloy.entry.exaggeration, Some(0.7));
        assert!(alloy.standard, "asked for by an OpenAI name");
        assert!(!library.find("narrator").await.unwrap().standard);
        // OpenAI's other names keep their built-in mapping; any other name is unknown.
        let echo = library.find("Echo").await.unwrap();
        assert_eq!((echo.name.as_str(), echo.standard), ("echo", true));
        let error = library.find("nobody").await.unwrap_err().to_string();
        assert_eq!(error, "unknown voice \"nobody\"; available: narrator");

        write(
            &path,
            r#"{"narrator": {"audio_file": "n.wav", "enabled": false}, "guide": {"audio_file": "g.wav"}}"#,
        );
        assert_eq!(
            library.find("narrator").await,
            Err(VoiceError::Disabled("narrator".into()))
        );
        assert_eq!(library.status().await.voices, 2);

        std::fs::remove_file(&path).unwrap();
        assert_eq!(library.status().await.source, "built-in");
    }

    #[test]
    fn the_shipped_example_parses() {
        let voices = parse(include_bytes!("../../voices.json.example")).unwrap();
        assert_eq!(voices["narrator"].aliases, ["storyteller"]);
        assert!(voices.values().all(|v| v.enabled));
    }

    #[tokio::test]
    async fn a_broken_file_is_reported_and_the_last_good_mapping_serves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("voices.json");
        write(&path, r#"{"guide": {"audio_file": "g.wav"}}"#);
        let library = VoiceLibrary::new(path.clone());
        assert!(library.find("guide").await.is_ok());

        write(&path, r#"{"guide": {"audio_file": "g.wav"},"#);
        let status = library.status().await;
        assert!(status.error.unwrap().contains("not valid"));
        assert!(library.find("guide").await.is_ok());

        write(
            &path,
            r#"{"guide": {"audio_file": ""}, "x": {"audio_file": "x.wav", "colour": 1}}"#,
        );
        assert!(library.status().await.error.is_some());
        write(&path, r#"{"guide": {"audio_file": "g2.wav"}}"#);
        assert_eq!(library.status().await.error, None);
        assert_eq!(
            library.find("guide").await.unwrap().entry.audio_file,
            "g2.wav"
        );
    }
}
