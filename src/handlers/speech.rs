//! The custom handler's `tts` and `vc` tasks: the seeds' parameter set validated against the
//! configured model, the engine called, the audio delivered in the shared result shape.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use base64::Engine as _;

use super::audio_in::{self, Source};
use super::delivery;
use super::error::JobError;
use super::{chunked, text_chunks};
use crate::audio::Clip;
use crate::audio::format::OutputFormat;
use crate::audio::stretch::SPEED_RANGE;
use crate::audio::trim;
use crate::config::Settings;
use crate::engine::{
    ConversionRequest, Engine, EngineError, GenerateOptions, Speech, SpeechRequest, Variant, Voice,
};
use crate::job::{Job, JobContext};
use crate::storage::outputs;
use crate::storage::voices::{VoiceEntry, VoiceError, VoiceLibrary};

/// Spoken in chunks (handlers::chunked); longer texts belong in several jobs, which keeps a
/// job's audio within what one result can carry.
pub const MAX_TEXT_CHARS: usize = 3000;

/// A job's fields, with typed and range-checked reads that name the field at fault.
pub(super) struct Fields<'a>(pub(super) &'a Map<String, Value>);

impl<'a> Fields<'a> {
    pub(super) fn number(
        &self,
        key: &'static str,
        range: (f64, f64),
    ) -> Result<Option<f64>, JobError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(v) if v >= range.0 && v <= range.1 => Ok(Some(v)),
                _ => Err(JobError::invalid(
                    format!("{key} must be between {} and {}", range.0, range.1),
                    key,
                )),
            },
            Some(_) => Err(JobError::invalid(format!("{key} must be a number"), key)),
        }
    }

    pub(super) fn integer(&self, key: &'static str, max: u64) -> Result<Option<u64>, JobError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_u64().filter(|v| *v <= max).map(Some).ok_or_else(|| {
                JobError::invalid(format!("{key} must be a whole number from 0 to {max}"), key)
            }),
            Some(_) => Err(JobError::invalid(
                format!("{key} must be a whole number"),
                key,
            )),
        }
    }

    pub(super) fn boolean(&self, key: &'static str) -> Result<Option<bool>, JobError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(JobError::invalid(
                format!("{key} must be true or false"),
                key,
            )),
        }
    }

    pub(super) fn string(&self, key: &'static str) -> Result<Option<&'a str>, JobError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(JobError::invalid(format!("{key} must be a string"), key)),
        }
    }
}

/// Audio named by `{key}` (a file under audio_prompts/ or an http(s) URL) or `{key}_base64`.
async fn audio_input(
    fields: &Fields<'_>,
    key: &'static str,
    base64_key: &'static str,
    settings: &Settings,
) -> Result<Option<Arc<Clip>>, JobError> {
    let folder = settings.volume.audio_prompts();
    let (source, param) = match (fields.string(key)?, fields.string(base64_key)?) {
        (Some(_), Some(_)) => {
            return Err(JobError::invalid(
                format!("send either {key} or {base64_key}, not both"),
                key,
            ));
        }
        (Some(name), None) => (
            Source::Named {
                folder: &folder,
                name,
            },
            key,
        ),
        (None, Some(text)) => (Source::Base64(text), base64_key),
        (None, None) => return Ok(None),
    };
    Ok(Some(Arc::new(
        audio_in::load(source, param, settings).await?,
    )))
}

/// The reference voice: `voice` (a name in voices.json, whose clip and defaults it brings) or
/// `audio_prompt` / `audio_prompt_base64`; none means the checkpoint's built-in voice.
async fn reference_voice(
    fields: &Fields<'_>,
    settings: &Settings,
    voices: &VoiceLibrary,
) -> Result<(Voice, Option<VoiceEntry>), JobError> {
    let named = fields.string("voice")?;
    let clip = audio_input(fields, "audio_prompt", "audio_prompt_base64", settings).await?;
    match (named, clip) {
        (Some(_), Some(_)) => Err(JobError::invalid(
            "send either voice or an audio prompt, not both",
            "voice",
        )),
        (Some(name), None) => {
            let (voice, entry) = named_voice(name, settings, voices).await?;
            Ok((voice, Some(entry)))
        }
        (None, clip) => Ok((clip.map_or(Voice::Builtin, Voice::Clip), None)),
    }
}

/// A voice's settings as a job gives them; what the job leaves out comes from the voice's
/// voices.json entry, then from the model.
#[derive(Default)]
pub(super) struct VoiceSettings {
    pub(super) temperature: Option<f64>,
    pub(super) cfg_weight: Option<f64>,
    pub(super) exaggeration: Option<f64>,
    pub(super) language: Option<String>,
}

impl VoiceSettings {
    /// Sets temperature and cfg_weight in `options`; returns the exaggeration and the language
    /// (a voice's own language only reaches the multilingual model).
    pub(super) fn apply(
        self,
        entry: Option<&VoiceEntry>,
        variant: Variant,
        options: &mut GenerateOptions,
    ) -> (Option<f32>, Option<String>) {
        if let Some(v) = self.temperature.or(entry.and_then(|e| e.temperature)) {
            options.sampling.temperature = v as f32;
        }
        if let Some(v) = self.cfg_weight.or(entry.and_then(|e| e.cfg_weight)) {
            options.cfg_weight = v as f32;
        }
        let language = self.language.or_else(|| {
            entry
                .and_then(|e| e.language.clone())
                .filter(|_| variant == Variant::Multilingual)
        });
        let exaggeration = self.exaggeration.or(entry.and_then(|e| e.exaggeration));
        (exaggeration.map(|v| v as f32), language)
    }
}

/// A voice from voices.json. Without a voices.json, an OpenAI voice name whose
/// `voice_<name>.wav` is not on the volume speaks in the checkpoint's built-in voice, so a
/// fresh deployment answers every OpenAI voice.
pub(super) async fn named_voice(
    name: &str,
    settings: &Settings,
    voices: &VoiceLibrary,
) -> Result<(Voice, VoiceEntry), JobError> {
    // A name that is not in the library is a bad request, as OpenAI answers it.
    let found = voices.find(name).await.map_err(|e| match e {
        VoiceError::Unknown { .. } | VoiceError::Disabled(_) => {
            JobError::invalid(e.to_string(), "voice")
        }
    })?;
    let entry = found.entry;
    let folder = settings.volume.audio_prompts();
    let source = Source::Named {
        folder: &folder,
        name: &entry.audio_file,
    };
    match audio_in::load(source, "voice", settings).await {
        Ok(clip) => Ok((Voice::Clip(Arc::new(clip)), entry)),
        Err(JobError::NotFound { .. }) if found.standard => {
            tracing::info!(
                "voice {:?}: {} is not in audio_prompts/; the built-in voice speaks",
                found.name,
                entry.audio_file
            );
            Ok((Voice::Builtin, entry))
        }
        Err(error) => Err(error),
    }
}

pub(super) fn seed(fields: &Fields<'_>) -> Result<u64, JobError> {
    Ok(fields.integer("seed", u64::MAX)?.unwrap_or_else(rand_seed))
}

/// A pitch-preserving speed factor from `key`, 1.0 when absent.
pub(super) fn speed(fields: &Map<String, Value>, key: &'static str) -> Result<f64, JobError> {
    Ok(Fields(fields).number(key, SPEED_RANGE)?.unwrap_or(1.0))
}

/// `trim` and `trim_threshold_ms` (50–1000, default 200): the threshold when trimming is on.
pub(super) fn trim_request(fields: &Fields<'_>) -> Result<Option<u64>, JobError> {
    let (low, high) = trim::THRESHOLD_RANGE_MS;
    let threshold = fields.integer("trim_threshold_ms", high)?;
    if threshold.is_some_and(|t| t < low) {
        return Err(JobError::invalid(
            format!("trim_threshold_ms must be between {low} and {high}"),
            "trim_threshold_ms",
        ));
    }
    let trim = fields.boolean("trim")?.unwrap_or(false);
    Ok(trim.then(|| threshold.unwrap_or(trim::DEFAULT_THRESHOLD_MS)))
}

/// The model's limit, lowered by `CHATTERBOX_MAX_NEW_TOKENS` when the operator set one.
pub(super) fn token_limit(model_limit: usize, settings: &Settings) -> usize {
    settings
        .max_new_tokens
        .map_or(model_limit, |cap| cap.min(model_limit))
}

/// A fresh seed per job when none is given; it is returned so the audio can be reproduced.
/// 53 bits, so JSON clients that read numbers as doubles keep it exact.
pub(super) fn rand_seed() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0 >> 11
}

pub(super) fn engine_error(error: EngineError) -> JobError {
    match error {
        EngineError::Input(message) => JobError::invalid(message, None),
        EngineError::Unavailable(message) => JobError::Unavailable(message),
        EngineError::Internal => JobError::Internal(anyhow::anyhow!("speech generation failed")),
    }
}

/// The job's answer in the shared result shape (handlers::delivery); saved under the
/// volume's output/ folder with `save_to_volume` or a `project`.
async fn output(
    speech: Speech,
    seed: u64,
    engine: &Engine,
    kind: &str,
    fields: &Fields<'_>,
    destination: &delivery::Destination,
    settings: &Settings,
) -> Result<Value, JobError> {
    let formats = delivery::export_formats(fields)?;
    let (save, project) = delivery::save_requested(fields)?;
    let stem = outputs::stamped_stem(kind, &format!("seed{seed}"));
    let mut result = Map::new();
    result.insert("status".into(), json!("success"));
    result.insert("sample_rate".into(), json!(speech.clip.sample_rate));
    result.insert("seed".into(), json!(seed));
    result.insert("model".into(), json!(engine.model()));
    result.insert("watermarked".into(), json!(speech.watermarked));
    let save = save.then(|| {
        let mut metadata = result.clone();
        metadata.insert("task".into(), json!(kind));
        metadata.insert("duration_sec".into(), json!(speech.clip.duration_seconds()));
        metadata.insert("parameters".into(), delivery::parameters(fields));
        delivery::Save {
            project,
            metadata: Value::Object(metadata),
        }
    });
    delivery::deliver(
        speech.clip,
        &formats,
        &stem,
        save,
        destination,
        settings,
        &mut result,
    )
    .await?;
    Ok(Value::Object(result))
}

pub async fn tts(
    input: &Map<String, Value>,
    job: &Job,
    ctx: &JobContext,
    settings: &Settings,
    engine: &Engine,
    voices: &VoiceLibrary,
) -> Result<Value, JobError> {
    let fields = Fields(input);
    let text = fields
        .string("text")?
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| JobError::invalid("text is required and must not be empty", "text"))?;
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(JobError::invalid(
            format!("text is longer than {MAX_TEXT_CHARS} characters; split it into several jobs"),
            "text",
        ));
    }
    let chunks = chunked::plan_text(text, max_chunk_chars(&fields)?, "text")?;
    let variant = engine.model();
    let (voice, entry) = reference_voice(&fields, settings, voices).await?;
    let mut options = variant.default_options();
    let sampling = &mut options.sampling;
    if let Some(v) = fields.number("top_p", (0.0, 1.0))? {
        sampling.top_p = v as f32;
    }
    if let Some(v) = fields.number("min_p", (0.0, 1.0))? {
        sampling.min_p = v as f32;
    }
    if let Some(v) = fields.number("repetition_penalty", (1.0, 10.0))? {
        sampling.repetition_penalty = v as f32;
    }
    if let Some(v) = fields.integer("top_k", 10_000)? {
        sampling.top_k = v as usize;
    }
    options.max_new_tokens = token_limit(options.max_new_tokens, settings);
    if let Some(v) = fields.integer("max_new_tokens", options.max_new_tokens as u64)? {
        options.max_new_tokens = (v as usize).max(1);
    }
    let language = fields.string("language")?.map(str::to_string);
    if language.is_some() && variant != Variant::Multilingual {
        return Err(JobError::invalid(
            format!("language needs the multilingual model; this worker serves {variant}"),
            "language",
        ));
    }
    let seed = seed(&fields)?;
    let formats = delivery::export_formats(&fields)?;
    delivery::save_requested(&fields)?;
    let destination = delivery::Destination::for_job(job, settings)?;
    let speed_factor = speed(input, "speed_factor")?;
    let stream = fields.boolean("stream")?.unwrap_or(false).then_some(ctx);
    let trim_threshold = trim_request(&fields)?;
    let job_settings = VoiceSettings {
        temperature: fields.number("temperature", (0.0, 5.0))?,
        cfg_weight: fields.number("cfg_weight", (0.0, 5.0))?,
        exaggeration: fields.number("exaggeration", (0.0, 2.0))?,
        language,
    };
    let (exaggeration, language) = job_settings.apply(entry.as_ref(), variant, &mut options);
    let request = SpeechRequest {
        text: text.to_string(),
        voice,
        options,
        exaggeration,
        language,
        seed,
        norm_loudness: fields.boolean("norm_loudness")?.unwrap_or(true),
        watermark: fields.boolean("watermark")?,
    };
    let stream_format = formats[0];
    let spoken = chunked::speak(engine, request, &chunks, speed_factor, |chunk| {
        let ctx = stream.cloned();
        async move {
            match ctx {
                Some(ctx) => stream_chunk(&ctx, chunk, stream_format).await,
                None => Ok(()),
            }
        }
    })
    .await?;
    let mut speech = Speech {
        clip: spoken.clip,
        watermarked: spoken.watermarked,
        tokens: spoken.tokens,
    };
    let clip = &mut speech.clip;
    // After the speed change, as the seeds order it.
    let trim_info = trim_threshold.map(|threshold| {
        let (kept, info) = trim::trim(&clip.samples, clip.sample_rate, threshold);
        clip.samples = kept;
        info
    });
    let mut result = output(speech, seed, engine, "tts", &fields, &destination, settings).await?;
    result["chunks"] = json!(spoken.chunks);
    if let Some(info) = trim_info {
        result["trim_info"] = json!(info);
    }
    Ok(result)
}

/// `max_chunk_chars`: how much text the model speaks at once.
fn max_chunk_chars(fields: &Fields<'_>) -> Result<usize, JobError> {
    let (low, high) = text_chunks::MAX_CHUNK_CHARS_RANGE;
    match fields.integer("max_chunk_chars", high)? {
        Some(chars) if chars < low => Err(JobError::invalid(
            format!("max_chunk_chars must be between {low} and {high}"),
            "max_chunk_chars",
        )),
        chars => Ok(chars.map_or(text_chunks::DEFAULT_MAX_CHUNK_CHARS, |c| c as usize)),
    }
}

/// One chunk of a `stream: true` job as a file of its own, for RunPod's `/stream`.
async fn stream_chunk(
    ctx: &JobContext,
    chunk: chunked::ChunkAudio,
    format: OutputFormat,
) -> Result<(), JobError> {
    let duration = chunk.clip.reported_seconds();
    let sample_rate = chunk.clip.sample_rate;
    let bytes = delivery::encode(chunk.clip, vec![format])
        .await?
        .pop()
        .unwrap_or_default();
    ctx.stream(json!({
        "chunk": chunk.index,
        "chunks": chunk.count,
        "text": chunk.text,
        "format": format.name(),
        "content_type": format.content_type(),
        "sample_rate": sample_rate,
        "duration_sec": duration,
        "audio_base64": base64::engine::general_purpose::STANDARD.encode(bytes),
    }));
    Ok(())
}

pub async fn vc(
    input: &Map<String, Value>,
    job: &Job,
    settings: &Settings,
    engine: &Engine,
    voices: &VoiceLibrary,
) -> Result<Value, JobError> {
    let fields = Fields(input);
    let source = audio_input(&fields, "input_audio", "input_audio_base64", settings)
        .await?
        .ok_or_else(|| {
            JobError::invalid(
                "vc needs the audio to convert: input_audio (a file in audio_prompts/) or \
                 input_audio_base64",
                "input_audio",
            )
        })?;
    let (target, _) = reference_voice(&fields, settings, voices).await?;
    let seed = seed(&fields)?;
    delivery::export_formats(&fields)?;
    delivery::save_requested(&fields)?;
    let destination = delivery::Destination::for_job(job, settings)?;
    let request = ConversionRequest {
        source,
        target,
        seed,
        watermark: fields.boolean("watermark")?,
    };
    let speech = engine.convert(request).await.map_err(engine_error)?;
    output(speech, seed, engine, "vc", &fields, &destination, settings).await
}
