//! The environment RunPod gives a serverless worker (see docs/configuration.md).

use std::time::Duration;

use super::url;

/// How the SDK names the variables; kept here so the docs and the code agree.
pub const GET_JOB: &str = "RUNPOD_WEBHOOK_GET_JOB";
pub const POST_OUTPUT: &str = "RUNPOD_WEBHOOK_POST_OUTPUT";
pub const POST_STREAM: &str = "RUNPOD_WEBHOOK_POST_STREAM";
pub const PING: &str = "RUNPOD_WEBHOOK_PING";
pub const PING_INTERVAL: &str = "RUNPOD_PING_INTERVAL";
pub const API_KEY: &str = "RUNPOD_AI_API_KEY";
pub const POD_ID: &str = "RUNPOD_POD_ID";
pub const POD_HOSTNAME: &str = "RUNPOD_POD_HOSTNAME";

const DEFAULT_PING_INTERVAL_MS: u64 = 10_000;
/// The SDK turns intervals under a second into a busy loop; we keep a floor instead.
const MIN_PING_INTERVAL_MS: u64 = 100;

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("{name} is not set; RunPod sets it for every serverless worker")]
    Missing { name: &'static str },
    #[error("{name} is not a URL template ({value:?}): {reason}")]
    BadUrl {
        name: &'static str,
        value: String,
        reason: ::url::ParseError,
    },
    #[error("{PING_INTERVAL} must be a whole number of milliseconds, not {0:?}")]
    BadPingInterval(String),
}

/// Everything the worker needs to talk to the platform.
#[derive(Clone)]
pub struct PlatformEnv {
    pub job_take: String,
    pub job_done: String,
    pub job_stream: Option<String>,
    /// `None` when the SDK would not ping either: no ping URL, API key or pod id.
    pub ping: Option<String>,
    pub api_key: String,
    pub worker_id: String,
    pub hostname: String,
    pub ping_interval: Duration,
}

impl std::fmt::Debug for PlatformEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformEnv")
            .field("job_take", &self.job_take)
            .field("job_done", &self.job_done)
            .field("job_stream", &self.job_stream)
            .field("ping", &self.ping)
            .field("api_key", &"<redacted>")
            .field("worker_id", &self.worker_id)
            .field("hostname", &self.hostname)
            .field("ping_interval", &self.ping_interval)
            .finish()
    }
}

impl PlatformEnv {
    /// Reads the platform's variables through `var` (the process environment in production, a
    /// map in tests). Returns `Ok(None)` when `RUNPOD_WEBHOOK_GET_JOB` is unset: that is the
    /// SDK's signal for local mode.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, EnvError> {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let Some(job_take) = set(GET_JOB) else {
            return Ok(None);
        };
        let job_done = set(POST_OUTPUT).ok_or(EnvError::Missing { name: POST_OUTPUT })?;
        let job_stream = set(POST_STREAM);
        let api_key = set(API_KEY).unwrap_or_default();
        let pod_id = set(POD_ID);
        let worker_id = pod_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let ping = set(PING).filter(|_| !api_key.is_empty() && pod_id.is_some());
        let ping_interval = match set(PING_INTERVAL) {
            None => DEFAULT_PING_INTERVAL_MS,
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map_err(|_| EnvError::BadPingInterval(v))?,
        };
        let env = PlatformEnv {
            job_take,
            job_done,
            job_stream,
            ping,
            api_key,
            worker_id,
            hostname: set(POD_HOSTNAME).unwrap_or_else(|| "unknown".into()),
            ping_interval: Duration::from_millis(ping_interval.max(MIN_PING_INTERVAL_MS)),
        };
        env.check_templates()?;
        Ok(Some(env))
    }

    /// Fails at start-up, not at the first job, when a template cannot become a URL.
    fn check_templates(&self) -> Result<(), EnvError> {
        let templates = [
            (GET_JOB, Some(&self.job_take)),
            (POST_OUTPUT, Some(&self.job_done)),
            (POST_STREAM, self.job_stream.as_ref()),
            (PING, self.ping.as_ref()),
        ];
        for (name, template) in templates {
            let Some(template) = template else { continue };
            url::with_query(&url::fill(template, "worker", "job"), &[]).map_err(|reason| {
                EnvError::BadUrl {
                    name,
                    value: template.clone(),
                    reason,
                }
            })?;
        }
        Ok(())
    }

    /// The job-stop channel lives beside job-take; a template without `/job-take/` has none.
    pub fn job_stop(&self) -> Option<String> {
        self.job_take
            .contains("/job-take/")
            .then(|| self.job_take.replace("/job-take/", "/job-stop/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn without_the_job_take_url_the_worker_is_local() {
        assert!(PlatformEnv::from_lookup(lookup(&[])).unwrap().is_none());
    }

    #[test]
    fn production_needs_a_job_done_url_and_valid_templates() {
        let err =
            PlatformEnv::from_lookup(lookup(&[(GET_JOB, "http://h/job-take/$ID")])).unwrap_err();
        assert!(err.to_string().contains(POST_OUTPUT));
        let err = PlatformEnv::from_lookup(lookup(&[
            (GET_JOB, "not a url/$ID"),
            (POST_OUTPUT, "http://h/done/$ID"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains(GET_JOB), "{err}");
    }

    #[test]
    fn pings_need_key_and_pod_id_and_the_interval_is_milliseconds() {
        let base = [
            (GET_JOB, "http://h/v2/ep/job-take/$ID?gpu=x"),
            (POST_OUTPUT, "http://h/done/$RUNPOD_POD_ID/$ID"),
            (PING, "http://h/ping/$RUNPOD_POD_ID"),
        ];
        let env = PlatformEnv::from_lookup(lookup(&base)).unwrap().unwrap();
        assert!(env.ping.is_none());
        assert_eq!(env.ping_interval, Duration::from_secs(10));
        assert_eq!(
            env.job_stop().as_deref(),
            Some("http://h/v2/ep/job-stop/$ID?gpu=x")
        );

        let mut full = base.to_vec();
        full.extend([(API_KEY, "k"), (POD_ID, "pod"), (PING_INTERVAL, "2500")]);
        let env = PlatformEnv::from_lookup(lookup(&full)).unwrap().unwrap();
        assert!(env.ping.is_some());
        assert_eq!(env.worker_id, "pod");
        assert_eq!(env.ping_interval, Duration::from_millis(2500));
        assert!(!format!("{env:?}").contains("\"k\""));
    }
}
