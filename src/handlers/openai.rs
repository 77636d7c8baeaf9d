//! The OpenAI handler: speech requests, bare or through RunPod's OpenAI proxy, and `/v1/models`.

use serde_json::{Map, Value, json};

use super::error::JobError;

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
pub fn proxy(route: &Value, body: Option<&Value>) -> Result<Value, JobError> {
    let Some(route) = route.as_str() else {
        return Err(JobError::invalid(
            "openai_route must be a string such as \"/v1/audio/speech\"",
            "openai_route",
        ));
    };
    match route.trim_end_matches('/') {
        "/v1/audio/speech" | "/audio/speech" => speech(body.unwrap_or(&Value::Null)),
        "/v1/models" | "/models" => Ok(models()),
        other => Err(JobError::not_found(
            format!(
                "unknown OpenAI route {other:?}; this worker serves /v1/audio/speech and /v1/models"
            ),
            "openai_route",
        )),
    }
}

/// `POST /v1/audio/speech`.
pub fn speech(body: &Value) -> Result<Value, JobError> {
    let Value::Object(fields) = body else {
        return Err(JobError::invalid(
            "the speech request must be a JSON object",
            None,
        ));
    };
    required_text(fields, "model")?;
    required_text(fields, "input")?;
    match fields.get("voice") {
        Some(Value::String(voice)) if !voice.trim().is_empty() => {}
        Some(Value::Object(voice)) if voice.get("id").is_some_and(Value::is_string) => {}
        Some(Value::Null) | None => return Err(missing("voice")),
        Some(_) => {
            return Err(JobError::invalid(
                "voice must be a voice name or an object {\"id\": …}",
                "voice",
            ));
        }
    }
    Err(JobError::Unavailable(
        "speech synthesis is not available yet: this build of the worker has no Chatterbox engine"
            .into(),
    ))
}

fn required_text(fields: &Map<String, Value>, key: &'static str) -> Result<(), JobError> {
    match fields.get(key) {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(()),
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

    fn param(error: JobError) -> Value {
        error.openai_body()["error"]["param"].clone()
    }

    #[test]
    fn missing_fields_are_named() {
        let error = speech(&json!({"model": "tts-1", "voice": "alloy"})).unwrap_err();
        assert_eq!(error.to_string(), "Missing required parameter: input");
        assert_eq!(param(error), "input");
        let error = speech(&json!({"model": "tts-1", "input": "hi", "voice": 3})).unwrap_err();
        assert_eq!(param(error), "voice");
        let error = speech(&json!({"model": 1, "input": "hi", "voice": "alloy"})).unwrap_err();
        assert_eq!(param(error), "model");
    }

    #[test]
    fn unknown_routes_and_bad_route_values_are_refused() {
        let error = proxy(&json!("/v1/chat/completions"), None).unwrap_err();
        assert!(matches!(error, JobError::NotFound { .. }));
        let error = proxy(&json!(5), None).unwrap_err();
        assert_eq!(param(error), "openai_route");
    }

    #[test]
    fn models_are_listed_in_openai_shape() {
        let list = proxy(&json!("/v1/models"), None).unwrap();
        assert_eq!(list["object"], "list");
        assert_eq!(list["data"][0]["id"], "tts-1");
        assert_eq!(list["data"].as_array().unwrap().len(), MODELS.len());
    }
}
