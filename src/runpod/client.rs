//! HTTP calls to the RunPod platform, shaped exactly as the Python SDK sends them.

use std::time::Duration;

use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use super::env::PlatformEnv;
use super::url::{fill, with_query};
use super::{PROTOCOL_VERSION, Timings};

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("the platform asked us to slow down (429)")]
    TooManyRequests,
    #[error("the platform answered {0}")]
    Status(StatusCode),
    #[error("the request to the platform failed: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("bad platform URL: {0}")]
    Url(#[from] url::ParseError),
}

pub struct PlatformClient {
    http: reqwest::Client,
    env: PlatformEnv,
    timings: Timings,
}

impl PlatformClient {
    pub fn new(env: PlatformEnv, timings: Timings) -> anyhow::Result<Self> {
        let mut headers = header::HeaderMap::new();
        // Sent verbatim: the platform expects the raw key, not a bearer token.
        let mut key = header::HeaderValue::from_str(&env.api_key)
            .map_err(|_| anyhow::anyhow!("RUNPOD_AI_API_KEY holds characters a header cannot"))?;
        key.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, key);
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(format!(
                "chatterbox-worker/{} (RunPod serverless protocol {PROTOCOL_VERSION})",
                env!("CARGO_PKG_VERSION")
            ))
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self { http, env, timings })
    }

    pub fn env(&self) -> &PlatformEnv {
        &self.env
    }

    pub fn timings(&self) -> &Timings {
        &self.timings
    }

    /// A job-take or job-stop long poll; 429 becomes [`PlatformError::TooManyRequests`].
    async fn long_poll(&self, url: reqwest::Url) -> Result<reqwest::Response, PlatformError> {
        let response = self
            .http
            .get(url)
            .timeout(self.timings.take_timeout)
            .send()
            .await?;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            return Err(PlatformError::TooManyRequests);
        }
        Ok(response)
    }

    /// Long-polls for up to `count` jobs. Returns the raw job objects; an empty list means none.
    pub async fn take(
        &self,
        count: usize,
        job_in_progress: bool,
    ) -> Result<Vec<Value>, PlatformError> {
        let template = fill(&self.env.job_take, &self.env.worker_id, &self.env.worker_id);
        let in_progress = if job_in_progress { "1" } else { "0" };
        let url = if count > 1 {
            let batch = count.to_string();
            with_query(
                &template.replace("/job-take/", "/job-take-batch/"),
                &[("batch_size", &batch), ("job_in_progress", in_progress)],
            )?
        } else {
            with_query(&template, &[("job_in_progress", in_progress)])?
        };
        let response = self.long_poll(url).await?;
        match response.status() {
            StatusCode::NO_CONTENT => return Ok(Vec::new()),
            // RunPod answers 400 while FlashBoot holds the worker; nothing to take.
            StatusCode::BAD_REQUEST => return Ok(Vec::new()),
            status if !status.is_success() => return Err(PlatformError::Status(status)),
            _ => {}
        }
        let is_json = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let body = response.bytes().await?;
        if !is_json || body.is_empty() {
            return Ok(Vec::new());
        }
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Array(jobs)) => Ok(jobs),
            Ok(Value::Null) => Ok(Vec::new()),
            Ok(job) => Ok(vec![job]),
            Err(error) => {
                tracing::warn!(%error, "job-take answered with JSON we cannot read; ignored");
                Ok(Vec::new())
            }
        }
    }

    /// Long-polls the job-stop channel for ids of jobs the platform has cancelled.
    pub async fn jobs_to_stop(&self, stop_template: &str) -> Result<Vec<String>, PlatformError> {
        let url = with_query(
            &fill(stop_template, &self.env.worker_id, &self.env.worker_id),
            &[],
        )?;
        let response = self.long_poll(url).await?;
        match response.status() {
            StatusCode::OK => {}
            status if status.is_success() => return Ok(Vec::new()),
            status => return Err(PlatformError::Status(status)),
        }
        let body: Value = response.json().await.unwrap_or(Value::Null);
        Ok(body["jobsToStop"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| id.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Posts a job's final result.
    pub async fn job_done(
        &self,
        job_id: &str,
        body: &Value,
        is_stream: bool,
    ) -> Result<(), PlatformError> {
        let is_stream = if is_stream { "true" } else { "false" };
        self.post(&self.env.job_done, job_id, body, is_stream).await
    }

    /// Posts a progress update; the platform shows it as the running job's output.
    pub async fn progress(&self, job_id: &str, update: Value) -> Result<(), PlatformError> {
        let body = json!({"status": "IN_PROGRESS", "output": update});
        self.post(&self.env.job_done, job_id, &body, "false").await
    }

    /// Posts one chunk of a streaming job. Without a stream URL the chunk is only logged.
    pub async fn stream_chunk(&self, job_id: &str, chunk: Value) -> Result<(), PlatformError> {
        let Some(template) = &self.env.job_stream else {
            tracing::warn!("RUNPOD_WEBHOOK_POST_STREAM is not set; a stream chunk was dropped");
            return Ok(());
        };
        self.post(template, job_id, &json!({"output": chunk}), "false")
            .await
    }

    /// The SDK's post: JSON text labelled as a form, retried on 5xx (and, unlike the SDK, on
    /// transport errors, since a lost final post loses the job).
    async fn post(
        &self,
        template: &str,
        job_id: &str,
        body: &Value,
        is_stream: &str,
    ) -> Result<(), PlatformError> {
        let url = with_query(
            &fill(template, &self.env.worker_id, job_id),
            &[("isStream", is_stream)],
        )?;
        let body = body.to_string();
        let request = || {
            self.http
                .post(url.clone())
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header("charset", "utf-8")
                .header("X-Request-ID", job_id)
                .body(body.clone())
        };
        send_retrying(
            request,
            |s| s.is_server_error(),
            &self.timings.post_retry_pauses,
        )
        .await
    }

    /// One heartbeat with the ids of the jobs in flight.
    pub async fn ping(&self, ping_template: &str, job_ids: &[String]) -> Result<(), PlatformError> {
        let joined = job_ids.join(",");
        let mut query = Vec::with_capacity(2);
        if !joined.is_empty() {
            query.push(("job_id", joined.as_str()));
        }
        query.push(("runpod_version", PROTOCOL_VERSION));
        let url = with_query(
            &fill(ping_template, &self.env.worker_id, &self.env.worker_id),
            &query,
        )?;
        let request = || {
            self.http
                .get(url.clone())
                .timeout(self.env.ping_interval * 2)
        };
        let retry = |status: StatusCode| {
            status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
        };
        send_retrying(request, retry, &self.timings.ping_retry_pauses).await
    }
}

/// Sends `request` until it succeeds, pausing between attempts; only transport errors and the
/// statuses `retry` accepts are tried again.
async fn send_retrying(
    request: impl Fn() -> reqwest::RequestBuilder,
    retry: impl Fn(StatusCode) -> bool,
    pauses: &[Duration],
) -> Result<(), PlatformError> {
    let mut pauses = pauses.iter();
    loop {
        let error = match request().send().await {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) if retry(response.status()) => PlatformError::Status(response.status()),
            Ok(response) => return Err(PlatformError::Status(response.status())),
            Err(error) => PlatformError::Transport(error),
        };
        let Some(pause) = pauses.next() else {
            return Err(error);
        };
        tracing::warn!(%error, "a request to the platform failed; retrying");
        tokio::time::sleep(*pause).await;
    }
}
