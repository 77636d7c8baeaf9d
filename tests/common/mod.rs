//! Test servers and handlers shared by the integration tests: a fake RunPod platform (a real
//! HTTP server on 127.0.0.1), a scripted job handler, and the worker's own local API on
//! 127.0.0.1 with a client for it.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::collections::VecDeque;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use chatterbox_worker::job::{Job, JobContext, JobHandler, Outcome};

/// One request the fake platform received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Seen {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn query_param(&self, key: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What job-take answers next.
#[derive(Debug, Clone)]
pub enum Take {
    /// 200 with this JSON (a job object or an array of them).
    Jobs(Value),
    /// This status and no body.
    Status(u16),
    /// Waits, then answers like the inner reply.
    After(Duration, Box<Take>),
}

#[derive(Default)]
struct Script {
    takes: VecDeque<Take>,
    done_statuses: VecDeque<u16>,
    done_delay: Option<Duration>,
    stops: VecDeque<Vec<String>>,
    seen: Vec<Seen>,
}

/// A fake RunPod platform. Unscripted takes and stops answer 204 after a short long-poll.
#[derive(Clone)]
pub struct FakeRunPod {
    script: Arc<Mutex<Script>>,
    pub base: String,
}

pub const API_KEY: &str = "test-key-123";
pub const POD_ID: &str = "pod-abc";

impl FakeRunPod {
    pub async fn start() -> Self {
        let script = Arc::new(Mutex::new(Script::default()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().fallback(answer).with_state(script.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { script, base }
    }

    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap()
    }

    pub fn take(&self, reply: Take) -> &Self {
        self.script().takes.push_back(reply);
        self
    }

    pub fn job(&self, job: Value) -> &Self {
        self.take(Take::Jobs(job))
    }

    pub fn done_statuses(&self, statuses: &[u16]) -> &Self {
        self.script().done_statuses.extend(statuses);
        self
    }

    pub fn delay_done(&self, delay: Duration) -> &Self {
        self.script().done_delay = Some(delay);
        self
    }

    pub fn stop(&self, ids: &[&str]) -> &Self {
        self.script()
            .stops
            .push_back(ids.iter().map(|s| s.to_string()).collect());
        self
    }

    /// The environment a worker needs to talk to this platform.
    pub fn env(&self) -> Vec<(String, String)> {
        let base = &self.base;
        vec![
            (
                "RUNPOD_WEBHOOK_GET_JOB".into(),
                format!("{base}/v2/ep/job-take/$ID?gpu=TEST"),
            ),
            (
                "RUNPOD_WEBHOOK_POST_OUTPUT".into(),
                format!("{base}/v2/ep/job-done/$RUNPOD_POD_ID/$ID?gpu=TEST"),
            ),
            (
                "RUNPOD_WEBHOOK_POST_STREAM".into(),
                format!("{base}/v2/ep/job-stream/$RUNPOD_POD_ID/$ID?gpu=TEST"),
            ),
            (
                "RUNPOD_WEBHOOK_PING".into(),
                format!("{base}/v2/ep/ping/$RUNPOD_POD_ID?gpu=TEST"),
            ),
            ("RUNPOD_PING_INTERVAL".into(), "200".into()),
            ("RUNPOD_AI_API_KEY".into(), API_KEY.into()),
            ("RUNPOD_POD_ID".into(), POD_ID.into()),
            ("RUNPOD_POD_HOSTNAME".into(), "test-host".into()),
        ]
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.script().seen.clone()
    }

    /// Requests whose path contains `part` (`/job-done/`, `/job-take`, `/ping/`, …).
    pub fn seen_at(&self, part: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.path.contains(part))
            .collect()
    }

    /// Final job-done posts (not progress updates) for `job_id`.
    pub fn results_for(&self, job_id: &str) -> Vec<Seen> {
        self.seen_at("/job-done/")
            .into_iter()
            .filter(|s| s.path.ends_with(&format!("/{job_id}")))
            .filter(|s| s.json().get("status").is_none())
            .collect()
    }

    /// Waits (up to 20 s, so a broken worker fails instead of hanging) until `ready` holds.
    pub async fn wait_until(&self, what: &str, ready: impl Fn(&FakeRunPod) -> bool) {
        for _ in 0..1000 {
            if ready(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "gave up waiting for {what}; requests seen: {:#?}",
            self.seen()
        );
    }
}

async fn answer(
    State(script): State<Arc<Mutex<Script>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let seen = Seen {
        method,
        path: path.clone(),
        query: uri.query().unwrap_or_default().to_string(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let mut take = None;
    let mut stop = None;
    let mut done = (200, None);
    {
        let mut script = script.lock().unwrap();
        script.seen.push(seen);
        if path.contains("/job-take") {
            take = Some(script.takes.pop_front());
        } else if path.contains("/job-stop/") {
            stop = Some(script.stops.pop_front());
        } else if path.contains("/job-done/") {
            done = (
                script.done_statuses.pop_front().unwrap_or(200),
                script.done_delay,
            );
        }
    }
    if let Some(take) = take {
        return match take {
            Some(reply) => take_reply(reply).await,
            None => long_poll_nothing().await,
        };
    }
    if let Some(stop) = stop {
        return match stop {
            Some(ids) => axum::Json(json!({"jobsToStop": ids})).into_response(),
            None => long_poll_nothing().await,
        };
    }
    if let (status, Some(delay)) = done {
        tokio::time::sleep(delay).await;
        return StatusCode::from_u16(status).unwrap().into_response();
    }
    StatusCode::from_u16(done.0).unwrap().into_response()
}

async fn long_poll_nothing() -> Response {
    tokio::time::sleep(Duration::from_millis(50)).await;
    StatusCode::NO_CONTENT.into_response()
}

fn take_reply(reply: Take) -> std::pin::Pin<Box<dyn Future<Output = Response> + Send>> {
    Box::pin(async move {
        match reply {
            Take::Jobs(jobs) => axum::Json(jobs).into_response(),
            Take::Status(status) => StatusCode::from_u16(status).unwrap().into_response(),
            Take::After(delay, inner) => {
                tokio::time::sleep(delay).await;
                take_reply(*inner).await
            }
        }
    })
}

/// A handler driven by its input: `sleep_ms`, `progress` and `stream` lists, `panic`, `error`,
/// `output` (default: the input itself).
pub struct Scripted;

impl JobHandler for Scripted {
    async fn handle(&self, job: Job, ctx: JobContext) -> Outcome {
        let input = job.input;
        for update in input["progress"].as_array().into_iter().flatten() {
            ctx.progress(update.clone());
        }
        for chunk in input["stream"].as_array().into_iter().flatten() {
            ctx.stream(chunk.clone());
        }
        if let Some(ms) = input["sleep_ms"].as_u64() {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if input["panic"] == true {
            panic!("scripted panic");
        }
        if let Some(error) = input.get("error") {
            return Outcome::Error(error.clone());
        }
        Outcome::Output(input.get("output").cloned().unwrap_or(input))
    }
}

/// A real handler's settings on the tiny Turbo checkpoint with `volume`, no network, and a
/// short token limit (random weights rarely stop by themselves).
pub fn tiny_checkpoint_vars(volume: &Path, max_new_tokens: u32) -> Vec<(&'static str, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    vec![
        ("CHATTERBOX_VOLUME", volume.display().to_string()),
        (
            "CHATTERBOX_CHECKPOINT_DIR",
            root.join("tests/fixtures/checkpoints/tiny")
                .display()
                .to_string(),
        ),
        ("CHATTERBOX_MAX_NEW_TOKENS", max_new_tokens.to_string()),
        ("HF_ENDPOINT", "http://127.0.0.1:9".into()),
    ]
}

/// `chatterbox-worker serve`'s app on 127.0.0.1, stopped when dropped.
pub struct LocalApi {
    pub base: String,
    pub http: reqwest::Client,
    _shutdown: tokio_util::sync::DropGuard,
}

impl LocalApi {
    pub async fn start<H: JobHandler>(handler: H, concurrency: usize) -> Self {
        Self::start_with(handler, concurrency, Default::default()).await
    }

    pub async fn start_with<H: JobHandler>(
        handler: H,
        concurrency: usize,
        api: chatterbox_worker::config::ApiSettings,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = tokio_util::sync::CancellationToken::new();
        let app = chatterbox_worker::serve::app(Arc::new(handler), concurrency, api);
        tokio::spawn(chatterbox_worker::serve::serve(
            listener,
            app,
            shutdown.clone(),
        ));
        Self {
            base,
            http: reqwest::Client::new(),
            _shutdown: shutdown.drop_guard(),
        }
    }

    /// The real handlers with the settings `vars` give (nothing else from the environment).
    pub async fn real(vars: &[(&str, String)]) -> Self {
        let settings = chatterbox_worker::config::Settings::from_lookup(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.clone())
        })
        .unwrap();
        let engine = chatterbox_worker::engine::Engine::new(settings.engine.clone());
        if settings.preload {
            engine.preload();
        }
        let api = settings.api.clone();
        let handlers = chatterbox_worker::handlers::Handlers::new(Arc::new(settings), engine);
        Self::start_with(handlers, 1, api).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (reqwest::StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    pub async fn get(&self, path: &str) -> (reqwest::StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// Runs `body` (a whole job: `input`, maybe `s3Config`) through /runsync: its `output`,
    /// or its `error` as Err.
    pub async fn job_body(&self, body: Value) -> Result<Value, String> {
        let (_, answer) = self.post("/runsync", body).await;
        match answer["status"].as_str() {
            Some("COMPLETED") => Ok(answer["output"].clone()),
            _ => Err(answer["error"].to_string()),
        }
    }

    pub async fn job(&self, input: Value) -> Result<Value, String> {
        self.job_body(json!({"input": input})).await
    }

    /// Polls `/status` until the job is final (20 s at most, so a hang fails).
    pub async fn until_final(&self, id: &str) -> Value {
        for _ in 0..1000 {
            let (_, status) = self.get(&format!("/status/{id}")).await;
            if ["COMPLETED", "FAILED", "CANCELLED"].contains(&status["status"].as_str().unwrap()) {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("job {id} never finished");
    }
}

/// Sends SIGTERM and waits for a clean exit (20 s at most, so a hang fails).
pub async fn sigterm_and_wait(mut child: std::process::Child) -> std::process::Output {
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) with a pid we spawned and a valid signal number.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let output = tokio::task::spawn_blocking(move || {
        for _ in 0..1000 {
            if child.try_wait().unwrap().is_some() {
                return child.wait_with_output().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        panic!("the worker did not exit after SIGTERM");
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
