//! Local mode, as the SDK has it: run one job from `--test-input` or `./test_input.json`, print
//! the result, and exit 0 on success or 1 on error.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};

use super::result::Reporter;
use crate::job::{self, Job, JobEvent, JobHandler, MalformedJob};

/// The SDK's id for a local job.
pub const LOCAL_JOB_ID: &str = "local_test";
pub const DEFAULT_TEST_INPUT: &str = "test_input.json";

#[derive(Debug, thiserror::Error)]
pub enum TestInputError {
    #[error("{0} not found, exiting")]
    NotFound(String),
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("the test input is not valid JSON: {0}")]
    NotJson(String),
    #[error("the test input must be an object with an \"input\" key")]
    NoInput,
    #[error("the test input's job is unusable: {0}")]
    Malformed(#[from] MalformedJob),
}

/// Reads the job: `test_input` is inline JSON when it starts with `{`, otherwise a file path;
/// without it, `./test_input.json`.
pub fn load_test_input(test_input: Option<&str>) -> Result<Job, TestInputError> {
    let text = match test_input {
        Some(inline) if inline.trim_start().starts_with('{') => inline.to_string(),
        Some(path) => read(Path::new(path))?,
        None => read(Path::new(DEFAULT_TEST_INPUT))?,
    };
    let mut value: Value =
        serde_json::from_str(&text).map_err(|e| TestInputError::NotJson(e.to_string()))?;
    let Some(fields) = value.as_object_mut() else {
        return Err(TestInputError::NoInput);
    };
    if !fields.contains_key("input") {
        return Err(TestInputError::NoInput);
    }
    fields
        .entry("id")
        .or_insert_with(|| Value::String(LOCAL_JOB_ID.into()));
    Ok(Job::from_value(value)?)
}

fn read(path: &Path) -> Result<String, TestInputError> {
    std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => TestInputError::NotFound(path.display().to_string()),
        _ => TestInputError::Unreadable {
            path: path.display().to_string(),
            reason: e.to_string(),
        },
    })
}

/// Runs the test input and returns the body to print and whether the job succeeded.
pub async fn run<H: JobHandler>(handler: Arc<H>, test_input: Option<&str>) -> (Value, bool) {
    let job = match load_test_input(test_input) {
        Ok(job) => job,
        Err(error) => return (json!({"error": error.to_string()}), false),
    };
    let id = job.id.clone();
    let finished = job::execute(handler, job, |event| {
        match event {
            JobEvent::Progress(update) => tracing::info!(%update, "progress"),
            JobEvent::Stream(chunk) => tracing::info!(%chunk, "stream chunk"),
        }
        async {}
    })
    .await;
    let body = Reporter::unknown().done_body(&id, &finished, false);
    let succeeded = body.get("error").is_none();
    (body, succeeded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_json_gets_the_sdk_job_id() {
        let job = load_test_input(Some(r#"{"input": {"task": "info"}}"#)).unwrap();
        assert_eq!(job.id, LOCAL_JOB_ID);
        assert_eq!(job.input["task"], "info");
    }

    #[test]
    fn bad_test_inputs_say_what_is_wrong() {
        let missing = load_test_input(Some("/nonexistent/job.json")).unwrap_err();
        assert!(matches!(missing, TestInputError::NotFound(_)));
        assert!(matches!(
            load_test_input(Some("{not json")).unwrap_err(),
            TestInputError::NotJson(_)
        ));
        assert!(matches!(
            load_test_input(Some(r#"{"task": "info"}"#)).unwrap_err(),
            TestInputError::NoInput
        ));
        assert!(matches!(
            load_test_input(Some(r#"{"id": true, "input": {}}"#)).unwrap_err(),
            TestInputError::Malformed(MalformedJob::MissingId)
        ));
    }
}
