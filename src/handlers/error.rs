//! The one place where a job's errors become wire envelopes: OpenAI's error object on the
//! OpenAI path, a RunPod error on the custom path.

use serde_json::{Value, json};

use crate::job::Outcome;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The request is wrong; `param` names the field when one is to blame.
    #[error("{message}")]
    Invalid {
        message: String,
        param: Option<String>,
    },
    /// The request names something that does not exist (a route, a voice, a file).
    #[error("{message}")]
    NotFound {
        message: String,
        param: Option<String>,
    },
    /// The request is fine but this worker cannot serve it (yet).
    #[error("{0}")]
    Unavailable(String),
    /// Our fault. The chain is logged; only the outermost message leaves the worker.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Which API a job came through, and so which envelope its errors need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    OpenAi,
    Custom,
}

impl JobError {
    pub fn invalid(message: impl Into<String>, param: impl Into<Option<&'static str>>) -> Self {
        Self::Invalid {
            message: message.into(),
            param: param.into().map(str::to_string),
        }
    }

    pub fn not_found(message: impl Into<String>, param: impl Into<Option<&'static str>>) -> Self {
        Self::NotFound {
            message: message.into(),
            param: param.into().map(str::to_string),
        }
    }

    pub fn into_outcome(self, api: Api) -> Outcome {
        if let Self::Internal(error) = &self {
            tracing::error!(error = format!("{error:#}"), "the job failed");
        }
        match (api, self) {
            (Api::OpenAi, error) => Outcome::Error(error.openai_body()),
            (Api::Custom, Self::Internal(error)) => Outcome::Crashed {
                kind: "internal".into(),
                message: error.to_string(),
            },
            (Api::Custom, error) => Outcome::Error(Value::String(error.to_string())),
        }
    }

    /// `{"error": {"message", "type", "param", "code"}}`, all four keys always present.
    pub fn openai_body(&self) -> Value {
        let (kind, code, param) = match self {
            Self::Invalid { param, .. } => ("invalid_request_error", None, param.clone()),
            Self::NotFound { param, .. } => {
                ("invalid_request_error", Some("not_found"), param.clone())
            }
            Self::Unavailable(_) => ("server_error", Some("unavailable"), None),
            Self::Internal(_) => ("server_error", None, None),
        };
        let message = match self {
            Self::Internal(error) => format!("{error}; the worker log has the details"),
            other => other.to_string(),
        };
        json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_errors_carry_all_four_fields() {
        let body = JobError::invalid("Missing required parameter: input", "input").openai_body();
        assert_eq!(
            body,
            json!({"error": {
                "message": "Missing required parameter: input",
                "type": "invalid_request_error",
                "param": "input",
                "code": null
            }})
        );
    }

    #[test]
    fn custom_errors_are_plain_messages_and_internal_ones_are_reports() {
        let outcome = JobError::invalid("text is empty", "text").into_outcome(Api::Custom);
        assert_eq!(outcome, Outcome::Error(json!("text is empty")));
        let internal = anyhow::anyhow!("secret path /x").context("could not load the voice");
        match JobError::from(internal).into_outcome(Api::Custom) {
            Outcome::Crashed { kind, message } => {
                assert_eq!(kind, "internal");
                assert_eq!(message, "could not load the voice");
            }
            other => panic!("expected a crash report, got {other:?}"),
        }
    }
}
