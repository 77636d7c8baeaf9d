//! The custom handler's voice-library tasks: `voices` (list), `voice_upload` (a clip stored
//! under audio_prompts/ and named in voices.json) and `voice_delete`.

use serde_json::{Map, Value, json};

use std::path::Path;

use super::audio_in::{self, Source};
use super::error::JobError;
use super::speech::Fields;
use crate::audio::wav::{self, SampleFormat};
use crate::config::Settings;
use crate::storage::Staged;
use crate::storage::inputs::{self, InputError};
use crate::storage::voices::{LibraryError, VoiceEntry, VoiceError, VoiceLibrary};

/// A reference clip must carry a voice (Turbo needs more than 5 s) and stay a clip.
const CLIP_SECONDS: (f64, f64) = (5.0, 300.0);

pub async fn list(settings: &Settings, voices: &VoiceLibrary) -> Result<Value, JobError> {
    let status = voices.status().await;
    let folder = settings.volume.audio_prompts();
    let mut listed = Vec::new();
    for (name, entry) in voices.voices().await.iter() {
        // Remote clips are not downloaded just to be listed.
        let clip = if audio_in::is_url(&entry.audio_file) {
            None
        } else {
            let source = Source::Named {
                folder: &folder,
                name: &entry.audio_file,
            };
            audio_in::load(source, "audio_file", settings).await.ok()
        };
        let mut item = serde_json::to_value(entry).map_err(|e| JobError::Internal(e.into()))?;
        item["name"] = json!(name);
        item["file_exists"] = json!(clip.is_some());
        if let Some(clip) = clip {
            item["duration_sec"] = json!((clip.duration_seconds() * 100.0).round() / 100.0);
            item["sample_rate"] = json!(clip.sample_rate);
        }
        listed.push(item);
    }
    Ok(json!({"status": "success", "voices": listed, "library": status}))
}

pub async fn upload(
    input: &Map<String, Value>,
    settings: &Settings,
    voices: &VoiceLibrary,
) -> Result<Value, JobError> {
    let fields = Fields(input);
    let name = voice_name(&fields)?;
    let (source, param) = match (fields.string("audio_base64")?, fields.string("audio_url")?) {
        (Some(text), None) => (Source::Base64(text), "audio_base64"),
        (None, Some(url)) if audio_in::is_url(url) => (
            Source::Named {
                folder: Path::new(""),
                name: url,
            },
            "audio_url",
        ),
        (None, Some(_)) => {
            return Err(JobError::invalid(
                "audio_url must be an http(s) URL",
                "audio_url",
            ));
        }
        _ => {
            return Err(JobError::invalid(
                "send the clip as audio_base64 or audio_url (WAV, MP3, FLAC, Ogg, M4A)",
                "audio_base64",
            ));
        }
    };
    let clip = audio_in::load(source, param, settings).await?;
    let seconds = clip.duration_seconds();
    if !(CLIP_SECONDS.0..=CLIP_SECONDS.1).contains(&seconds) {
        return Err(JobError::invalid(
            format!(
                "a voice clip must last {} s to {} s (this one: {seconds:.2} s)",
                CLIP_SECONDS.0, CLIP_SECONDS.1
            ),
            param,
        ));
    }
    let mut entry = VoiceEntry {
        audio_file: format!("{name}.wav"),
        description: fields
            .string("description")?
            .unwrap_or_default()
            .to_string(),
        enabled: true,
        aliases: Vec::new(),
        exaggeration: fields.number("exaggeration", (0.0, 2.0))?,
        cfg_weight: fields.number("cfg_weight", (0.0, 5.0))?,
        temperature: fields.number("temperature", (0.0, 5.0))?,
        language: fields.string("language")?.map(str::to_string),
    };
    let overwrite = fields.boolean("overwrite")?.unwrap_or(false);
    // The name's charset keeps the file inside audio_prompts/. The clip is staged under a
    // temporary name and renamed into place only once voices.json accepted the voice, so a
    // refused upload leaves the existing clip alone (and a rename replaces a link rather than
    // following it).
    // The name's charset keeps the file inside audio_prompts/. The clip goes into place only
    // once voices.json accepted the voice, so a refused upload leaves the existing clip alone.
    let folder = settings.volume.audio_prompts();
    let bytes = wav::encode(&clip.samples, clip.sample_rate, SampleFormat::Pcm16);
    let staged = Staged::write(&folder.join(&entry.audio_file), &bytes)
        .await
        .map_err(|e| JobError::Internal(e.into()))?;
    let stored = entry.audio_file.clone();
    let edited = voices
        .edit(|map| {
            if let Some(existing) = map.get(&name) {
                if !overwrite {
                    return Err(LibraryError::Exists(name.clone()));
                }
                entry.aliases = existing.aliases.clone();
            }
            map.insert(name.clone(), entry);
            Ok(())
        })
        .await;
    if let Err(error) = edited {
        staged.discard().await;
        return Err(library_error(error));
    }
    staged
        .commit()
        .await
        .map_err(|e| JobError::Internal(e.into()))?;
    Ok(json!({
        "status": "success",
        "voice": name,
        "audio_file": stored,
        "duration_sec": (seconds * 100.0).round() / 100.0,
        "sample_rate": clip.sample_rate,
    }))
}

pub async fn delete(
    input: &Map<String, Value>,
    settings: &Settings,
    voices: &VoiceLibrary,
) -> Result<Value, JobError> {
    let fields = Fields(input);
    let name = voice_name(&fields)?;
    let delete_file = fields.boolean("delete_file")?.unwrap_or(false);
    let removed = voices
        .edit(|map| {
            map.remove(&name).ok_or_else(|| {
                LibraryError::Voice(VoiceError::Unknown {
                    name: name.clone(),
                    available: map.keys().cloned().collect::<Vec<_>>().join(", "),
                })
            })
        })
        .await
        .map_err(library_error)?;
    let mut file_deleted = false;
    if delete_file {
        match inputs::under(&settings.volume.audio_prompts(), &removed.audio_file) {
            Ok(path) => {
                tokio::fs::remove_file(&path)
                    .await
                    .map_err(|e| JobError::Internal(e.into()))?;
                file_deleted = true;
            }
            Err(InputError::NotFound(_)) => {}
            Err(e) => return Err(JobError::invalid(e.to_string(), "name")),
        }
    }
    Ok(json!({"status": "success", "voice": name, "file_deleted": file_deleted}))
}

/// A voice name: letters, digits, `-` and `_`, so it is also a safe file name.
fn voice_name(fields: &Fields<'_>) -> Result<String, JobError> {
    let name = fields.string("name")?.unwrap_or_default().to_string();
    if crate::storage::is_plain_name(&name) {
        Ok(name)
    } else {
        Err(JobError::invalid(
            format!(
                "name must be 1 to 64 letters, digits, '-' or '_' (got {:?})",
                name.chars().take(80).collect::<String>()
            ),
            "name",
        ))
    }
}

fn library_error(error: LibraryError) -> JobError {
    match error {
        LibraryError::Voice(VoiceError::Unknown { .. }) => {
            JobError::not_found(error.to_string(), "name")
        }
        LibraryError::Io(e) => JobError::Internal(e.into()),
        other => JobError::invalid(other.to_string(), "name"),
    }
}
