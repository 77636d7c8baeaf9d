//! The custom handler: the seeds' task set, dispatched on `task`.

use serde_json::{Map, Value, json};

use super::error::JobError;
use super::{concat, library, outputs, speech};
use crate::config::Settings;
use crate::engine::Engine;
use crate::job::{Job, JobContext};
use crate::storage::voices::{LibraryStatus, VoiceLibrary};

/// Every task the custom schema defines.
pub const TASKS: &[&str] = &[
    "tts",
    "vc",
    "concat",
    "voices",
    "voice_upload",
    "voice_delete",
    "outputs",
    "info",
];

pub async fn handle(
    input: &Map<String, Value>,
    job: &Job,
    ctx: &JobContext,
    settings: &Settings,
    engine: &Engine,
    voices: &VoiceLibrary,
) -> Result<Value, JobError> {
    match task(input)? {
        "info" => Ok(info(job, settings, engine, voices.status().await)),
        "tts" => speech::tts(input, job, ctx, settings, engine, voices).await,
        "vc" => speech::vc(input, job, settings, engine, voices).await,
        "voices" => library::list(settings, voices).await,
        "voice_upload" => library::upload(input, settings, voices).await,
        "voice_delete" => library::delete(input, settings, voices).await,
        "outputs" => outputs::list(input, settings).await,
        "concat" => concat::concat(input, job, settings).await,
        other => Err(JobError::invalid(
            format!(
                "unknown task {other:?}; expected one of: {}",
                TASKS.join(", ")
            ),
            "task",
        )),
    }
}

/// `task`, or `tts` for the seed's original schema, which had only `text`.
fn task(input: &Map<String, Value>) -> Result<&str, JobError> {
    match input.get("task") {
        Some(Value::String(task)) => Ok(task.as_str()),
        Some(_) => Err(JobError::invalid("task must be a string", "task")),
        None if input.contains_key("text") => Ok("tts"),
        None => Err(JobError::invalid(
            format!(
                "the input names no task; send \"task\" (one of: {}) or \"text\" for speech",
                TASKS.join(", ")
            ),
            "task",
        )),
    }
}

/// The operator's view: what runs, with what, and where.
fn info(job: &Job, settings: &Settings, engine: &Engine, voices: LibraryStatus) -> Value {
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "model": engine.model(),
        "engine": engine.state(),
        "model_requests": engine.requests(),
        "volume": settings.volume.summary(),
        "voices": voices,
        "s3": {
            "configured": settings.s3.is_some(),
            "job_config": job.extra.contains_key("s3Config") || job.input.get("s3Config").is_some(),
        },
        "concurrency": settings.concurrency,
        "tasks": TASKS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(input: Value) -> Result<Value, JobError> {
        let job = Job::from_value(json!({"id": "j", "input": input})).unwrap();
        let settings = Settings::from_lookup(|_| None).unwrap();
        let engine = Engine::new(settings.engine.clone());
        let voices = VoiceLibrary::new(settings.volume.voices_json());
        let Value::Object(fields) = &job.input else {
            panic!("test input must be an object")
        };
        handle(
            fields,
            &job,
            &JobContext::unheard(),
            &settings,
            &engine,
            &voices,
        )
        .await
    }

    #[tokio::test]
    async fn text_alone_means_tts() {
        // With no text the tts task itself answers: the task was recognised.
        let error = run(json!({"text": ""})).await.unwrap_err();
        assert!(error.to_string().contains("text is required"), "{error}");
    }

    #[tokio::test]
    async fn unknown_and_missing_tasks_list_the_valid_ones() {
        let error = run(json!({"task": "sing"})).await.unwrap_err();
        assert!(error.to_string().contains("concat"), "{error}");
        let error = run(json!({"prompt": "x"})).await.unwrap_err();
        assert!(error.to_string().contains("info"), "{error}");
        assert!(matches!(
            run(json!({"task": 1})).await,
            Err(JobError::Invalid { .. })
        ));
    }

    #[tokio::test]
    async fn info_reports_the_engine_and_storage() {
        let info = run(json!({"task": "info"})).await.unwrap();
        assert_eq!(info["model"], "turbo");
        assert_eq!(info["engine"]["state"], "not_loaded");
        assert_eq!(info["s3"]["configured"], false);
        assert!(
            info["volume"]["voices_json"]
                .as_str()
                .unwrap()
                .ends_with("voices.json")
        );
    }
}
