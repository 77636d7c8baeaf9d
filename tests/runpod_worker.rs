//! The production loop against a fake RunPod platform served on 127.0.0.1.

mod common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use chatterbox_worker::runpod::client::PlatformClient;
use chatterbox_worker::runpod::env::PlatformEnv;
use chatterbox_worker::runpod::worker::{self, WorkerOptions};
use chatterbox_worker::runpod::{PROTOCOL_VERSION, Timings};
use common::{API_KEY, FakeRunPod, POD_ID, Scripted, Take};

fn fast_timings() -> Timings {
    Timings {
        take_timeout: Duration::from_secs(5),
        too_many_requests_pause: Duration::from_millis(300),
        error_pause: Duration::from_millis(50),
        post_retry_pauses: vec![Duration::from_millis(50), Duration::from_millis(50)],
        ping_retry_pauses: vec![Duration::from_millis(50)],
    }
}

struct Running {
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    /// Asks the worker to stop and waits until it has drained.
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("the worker did not drain")
            .unwrap();
    }
}

fn start(fake: &FakeRunPod, concurrency: usize, refresh_worker: bool) -> Running {
    let pairs = fake.env();
    let env = PlatformEnv::from_lookup(|name| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap()
    .unwrap();
    let client = PlatformClient::new(env, fast_timings()).unwrap();
    let shutdown = CancellationToken::new();
    let options = WorkerOptions {
        concurrency,
        refresh_worker,
    };
    let task = tokio::spawn(worker::run(
        client,
        Arc::new(Scripted),
        options,
        shutdown.clone(),
    ));
    Running { shutdown, task }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_taken_run_and_posted_once_with_the_sdk_headers() {
    let fake = FakeRunPod::start().await;
    fake.job(json!({"id": "job-1", "input": {"output": {"answer": "é"}}}));
    let worker = start(&fake, 1, false);
    fake.wait_until("the result", |f| f.results_for("job-1").len() == 1)
        .await;
    worker.stop().await;

    let take = &fake.seen_at("/job-take/")[0];
    assert_eq!(take.path, format!("/v2/ep/job-take/{POD_ID}"));
    assert_eq!(take.query_param("gpu").as_deref(), Some("TEST"));
    assert_eq!(take.query_param("job_in_progress").as_deref(), Some("0"));
    assert_eq!(take.header("authorization"), Some(API_KEY));

    let results = fake.results_for("job-1");
    assert_eq!(results.len(), 1);
    let done = &results[0];
    assert_eq!(done.path, format!("/v2/ep/job-done/{POD_ID}/job-1"));
    assert_eq!(done.query, "gpu=TEST&isStream=false");
    assert_eq!(
        done.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(done.header("charset"), Some("utf-8"));
    assert_eq!(done.header("x-request-id"), Some("job-1"));
    assert_eq!(done.header("authorization"), Some(API_KEY));
    assert_eq!(done.body, r#"{"output":{"answer":"é"}}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_slots_are_filled_with_a_batch_take() {
    let fake = FakeRunPod::start().await;
    let jobs: Vec<Value> = (0..3)
        .map(|i| json!({"id": format!("b{i}"), "input": {"sleep_ms": 100}}))
        .collect();
    fake.job(Value::Array(jobs));
    let worker = start(&fake, 3, false);
    fake.wait_until("three results", |f| {
        (0..3).all(|i| f.results_for(&format!("b{i}")).len() == 1)
    })
    .await;
    worker.stop().await;

    let first = &fake.seen_at("/job-take")[0];
    assert_eq!(first.path, format!("/v2/ep/job-take-batch/{POD_ID}"));
    assert_eq!(first.query_param("batch_size").as_deref(), Some("3"));
    assert_eq!(first.query_param("job_in_progress").as_deref(), Some("0"));
    for i in 0..3 {
        assert_eq!(fake.results_for(&format!("b{i}")).len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_slot_takes_while_a_job_runs() {
    let fake = FakeRunPod::start().await;
    fake.job(json!({"id": "long", "input": {"sleep_ms": 600}}));
    fake.job(json!({"id": "short", "input": {}}));
    let worker = start(&fake, 2, false);
    fake.wait_until("both results", |f| {
        f.results_for("long").len() == 1 && f.results_for("short").len() == 1
    })
    .await;
    worker.stop().await;

    let takes = fake.seen_at("/job-take");
    assert_eq!(takes[0].query_param("batch_size").as_deref(), Some("2"));
    // With one job running, one slot is free: a single take that says a job is in progress.
    assert_eq!(takes[1].path, format!("/v2/ep/job-take/{POD_ID}"));
    assert_eq!(
        takes[1].query_param("job_in_progress").as_deref(),
        Some("1")
    );
    // "short" finished while "long" was still running.
    let done: Vec<String> = fake
        .seen_at("/job-done/")
        .iter()
        .map(|s| s.path.clone())
        .collect();
    assert!(done[0].ends_with("/short"), "{done:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_job_answers_and_429_are_waited_out() {
    let fake = FakeRunPod::start().await;
    fake.take(Take::Status(204))
        .take(Take::Status(400))
        .take(Take::Status(429))
        .take(Take::Status(500))
        .job(json!({"id": "after", "input": {}}));
    let worker = start(&fake, 1, false);
    fake.wait_until("the result", |f| f.results_for("after").len() == 1)
        .await;
    worker.stop().await;
    assert!(fake.seen_at("/job-take/").len() >= 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_done_is_retried_on_5xx_only() {
    let fake = FakeRunPod::start().await;
    fake.done_statuses(&[500, 503, 200, 404]);
    fake.job(json!({"id": "retried", "input": {}}));
    fake.job(json!({"id": "refused", "input": {}}));
    let worker = start(&fake, 1, false);
    fake.wait_until("both posts", |f| f.results_for("refused").len() == 1)
        .await;
    worker.stop().await;

    let attempts = fake.results_for("retried");
    assert_eq!(attempts.len(), 3);
    assert!(attempts.iter().all(|a| a.body == attempts[0].body));
    // A 4xx is final: no second attempt.
    assert_eq!(fake.results_for("refused").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_jobs_are_answered_when_they_have_an_id() {
    let fake = FakeRunPod::start().await;
    fake.job(json!([
        {"input": {"output": "no id"}},
        {"id": "no-input"},
        "not an object",
    ]));
    fake.job(json!({"id": "fine", "input": {}}));
    let worker = start(&fake, 3, false);
    fake.wait_until("the good job", |f| f.results_for("fine").len() == 1)
        .await;
    fake.wait_until("the answer", |f| f.results_for("no-input").len() == 1)
        .await;
    worker.stop().await;

    // The scripted handler echoes its input: a missing input reaches it as null.
    assert_eq!(
        fake.results_for("no-input")[0].json(),
        json!({"output": null})
    );
    assert_eq!(fake.seen_at("/job-done/").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_posts_nothing_and_the_worker_goes_on() {
    let fake = FakeRunPod::start().await;
    fake.job(json!({"id": "doomed", "input": {"sleep_ms": 30000}}));
    let worker = start(&fake, 1, false);
    fake.wait_until("the job to be pinged", |f| {
        f.seen_at("/ping/")
            .iter()
            .any(|p| p.query_param("job_id").as_deref() == Some("doomed"))
    })
    .await;
    fake.stop(&["doomed"]);
    fake.job(json!({"id": "next", "input": {}}));
    fake.wait_until("the next job", |f| f.results_for("next").len() == 1)
        .await;
    worker.stop().await;

    assert!(fake.results_for("doomed").is_empty());
    let stop_poll = &fake.seen_at("/job-stop/")[0];
    assert_eq!(stop_poll.path, format!("/v2/ep/job-stop/{POD_ID}"));
    assert_eq!(stop_poll.header("authorization"), Some(API_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_names_the_jobs_in_flight() {
    let fake = FakeRunPod::start().await;
    fake.job(json!({"id": "slow", "input": {"sleep_ms": 800}}));
    let worker = start(&fake, 1, false);
    fake.wait_until("a ping naming the job", |f| {
        f.seen_at("/ping/")
            .iter()
            .any(|p| p.query_param("job_id").as_deref() == Some("slow"))
    })
    .await;
    fake.wait_until("the result", |f| f.results_for("slow").len() == 1)
        .await;
    let pings_before = fake.seen_at("/ping/").len();
    fake.wait_until("a ping after the job", |f| {
        f.seen_at("/ping/").len() > pings_before + 1
    })
    .await;
    worker.stop().await;

    let pings = fake.seen_at("/ping/");
    assert_eq!(pings[0].path, format!("/v2/ep/ping/{POD_ID}"));
    assert_eq!(pings[0].header("authorization"), Some(API_KEY));
    assert!(
        pings
            .iter()
            .all(|p| p.query_param("runpod_version").as_deref() == Some(PROTOCOL_VERSION))
    );
    assert!(
        pings
            .iter()
            .all(|p| p.query_param("gpu").as_deref() == Some("TEST"))
    );
    let last = pings.last().unwrap();
    assert_eq!(
        last.query_param("job_id"),
        None,
        "idle pings carry no job id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_and_stream_chunks_are_posted_before_the_result() {
    let fake = FakeRunPod::start().await;
    fake.job(json!({"id": "s1", "input": {
        "progress": [{"percent": 50}],
        "stream": ["a", "b"],
        "output": ["a", "b"],
    }}));
    let worker = start(&fake, 1, false);
    fake.wait_until("the result", |f| f.results_for("s1").len() == 1)
        .await;
    worker.stop().await;

    let posts: Vec<_> = fake
        .seen()
        .into_iter()
        .filter(|s| s.path.contains("/job-done/") || s.path.contains("/job-stream/"))
        .collect();
    assert_eq!(posts.len(), 4, "{posts:#?}");
    assert!(posts[0].path.contains("/job-done/"));
    assert_eq!(
        posts[0].json(),
        json!({"status": "IN_PROGRESS", "output": {"percent": 50}})
    );
    assert_eq!(posts[0].query_param("isStream").as_deref(), Some("false"));
    for (post, chunk) in posts[1..3].iter().zip(["a", "b"]) {
        assert_eq!(post.path, format!("/v2/ep/job-stream/{POD_ID}/s1"));
        assert_eq!(post.json(), json!({"output": chunk}));
        assert_eq!(post.query_param("isStream").as_deref(), Some("false"));
    }
    assert_eq!(posts[3].json(), json!({"output": ["a", "b"]}));
    assert_eq!(posts[3].query_param("isStream").as_deref(), Some("true"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_job_fails_alone_with_the_sdk_error_report() {
    let fake = FakeRunPod::start().await;
    fake.job(json!({"id": "boom", "input": {"panic": true}}));
    fake.job(json!({"id": "calm", "input": {}}));
    let worker = start(&fake, 1, false);
    fake.wait_until("the next job", |f| f.results_for("calm").len() == 1)
        .await;
    worker.stop().await;

    let body = fake.results_for("boom")[0].json();
    let report: Value = serde_json::from_str(body["error"].as_str().unwrap()).unwrap();
    assert_eq!(report["error_type"], "panic");
    assert_eq!(report["hostname"], "test-host");
    assert_eq!(report["worker_id"], POD_ID);
    assert_eq!(report["runpod_version"], PROTOCOL_VERSION);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_the_running_job_post_first() {
    let fake = FakeRunPod::start().await;
    fake.job(json!({"id": "inflight", "input": {"sleep_ms": 500}}));
    let worker = start(&fake, 1, false);
    fake.wait_until("the job to start", |f| {
        f.seen_at("/ping/")
            .iter()
            .any(|p| p.query_param("job_id").as_deref() == Some("inflight"))
    })
    .await;
    let takes_before = fake.seen_at("/job-take").len();
    worker.stop().await;
    assert_eq!(fake.results_for("inflight").len(), 1);
    assert_eq!(
        fake.seen_at("/job-take").len(),
        takes_before,
        "no take after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_worker_posts_stop_pod_and_leaves_after_the_job() {
    let fake = FakeRunPod::start().await;
    fake.job(json!({"id": "only", "input": {"error": "handler said no"}}));
    fake.job(json!({"id": "never", "input": {}}));
    let worker = start(&fake, 1, true);
    tokio::time::timeout(Duration::from_secs(20), worker.task)
        .await
        .expect("the worker did not leave")
        .unwrap();
    assert_eq!(
        fake.results_for("only")[0].json(),
        json!({"error": "handler said no", "stopPod": true})
    );
    assert!(fake.results_for("never").is_empty());
}
