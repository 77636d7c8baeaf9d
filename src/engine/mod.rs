//! The Chatterbox engine: one model thread that owns the device, the weights and the voice
//! caches, loaded lazily on the first request that needs it. Async code talks to it through a
//! channel and awaits a reply, so the runtime never blocks on the model.

pub mod checkpoints;
pub mod device;
mod model_thread;
mod voice_cache;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use tokio::sync::oneshot;

use crate::audio::Clip;
pub use crate::model::t3::t3::GenerateOptions;
use crate::model::t3::t3::StopSignal;
pub use crate::model::tts::Variant;
use checkpoints::CheckpointSource;

/// Where the engine's lazy load stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "error")]
pub enum EngineState {
    NotLoaded,
    Loading,
    Ready,
    Failed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Something in the request: the message is for the caller.
    #[error("{0}")]
    Input(String),
    /// The model could not be loaded; the message says why (missing files, no network).
    #[error("the model is not available: {0}")]
    Unavailable(String),
    /// A failure inside the model; details are logged, not returned.
    #[error("speech generation failed")]
    Internal,
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub model: Variant,
    pub checkpoints: CheckpointSource,
    /// The Perth watermark's weights, when the deployment has them.
    pub watermark_checkpoint: Option<PathBuf>,
    /// Whether outputs are watermarked unless a request says otherwise.
    pub watermark_by_default: bool,
    /// The device the model runs on, opened at the first load.
    pub device: device::DeviceChoice,
    /// T3's and S3Gen's float type (the voice encoder and the watermark stay f32).
    pub dtype: candle_core::DType,
    /// T3's decode weights held in bf16 on the CPU (half the memory traffic per token).
    pub t3_bf16_weights: bool,
    /// Voices (reference clips) whose conditioning is kept.
    pub voice_cache: usize,
}

/// The voice to speak in.
#[derive(Debug, Clone)]
pub enum Voice {
    /// The checkpoint's `conds.pt`.
    Builtin,
    /// A reference clip.
    Clip(Arc<Clip>),
}

#[derive(Debug, Clone)]
pub struct SpeechRequest {
    pub text: String,
    pub voice: Voice,
    pub options: GenerateOptions,
    pub exaggeration: Option<f32>,
    pub language: Option<String>,
    pub seed: u64,
    /// Turbo's −27 LUFS normalisation of the reference clip.
    pub norm_loudness: bool,
    /// `None` follows the deployment's default.
    pub watermark: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct ConversionRequest {
    pub source: Arc<Clip>,
    pub target: Voice,
    pub seed: u64,
    pub watermark: Option<bool>,
}

/// 24 kHz mono output and whether it carries the watermark.
#[derive(Debug, Clone)]
pub struct Speech {
    pub clip: Clip,
    pub watermarked: bool,
    /// Text tokens read and speech tokens synthesised (none for voice conversion's text).
    pub tokens: TokenUsage,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    pub text: usize,
    pub speech: usize,
}

impl std::ops::AddAssign for TokenUsage {
    fn add_assign(&mut self, other: Self) {
        self.text += other.text;
        self.speech += other.speech;
    }
}

enum Command {
    /// Load the model now rather than at the first request.
    Preload,
    Speak(SpeechRequest, oneshot::Sender<Result<Speech, EngineError>>),
    Convert(
        ConversionRequest,
        oneshot::Sender<Result<Speech, EngineError>>,
    ),
}

/// What the model thread has done with the requests it was sent.
#[derive(Debug, Default)]
struct Counters {
    run: AtomicU64,
    /// Dropped unstarted because their caller had gone (a client that hung up).
    abandoned: AtomicU64,
    /// Started, then ended between two tokens because their caller had gone.
    stopped: AtomicU64,
}

/// [`Counters`] at one moment, as the `info` job shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RequestCounts {
    pub run: u64,
    pub abandoned: u64,
    pub stopped: u64,
}

#[derive(Clone)]
pub struct Engine {
    model: Variant,
    state: Arc<Mutex<EngineState>>,
    counters: Arc<Counters>,
    commands: std::sync::mpsc::Sender<Command>,
}

impl Engine {
    /// Starts the model thread; nothing is loaded until a request needs it.
    pub fn new(config: EngineConfig) -> Self {
        let state = Arc::new(Mutex::new(EngineState::NotLoaded));
        let (commands, receiver) = std::sync::mpsc::channel();
        let model = config.model;
        let runtime = tokio::runtime::Handle::try_current().ok();
        let thread_state = Arc::clone(&state);
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        std::thread::Builder::new()
            .name("chatterbox-model".into())
            .spawn(move || {
                model_thread::run(config, thread_state, &thread_counters, receiver, runtime)
            })
            .map(drop)
            .unwrap_or_else(|e| tracing::error!("cannot start the model thread: {e}"));
        Self {
            model,
            state,
            counters,
            commands,
        }
    }

    pub fn model(&self) -> Variant {
        self.model
    }

    pub fn state(&self) -> EngineState {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn requests(&self) -> RequestCounts {
        RequestCounts {
            run: self.counters.run.load(Ordering::Relaxed),
            abandoned: self.counters.abandoned.load(Ordering::Relaxed),
            stopped: self.counters.stopped.load(Ordering::Relaxed),
        }
    }

    /// Starts loading the model in the background. Until it is loaded the state says
    /// `Loading`, so a load balancer's health check waits for it (CHATTERBOX_PRELOAD).
    pub fn preload(&self) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = EngineState::Loading;
        if self.commands.send(Command::Preload).is_err() {
            tracing::error!("the model thread has stopped");
        }
    }

    /// Speaks `request`. Dropping the returned future (a client that hung up) stops the
    /// generation at its next token.
    pub async fn speak(&self, mut request: SpeechRequest) -> Result<Speech, EngineError> {
        let hung_up = Arc::new(AtomicBool::new(false));
        let _raise_on_drop = RaiseOnDrop(Arc::clone(&hung_up));
        request.options.stop = StopSignal::new(move || hung_up.load(Ordering::Relaxed));
        self.call(|reply| Command::Speak(request, reply)).await
    }

    pub async fn convert(&self, request: ConversionRequest) -> Result<Speech, EngineError> {
        self.call(|reply| Command::Convert(request, reply)).await
    }

    async fn call(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<Speech, EngineError>>) -> Command,
    ) -> Result<Speech, EngineError> {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(command(reply)).is_err() {
            tracing::error!("the model thread has stopped");
            return Err(EngineError::Internal);
        }
        answer.await.unwrap_or_else(|_| {
            tracing::error!("the model thread dropped a request");
            Err(EngineError::Internal)
        })
    }
}

/// Raises its flag when dropped: held by the future that waits for a speech, so the flag says
/// that nobody waits any more.
struct RaiseOnDrop(Arc<AtomicBool>);

impl Drop for RaiseOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_serialise_for_the_info_job() {
        let json = |s: EngineState| serde_json::to_value(s).unwrap();
        assert_eq!(
            json(EngineState::NotLoaded),
            serde_json::json!({"state": "not_loaded"})
        );
        assert_eq!(
            json(EngineState::Failed("no weights".into())),
            serde_json::json!({"state": "failed", "error": "no weights"})
        );
    }
}
