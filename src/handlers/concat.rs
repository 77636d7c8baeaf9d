//! The custom handler's `concat` task (seed 004): files from the volume's output/ folder,
//! inline or fetched audio and silences joined into one clip, with trimming, levelling,
//! natural pauses and crossfades, delivered like every other custom result.

use std::path::Path;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use super::audio_in::{self, Source};
use super::delivery;
use super::error::JobError;
use super::speech::{Fields, seed, trim_request};
use crate::audio::join::{self, Part};
use crate::audio::trim::{self, TrimInfo};
use crate::audio::{Clip, decode, resample, samples_for_ms};
use crate::config::Settings;
use crate::job::Job;
use crate::storage::outputs;

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
enum Segment<'a> {
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
struct Params {
    normalize: bool,
    crossfade_ms: u64,
    pause_ms: u64,
    variation_ms: u64,
    trim_threshold_ms: Option<u64>,
    sample_rate: u32,
    seed: u64,
}

pub async fn concat(
    input: &Map<String, Value>,
    job: &Job,
    settings: &Settings,
) -> Result<Value, JobError> {
    let started = Instant::now();
    let fields = Fields(input);
    let output_dir = settings.volume.output();
    let segments = segments(&fields, &output_dir)?;
    let params = params(&fields)?;
    let formats = delivery::export_formats(&fields)?;
    let output_filename = output_filename(&fields)?;
    let (save, project) = delivery::save_requested(&fields)?;
    let destination = delivery::Destination::for_job(job, settings)?;

    // Read and decode every audio segment (in order, so errors name the first bad one). The
    // running length is capped as it grows: one long file named 200 times must not fill memory.
    let mut loaded = Vec::with_capacity(segments.len());
    let mut seconds_so_far = 0.0;
    for segment in segments {
        let segment = match segment {
            Segment::Silence { ms, notation } => Loaded::Silence {
                ms,
                notation: notation.to_string(),
            },
            Segment::Audio {
                kind,
                label,
                source,
            } => Loaded::Audio {
                kind,
                label,
                clip: audio_in::load(source, "files", settings).await?,
            },
        };
        seconds_so_far += match &segment {
            Loaded::Silence { ms, .. } => ms / 1000.0,
            Loaded::Audio { clip, .. } => clip.duration_seconds(),
        };
        if seconds_so_far > f64::from(decode::MAX_DECODED_SECONDS) {
            return Err(too_long());
        }
        loaded.push(segment);
    }

    let sample_rate = params.sample_rate;
    let mut info = tokio::task::spawn_blocking(move || assemble(loaded, &params))
        .await
        .map_err(|e| JobError::Internal(e.into()))??;
    let clip = std::mem::replace(
        &mut info.clip,
        Clip {
            samples: Vec::new(),
            sample_rate,
        },
    );
    let mut result = Map::new();
    result.insert("status".into(), json!("success"));
    result.insert("sample_rate".into(), json!(sample_rate));
    let mut generation_info = info.generation_info;
    generation_info.insert(
        "processing_time_seconds".into(),
        json!((started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0),
    );
    result.insert("generation_info".into(), Value::Object(generation_info));
    let stem = output_filename
        .map(str::to_string)
        .unwrap_or_else(|| outputs::stamped_stem("concat", &info.name_detail));
    let save = (save || output_filename.is_some()).then(|| {
        let mut metadata = result.clone();
        metadata.insert("task".into(), json!("concat"));
        metadata.insert("parameters".into(), delivery::parameters(&fields));
        delivery::Save {
            project,
            metadata: Value::Object(metadata),
        }
    });
    delivery::deliver(
        clip,
        &formats,
        &stem,
        save,
        &destination,
        settings,
        &mut result,
    )
    .await?;
    Ok(Value::Object(result))
}

/// `files` (names and silence notations) or `segments` (typed objects), one of the two.
fn segments<'a>(fields: &Fields<'a>, output_dir: &'a Path) -> Result<Vec<Segment<'a>>, JobError> {
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
            "{name:?} is a URL; files are names in output/ (use a segment of type \"url\")"
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
                return Err(format!("{url:?} is not an http(s) URL"));
            }
            Ok(Segment::Audio {
                kind: "url",
                label: url.to_string(),
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

fn params(fields: &Fields<'_>) -> Result<Params, JobError> {
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
fn output_filename<'a>(fields: &Fields<'a>) -> Result<Option<&'a str>, JobError> {
    let name = fields.string("output_filename")?;
    if name.is_some_and(|n| !crate::storage::is_plain_name(n)) {
        return Err(JobError::invalid(
            "output_filename must be 1 to 64 letters, digits, '-' or '_' (no extension)",
            "output_filename",
        ));
    }
    Ok(name)
}

/// A segment once read.
enum Loaded {
    Silence {
        ms: f64,
        notation: String,
    },
    Audio {
        kind: &'static str,
        label: String,
        clip: Clip,
    },
}

struct Assembled {
    clip: Clip,
    generation_info: Map<String, Value>,
    /// The seeds' file-name summary: `3files_sil2_pause600v200_fade100_leveled_trim200`.
    name_detail: String,
}

fn too_long() -> JobError {
    JobError::invalid(
        format!(
            "the joined audio would last more than {} minutes; join fewer or shorter segments",
            decode::MAX_DECODED_SECONDS / 60
        ),
        "files",
    )
}

fn seconds(samples: usize, rate: u32) -> f64 {
    (samples as f64 / f64::from(rate) * 1000.0).round() / 1000.0
}

/// Resamples, trims and levels the audio, decides every gap, and joins the lot.
fn assemble(loaded: Vec<Loaded>, params: &Params) -> Result<Assembled, JobError> {
    let rate = params.sample_rate;
    let mut clips = Vec::new();
    let mut details = Vec::new();
    let mut trims: Vec<Option<TrimInfo>> = Vec::new();
    for segment in &loaded {
        if let Loaded::Audio { clip, label, .. } = segment {
            let mut samples = resample::resample(&clip.samples, clip.sample_rate, rate)
                .map_err(|e| JobError::Internal(e.into()))?;
            let trimmed = params.trim_threshold_ms.map(|threshold| {
                let (kept, info) = trim::trim(&samples, rate, threshold);
                samples = kept;
                info
            });
            if samples.is_empty() {
                return Err(JobError::invalid(
                    format!("{label} holds no audio"),
                    "files",
                ));
            }
            clips.push(samples);
            trims.push(trimmed);
        }
    }
    let gains = if params.normalize {
        join::level(&mut clips, rate)
    } else {
        vec![None; clips.len()]
    };

    let mut rng = StdRng::seed_from_u64(params.seed);
    let mut parts = Vec::new();
    let (mut audio_index, mut silences, mut pauses) = (0, 0, 0);
    let mut previous_was_audio = false;
    let mut clips = clips.into_iter();
    for segment in loaded {
        match segment {
            Loaded::Silence { ms, notation } => {
                let n = samples_for_ms(ms, rate);
                parts.push(Part::Silence(n));
                details.push(json!({
                    "type": "manual_silence",
                    "notation": notation,
                    "duration_ms": ms,
                    "duration_seconds": seconds(n, rate),
                }));
                silences += 1;
                previous_was_audio = false;
            }
            Loaded::Audio { kind, label, clip } => {
                // Manual silence beats a natural pause: one is added only between two audio
                // segments with nothing in between, and only when asked for.
                if previous_was_audio && params.pause_ms > 0 {
                    let variation = params.variation_ms as i64;
                    let applied = rng.random_range(-variation..=variation);
                    let ms = (params.pause_ms as i64 + applied).max(0);
                    let n = samples_for_ms(ms as f64, rate);
                    parts.push(Part::Silence(n));
                    details.push(json!({
                        "type": "natural_pause",
                        "duration_ms": ms,
                        "duration_seconds": seconds(n, rate),
                        "base_duration_ms": params.pause_ms,
                        "variation_applied_ms": applied,
                    }));
                    pauses += 1;
                }
                let samples = clips.next().unwrap_or_default();
                let mut detail = json!({
                    "type": kind,
                    "source": label,
                    "original_sample_rate": clip.sample_rate,
                    "duration_seconds": seconds(samples.len(), rate),
                    "level_gain_db": gains[audio_index].map(|g| (g * 100.0).round() / 100.0),
                });
                if let Some(info) = trims[audio_index] {
                    detail["trim_info"] = json!(info);
                }
                details.push(detail);
                parts.push(Part::Audio(samples));
                audio_index += 1;
                previous_was_audio = true;
            }
        }
    }

    let planned: usize = parts
        .iter()
        .map(|part| match part {
            Part::Audio(samples) => samples.len(),
            Part::Silence(n) => *n,
        })
        .sum();
    decode::check_length(planned, rate).map_err(|_| too_long())?;
    let crossfade = samples_for_ms(params.crossfade_ms as f64, rate);
    let (samples, overlaps) = join::assemble(&parts, crossfade);

    let trimmed: Vec<&TrimInfo> = trims.iter().flatten().collect();
    let files_trimmed = trimmed.iter().filter(|t| t.trimmed).count();
    let removed_ms = trimmed.iter().fold(0.0, |sum, t| {
        sum + t.leading_silence_removed_ms + t.trailing_silence_removed_ms
    });
    let mut name_detail = format!("{audio_index}files");
    if silences > 0 {
        name_detail += &format!("_sil{silences}");
    }
    if params.pause_ms > 0 {
        name_detail += &format!("_pause{}v{}", params.pause_ms, params.variation_ms);
    }
    if params.crossfade_ms > 0 {
        name_detail += &format!("_fade{}", params.crossfade_ms);
    }
    if params.normalize {
        name_detail += "_leveled";
    }
    if let Some(threshold) = params.trim_threshold_ms {
        name_detail += &format!("_trim{threshold}");
    }
    let info = json!({
        "total_duration_seconds": seconds(samples.len(), rate),
        "file_count": audio_index,
        "silence_segments": silences,
        "natural_pauses": pauses,
        "crossfade_ms": params.crossfade_ms,
        "crossfades_applied_ms": overlaps.iter().map(|&n| seconds(n, rate) * 1000.0).collect::<Vec<_>>(),
        "normalization_applied": params.normalize,
        "trim_applied": params.trim_threshold_ms.is_some(),
        "trim_threshold_ms": params.trim_threshold_ms,
        "files_trimmed": files_trimmed,
        "files_not_trimmed": trimmed.len() - files_trimmed,
        "total_silence_removed_seconds": (removed_ms).round() / 1000.0,
        "seed": params.seed,
        "processing_details": details,
    });
    let generation_info = match info {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    Ok(Assembled {
        clip: Clip {
            samples,
            sample_rate: rate,
        },
        generation_info,
        name_detail,
    })
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
