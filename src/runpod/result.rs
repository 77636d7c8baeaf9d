//! The bodies a finished job is reported with: job-done in production, stdout in local mode,
//! the status object of the local API.

use serde_json::{Map, Value, json};

use super::PROTOCOL_VERSION;
use crate::job::{Finished, Outcome};

/// Who reports a crash, as the SDK's error report names it.
#[derive(Debug, Clone)]
pub struct Reporter {
    pub hostname: String,
    pub worker_id: String,
}

impl Reporter {
    pub fn unknown() -> Self {
        Self {
            hostname: "unknown".into(),
            worker_id: "unknown".into(),
        }
    }

    /// `{"output": …}`, `{"error": …}` or `{}`, plus `"stopPod": true` when the worker is about
    /// to refresh. An output of `{}` is left out, as the SDK does.
    pub fn done_body(&self, job_id: &str, finished: &Finished, stop_pod: bool) -> Value {
        let mut body = Map::new();
        match &finished.outcome {
            Outcome::Output(Value::Object(output)) if output.is_empty() => {}
            Outcome::Output(output) => {
                body.insert("output".into(), output.clone());
            }
            Outcome::Error(error) => {
                body.insert("error".into(), error.clone());
            }
            Outcome::Crashed { kind, message } => {
                body.insert("error".into(), self.error_report(job_id, kind, message));
            }
        }
        if stop_pod {
            body.insert("stopPod".into(), Value::Bool(true));
        }
        Value::Object(body)
    }

    /// The SDK's report of a handler exception: a JSON object encoded as a string.
    fn error_report(&self, job_id: &str, kind: &str, message: &str) -> Value {
        let report = json!({
            "error_type": kind,
            "error_message": message,
            "error_traceback": format!("the worker log has the details under requestId {job_id}"),
            "hostname": self.hostname,
            "worker_id": self.worker_id,
            "runpod_version": PROTOCOL_VERSION,
        });
        Value::String(report.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(outcome: Outcome) -> Finished {
        Finished {
            outcome,
            streamed: false,
        }
    }

    #[test]
    fn bodies_follow_the_sdk_shapes() {
        let reporter = Reporter::unknown();
        let body = |o, stop| reporter.done_body("j", &finished(o), stop);
        assert_eq!(
            body(Outcome::Output(json!({"a": 1})), false),
            json!({"output": {"a": 1}})
        );
        assert_eq!(body(Outcome::Output(json!({})), false), json!({}));
        assert_eq!(
            body(Outcome::Output(json!({})), true),
            json!({"stopPod": true})
        );
        assert_eq!(
            body(Outcome::Output(json!([])), false),
            json!({"output": []})
        );
        assert_eq!(
            body(Outcome::Error(json!("bad text")), false),
            json!({"error": "bad text"})
        );
    }

    #[test]
    fn a_crash_is_reported_as_a_json_string() {
        let reporter = Reporter {
            hostname: "host".into(),
            worker_id: "pod".into(),
        };
        let crashed = Outcome::Crashed {
            kind: "panic".into(),
            message: "it broke".into(),
        };
        let body = reporter.done_body("j1", &finished(crashed), false);
        let report: Value = serde_json::from_str(body["error"].as_str().unwrap()).unwrap();
        assert_eq!(report["error_type"], "panic");
        assert_eq!(report["error_message"], "it broke");
        assert_eq!(report["hostname"], "host");
        assert_eq!(report["worker_id"], "pod");
        assert_eq!(report["runpod_version"], PROTOCOL_VERSION);
        assert!(report["error_traceback"].as_str().unwrap().contains("j1"));
    }
}
