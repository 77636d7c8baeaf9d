//! `chatterbox-worker serve` over real HTTP on 127.0.0.1.

mod common;

use reqwest::StatusCode;
use serde_json::{Value, json};

use common::{LocalApi, Scripted};

type Api = LocalApi;

/// The real handlers on a volume of their own.
async fn real() -> Api {
    let dir = std::env::temp_dir().join("chatterbox-serve-test");
    LocalApi::real(&[("CHATTERBOX_VOLUME", dir.display().to_string())]).await
}

#[tokio::test]
async fn run_then_status_until_completed() {
    let api = real().await;
    let (status, queued) = api.post("/run", json!({"input": {"task": "info"}})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(queued["status"], "IN_QUEUE");
    let id = queued["id"].as_str().unwrap();
    let done = api.until_final(id).await;
    assert_eq!(done["status"], "COMPLETED");
    assert_eq!(done["id"], id);
    assert_eq!(done["output"]["model"], "turbo");
    assert!(done["delayTime"].is_u64() && done["executionTime"].is_u64());
    // POST works as well as GET, as in the SDK's local server.
    let (status, again) = api.post(&format!("/status/{id}"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["status"], "COMPLETED");
}

#[tokio::test]
async fn runsync_answers_with_the_result_in_either_envelope() {
    let api = real().await;
    let (status, done) = api
        .post("/runsync", json!({"input": {"openai_route": "/v1/models"}}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(done["status"], "COMPLETED");
    assert_eq!(done["output"]["object"], "list");

    let (_, failed) = api
        .post(
            "/runsync",
            json!({"input": {"openai_route": "/v1/embeddings"}}),
        )
        .await;
    assert_eq!(failed["status"], "FAILED");
    assert_eq!(failed["error"]["error"]["param"], "openai_route");
    assert_eq!(failed["error"]["error"]["type"], "invalid_request_error");

    let (_, custom) = api.post("/runsync", json!({"input": {"task": "vc"}})).await;
    assert_eq!(custom["status"], "FAILED");
    assert!(custom["error"].as_str().unwrap().contains("input_audio"));
}

#[tokio::test]
async fn unknown_ids_and_bad_bodies_are_refused_in_json() {
    let api = real().await;
    let (status, body) = api.get("/status/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("nope"));
    assert_eq!(api.get("/stream/nope").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        api.post("/cancel/nope", json!({})).await.0,
        StatusCode::NOT_FOUND
    );

    let (status, body) = api.post("/run", json!({"task": "info"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("input"));
    let response = api
        .http
        .post(format!("{}/runsync", api.base))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let too_big = "x".repeat(11 * 1024 * 1024);
    let (status, _) = api.post("/run", json!({"input": {"text": too_big}})).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(api.get("/no/such/route").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn ping_and_health_report_the_worker() {
    let api = real().await;
    let (status, ping) = api.get("/ping").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ping["status"], "healthy");
    api.post("/runsync", json!({"input": {"task": "info"}}))
        .await;
    let (_, health) = api.get("/health").await;
    assert_eq!(health["jobs"]["completed"], 1);
    assert_eq!(health["workers"]["idle"], 1);
}

#[tokio::test]
async fn stream_returns_each_chunk_once() {
    let api = Api::start(Scripted, 1).await;
    let (_, queued) = api
        .post(
            "/run",
            json!({"input": {"stream": [1, 2, 3], "output": "done"}}),
        )
        .await;
    let id = queued["id"].as_str().unwrap();
    api.until_final(id).await;
    let (_, first) = api.get(&format!("/stream/{id}")).await;
    assert_eq!(first["status"], "COMPLETED");
    assert_eq!(
        first["stream"],
        json!([{"output": 1}, {"output": 2}, {"output": 3}])
    );
    let (_, second) = api.get(&format!("/stream/{id}")).await;
    assert_eq!(second["stream"], json!([]));
}

#[tokio::test]
async fn jobs_beyond_concurrency_wait_in_queue_and_can_be_cancelled() {
    let api = Api::start(Scripted, 1).await;
    let (_, slow) = api
        .post("/run", json!({"input": {"sleep_ms": 30000}}))
        .await;
    let (_, queued) = api.post("/run", json!({"input": {}})).await;
    let slow = slow["id"].as_str().unwrap();
    let queued = queued["id"].as_str().unwrap();
    assert_eq!(
        api.get(&format!("/status/{queued}")).await.1["status"],
        "IN_QUEUE"
    );

    let (_, cancelled) = api.post(&format!("/cancel/{slow}"), json!({})).await;
    assert_eq!(cancelled["status"], "CANCELLED");
    let done = api.until_final(queued).await;
    assert_eq!(done["status"], "COMPLETED");
    assert_eq!(
        api.get(&format!("/status/{slow}")).await.1["status"],
        "CANCELLED"
    );
}

/// The real handler on the tiny Turbo checkpoint.
async fn real_on_tiny_checkpoint(volume: &std::path::Path) -> Api {
    LocalApi::real(&common::tiny_checkpoint_vars(volume, 30)).await
}

#[tokio::test]
async fn v1_audio_speech_answers_audio_bytes_and_openai_errors() {
    let volume = tempfile::tempdir().unwrap();
    let api = real_on_tiny_checkpoint(volume.path()).await;
    let speech = |body: Value| {
        api.http
            .post(format!("{}/v1/audio/speech", api.base))
            .json(&body)
            .send()
    };

    let response = speech(json!({"model": "tts-1", "input": "Hello.", "voice": "alloy"}))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "audio/mpeg");
    let mp3 = response.bytes().await.unwrap();
    assert_eq!(
        (mp3[0], mp3[1] & 0xFE),
        (0xFF, 0xF2),
        "an MPEG-2 layer III frame"
    );

    let response = speech(
        json!({"model": "tts-1", "input": "Hi.", "voice": "alloy", "response_format": "wav"}),
    )
    .await
    .unwrap();
    assert_eq!(response.headers()["content-type"], "audio/wav");
    let wav = response.bytes().await.unwrap();
    let clip = chatterbox_worker::audio::decode(&wav).unwrap();
    assert_eq!(clip.sample_rate, 24000);
    // At most 30 tokens and Turbo's 3 silence tokens, 40 ms each.
    assert!(clip.duration_seconds() <= 33.0 * 0.04 + 1e-6);

    // speed 2 halves the duration (30 tokens + 3 silence tokens at most, 40 ms each).
    let response = speech(json!({"model": "tts-1", "input": "Hi.", "voice": "alloy", "response_format": "wav", "speed": 2.0}))
        .await
        .unwrap();
    let fast = chatterbox_worker::audio::decode(&response.bytes().await.unwrap()).unwrap();
    assert!(
        fast.duration_seconds() <= 33.0 * 0.04 / 2.0 * 1.03,
        "{}",
        fast.duration_seconds()
    );

    // Opus comes as Ogg Opus, as OpenAI serves it.
    let response = speech(
        json!({"model": "tts-1", "input": "Hi.", "voice": "alloy", "response_format": "opus"}),
    )
    .await
    .unwrap();
    assert_eq!(response.headers()["content-type"], "audio/ogg");
    let bytes = response.bytes().await.unwrap();
    assert!(bytes.starts_with(b"OggS"));
    assert_eq!(
        chatterbox_worker::audio::decode(&bytes)
            .unwrap()
            .sample_rate,
        48_000
    );

    for (body, status, param) in [
        (json!({"model": "tts-1", "voice": "alloy"}), 400, "input"),
        (
            json!({"model": "tts-1", "input": "x", "voice": "nobody"}),
            400,
            "voice",
        ),
        (
            json!({"model": "tts-1", "input": "x", "voice": "alloy", "response_format": "m4a"}),
            400,
            "response_format",
        ),
    ] {
        let response = speech(body).await.unwrap();
        assert_eq!(response.status().as_u16(), status);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["param"], param, "{error}");
        assert_eq!(error["error"]["type"], "invalid_request_error");
    }
    let response = api
        .http
        .post(format!("{}/v1/audio/speech", api.base))
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let models: Value = api
        .http
        .get(format!("{}/v1/models", api.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
}

/// `stream_format: "sse"`, keys, listings and the headers every answer carries.
#[tokio::test]
async fn sse_events_keys_listings_and_headers() {
    let volume = tempfile::tempdir().unwrap();
    let mut vars = common::tiny_checkpoint_vars(volume.path(), 12);
    vars.push(("API_KEY", "sk-test".into()));
    vars.push(("CORS_ALLOW_ORIGINS", "https://app.example".into()));
    let api = LocalApi::real(&vars).await;
    let url = |path: &str| format!("{}{path}", api.base);
    let body = json!({"model": "tts-1", "input": "Hello there. Second sentence here.",
                      "voice": "alloy", "response_format": "pcm", "stream_format": "sse"});

    // No key, a wrong key: OpenAI's 401, never retried. /ping stays open.
    let missing = api
        .http
        .post(url("/v1/audio/speech"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(missing.headers()["x-should-retry"], "false");
    assert!(
        missing.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
    let error: Value = missing.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    let wrong = api
        .http
        .get(url("/v1/models"))
        .bearer_auth("sk-tesT")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let error: Value = wrong.json().await.unwrap();
    assert_eq!(error["error"]["code"], "invalid_api_key");
    assert_eq!(
        api.http.get(url("/ping")).send().await.unwrap().status(),
        200
    );

    // SSE: deltas of the file, then one done event with integer usage.
    let response = api
        .http
        .post(url("/v1/audio/speech"))
        .bearer_auth("sk-test")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    let events: Vec<Value> = text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    let (done, deltas) = events.split_last().unwrap();
    assert!(!deltas.is_empty());
    assert_eq!(done["type"], "speech.audio.done");
    let usage = &done["usage"];
    let (input, output) = (
        usage["input_tokens"].as_u64().unwrap(),
        usage["output_tokens"].as_u64().unwrap(),
    );
    assert!(input > 2 && output > 0);
    assert_eq!(usage["total_tokens"].as_u64().unwrap(), input + output);
    let mut pcm = Vec::new();
    for delta in deltas {
        assert_eq!(delta["type"], "speech.audio.delta");
        assert_eq!(delta.as_object().unwrap().len(), 2, "{delta}");
        use base64::Engine as _;
        pcm.extend(
            base64::engine::general_purpose::STANDARD
                .decode(delta["audio"].as_str().unwrap())
                .unwrap(),
        );
    }
    assert_eq!(pcm.len() % 2, 0);
    assert!(pcm.len() / 2 >= 2 * 960, "{} samples", pcm.len() / 2);

    // Listings, answered without the model, in the shapes Open WebUI reads.
    let get = |path: &'static str| {
        let request = api.http.get(url(path)).bearer_auth("sk-test");
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let voices = get("/v1/audio/voices").await;
    let ids: Vec<&str> = voices["voices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"alloy") && ids.contains(&"cedar") && ids.len() == 13,
        "{voices}"
    );
    let models = get("/v1/audio/models").await;
    assert_eq!(models["models"][3]["id"], "chatterbox-turbo");
    let unknown = api
        .http
        .get(url("/v1/nothing"))
        .bearer_auth("sk-test")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let error: Value = unknown.json().await.unwrap();
    assert_eq!(error["error"]["code"], "not_found");

    // A browser's preflight is answered without a key, for the configured origin only.
    let preflight = api
        .http
        .request(reqwest::Method::OPTIONS, url("/v1/audio/speech"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, x-stainless-os",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(
        preflight.headers()["access-control-allow-headers"],
        "authorization, x-stainless-os"
    );
    let other = api
        .http
        .get(url("/ping"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

/// A client that hangs up mid-stream frees the engine: the rest of its text is never spoken
/// (the model thread's counts show it) and the next request is answered.
#[tokio::test]
async fn a_client_that_hangs_up_stops_its_speech() {
    let volume = tempfile::tempdir().unwrap();
    let api = LocalApi::real(&common::tiny_checkpoint_vars(volume.path(), 30)).await;
    let sentence = "This sentence is one of many that make a text of several chunks. ";
    let text = sentence.repeat(4000 / sentence.len());
    let chunks = text.len().div_ceil(300);
    assert!(chunks >= 14);
    let speech = |input: &str| {
        api.http
            .post(format!("{}/v1/audio/speech", api.base))
            .json(&json!({"model": "tts-1", "input": input, "voice": "alloy",
                          "response_format": "pcm"}))
            .send()
    };

    let mut response = speech(&text).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let first = response.chunk().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(response);

    let next = speech("Hello there.").await.unwrap();
    assert_eq!(next.status(), StatusCode::OK);
    assert!(!next.bytes().await.unwrap().is_empty());
    let info = api.job(json!({"task": "info"})).await.unwrap();
    let counts = &info["model_requests"];
    let run = counts["run"].as_u64().unwrap();
    eprintln!("model requests after the hang-up: {counts}");
    // Writes into a closed socket may succeed once or twice before the hang-up is noticed;
    // the chunk then being spoken stops at its next token (counted as stopped).
    assert!(counts["stopped"].as_u64().unwrap() <= 1, "{counts}");
    assert!(
        (2..=6).contains(&run),
        "{run} model runs for the first chunks of {chunks} and one more request"
    );
}

/// A stand-in Hugging Face that holds every answer until released, then fails it.
struct GatedHub {
    endpoint: String,
    release: tokio::sync::watch::Sender<bool>,
}

impl GatedHub {
    async fn start() -> Self {
        let (release, released) = tokio::sync::watch::channel(false);
        let app = axum::Router::new().fallback(move || {
            let mut released = released.clone();
            async move {
                let _ = released.wait_for(|open| *open).await;
                StatusCode::INTERNAL_SERVER_ERROR
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { endpoint, release }
    }
}

/// /ping's answer until it is no longer `while_status` (a bound, so a hang fails).
async fn ping_after(api: &Api, while_status: u16) -> u16 {
    for _ in 0..3000 {
        let status = api
            .http
            .get(format!("{}/ping", api.base))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status != while_status {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("/ping stayed {while_status}");
}

/// CHATTERBOX_PRELOAD=1: /ping says 204 while the engine loads, then 200 when it is ready or
/// 503 when loading failed, as RunPod's load balancer reads it.
#[tokio::test]
async fn ping_follows_the_preloading_engine() {
    let volume = tempfile::tempdir().unwrap();
    let hub = GatedHub::start().await;
    let api = LocalApi::real(&[
        ("CHATTERBOX_VOLUME", volume.path().display().to_string()),
        ("HF_ENDPOINT", hub.endpoint.clone()),
        ("CHATTERBOX_PRELOAD", "1".into()),
    ])
    .await;
    let ping = api.http.get(format!("{}/ping", api.base));
    assert_eq!(ping.send().await.unwrap().status(), StatusCode::NO_CONTENT);
    hub.release.send(true).unwrap();
    assert_eq!(ping_after(&api, 204).await, 503);
    let info = api.job(json!({"task": "info"})).await.unwrap();
    assert_eq!(info["engine"]["state"], "failed", "{info}");
    assert!(
        info["engine"]["error"].as_str().unwrap().contains("500"),
        "{info}"
    );

    let mut vars = common::tiny_checkpoint_vars(volume.path(), 12);
    vars.push(("CHATTERBOX_PRELOAD", "1".into()));
    let ready = LocalApi::real(&vars).await;
    assert_eq!(ping_after(&ready, 204).await, 200);
}
