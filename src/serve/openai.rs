//! OpenAI's own HTTP shape on the local API, for load-balancing endpoints and OpenAI clients:
//! `POST /v1/audio/speech` answers the audio bytes with their content type, `GET /v1/models`
//! the model list. Each request runs as a job through the same handler as queue jobs (RunPod's
//! proxy input), so validation, voices and encoding are shared; errors keep OpenAI's JSON.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

use super::ApiState;
use crate::job::{self, Job, JobHandler, Outcome};

pub(super) async fn speech<H: JobHandler>(state: Arc<ApiState<H>>, body: Bytes) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return invalid(format!("the body is not JSON: {e}")),
    };
    match run(&state, "/v1/audio/speech", request).await {
        Ok(output) => audio(&output),
        Err(response) => response,
    }
}

pub(super) async fn models<H: JobHandler>(state: Arc<ApiState<H>>) -> Response {
    match run(&state, "/v1/models", Value::Null).await {
        Ok(output) => Json(output).into_response(),
        Err(response) => response,
    }
}

/// The route as a proxy job, run within the API's concurrency.
async fn run<H: JobHandler>(
    state: &Arc<ApiState<H>>,
    route: &str,
    body: Value,
) -> Result<Value, Response> {
    let job = Job::from_value(json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "input": {"openai_route": route, "openai_input": body},
    }))
    .map_err(|e| server_error(e.to_string()))?;
    let Ok(_slot) = state.slots.clone().acquire_owned().await else {
        return Err(server_error("the worker is shutting down".into()));
    };
    let finished = job::execute(state.handler.clone(), job, |_| async {}).await;
    match finished.outcome {
        Outcome::Output(output) => Ok(output),
        Outcome::Error(error) => Err((status_of(&error), Json(error)).into_response()),
        Outcome::Crashed { .. } => Err(server_error(
            "speech generation failed; the worker log has the details".into(),
        )),
    }
}

/// The bytes of a speech job's output, with its content type.
fn audio(output: &Value) -> Response {
    let decoded = output["audio_base64"]
        .as_str()
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok());
    match (decoded, output["content_type"].as_str()) {
        (Some(bytes), Some(content_type)) => {
            ([(header::CONTENT_TYPE, content_type.to_string())], bytes).into_response()
        }
        _ => server_error("the speech job returned no audio".into()),
    }
}

/// OpenAI's statuses: 400 for a bad request, 404 for what does not exist, 503 while the
/// model cannot be had, 500 otherwise.
fn status_of(error: &Value) -> StatusCode {
    let error = &error["error"];
    match (error["type"].as_str(), error["code"].as_str()) {
        (Some("invalid_request_error"), Some("not_found")) => StatusCode::NOT_FOUND,
        (Some("invalid_request_error"), _) => StatusCode::BAD_REQUEST,
        (_, Some("unavailable")) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn invalid(message: String) -> Response {
    openai_error(StatusCode::BAD_REQUEST, "invalid_request_error", message)
}

fn server_error(message: String) -> Response {
    openai_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
}

fn openai_error(status: StatusCode, kind: &str, message: String) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": null}});
    (status, Json(body)).into_response()
}
