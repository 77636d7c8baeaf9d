//! OpenAI's own HTTP shape on the local API, for load-balancing endpoints and OpenAI clients:
//! `POST /v1/audio/speech` streams the audio bytes with their content type (or OpenAI's SSE
//! events), `GET /v1/models`, `/v1/audio/models` and `/v1/audio/voices` list what is served.
//! Each request runs as a job through the same handler as queue jobs (RunPod's proxy input), so
//! validation, voices and encoding are shared; errors keep OpenAI's JSON.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

use super::ApiState;
use futures_util::StreamExt as _;
use tokio::sync::mpsc;

use crate::job::{self, Job, JobEvent, JobHandler, Outcome};

/// The audio streams: its bytes go out as each piece of text is spoken, so playback starts
/// after the first sentence; with `stream_format: "sse"` as OpenAI's events instead. An error
/// found before any audio answers with its status; one after the first bytes can only cut the
/// body short, as with OpenAI. A client that hangs up cancels the rest of its speech.
pub(super) async fn speech<H: JobHandler>(state: Arc<ApiState<H>>, body: Bytes) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return invalid(format!("the body is not JSON: {e}")),
    };
    let sse = request["stream_format"] == "sse";
    let job = match proxy_job("/v1/audio/speech", request, true) {
        Ok(job) => job,
        Err(response) => return *response,
    };
    let Ok(slot) = state.slots.clone().acquire_owned().await else {
        return unavailable("the worker is shutting down".into());
    };
    let (pieces, mut received) = mpsc::unbounded_channel();
    let handler = state.handler.clone();
    tokio::spawn(async move {
        let _slot = slot;
        let forward = pieces.clone();
        let execution = job::execute(handler, job, move |event| {
            if let JobEvent::Stream(chunk) = event {
                let _ = forward.send(Piece::Audio(chunk));
            }
            async {}
        });
        tokio::select! {
            finished = execution => {
                let _ = pieces.send(Piece::End(finished.outcome));
            }
            () = pieces.closed() => {}
        }
    });
    let first = match received.recv().await {
        Some(Piece::Audio(first)) => first,
        Some(Piece::End(outcome)) => {
            return match outcome_json(outcome) {
                Ok(_) => server_error("the speech job returned no audio".into()),
                Err(response) => *response,
            };
        }
        None => {
            return server_error("speech generation failed; the worker log has the details".into());
        }
    };
    let (content_type, frame): (String, Framer) = if sse {
        ("text/event-stream".into(), sse_event)
    } else {
        (content_type_of(&first), audio_bytes)
    };
    let rest = futures_util::stream::unfold(received, move |mut received| async move {
        match received.recv().await? {
            Piece::Audio(chunk) => Some((frame(&chunk), received)),
            Piece::End(Outcome::Output(_)) => None,
            Piece::End(_) => Some((
                Err(std::io::Error::other("speech generation failed")),
                received,
            )),
        }
    });
    let body = futures_util::stream::once(async move { frame(&first) }).chain(rest);
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache".into()),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// Turns one of the job's stream chunks into the body's next bytes.
type Framer = fn(&Value) -> Result<Bytes, std::io::Error>;

/// What the job sends the route: the audio file's pieces, then how it ended.
enum Piece {
    Audio(Value),
    End(Outcome),
}

/// One of OpenAI's speech events, as the handler made it, framed for `text/event-stream`.
fn sse_event(event: &Value) -> Result<Bytes, std::io::Error> {
    Ok(Bytes::from(format!("data: {event}\n\n")))
}

fn audio_bytes(chunk: &Value) -> Result<Bytes, std::io::Error> {
    chunk["audio_base64"]
        .as_str()
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .map(Bytes::from)
        .ok_or_else(|| std::io::Error::other("a stream chunk carried no audio"))
}

/// A listing route (models, voices): answered at once, since it needs no model time.
pub(super) async fn listing<H: JobHandler>(state: Arc<ApiState<H>>, route: &str) -> Response {
    let job = match proxy_job(route, Value::Null, false) {
        Ok(job) => job,
        Err(response) => return *response,
    };
    let finished = job::execute(state.handler.clone(), job, |_| async {}).await;
    match outcome_json(finished.outcome) {
        Ok(output) => Json(output).into_response(),
        Err(response) => *response,
    }
}

/// OpenAI's 404 for a `/v1` route this worker does not have.
pub(super) async fn no_such_route() -> Response {
    openai_error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "no such route; this worker serves POST /v1/audio/speech, GET /v1/audio/voices, \
         GET /v1/audio/models and GET /v1/models"
            .into(),
        Some("not_found"),
    )
}

/// The route as a proxy job (RunPod's OpenAI input), `stream` set when the answer streams.
fn proxy_job(route: &str, body: Value, stream: bool) -> Result<Job, Box<Response>> {
    Job::from_value(json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "input": {"openai_route": route, "openai_input": body, "stream": stream},
    }))
    .map_err(|e| Box::new(server_error(e.to_string())))
}

/// A job's output, or its error as OpenAI's JSON with the matching status.
fn outcome_json(outcome: Outcome) -> Result<Value, Box<Response>> {
    let failure = match outcome {
        Outcome::Output(output) => return Ok(output),
        Outcome::Error(error) => (status_of(&error), Json(error)).into_response(),
        Outcome::Crashed { .. } => {
            server_error("speech generation failed; the worker log has the details".into())
        }
    };
    Err(Box::new(failure))
}

fn content_type_of(chunk: &Value) -> String {
    chunk["content_type"]
        .as_str()
        .unwrap_or("application/octet-stream")
        .to_string()
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
    openai_error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        message,
        None,
    )
}

fn server_error(message: String) -> Response {
    openai_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        message,
        None,
    )
}

fn unavailable(message: String) -> Response {
    openai_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        message,
        None,
    )
}

pub(super) fn openai_error(
    status: StatusCode,
    kind: &str,
    message: String,
    code: Option<&str>,
) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    (status, Json(body)).into_response()
}
