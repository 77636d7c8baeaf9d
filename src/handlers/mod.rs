//! The job handlers: routing each input to the OpenAI or the custom handler, and their
//! validation.

pub mod custom;
pub mod error;
mod library;
pub mod openai;
mod outputs;
pub mod route;
pub mod speech;

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

impl JobHandler for Handlers {
    async fn handle(&self, job: Job, _ctx: JobContext) -> Outcome {
        let speech = openai::SpeechContext {
            settings: &self.settings,
            engine: &self.engine,
            voices: &self.voices,
        };
        let (api, result) = match route::classify(&job.input) {
            Route::OpenAiProxy { route, body } => {
                (Api::OpenAi, openai::proxy(route, body, &speech).await)
            }
            Route::OpenAiSpeech(body) => (Api::OpenAi, openai::speech(body, &speech).await),
            Route::Custom(input) => (
                Api::Custom,
                custom::handle(input, &job, &self.settings, &self.engine, &self.voices).await,
            ),
            Route::NotAnObject => (
                Api::Custom,
                Err(JobError::invalid(
                    "the job's input must be a JSON object",
                    "input",
                )),
            ),
        };
        match result {
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
