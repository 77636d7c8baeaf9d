//! The model thread: loads the configured model on first use, keeps voices' conditioning, runs
//! one request at a time and applies the watermark. A panic in the model fails that request
//! only; the models are then reloaded on the next one.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use candle_core::{DType, Device};

use super::checkpoints::{CheckpointSource, RepoFiles};
use super::voice_cache::{VoiceCache, clip_key};
use super::{
    Command, ConversionRequest, Counters, EngineConfig, EngineError, EngineState, Speech,
    SpeechRequest, TokenUsage, Voice,
};
use crate::audio::Clip;
use crate::model::perth::PerthWatermarker;
use crate::model::s3gen::S3GEN_SR;
use crate::model::s3gen::flow::FlowPrompt;
use crate::model::tts::{
    ChatterboxTTS, Conditionals, GenerateError, LoadError, SpeechOptions, Variant,
};
use crate::model::vc::{self, ChatterboxVC};

pub(super) fn run(
    config: EngineConfig,
    state: Arc<Mutex<EngineState>>,
    counters: &Counters,
    commands: Receiver<Command>,
    runtime: Option<tokio::runtime::Handle>,
) {
    let mut models = Models::new(config, state, runtime);
    while let Ok(command) = commands.recv() {
        let outcome = catch_unwind(AssertUnwindSafe(|| match command {
            Command::Preload => {
                // A failure is in the state (and the log) for the health check to report.
                let _ = models.tts();
            }
            Command::Speak(request, reply) => {
                if still_wanted(&reply, counters) {
                    let stop = request.options.stop.clone();
                    let speech = models.speak(request);
                    if stop.requested() {
                        counters.stopped.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = reply.send(speech);
                }
            }
            Command::Convert(request, reply) => {
                if still_wanted(&reply, counters) {
                    let _ = reply.send(models.convert(request));
                }
            }
        }));
        if outcome.is_err() {
            // The reply sender was dropped with the panic, so the caller sees an internal
            // error; whatever the model held may be half-updated, so start afresh.
            tracing::error!("the model panicked; its request failed and the models will reload");
            models.reset();
        }
    }
}

/// Whether anyone still waits for the reply: the request of a client that hung up while it
/// was queued is dropped rather than run for nobody.
fn still_wanted<T>(reply: &oneshot::Sender<T>, counters: &Counters) -> bool {
    let wanted = !reply.is_closed();
    let counter = if wanted {
        &counters.run
    } else {
        &counters.abandoned
    };
    counter.fetch_add(1, Ordering::Relaxed);
    wanted
}

struct Models {
    config: EngineConfig,
    state: Arc<Mutex<EngineState>>,
    runtime: Option<tokio::runtime::Handle>,
    /// Opened at the first load; a failure to open it fails that load with the reason.
    device: Option<Device>,
    tts: Option<ChatterboxTTS>,
    vc: Option<ChatterboxVC>,
    /// None until the first request that may be watermarked tries to load it.
    watermarker: Option<Option<PerthWatermarker>>,
    tts_voices: VoiceCache<Conditionals>,
    vc_voices: VoiceCache<FlowPrompt>,
}

impl Models {
    fn new(
        config: EngineConfig,
        state: Arc<Mutex<EngineState>>,
        runtime: Option<tokio::runtime::Handle>,
    ) -> Self {
        let voices = config.voice_cache;
        Self {
            config,
            state,
            runtime,
            device: None,
            tts: None,
            vc: None,
            watermarker: None,
            tts_voices: VoiceCache::new(voices),
            vc_voices: VoiceCache::new(voices),
        }
    }

    fn reset(&mut self) {
        self.tts = None;
        self.vc = None;
        self.tts_voices.clear();
        self.vc_voices.clear();
        self.set_state(EngineState::NotLoaded);
    }

    fn set_state(&self, state: EngineState) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = state;
    }

    /// The configured device, opened once.
    fn device(&mut self) -> Result<Device, EngineError> {
        if self.device.is_none() {
            let device = self.config.device.open().map_err(|reason| {
                tracing::error!("{reason}");
                self.set_state(EngineState::Failed(reason.clone()));
                EngineError::Unavailable(reason)
            })?;
            self.device = Some(device);
        }
        self.device.clone().ok_or(EngineError::Internal)
    }

    /// The checkpoint directory for a repository, downloading into the volume cache if needed.
    fn resolve(&self, files: RepoFiles<'_>) -> Result<std::path::PathBuf, EngineError> {
        let source: &CheckpointSource = &self.config.checkpoints;
        let resolved = match &self.runtime {
            Some(runtime) => runtime.block_on(source.resolve(files)),
            None => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| EngineError::Unavailable(e.to_string()))?
                .block_on(source.resolve(files)),
        };
        resolved.map_err(|e| EngineError::Unavailable(e.to_string()))
    }

    fn load<M>(
        &self,
        what: &str,
        load: impl FnOnce(&Path) -> Result<M, LoadError>,
        files: RepoFiles<'_>,
    ) -> Result<M, EngineError> {
        self.set_state(EngineState::Loading);
        let started = std::time::Instant::now();
        let loaded = self
            .resolve(files)
            .and_then(|dir| load(&dir).map_err(|e| EngineError::Unavailable(e.to_string())));
        match &loaded {
            Ok(_) => {
                tracing::info!("{what} loaded in {:.1} s", started.elapsed().as_secs_f64());
                self.set_state(EngineState::Ready);
            }
            Err(e) => {
                tracing::error!("loading {what} failed: {e}");
                self.set_state(EngineState::Failed(e.to_string()));
            }
        }
        loaded
    }

    fn tts(&mut self) -> Result<&ChatterboxTTS, EngineError> {
        if self.tts.is_none() {
            let variant = self.config.model;
            let layout = variant.layout();
            let required = layout.required();
            let files = RepoFiles {
                repo_id: layout.repo_id,
                required: &required,
                optional: layout.optional,
            };
            let (device, dtype) = (self.device()?, self.config.dtype);
            let compact = self.config.t3_bf16_weights;
            let model = self.load(
                &format!("Chatterbox {variant}"),
                |dir| {
                    let mut model = ChatterboxTTS::from_local(variant, dir, &device, dtype)?;
                    if compact {
                        model.store_t3_decode_weights_as(DType::BF16)?;
                    }
                    Ok(model)
                },
                files,
            )?;
            self.tts = Some(model);
        }
        self.tts.as_ref().ok_or(EngineError::Internal)
    }

    fn vc(&mut self) -> Result<&ChatterboxVC, EngineError> {
        if self.vc.is_none() && self.config.model == Variant::English {
            // The English model's S3Gen is voice conversion's: load it once, for both.
            self.vc = ChatterboxVC::sharing(self.tts()?);
        }
        if self.vc.is_none() {
            let files = RepoFiles {
                repo_id: vc::REPO,
                required: &[vc::S3GEN_FILE],
                optional: &[crate::model::tts::BUILTIN_VOICE_FILE],
            };
            let (device, dtype) = (self.device()?, self.config.dtype);
            let model = self.load(
                "Chatterbox voice conversion",
                |dir| ChatterboxVC::from_local(dir, &device, dtype),
                files,
            )?;
            self.vc = Some(model);
        }
        self.vc.as_ref().ok_or(EngineError::Internal)
    }

    fn speak(&mut self, request: SpeechRequest) -> Result<Speech, EngineError> {
        let variant = self.config.model;
        let exaggeration = request
            .exaggeration
            .unwrap_or_else(|| variant.default_exaggeration());
        let voice = match &request.voice {
            Voice::Builtin => None,
            Voice::Clip(clip) => {
                let key = clip_key(clip, request.norm_loudness);
                self.tts()?;
                let tts = self.tts.as_ref().ok_or(EngineError::Internal)?;
                Some(
                    self.tts_voices
                        .get_or_insert_with(key, || {
                            tts.prepare_conditionals(
                                &clip.samples,
                                clip.sample_rate,
                                exaggeration,
                                request.norm_loudness,
                            )
                        })
                        .map_err(generate_error)?,
                )
            }
        };
        let tts = self.tts()?;
        let voice = match &voice {
            Some(voice) => voice.as_ref(),
            None => tts.builtin_voice().ok_or_else(no_builtin_voice)?,
        };
        let options = SpeechOptions {
            t3: request.options,
            exaggeration,
            language: request.language,
            seed: request.seed,
        };
        let generated = tts
            .generate(&request.text, voice, &options)
            .map_err(generate_error)?;
        let tokens = TokenUsage {
            text: generated.text_tokens,
            speech: generated.speech_tokens,
        };
        self.finish(generated.samples, tokens, request.watermark)
    }

    fn convert(&mut self, request: ConversionRequest) -> Result<Speech, EngineError> {
        let target = match &request.target {
            Voice::Builtin => None,
            Voice::Clip(clip) => {
                self.vc()?;
                let vc = self.vc.as_ref().ok_or(EngineError::Internal)?;
                Some(
                    self.vc_voices
                        .get_or_insert_with(clip_key(clip, ()), || {
                            vc.target_voice(&clip.samples, clip.sample_rate)
                        })
                        .map_err(generate_error)?,
                )
            }
        };
        let vc = self.vc()?;
        let target = match &target {
            Some(target) => target.as_ref(),
            None => vc.builtin_voice().ok_or_else(no_builtin_voice)?,
        };
        let source = &request.source;
        let samples = vc
            .generate(&source.samples, source.sample_rate, target, request.seed)
            .map_err(generate_error)?;
        self.finish(samples, TokenUsage::default(), request.watermark)
    }

    /// The reference's last stage: the Perth watermark, when wanted and installed.
    fn finish(
        &mut self,
        samples: Vec<f32>,
        tokens: TokenUsage,
        watermark: Option<bool>,
    ) -> Result<Speech, EngineError> {
        let wanted = watermark.unwrap_or(self.config.watermark_by_default);
        let samples_out = if wanted {
            match self.watermarker(watermark == Some(true))? {
                Some(watermarker) => Some(watermarker.apply(&samples, S3GEN_SR).map_err(|e| {
                    tracing::error!("watermarking failed: {e}");
                    EngineError::Internal
                })?),
                None => None,
            }
        } else {
            None
        };
        let watermarked = samples_out.is_some();
        Ok(Speech {
            clip: Clip {
                samples: samples_out.unwrap_or(samples),
                sample_rate: S3GEN_SR,
            },
            watermarked,
            tokens,
        })
    }

    /// The watermarker, loaded once. Without its weights a request that asked for the
    /// watermark explicitly fails; the default quietly goes without (logged once at load).
    fn watermarker(&mut self, required: bool) -> Result<Option<&PerthWatermarker>, EngineError> {
        if self.watermarker.is_none() {
            let loaded = match self.config.watermark_checkpoint.clone() {
                Some(path) => {
                    let device = self.device()?;
                    PerthWatermarker::load(&path, &device)
                        .inspect_err(|e| tracing::warn!("the Perth watermark is off: {e}"))
                        .ok()
                }
                None => None,
            };
            self.watermarker = Some(loaded);
        }
        match self.watermarker.as_ref().and_then(Option::as_ref) {
            Some(watermarker) => Ok(Some(watermarker)),
            None if required => Err(EngineError::Unavailable(
                "the watermark was requested but its weights are not installed".into(),
            )),
            None => Ok(None),
        }
    }
}

fn no_builtin_voice() -> EngineError {
    EngineError::Input("this checkpoint has no built-in voice; send a reference clip".into())
}

fn generate_error(error: GenerateError) -> EngineError {
    match error {
        GenerateError::Model(e) => {
            tracing::error!("model failure: {e}");
            EngineError::Internal
        }
        other => EngineError::Input(other.to_string()),
    }
}
