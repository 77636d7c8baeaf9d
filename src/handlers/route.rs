//! Which handler a job input belongs to.

use serde_json::{Map, Value};

/// Keys only the custom schema has. A bare OpenAI request carrying any of them is a custom job
/// that happens to use OpenAI-like names.
const CUSTOM_KEYS: &[&str] = &["task", "text", "audio_prompt", "files", "segments"];
/// The fields of an OpenAI speech request.
const OPENAI_KEYS: &[&str] = &["model", "voice", "input"];

#[derive(Debug, PartialEq)]
pub enum Route<'a> {
    /// RunPod's OpenAI proxy: `{"openai_route": "/v1/…", "openai_input": {…}}`.
    OpenAiProxy {
        route: &'a Value,
        body: Option<&'a Value>,
    },
    /// A speech request sent straight to the queue.
    OpenAiSpeech(&'a Value),
    Custom(&'a Map<String, Value>),
    /// The input is missing or not an object; only the custom path can answer it.
    NotAnObject,
}

/// OpenAI when the proxy sent it, or when at least two of `model`, `voice` and `input` are
/// present and no custom-only key is; custom otherwise. Two of three lets a request that lacks
/// one required field get OpenAI's "missing parameter" error instead of a custom one.
pub fn classify(input: &Value) -> Route<'_> {
    let Value::Object(fields) = input else {
        return Route::NotAnObject;
    };
    if let Some(route) = fields.get("openai_route") {
        return Route::OpenAiProxy {
            route,
            body: fields.get("openai_input"),
        };
    }
    let openai_fields = OPENAI_KEYS
        .iter()
        .filter(|k| fields.contains_key(**k))
        .count();
    let custom = CUSTOM_KEYS.iter().any(|k| fields.contains_key(*k));
    if openai_fields >= 2 && !custom {
        Route::OpenAiSpeech(input)
    } else {
        Route::Custom(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn openai_requests_are_recognised() {
        let bare = json!({"model": "tts-1", "voice": "alloy", "input": "Hi"});
        assert_eq!(classify(&bare), Route::OpenAiSpeech(&bare));
        let missing_input = json!({"model": "tts-1", "voice": "alloy"});
        assert_eq!(
            classify(&missing_input),
            Route::OpenAiSpeech(&missing_input)
        );
        let proxied = json!({"openai_route": "/v1/models"});
        assert!(matches!(
            classify(&proxied),
            Route::OpenAiProxy { body: None, .. }
        ));
    }

    #[test]
    fn custom_keys_win() {
        let custom = json!({"model": "tts-1", "voice": "alloy", "text": "Hi"});
        assert!(matches!(classify(&custom), Route::Custom(_)));
        let seed = json!({"text": "Hi", "audio_prompt": "ref.wav"});
        assert!(matches!(classify(&seed), Route::Custom(_)));
        let one_field = json!({"voice": "alloy"});
        assert!(matches!(classify(&one_field), Route::Custom(_)));
        assert_eq!(classify(&json!("text")), Route::NotAnObject);
        assert_eq!(classify(&Value::Null), Route::NotAnObject);
    }
}
