//! The RunPod serverless job protocol, as the official Python SDK (runpod-python 1.12.0) speaks
//! it: job-take (single and batch), job-stop, job-done, job-stream, the heartbeat, and the local
//! replay of a test input.

pub mod client;
pub mod env;
pub mod local;
pub mod result;
pub mod url;
pub mod worker;

use std::time::Duration;

/// The SDK version whose behaviour this module reproduces; sent as `runpod_version`.
pub const PROTOCOL_VERSION: &str = "1.12.0";

/// The protocol's waits. `Default` holds the SDK's values; tests shorten them.
#[derive(Debug, Clone)]
pub struct Timings {
    /// Bound on one job-take or job-stop long poll.
    pub take_timeout: Duration,
    /// Pause after the platform answers 429.
    pub too_many_requests_pause: Duration,
    /// Pause after a failed take, and after an empty or failed job-stop poll.
    pub error_pause: Duration,
    /// Pauses between attempts of a job-done or job-stream post (3 attempts in all).
    pub post_retry_pauses: Vec<Duration>,
    /// Pauses between attempts of one heartbeat.
    pub ping_retry_pauses: Vec<Duration>,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            take_timeout: Duration::from_secs(90),
            too_many_requests_pause: Duration::from_secs(5),
            error_pause: Duration::from_secs(1),
            post_retry_pauses: vec![Duration::from_secs(2), Duration::from_secs(3)],
            ping_retry_pauses: vec![Duration::from_secs(1), Duration::from_secs(2)],
        }
    }
}
