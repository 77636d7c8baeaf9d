//! The OpenAI handler: speech requests, bare or through RunPod's OpenAI proxy, and `/v1/models`.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::delivery;
use super::error::JobError;
use super::openai_stream::{Framing, SpeechStream, usage};
use super::speech::{VoiceSettings, named_voice, rand_seed, speed, token_limit};
use super::{chunked, text_chunks};
use crate::audio::format::{FormatError, OutputFormat};
use crate::config::Settings;
use crate::engine::{Engine, SpeechRequest};
use crate::job::JobContext;
use crate::model::tts::Variant;
use crate::storage::voices::VoiceLibrary;

/// OpenAI's own limit on `input`.
pub const MAX_INPUT_CHARS: usize = 4096;

/// What a speech request needs from the worker.
pub struct SpeechContext<'a> {
    pub settings: &'a Settings,
    pub engine: &'a Engine,
    pub voices: &'a VoiceLibrary,
    /// The job's whole input: its `stream` switch sits beside `openai_route` in a proxy job.
    pub job_input: &'a Value,
    pub events: &'a JobContext,
}

/// OpenAI's model names, each served by the worker's Chatterbox model (as are the dated
/// `gpt-4o-mini-tts-…` snapshots).
const OPENAI_MODELS: &[&str] = &["tts-1", "tts-1-hd", "gpt-4o-mini-tts"];

/// The id a Chatterbox model goes by in `model`.
fn chatterbox_id(variant: Variant) -> &'static str {
    match variant {
        Variant::Turbo => "chatterbox-turbo",
        Variant::English => "chatterbox",
        Variant::Multilingual => "chatterbox-multilingual",
    }
}

/// What `model` may name on a worker serving `variant`: the OpenAI names and that model's own.
pub fn model_ids(variant: Variant) -> Vec<&'static str> {
    let mut ids = OPENAI_MODELS.to_vec();
    ids.push(chatterbox_id(variant));
    ids
}

/// A Chatterbox model other than the loaded one is refused: the worker never answers with a
/// different model than the one asked for.
fn check_model(model: &str, variant: Variant) -> Result<(), JobError> {
    let openai = OPENAI_MODELS.contains(&model) || model.starts_with("gpt-4o-mini-tts-");
    let message = match model.parse::<Variant>() {
        _ if openai => return Ok(()),
        Ok(asked) if asked == variant => return Ok(()),
        Ok(_) => format!(
            "model {model:?} is not loaded on this worker, which serves {} (and the OpenAI \
             names {})",
            chatterbox_id(variant),
            OPENAI_MODELS.join(", ")
        ),
        Err(_) => format!(
            "model {model:?} is not served here; use one of: {}",
            model_ids(variant).join(", ")
        ),
    };
    Err(JobError::invalid(message, "model"))
}

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
        "/v1/models" | "/models" => Ok(models(context.engine.model())),
        "/v1/audio/models" | "/audio/models" => Ok(audio_models(context.engine.model())),
        "/v1/audio/voices" | "/audio/voices" => Ok(voices(context.voices).await),
        other => Err(JobError::not_found(
            format!(
                "unknown OpenAI route {other:?}; this worker serves /v1/audio/speech, \
                 /v1/audio/voices, /v1/audio/models and /v1/models"
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
    check_model(required_text(fields, "model")?, context.engine.model())?;
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
    let framing = framing(fields, context.job_input)?;
    check_instructions(fields)?;
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
    if let Some(framing) = framing {
        let speech = SpeechStream::new(format, framing, context.events);
        return speech.speak(engine, request, &chunks, speed).await;
    }
    let speech = chunked::speak(engine, request, &chunks, speed, |_| async { Ok(()) }).await?;
    let (sample_rate, seconds) = (speech.clip.sample_rate, speech.clip.reported_seconds());
    let bytes = delivery::encode(speech.clip, vec![format])
        .await?
        .pop()
        .unwrap_or_default();
    let audio = base64::engine::general_purpose::STANDARD.encode(bytes);
    Ok(json!({
        "audio_base64": audio,
        "content_type": format.content_type(),
        "format": format.name(),
        "sample_rate": sample_rate,
        "duration_sec": seconds,
        "usage": usage(speech.tokens),
        // The keys of the deployment this worker replaces (seed 003), for its clients.
        "audio": audio,
        "_content_type": format.content_type(),
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

/// How the answer streams: `stream_format: "sse"` as OpenAI's events; `stream: true` (this
/// worker's switch beside the proxy fields, which `serve` sets) as the file's bytes; else not.
fn framing(fields: &Map<String, Value>, job_input: &Value) -> Result<Option<Framing>, JobError> {
    let sse = match fields.get("stream_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(f)) if f == "audio" => false,
        Some(Value::String(f)) if f == "sse" => true,
        Some(_) => {
            return Err(JobError::invalid(
                "stream_format must be \"audio\" or \"sse\"",
                "stream_format",
            ));
        }
    };
    let stream = match job_input.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(stream)) => *stream,
        Some(_) => return Err(JobError::invalid("stream must be true or false", "stream")),
    };
    Ok(match (sse, stream) {
        (true, _) => Some(Framing::Sse),
        (false, true) => Some(Framing::Audio),
        (false, false) => None,
    })
}

/// `instructions` is accepted and unused: Chatterbox takes no style prompt.
fn check_instructions(fields: &Map<String, Value>) -> Result<(), JobError> {
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
pub fn models(variant: Variant) -> Value {
    let data: Vec<Value> = model_ids(variant)
        .into_iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "resemble-ai"}))
        .collect();
    json!({"object": "list", "data": data})
}

/// `GET /v1/audio/models`, as Open WebUI lists speech models.
fn audio_models(variant: Variant) -> Value {
    let models: Vec<Value> = model_ids(variant)
        .into_iter()
        .map(|id| json!({"id": id}))
        .collect();
    json!({"models": models})
}

/// `GET /v1/audio/voices`: voices.json's enabled voices (the OpenAI names without one), as
/// Open WebUI reads them.
async fn voices(library: &VoiceLibrary) -> Value {
    let voices: Vec<Value> = library
        .voices()
        .await
        .iter()
        .filter(|(_, entry)| entry.enabled)
        .map(|(id, _)| json!({"id": id, "name": id}))
        .collect();
    json!({"voices": voices})
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` with a context whose engine has no checkpoint: every check here fails first.
    async fn with_context<T>(f: impl AsyncFnOnce(&SpeechContext<'_>) -> T) -> T {
        let settings = Settings::from_lookup(|_| None).unwrap();
        let engine = Engine::new(settings.engine.clone());
        let voices = VoiceLibrary::new(settings.volume.voices_json());
        let events = JobContext::unheard();
        let context = SpeechContext {
            settings: &settings,
            engine: &engine,
            voices: &voices,
            job_input: &Value::Null,
            events: &events,
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
            ("response_format", json!("ogg")),
            ("response_format", json!("m4a")),
            ("speed", json!(9)),
            ("speed", json!("fast")),
            ("stream_format", json!("events")),
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
        let list = models(Variant::Multilingual);
        assert_eq!(list["object"], "list");
        let ids: Vec<&str> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            [
                "tts-1",
                "tts-1-hd",
                "gpt-4o-mini-tts",
                "chatterbox-multilingual"
            ]
        );
        assert_eq!(
            audio_models(Variant::Turbo)["models"][3],
            json!({"id": "chatterbox-turbo"})
        );
    }

    #[test]
    fn only_the_loaded_chatterbox_model_is_accepted() {
        for model in [
            "tts-1",
            "tts-1-hd",
            "gpt-4o-mini-tts",
            "gpt-4o-mini-tts-2025-12-15",
        ] {
            assert!(check_model(model, Variant::English).is_ok(), "{model}");
        }
        assert!(check_model("chatterbox", Variant::English).is_ok());
        assert!(check_model("turbo", Variant::Turbo).is_ok());
        let other = check_model("chatterbox-multilingual", Variant::Turbo).unwrap_err();
        assert!(
            other.to_string().contains("serves chatterbox-turbo"),
            "{other}"
        );
        assert_eq!(param(other), "model");
        let unknown = check_model("whisper-1", Variant::Turbo).unwrap_err();
        assert!(unknown.to_string().contains("tts-1, tts-1-hd"), "{unknown}");
    }
}
