//! The job handlers: routing each input to the OpenAI or the custom handler, and their
//! validation.

mod audio_in;
mod chunked;
mod concat;
pub mod custom;
mod delivery;
pub mod error;
mod library;
pub mod openai;
mod openai_stream;
mod outputs;
pub mod route;
pub mod speech;
mod text_chunks;

use std::sync::Arc;

use crate::config::Settings;
use crate::engine::{Engine, EngineState};
use crate::job::{Job, JobContext, JobHandler, Outcome, Readiness};
use crate::storage::voices::VoiceLibrary;
use error::{Api, JobError};
use route::Route;

/// The worker's handler: everything a job can ask for.
pub struct Handlers {
    settings: Arc<Settings>,
    engine: Engine,
    voices: VoiceLibrary,
}

impl Handlers {
    pub fn new(settings: Arc<Settings>, engine: Engine) -> Self {
        let voices = VoiceLibrary::new(settings.volume.voices_json());
        Self {
            settings,
            engine,
            voices,
        }
    }
}

/// RunPod answers a job-done body over its 20 MB payload limit with HTTP 400, which would lose
/// the result; an answer that big fails here with a message the caller can act on.
const MAX_RESULT_BYTES: usize = 20 * 1024 * 1024;

fn within_result_limit(output: serde_json::Value) -> Result<serde_json::Value, JobError> {
    let size = serde_json::to_vec(&output).map_or(0, |bytes| bytes.len());
    if size > MAX_RESULT_BYTES {
        return Err(JobError::invalid(
            format!(
                "the result is {:.1} MB, more than the 20 MB RunPod accepts for a job's output; \
                 configure a bucket (BUCKET_* or the job's s3Config) to receive URLs instead, or \
                 ask for less audio per job (shorter text or source, mp3 output)",
                size as f64 / 1e6
            ),
            None,
        ));
    }
    Ok(output)
}

impl JobHandler for Handlers {
    async fn handle(&self, job: Job, ctx: JobContext) -> Outcome {
        let speech = openai::SpeechContext {
            settings: &self.settings,
            engine: &self.engine,
            voices: &self.voices,
            job_input: &job.input,
            events: &ctx,
        };
        let (api, result) = match route::classify(&job.input) {
            Route::OpenAiProxy { route, body } => {
                (Api::OpenAi, openai::proxy(route, body, &speech).await)
            }
            Route::OpenAiSpeech(body) => (Api::OpenAi, openai::speech(body, &speech).await),
            Route::Custom(input) => (
                Api::Custom,
                custom::handle(
                    input,
                    &job,
                    &ctx,
                    &self.settings,
                    &self.engine,
                    &self.voices,
                )
                .await,
            ),
            Route::NotAnObject => (
                Api::Custom,
                Err(JobError::invalid(
                    "the job's input must be a JSON object",
                    "input",
                )),
            ),
        };
        match result.and_then(within_result_limit) {
            Ok(output) => Outcome::Output(output),
            Err(error) => error.into_outcome(api),
        }
    }

    fn readiness(&self) -> Readiness {
        match self.engine.state() {
            EngineState::Loading => Readiness::Initializing,
            EngineState::Failed(_) => Readiness::Unhealthy,
            EngineState::NotLoaded | EngineState::Ready => Readiness::Ready,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_over_the_platform_limit_fail_clearly() {
        let small = serde_json::json!({"audio_base64": "AAAA"});
        assert_eq!(within_result_limit(small.clone()).unwrap(), small);
        let large = serde_json::json!({"audio_base64": "A".repeat(MAX_RESULT_BYTES)});
        let error = within_result_limit(large).unwrap_err().to_string();
        assert!(
            error.contains("20 MB") && error.contains("bucket") && error.contains("less audio"),
            "{error}"
        );
    }
}
