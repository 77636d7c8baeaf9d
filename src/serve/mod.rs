//! `chatterbox-worker serve`: a local HTTP API shaped like RunPod's public endpoint API
//! (`/run`, `/runsync`, `/status`, `/stream`, `/cancel`, `/health`), OpenAI's speech API under
//! `/v1` (optionally behind bearer keys), plus `/ping` for RunPod load-balancing endpoints.

mod http;
mod jobs;
mod openai;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::ApiSettings;
use crate::job::{self, Job, JobHandler, Readiness};
use crate::runpod::result::Reporter;
use jobs::JobStore;

/// RunPod's request limits: 10 MB for `/run`, 20 MB for `/runsync`.
const RUN_BODY_LIMIT: usize = 10 * 1024 * 1024;
const RUNSYNC_BODY_LIMIT: usize = 20 * 1024 * 1024;
/// `/runsync` waits 90 s by default; `?wait=` may ask for 1 s to 300 s.
const RUNSYNC_DEFAULT_WAIT_MS: u64 = 90_000;
const RUNSYNC_WAIT_RANGE_MS: (u64, u64) = (1_000, 300_000);

struct ApiState<H> {
    handler: Arc<H>,
    jobs: JobStore,
    slots: Arc<Semaphore>,
}

/// The whole API. Jobs beyond `concurrency` wait `IN_QUEUE`; `api` says who may call `/v1`
/// and from which browser origins.
pub fn app<H: JobHandler>(handler: Arc<H>, concurrency: usize, api: ApiSettings) -> Router {
    let state = Arc::new(ApiState {
        handler: handler.clone(),
        jobs: JobStore::default(),
        slots: Arc::new(Semaphore::new(concurrency.max(1))),
    });
    let api = Arc::new(api);
    let v1 = Router::new()
        .route(
            "/audio/speech",
            post(|State(state), body| openai::speech::<H>(state, body))
                .layer(DefaultBodyLimit::max(RUNSYNC_BODY_LIMIT)),
        )
        .route(
            "/models",
            get(|State(state)| openai::listing::<H>(state, "/v1/models")),
        )
        .route(
            "/audio/models",
            get(|State(state)| openai::listing::<H>(state, "/v1/audio/models")),
        )
        .route(
            "/audio/voices",
            get(|State(state)| openai::listing::<H>(state, "/v1/audio/voices")),
        )
        .fallback(openai::no_such_route)
        .with_state(state.clone())
        .layer(middleware::from_fn_with_state(
            api.clone(),
            http::require_key,
        ));
    Router::new()
        .route(
            "/run",
            post(run::<H>).layer(DefaultBodyLimit::max(RUN_BODY_LIMIT)),
        )
        .route(
            "/runsync",
            post(runsync::<H>).layer(DefaultBodyLimit::max(RUNSYNC_BODY_LIMIT)),
        )
        .route("/status/{id}", get(status::<H>).post(status::<H>))
        .route("/stream/{id}", get(stream::<H>).post(stream::<H>))
        .route("/cancel/{id}", post(cancel::<H>))
        .route("/health", get(health::<H>))
        .with_state(state)
        .nest("/v1", v1)
        .merge(ping_app(handler))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .layer(middleware::from_fn_with_state(api, http::cors))
        .layer(middleware::from_fn(http::response_headers))
}

/// `/ping` alone, for a load balancer that checks health on its own port (`PORT_HEALTH`).
pub fn ping_app<H: JobHandler>(handler: Arc<H>) -> Router {
    Router::new().route(
        "/ping",
        get(move || async move {
            match handler.readiness() {
                Readiness::Ready => {
                    (StatusCode::OK, Json(json!({"status": "healthy"}))).into_response()
                }
                Readiness::Initializing => StatusCode::NO_CONTENT.into_response(),
                Readiness::Unhealthy => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({"status": "unhealthy"})),
                )
                    .into_response(),
            }
        }),
    )
}

/// Serves `app` until `shutdown`, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

/// A job's answer, or 404 when the id is unknown (or its result has expired).
fn found(id: &str, answer: Option<Value>) -> Result<Json<Value>, ApiError> {
    answer
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("job {id:?} not found")))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": self.message}))).into_response()
    }
}

/// Reads `{"input": …, …}` the way RunPod's `/run` takes it.
fn parse_job(body: Result<Bytes, BytesRejection>) -> Result<Job, ApiError> {
    let body =
        body.map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))?;
    let request: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not JSON: {e}"),
        )
    })?;
    let Value::Object(mut fields) = request else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object",
        ));
    };
    if !fields.contains_key("input") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the body has no \"input\"",
        ));
    }
    fields.insert("id".into(), Value::String(uuid::Uuid::new_v4().to_string()));
    Job::from_value(Value::Object(fields))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

fn submit<H: JobHandler>(state: &Arc<ApiState<H>>, job: Job) -> String {
    let id = job.id.clone();
    state.jobs.submit(&id);
    let task = {
        let state = state.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let Ok(_slot) = state.slots.clone().acquire_owned().await else {
                return;
            };
            state.jobs.start(&id);
            let jobs = state.jobs.clone();
            let finished = job::execute(state.handler.clone(), job, |event| {
                jobs.event(&id, event);
                async {}
            })
            .await;
            let body = Reporter::unknown().done_body(&id, &finished, false);
            state.jobs.finish(&id, body);
        })
    };
    state.jobs.attach(&id, task.abort_handle());
    id
}

async fn run<H: JobHandler>(
    State(state): State<Arc<ApiState<H>>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = submit(&state, parse_job(body)?);
    Ok(Json(json!({"id": id, "status": "IN_QUEUE"})))
}

async fn runsync<H: JobHandler>(
    State(state): State<Arc<ApiState<H>>>,
    Query(query): Query<HashMap<String, String>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let wait = match query.get("wait") {
        None => RUNSYNC_DEFAULT_WAIT_MS,
        Some(ms) => ms
            .parse::<u64>()
            .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "wait must be milliseconds"))?
            .clamp(RUNSYNC_WAIT_RANGE_MS.0, RUNSYNC_WAIT_RANGE_MS.1),
    };
    let id = submit(&state, parse_job(body)?);
    state.jobs.wait(&id, Duration::from_millis(wait)).await;
    found(&id, state.jobs.status(&id))
}

async fn status<H: JobHandler>(
    State(state): State<Arc<ApiState<H>>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    found(&id, state.jobs.status(&id))
}

async fn stream<H: JobHandler>(
    State(state): State<Arc<ApiState<H>>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    found(&id, state.jobs.read_stream(&id))
}

async fn cancel<H: JobHandler>(
    State(state): State<Arc<ApiState<H>>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    found(&id, state.jobs.cancel(&id))
}

async fn health<H: JobHandler>(State(state): State<Arc<ApiState<H>>>) -> Json<Value> {
    Json(state.jobs.health())
}
