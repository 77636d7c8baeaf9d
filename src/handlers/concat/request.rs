//! Reading a concat job's fields: the segments (`files` or `segments`) and the parameters,
//! all checked before any file is read.

use std::path::Path;

use serde_json::{Map, Value};

use crate::handlers::audio_in::{self, Source};
use crate::handlers::error::JobError;
use crate::handlers::speech::{Fields, seed, trim_request};
use crate::storage::fetch;

const MAX_SEGMENTS: usize = 200;
/// Manual silences: `"(500ms)"`, `"(1.5s)"`.
const SILENCE_RANGE_MS: (f64, f64) = (50.0, 10_000.0);
const CROSSFADE_MAX_MS: u64 = 5_000;
const PAUSE_MAX_MS: u64 = 3_000;
const VARIATION_MAX_MS: u64 = 500;
const DEFAULT_VARIATION_MS: u64 = 200;
const SAMPLE_RATE_RANGE: (u64, u64) = (8_000, 48_000);
const DEFAULT_SAMPLE_RATE: u32 = 24_000;

/// One entry of `files` or `segments`, checked but not yet read.
pub(super) enum Segment<'a> {
    Silence {
        ms: f64,
        notation: &'a str,
    },
    Audio {
        kind: &'static str,
        label: String,
        source: Source<'a>,
    },
}

/// The job's parameters, all checked before any file is read.
pub(super) struct Params {
    pub(super) normalize: bool,
    pub(super) crossfade_ms: u64,
    pub(super) pause_ms: u64,
    pub(super) variation_ms: u64,
    pub(super) trim_threshold_ms: Option<u64>,
    pub(super) sample_rate: u32,
    pub(super) seed: u64,
}

/// `files` (names and silence notations) or `segments` (typed objects), one of the two.
pub(super) fn segments<'a>(
    fields: &Fields<'a>,
    output_dir: &'a Path,
) -> Result<Vec<Segment<'a>>, JobError> {
    let (key, items) = match (fields.0.get("files"), fields.0.get("segments")) {
        (Some(_), Some(_)) => {
            return Err(JobError::invalid(
                "send either files or segments, not both",
                "files",
            ));
        }
        (Some(Value::Array(items)), None) => ("files", items),
        (None, Some(Value::Array(items))) => ("segments", items),
        (None, None) => {
            return Err(JobError::invalid(
                "concat needs files (names in output/ and silences such as \"(500ms)\") or \
                 segments",
                "files",
            ));
        }
        (Some(_), _) => return Err(JobError::invalid("files must be a list", "files")),
        (_, Some(_)) => return Err(JobError::invalid("segments must be a list", "segments")),
    };
    if items.is_empty() || items.len() > MAX_SEGMENTS {
        return Err(JobError::invalid(
            format!("{key} must list 1 to {MAX_SEGMENTS} entries"),
            key,
        ));
    }
    let segments = items
        .iter()
        .enumerate()
        .map(|(index, item)| match (key, item) {
            ("files", Value::String(text)) => file_entry(text, output_dir),
            ("files", _) => Err(JobError::invalid(
                format!("files[{index}] must be a file name or a silence such as \"(1s)\""),
                "files",
            )),
            (_, Value::Object(segment)) => typed_segment(segment, output_dir).map_err(|message| {
                JobError::invalid(format!("segments[{index}]: {message}"), "segments")
            }),
            _ => Err(JobError::invalid(
                format!("segments[{index}] must be an object with a type"),
                "segments",
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !segments.iter().any(|s| matches!(s, Segment::Audio { .. })) {
        return Err(JobError::invalid(
            format!("{key} names no audio, only silences"),
            key,
        ));
    }
    Ok(segments)
}

/// A `files` entry: a silence notation or a name under output/.
fn file_entry<'a>(text: &'a str, output_dir: &'a Path) -> Result<Segment<'a>, JobError> {
    if let Some(parsed) = silence_ms(text) {
        let ms = parsed.map_err(|message| JobError::invalid(message, "files"))?;
        return Ok(Segment::Silence { ms, notation: text });
    }
    volume_file(text, output_dir).map_err(|message| JobError::invalid(message, "files"))
}

fn volume_file<'a>(name: &'a str, output_dir: &'a Path) -> Result<Segment<'a>, String> {
    if audio_in::is_url(name) {
        return Err(format!(
            "{:?} is a URL; files are names in output/ (use a segment of type \"url\")",
            fetch::redacted(name)
        ));
    }
    Ok(Segment::Audio {
        kind: "file",
        label: name.to_string(),
        source: Source::Named {
            folder: output_dir,
            name,
        },
    })
}

/// A `segments` entry: `{"type": "file"|"server_file", "source"}`, `{"type": "silence",
/// "source": "(1s)"}`, `{"type": "audio_base64", "data"}` or `{"type": "url", "url"}`.
fn typed_segment<'a>(
    segment: &'a Map<String, Value>,
    output_dir: &'a Path,
) -> Result<Segment<'a>, String> {
    let text = |key: &str| {
        segment
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("needs {key} (a string)"))
    };
    match segment.get("type").and_then(Value::as_str) {
        Some("file" | "server_file") => volume_file(text("source")?, output_dir),
        Some("silence") => {
            let notation = text("source")?;
            let ms = silence_ms(notation).unwrap_or_else(|| {
                Err(format!("{notation:?} is not a silence such as \"(500ms)\""))
            })?;
            Ok(Segment::Silence { ms, notation })
        }
        Some("audio_base64") => Ok(Segment::Audio {
            kind: "audio_base64",
            label: "inline audio".into(),
            source: Source::Base64(text("data")?),
        }),
        Some("url") => {
            let url = text("url")?;
            if !audio_in::is_url(url) {
                return Err(format!("{:?} is not an http(s) URL", fetch::redacted(url)));
            }
            Ok(Segment::Audio {
                kind: "url",
                label: fetch::redacted(url),
                source: Source::Named {
                    folder: Path::new(""),
                    name: url,
                },
            })
        }
        Some("upload") => Err(
            "uploads belong to multipart HTTP; in a job send the audio as {\"type\": \
             \"audio_base64\", \"data\": …}"
                .into(),
        ),
        _ => Err("type must be one of file, silence, audio_base64, url".into()),
    }
}

/// `Some` when `text` is written as a silence (`"(…)"`): its length in ms, or why it is wrong.
fn silence_ms(text: &str) -> Option<Result<f64, String>> {
    let inner = text.trim().strip_prefix('(')?.strip_suffix(')')?.trim();
    let bad = || format!("{text:?} is not a silence: write \"(500ms)\" or \"(1.5s)\"");
    let (number, scale) = if let Some(number) = inner.strip_suffix("ms") {
        (number, 1.0)
    } else if let Some(number) = inner.strip_suffix('s') {
        (number, 1000.0)
    } else {
        return Some(Err(bad()));
    };
    let Ok(value) = number.trim().parse::<f64>() else {
        return Some(Err(bad()));
    };
    let ms = value * scale;
    let (low, high) = SILENCE_RANGE_MS;
    Some(if ms.is_finite() && (low..=high).contains(&ms) {
        Ok(ms)
    } else {
        Err(format!(
            "silence {text:?} must last {low} ms to {} s",
            high / 1000.0
        ))
    })
}

pub(super) fn params(fields: &Fields<'_>) -> Result<Params, JobError> {
    let sample_rate = fields.integer("sample_rate", SAMPLE_RATE_RANGE.1)?;
    if sample_rate.is_some_and(|rate| rate < SAMPLE_RATE_RANGE.0) {
        return Err(JobError::invalid(
            format!(
                "sample_rate must be between {} and {}",
                SAMPLE_RATE_RANGE.0, SAMPLE_RATE_RANGE.1
            ),
            "sample_rate",
        ));
    }
    Ok(Params {
        normalize: fields.boolean("normalize_levels")?.unwrap_or(true),
        crossfade_ms: fields
            .integer("crossfade_ms", CROSSFADE_MAX_MS)?
            .unwrap_or(0),
        pause_ms: fields
            .integer("pause_duration_ms", PAUSE_MAX_MS)?
            .unwrap_or(0),
        variation_ms: fields
            .integer("pause_variation_ms", VARIATION_MAX_MS)?
            .unwrap_or(DEFAULT_VARIATION_MS),
        trim_threshold_ms: trim_request(fields)?,
        sample_rate: sample_rate.map_or(DEFAULT_SAMPLE_RATE, |rate| rate as u32),
        seed: seed(fields)?,
    })
}

/// `output_filename`: a plain name, the extension added per format.
pub(super) fn output_filename<'a>(fields: &Fields<'a>) -> Result<Option<&'a str>, JobError> {
    let name = fields.string("output_filename")?;
    if name.is_some_and(|n| !crate::storage::is_plain_name(n)) {
        return Err(JobError::invalid(
            "output_filename must be 1 to 64 letters, digits, '-' or '_' (no extension)",
            "output_filename",
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_notation_parses_and_checks_its_range() {
        assert_eq!(silence_ms("(500ms)"), Some(Ok(500.0)));
        assert_eq!(silence_ms(" ( 1.5s ) "), Some(Ok(1500.0)));
        assert_eq!(silence_ms("(10s)"), Some(Ok(10_000.0)));
        assert_eq!(silence_ms("intro.wav"), None);
        assert_eq!(silence_ms("(intro).wav"), None);
        for bad in [
            "(49ms)",
            "(10.5s)",
            "(-1s)",
            "(NaNs)",
            "(1 minute)",
            "()",
            "(ms)",
        ] {
            let error = silence_ms(bad).unwrap().unwrap_err();
            assert!(error.contains(bad), "{bad}: {error}");
        }
    }
}
