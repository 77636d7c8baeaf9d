//! How a job's audio leaves the worker, decided in this one place for every custom task: each
//! requested format encoded, saved on the volume when asked, and returned as presigned S3 URLs
//! when a bucket is configured (the environment or the job's `s3Config`), else inline base64.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::error::JobError;
use super::speech::Fields;
use crate::audio::Clip;
use crate::audio::format::OutputFormat;
use crate::config::Settings;
use crate::job::Job;
use crate::storage::outputs;
use crate::storage::s3::S3Settings;

/// Formats one job may ask for: every distinct one there is.
const MAX_FORMATS: usize = 6;

/// `export_formats` (default `["wav"]`), checked before any work is done.
pub fn export_formats(fields: &Fields<'_>) -> Result<Vec<OutputFormat>, JobError> {
    const KEY: &str = "export_formats";
    let names: Vec<&str> = match fields.0.get(KEY) {
        None | Some(Value::Null) => vec!["wav"],
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= MAX_FORMATS => items
            .iter()
            .map(|item| item.as_str())
            .collect::<Option<_>>()
            .ok_or_else(|| JobError::invalid("export_formats must list format names", KEY))?,
        Some(_) => {
            return Err(JobError::invalid(
                format!("export_formats must be a list of 1 to {MAX_FORMATS} format names"),
                KEY,
            ));
        }
    };
    let mut formats: Vec<OutputFormat> = Vec::with_capacity(names.len());
    for name in names {
        let format = OutputFormat::from_export_name(name)
            .and_then(OutputFormat::check_available)
            .map_err(|e| JobError::invalid(format!("export_formats: {e}"), KEY))?;
        if formats.iter().any(|f| f.extension() == format.extension()) {
            return Err(JobError::invalid(
                format!("export_formats names {name} twice (wav and wav_float are both .wav)"),
                KEY,
            ));
        }
        formats.push(format);
    }
    Ok(formats)
}

/// Where a job's audio goes: a bucket under `{job_id}/`, or inline.
pub struct Destination {
    job_id: String,
    bucket: Option<S3Settings>,
}

impl Destination {
    /// The job's `s3Config` (at the job's top level, as RunPod sends it, or in its input)
    /// wins over the environment's bucket; checked before any work is done.
    pub fn for_job(job: &Job, settings: &Settings) -> Result<Self, JobError> {
        let config = job
            .extra
            .get("s3Config")
            .or_else(|| job.input.get("s3Config"))
            .filter(|config| !config.is_null());
        let bucket = match config {
            Some(config) => Some(
                S3Settings::from_job_config(config)
                    .map_err(|e| JobError::invalid(e.to_string(), "s3Config"))?,
            ),
            None => settings.s3.clone(),
        };
        // Keys are `{job_id}/{file}`; an id that is not a plain name gets a fresh one.
        let job_id = if crate::storage::is_plain_name(&job.id) {
            job.id.clone()
        } else {
            uuid::Uuid::new_v4().to_string()
        };
        Ok(Self { job_id, bucket })
    }
}

/// The job's files on the volume, when it asked for that.
pub struct Save<'a> {
    pub project: Option<&'a str>,
    /// The JSON companion: the result without audio, plus the job's parameters.
    pub metadata: Value,
}

/// `save_to_volume` (default: whether a `project` is given) and the project, checked before
/// any work is done.
pub fn save_requested<'a>(fields: &Fields<'a>) -> Result<(bool, Option<&'a str>), JobError> {
    let project = fields.string("project")?;
    if project.is_some_and(|p| !crate::storage::is_plain_name(p)) {
        return Err(JobError::invalid(
            "project must be 1 to 64 letters, digits, '-' or '_'",
            "project",
        ));
    }
    let save = fields
        .boolean("save_to_volume")?
        .unwrap_or(project.is_some());
    Ok((save, project))
}

/// The job's parameters for a metadata companion: inline audio left out.
pub fn parameters(fields: &Fields<'_>) -> Value {
    let mut parameters = fields.0.clone();
    parameters.retain(|key, _| !key.ends_with("_base64"));
    if let Some(Value::Array(segments)) = parameters.get_mut("segments") {
        for segment in segments.iter_mut().filter_map(Value::as_object_mut) {
            segment.remove("data");
        }
    }
    Value::Object(parameters)
}

/// `clip` in every format, encoded off the async threads (minutes of audio take a while).
pub async fn encode(clip: Clip, formats: Vec<OutputFormat>) -> Result<Vec<Vec<u8>>, JobError> {
    tokio::task::spawn_blocking(move || {
        formats
            .iter()
            .map(|format| format.encode(&clip.samples, clip.sample_rate))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| JobError::Internal(e.into()))?
    .map_err(|e| JobError::Internal(e.into()))
}

/// Encodes `clip` in every format as `{stem}.{extension}` and fills in the result's audio
/// fields: `format`, `audio_url` or `audio_base64` (the first format), `outputs` (one entry
/// per format) and, when saved, `saved_path` / `saved_paths`.
pub async fn deliver(
    clip: Clip,
    formats: &[OutputFormat],
    stem: &str,
    save: Option<Save<'_>>,
    destination: &Destination,
    settings: &Settings,
    result: &mut Map<String, Value>,
) -> Result<(), JobError> {
    let duration = clip.reported_seconds();
    let encoded = encode(clip, formats.to_vec()).await?;

    if let Some(save) = save {
        let files: Vec<(&str, &[u8])> = formats
            .iter()
            .zip(&encoded)
            .map(|(format, bytes)| (format.extension(), bytes.as_slice()))
            .collect();
        let paths = outputs::save(
            &settings.volume.output(),
            save.project,
            stem,
            &files,
            &save.metadata,
        )
        .await
        .map_err(|e| JobError::Internal(e.into()))?;
        result.insert("saved_path".into(), json!(paths.first()));
        result.insert("saved_paths".into(), json!(paths));
    }

    let mut outputs = Vec::with_capacity(formats.len());
    for (format, bytes) in formats.iter().zip(encoded) {
        let mut output = json!({
            "format": format.name(),
            "content_type": format.content_type(),
            "duration_sec": duration,
            "bytes": bytes.len(),
        });
        match &destination.bucket {
            Some(bucket) => {
                let key = format!("{}/{stem}.{}", destination.job_id, format.extension());
                let url = bucket
                    .upload(&key, bytes, format.content_type(), settings.s3_url_expiry)
                    .await
                    .map_err(|e| JobError::Unavailable(e.to_string()))?;
                output["audio_url"] = json!(url);
            }
            None => {
                let text = base64::engine::general_purpose::STANDARD.encode(bytes);
                output["audio_base64"] = json!(text);
            }
        }
        outputs.push(output);
    }
    result.insert("format".into(), json!(formats.first().map(|f| f.name())));
    result.insert("duration_sec".into(), json!(duration));
    if let Some(first) = outputs.first() {
        for key in ["audio_url", "audio_base64"] {
            if let Some(value) = first.get(key) {
                result.insert(key.into(), value.clone());
            }
        }
    }
    result.insert("outputs".into(), Value::Array(outputs));
    Ok(())
}
