//! The OpenAI handler: speech requests, bare or through RunPod's OpenAI proxy, and `/v1/models`.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::delivery;
use super::error::JobError;
use super::speech::{VoiceSettings, named_voice, rand_seed, speed, token_limit};
use super::{chunked, text_chunks};
use crate::audio::format::{FormatError, OutputFormat};
use crate::config::Settings;
use crate::engine::{Engine, SpeechRequest};
use crate::storage::voices::VoiceLibrary;

/// OpenAI's own limit on `input`.
pub const MAX_INPUT_CHARS: usize = 4096;

/// What a speech request needs from the worker.
pub struct SpeechContext<'a> {
    pub settings: &'a Settings,
    pub engine: &'a Engine,
    pub voices: &'a VoiceLibrary,
}

/// Model names accepted in `model`; the OpenAI ones map to the configured Chatterbox model.
pub const MODELS: &[&str] = &[
    "tts-1",
    "tts-1-hd",
    "gpt-4o-mini-tts",
    "chatterbox-turbo",
    "chatterbox",
    "chatterbox-multilingual",
];

/// A job from RunPod's `/openai/v1/…` proxy.
pub async fn proxy(
    route: &Value,
    body: Option<&Value>,
    context: &SpeechContext<'_>,
) -> Result<Value, JobError> {
    let Some(route) = route.as_str() else {
        return Err(JobError::invalid(
            "openai_route must be a string such as \"/v1/audio/speech\"",
            "openai_route",
        ));
    };
    match route.trim_end_matches('/') {
        "/v1/audio/speech" | "/audio/speech" => speech(body.unwrap_or(&Value::Null), context).await,
        "/v1/models" | "/models" => Ok(models()),
        other => Err(JobError::not_found(
            format!(
                "unknown OpenAI route {other:?}; this worker serves /v1/audio/speech and /v1/models"
            ),
            "openai_route",
        )),
    }
}

/// `POST /v1/audio/speech`: the audio, base64 in JSON (`audio_base64`, `content_type`), since a
/// queue job's output is JSON; `chatterbox-worker serve` answers with the bytes themselves.
pub async fn speech(body: &Value, context: &SpeechContext<'_>) -> Result<Value, JobError> {
    let Value::Object(fields) = body else {
        return Err(JobError::invalid(
            "the speech request must be a JSON object",
            None,
        ));
    };
    let model = required_text(fields, "model")?;
    if !MODELS.contains(&model) {
        return Err(JobError::invalid(
            format!(
                "model {model:?} is not served here; use one of: {}",
                MODELS.join(", ")
            ),
            "model",
        ));
    }
    let input = required_text(fields, "input")?;
    if input.chars().count() > MAX_INPUT_CHARS {
        return Err(JobError::invalid(
            format!("input is longer than {MAX_INPUT_CHARS} characters"),
            "input",
        ));
    }
    let voice = match fields.get("voice") {
        Some(Value::String(voice)) if !voice.trim().is_empty() => voice.as_str(),
        Some(Value::Object(voice)) => match voice.get("id") {
            Some(Value::String(id)) if !id.trim().is_empty() => id.as_str(),
            _ => return Err(JobError::invalid("voice.id must be a voice name", "voice")),
        },
        Some(Value::Null) | None => return Err(missing("voice")),
        Some(_) => {
            return Err(JobError::invalid(
                "voice must be a voice name or an object {\"id\": …}",
                "voice",
            ));
        }
    };
    let format = response_format(fields)?;
    let speed = speed(fields, "speed")?;
    check_unsupported_options(fields)?;
    let chunks = chunked::plan_text(input, text_chunks::DEFAULT_MAX_CHUNK_CHARS, "input")?;

    let (voice, entry) = named_voice(voice, context.settings, context.voices).await?;
    let engine = context.engine;
    let variant = engine.model();
    let mut options = variant.default_options();
    options.max_new_tokens = token_limit(options.max_new_tokens, context.settings);
    let (exaggeration, language) =
        VoiceSettings::default().apply(Some(&entry), variant, &mut options);
    let request = SpeechRequest {
        text: input.to_string(),
        voice,
        options,
        exaggeration,
        language,
        seed: rand_seed(),
        norm_loudness: true,
        watermark: None,
    };
    let clip = chunked::speak(engine, request, &chunks, speed, |_| async { Ok(()) })
        .await?
        .clip;
    let sample_rate = clip.sample_rate;
    let seconds = clip.reported_seconds();
    let bytes = delivery::encode(clip, vec![format])
        .await?
        .pop()
        .unwrap_or_default();
    Ok(json!({
        "audio_base64": base64::engine::general_purpose::STANDARD.encode(bytes),
        "content_type": format.content_type(),
        "format": format.name(),
        "sample_rate": sample_rate,
        "duration_sec": seconds,
    }))
}

/// `response_format`, mp3 by default, refused before any work when this build cannot write it.
fn response_format(fields: &Map<String, Value>) -> Result<OutputFormat, JobError> {
    let format = match fields.get("response_format") {
        None | Some(Value::Null) => OutputFormat::Mp3,
        Some(Value::String(name)) => name.parse::<OutputFormat>().map_err(format_error)?,
        Some(_) => {
            return Err(JobError::invalid(
                "response_format must be a string",
                "response_format",
            ));
        }
    };
    format.check_available().map_err(format_error)
}

fn format_error(error: FormatError) -> JobError {
    JobError::invalid(error.to_string(), "response_format")
}

/// Options of the API this worker does not honour are refused rather than ignored, so a client
/// never gets audio other than what it asked for. `instructions` is accepted and unused:
/// Chatterbox takes no style prompt.
fn check_unsupported_options(fields: &Map<String, Value>) -> Result<(), JobError> {
    match fields.get("stream_format") {
        None | Some(Value::Null) => {}
        Some(Value::String(f)) if f == "audio" => {}
        Some(Value::String(f)) if f == "sse" => {
            return Err(JobError::invalid(
                "stream_format \"sse\" is not available; use \"audio\"",
                "stream_format",
            ));
        }
        Some(_) => {
            return Err(JobError::invalid(
                "stream_format must be \"audio\" or \"sse\"",
                "stream_format",
            ));
        }
    }
    match fields.get("instructions") {
        None | Some(Value::Null) | Some(Value::String(_)) => Ok(()),
        Some(_) => Err(JobError::invalid(
            "instructions must be a string",
            "instructions",
        )),
    }
}

fn required_text<'a>(
    fields: &'a Map<String, Value>,
    key: &'static str,
) -> Result<&'a str, JobError> {
    match fields.get(key) {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.as_str()),
        Some(Value::Null) | None => Err(missing(key)),
        Some(Value::String(_)) => Err(JobError::invalid(format!("{key} must not be empty"), key)),
        Some(_) => Err(JobError::invalid(format!("{key} must be a string"), key)),
    }
}

fn missing(key: &'static str) -> JobError {
    JobError::invalid(format!("Missing required parameter: {key}"), key)
}

/// `GET /v1/models`, in OpenAI's list shape.
pub fn models() -> Value {
    let data: Vec<Value> = MODELS
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "resemble-ai"}))
        .collect();
    json!({"object": "list", "data": data})
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` with a context whose engine has no checkpoint: every check here fails first.
    async fn with_context<T>(f: impl AsyncFnOnce(&SpeechContext<'_>) -> T) -> T {
        let settings = Settings::from_lookup(|_| None).unwrap();
        let engine = Engine::new(settings.engine.clone());
        let voices = VoiceLibrary::new(settings.volume.voices_json());
        let context = SpeechContext {
            settings: &settings,
            engine: &engine,
            voices: &voices,
        };
        f(&context).await
    }

    fn param(error: JobError) -> Value {
        error.openai_body()["error"]["param"].clone()
    }

    async fn refused(body: Value) -> JobError {
        with_context(async |c| speech(&body, c).await.unwrap_err()).await
    }

    #[tokio::test]
    async fn missing_and_bad_fields_are_named() {
        let error = refused(json!({"model": "tts-1", "voice": "alloy"})).await;
        assert_eq!(error.to_string(), "Missing required parameter: input");
        assert_eq!(param(error), "input");
        let error = refused(json!({"model": "tts-1", "input": "hi", "voice": 3})).await;
        assert_eq!(param(error), "voice");
        let error = refused(json!({"model": 1, "input": "hi", "voice": "alloy"})).await;
        assert_eq!(param(error), "model");
        let error = refused(json!({"model": "tts-2", "input": "hi", "voice": "alloy"})).await;
        assert!(error.to_string().contains("tts-1"), "{error}");
        let long = "a".repeat(MAX_INPUT_CHARS + 1);
        let error = refused(json!({"model": "tts-1", "input": long, "voice": "alloy"})).await;
        assert_eq!(param(error), "input");
    }

    #[tokio::test]
    async fn formats_and_options_this_worker_cannot_honour_are_refused_up_front() {
        let base = json!({"model": "tts-1", "input": "hi", "voice": "alloy"});
        let with = |key: &str, value: Value| {
            let mut body = base.clone();
            body[key] = value;
            body
        };
        for (key, value) in [
            ("response_format", json!("aac")),
            ("response_format", json!("ogg")),
            ("speed", json!(9)),
            ("speed", json!("fast")),
            ("stream_format", json!("sse")),
            ("instructions", json!(5)),
        ] {
            let error = refused(with(key, value.clone())).await;
            assert_eq!(param(error), key, "{key} = {value}");
        }
        let error = refused(with("voice", json!("nobody"))).await;
        assert!(error.to_string().contains("unknown voice"), "{error}");
    }

    #[tokio::test]
    async fn unknown_routes_and_bad_route_values_are_refused() {
        let error = with_context(async |c| proxy(&json!("/v1/chat/completions"), None, c).await)
            .await
            .unwrap_err();
        assert!(matches!(error, JobError::NotFound { .. }));
        let error = with_context(async |c| proxy(&json!(5), None, c).await)
            .await
            .unwrap_err();
        assert_eq!(param(error), "openai_route");
    }

    #[test]
    fn models_are_listed_in_openai_shape() {
        let list = models();
        assert_eq!(list["object"], "list");
        assert_eq!(list["data"][0]["id"], "tts-1");
        assert_eq!(list["data"].as_array().unwrap().len(), MODELS.len());
    }
}
