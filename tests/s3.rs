//! S3 output against a real S3-compatible server on 127.0.0.1: s3s-fs, served in-process by
//! the test, checking SigV4 signatures like AWS does (a wrong secret is refused, a tampered
//! presigned URL too). Results upload under `{job_id}/` and come back as presigned GET URLs
//! that a plain HTTP client fetches.

mod common;

use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};

use chatterbox_worker::audio::{self, wav};
use common::LocalApi;

/// An s3s-fs server storing buckets as folders under its own temporary directory.
struct S3Server {
    endpoint: String,
    root: tempfile::TempDir,
}

impl S3Server {
    async fn start(access_key: &str, secret_key: &str, buckets: &[&str]) -> Self {
        let root = tempfile::tempdir().unwrap();
        for bucket in buckets {
            std::fs::create_dir(root.path().join(bucket)).unwrap();
        }
        let fs = s3s_fs::FileSystem::new(root.path()).unwrap();
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(access_key, secret_key));
        let service = builder.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            while let Ok((socket, _)) = listener.accept().await {
                let connection = http
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                tokio::spawn(connection);
            }
        });
        Self { endpoint, root }
    }

    fn stored(&self, bucket: &str, job_id: &str) -> Vec<String> {
        let folder = self.root.path().join(bucket).join(job_id);
        let mut names: Vec<String> = std::fs::read_dir(folder)
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

fn volume() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("output");
    std::fs::create_dir_all(&output).unwrap();
    let tone: Vec<f32> = (0..24_000).map(|i| 0.3 * (i as f32 * 0.1).sin()).collect();
    std::fs::write(
        output.join("clip.wav"),
        wav::encode(&tone, 24_000, wav::SampleFormat::Pcm16),
    )
    .unwrap();
    dir
}

const CONCAT: fn() -> Value = || json!({"task": "concat", "files": ["clip.wav", "(500ms)"], "export_formats": ["wav", "mp3"]});

/// Runs a whole job body through /runsync: (job id, output or error).
async fn runsync(api: &LocalApi, body: Value) -> (String, Result<Value, String>) {
    let (_, answer) = api.post("/runsync", body).await;
    let id = answer["id"].as_str().unwrap().to_string();
    let result = match answer["status"].as_str() {
        Some("COMPLETED") => Ok(answer["output"].clone()),
        _ => Err(answer["error"].to_string()),
    };
    (id, result)
}

#[tokio::test]
async fn results_upload_to_the_configured_bucket_as_presigned_urls() {
    let server = S3Server::start("worker-key", "worker-secret", &["audio"]).await;
    let volume = volume();
    let api = LocalApi::real(&[
        ("CHATTERBOX_VOLUME", volume.path().display().to_string()),
        ("BUCKET_ENDPOINT_URL", server.endpoint.clone()),
        ("BUCKET_ACCESS_KEY_ID", "worker-key".into()),
        ("BUCKET_SECRET_ACCESS_KEY", "worker-secret".into()),
        ("BUCKET_NAME", "audio".into()),
        ("CHATTERBOX_S3_URL_EXPIRY", "3600".into()),
    ])
    .await;
    let (id, output) = runsync(&api, json!({"input": CONCAT()})).await;
    let output = output.unwrap();
    assert!(
        output.get("audio_base64").is_none(),
        "no base64 with a bucket"
    );
    let text = output.to_string();
    assert!(!text.contains("worker-secret"), "the secret leaked: {text}");
    let stored = server.stored("audio", &id);
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(
        stored.iter().all(|name| name.starts_with("concat_")),
        "{stored:?}"
    );

    let http = reqwest::Client::new();
    for (entry, content_type) in output["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .zip(["audio/wav", "audio/mpeg"])
    {
        let url = entry["audio_url"].as_str().unwrap();
        assert!(
            url.starts_with(&format!("{}/audio/{id}/concat_", server.endpoint)),
            "{url}"
        );
        assert!(url.contains("X-Amz-Expires=3600"), "{url}");
        let response = http.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        assert_eq!(response.headers()["content-type"], content_type);
        let bytes = response.bytes().await.unwrap();
        assert_eq!(bytes.len() as u64, entry["bytes"].as_u64().unwrap());
        let clip = audio::decode(&bytes).unwrap();
        assert!(
            (clip.duration_seconds() - 1.5).abs() < 0.1,
            "{}",
            clip.duration_seconds()
        );
        // A tampered signature is refused by the server.
        let tampered = url.replace("X-Amz-Expires=3600", "X-Amz-Expires=3601");
        assert_eq!(http.get(tampered).send().await.unwrap().status(), 403);
    }
    assert_eq!(output["audio_url"], output["outputs"][0]["audio_url"]);
}

#[tokio::test]
async fn a_jobs_s3_config_wins_and_wrong_credentials_fail_clearly() {
    let configured = S3Server::start("env-key", "env-secret", &["audio"]).await;
    let own = S3Server::start("job-key", "job-secret", &["jobs"]).await;
    let volume = volume();
    let api = LocalApi::real(&[
        ("CHATTERBOX_VOLUME", volume.path().display().to_string()),
        ("S3_ENDPOINT_URL", configured.endpoint.clone()),
        ("S3_ACCESS_KEY_ID", "env-key".into()),
        ("S3_SECRET_ACCESS_KEY", "env-secret".into()),
        ("S3_BUCKET_NAME", "audio".into()),
    ])
    .await;
    let s3_config = json!({
        "endpointUrl": own.endpoint,
        "accessId": "job-key",
        "accessSecret": "job-secret",
        "bucketName": "jobs",
    });
    let (id, output) = runsync(&api, json!({"input": CONCAT(), "s3Config": s3_config})).await;
    let output = output.unwrap();
    assert_eq!(own.stored("jobs", &id).len(), 2);
    assert!(configured.stored("audio", &id).is_empty());
    let url = output["audio_url"].as_str().unwrap();
    assert!(url.starts_with(&own.endpoint), "{url}");
    // The default (seven days, rp_upload's) when no expiry is configured.
    assert!(url.contains("X-Amz-Expires=604800"), "{url}");

    // A wrong secret: the job fails with the store's own reason, the secret nowhere.
    let wrong = json!({
        "endpointUrl": own.endpoint,
        "accessId": "job-key",
        "accessSecret": "not-the-secret",
        "bucketName": "jobs",
    });
    let (_, error) = runsync(&api, json!({"input": CONCAT(), "s3Config": wrong})).await;
    let error = error.unwrap_err();
    assert!(
        error.contains("uploading") && error.contains("SignatureDoesNotMatch"),
        "{error}"
    );
    assert!(!error.contains("not-the-secret"), "{error}");
    // A malformed s3Config is named before any work.
    let (_, error) = runsync(
        &api,
        json!({"input": CONCAT(), "s3Config": {"accessId": "x"}}),
    )
    .await;
    assert!(
        error
            .unwrap_err()
            .contains("s3Config: endpointUrl is required")
    );
    // Without any bucket the same job answers base64.
    let plain = LocalApi::real(&[("CHATTERBOX_VOLUME", volume.path().display().to_string())]).await;
    let (_, output) = runsync(&plain, json!({"input": CONCAT()})).await;
    assert!(output.unwrap()["audio_base64"].is_string());
}

/// Secrets never reach a log line, not even at `RUST_LOG=trace` with every dependency's
/// tracing on: the S3 keys, the platform's key, serve's key and a password inside an audio URL,
/// through the real binary on the queue with an upload and a URL fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs_at_trace_level() {
    const S3_KEY: &str = "AKIDCHATTERBOXSECRET";
    const S3_SECRET: &str = "s3-secret-7f3a9c";
    const SERVE_KEY: &str = "sk-serve-secret-5521";
    const URL_PASSWORD: &str = "url-password-8d1e";
    let server = S3Server::start(S3_KEY, S3_SECRET, &["audio"]).await;
    let volume = volume();
    let clip = std::fs::read(volume.path().join("output/clip.wav")).unwrap();
    let app = axum::Router::new().route(
        "/clip.wav",
        axum::routing::get(move || {
            let clip = clip.clone();
            async move { clip }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let clip_host = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let fake = common::FakeRunPod::start().await;
    let url = format!("http://listener:{URL_PASSWORD}@{clip_host}/clip.wav");
    fake.job(
        json!({"id": "with-url", "input": {"task": "concat", "segments": [
            {"type": "file", "source": "clip.wav"},
            {"type": "url", "url": url},
        ]}}),
    );
    fake.job(json!({"id": "bad-url", "input": {"task": "concat", "segments": [
        {"type": "url", "url": format!("http://listener:{URL_PASSWORD}@{clip_host}/missing.wav")},
    ]}}));
    // Trace logging fills a pipe long before the worker exits: the logs go to a file.
    let log_path = volume.path().join("worker.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_chatterbox-worker"))
        .current_dir(volume.path())
        .envs(fake.env())
        .env("RUST_LOG", "trace")
        .env("CHATTERBOX_VOLUME", volume.path())
        .env("CHATTERBOX_ALLOW_PRIVATE_URLS", "true")
        .env("BUCKET_ENDPOINT_URL", &server.endpoint)
        .env("BUCKET_ACCESS_KEY_ID", S3_KEY)
        .env("BUCKET_SECRET_ACCESS_KEY", S3_SECRET)
        .env("BUCKET_NAME", "audio")
        .env("API_KEY", SERVE_KEY)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    fake.wait_until("both results", |f| {
        ["with-url", "bad-url"]
            .iter()
            .all(|id| !f.results_for(id).is_empty())
    })
    .await;
    common::sigterm_and_wait(child).await;

    let uploaded = fake.results_for("with-url")[0].json();
    assert!(
        uploaded["output"]["audio_url"].is_string(),
        "the upload happened: {uploaded}"
    );
    let refused = fake.results_for("bad-url")[0].json();
    assert!(refused["error"].is_string(), "{refused}");
    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(logs.lines().count() > 50, "trace logging is on:\n{logs}");
    let posted: String = fake.seen().iter().map(|s| s.json().to_string()).collect();
    for secret in [S3_SECRET, common::API_KEY, SERVE_KEY, URL_PASSWORD] {
        let leaks: Vec<&str> = logs.lines().filter(|l| l.contains(secret)).collect();
        assert!(
            leaks.is_empty(),
            "{secret} is in the logs:\n{}",
            leaks.join("\n")
        );
        let at = posted
            .find(secret)
            .map(|i| &posted[i.saturating_sub(300)..(i + 100).min(posted.len())]);
        assert!(at.is_none(), "{secret} was posted: {at:?}");
    }
    // The access key id is no secret: every presigned URL carries it (X-Amz-Credential).
}
