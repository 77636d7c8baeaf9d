//! The custom handler's `concat` task (seed 004): files from the volume's output/ folder,
//! inline or fetched audio and silences joined into one clip, with trimming, levelling,
//! natural pauses and crossfades, delivered like every other custom result.

mod assemble;
mod request;

use std::time::Instant;

use serde_json::{Map, Value, json};

use crate::audio::decode;
use crate::config::Settings;
use crate::handlers::audio_in;
use crate::handlers::delivery;
use crate::handlers::error::JobError;
use crate::handlers::speech::Fields;
use crate::job::Job;
use crate::storage::outputs;
use assemble::{Assembled, Loaded, assemble, too_long};
use request::Segment;

pub async fn concat(
    input: &Map<String, Value>,
    job: &Job,
    settings: &Settings,
) -> Result<Value, JobError> {
    let started = Instant::now();
    let fields = Fields(input);
    let output_dir = settings.volume.output();
    let segments = request::segments(&fields, &output_dir)?;
    let params = request::params(&fields)?;
    let formats = delivery::export_formats(&fields)?;
    let output_filename = request::output_filename(&fields)?;
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
    let Assembled {
        clip,
        mut generation_info,
        name_detail,
    } = tokio::task::spawn_blocking(move || assemble(loaded, &params))
        .await
        .map_err(|e| JobError::Internal(e.into()))??;
    let mut result = Map::new();
    result.insert("status".into(), json!("success"));
    result.insert("sample_rate".into(), json!(sample_rate));
    generation_info.insert(
        "processing_time_seconds".into(),
        json!((started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0),
    );
    result.insert("generation_info".into(), Value::Object(generation_info));
    let stem = output_filename
        .map(str::to_string)
        .unwrap_or_else(|| outputs::stamped_stem("concat", &name_detail));
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
