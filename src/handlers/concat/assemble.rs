//! Turning a concat job's read segments into one clip: resampling, trimming, levelling, the
//! gap rules (manual silence, natural pause, direct join with crossfade) and the report.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use super::request::Params;
use crate::audio::join::{self, Part};
use crate::audio::trim::{self, TrimInfo};
use crate::audio::{Clip, decode, reported_seconds, resample, samples_for_ms};
use crate::handlers::error::JobError;

/// A segment once read.
pub(super) enum Loaded {
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

pub(super) struct Assembled {
    pub(super) clip: Clip,
    pub(super) generation_info: Map<String, Value>,
    /// The seeds' file-name summary: `3files_sil2_pause600v200_fade100_leveled_trim200`.
    pub(super) name_detail: String,
}

pub(super) fn too_long() -> JobError {
    JobError::invalid(
        format!(
            "the joined audio would last more than {} minutes; join fewer or shorter segments",
            decode::MAX_DECODED_SECONDS / 60
        ),
        "files",
    )
}

/// Resamples, trims and levels the audio, decides every gap, and joins the lot.
pub(super) fn assemble(loaded: Vec<Loaded>, params: &Params) -> Result<Assembled, JobError> {
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
                    "duration_seconds": reported_seconds(n, rate),
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
                        "duration_seconds": reported_seconds(n, rate),
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
                    "duration_seconds": reported_seconds(samples.len(), rate),
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
        "total_duration_seconds": reported_seconds(samples.len(), rate),
        "file_count": audio_index,
        "silence_segments": silences,
        "natural_pauses": pauses,
        "crossfade_ms": params.crossfade_ms,
        "crossfades_applied_ms": overlaps.iter().map(|&n| reported_seconds(n, rate) * 1000.0).collect::<Vec<_>>(),
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
