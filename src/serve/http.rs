//! What every response of `serve` carries and who may call `/v1`: a request id, whether a
//! failure is worth retrying (the OpenAI SDKs retry 5xx twice unless told not to), CORS for
//! browser clients, and optional bearer keys.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::openai::openai_error;
use crate::config::{ApiSettings, CorsOrigins};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const SHOULD_RETRY: HeaderName = HeaderName::from_static("x-should-retry");
/// What a client waits before trying again while the worker is busy or loading.
const RETRY_AFTER_SECONDS: &str = "5";

/// Tags every response with a fresh `x-request-id` and says whether its failure is worth a
/// retry: a request that was refused, or that the model failed on, fails the same way again.
pub(super) async fn response_headers(request: Request, next: Next) -> Response {
    let id = format!("req_{}", uuid::Uuid::new_v4().simple());
    let mut response = next.run(request).await;
    let status = response.status();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&id) {
        headers.insert(REQUEST_ID, value);
    }
    if deterministic(status) {
        headers.insert(SHOULD_RETRY, HeaderValue::from_static("false"));
    }
    if matches!(
        status,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
    ) && !headers.contains_key(header::RETRY_AFTER)
    {
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECONDS),
        );
    }
    response
}

fn deterministic(status: StatusCode) -> bool {
    let retryable = matches!(
        status,
        StatusCode::REQUEST_TIMEOUT | StatusCode::CONFLICT | StatusCode::TOO_MANY_REQUESTS
    );
    (status.is_client_error() && !retryable) || status == StatusCode::INTERNAL_SERVER_ERROR
}

/// CORS as configured: preflights are answered here (before any key is asked for), and
/// allowed origins may read every response and its request id.
pub(super) async fn cors(
    State(api): State<Arc<ApiSettings>>,
    request: Request,
    next: Next,
) -> Response {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_string);
    let allowed = origin.filter(|origin| match &api.cors {
        CorsOrigins::None => false,
        CorsOrigins::Any => true,
        CorsOrigins::List(list) => list.iter().any(|o| o == origin),
    });
    let Some(origin) = allowed else {
        return next.run(request).await;
    };
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight {
        preflight_answer(request.headers())
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    let value = match api.cors {
        CorsOrigins::Any => HeaderValue::from_static("*"),
        _ => HeaderValue::from_str(&origin).unwrap_or(HeaderValue::from_static("null")),
    };
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("x-request-id, x-should-retry, retry-after"),
    );
    response
}

/// The SDKs send `Authorization`, `Content-Type` and their `X-Stainless-*` headers: every
/// header asked for is allowed.
fn preflight_answer(request: &HeaderMap) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    if let Some(asked) = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    response
}

/// With keys configured, `/v1` answers only `Authorization: Bearer <key>`, with OpenAI's 401
/// body otherwise.
pub(super) async fn require_key(
    State(api): State<Arc<ApiSettings>>,
    request: Request,
    next: Next,
) -> Response {
    if api.keys.is_empty() {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let (message, code) = match given {
        Some(key) if api.keys.iter().any(|k| same_key(k, key)) => {
            return next.run(request).await;
        }
        Some(_) => ("Incorrect API key provided.", Some("invalid_api_key")),
        None => (
            "You didn't provide an API key: send it as \"Authorization: Bearer <key>\".",
            None,
        ),
    };
    let mut response = openai_error(
        StatusCode::UNAUTHORIZED,
        "invalid_request_error",
        message.into(),
        code,
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Compares every byte whatever the first difference, so the time taken says nothing about
/// how much of a guess was right.
fn same_key(expected: &str, given: &str) -> bool {
    let (expected, given) = (expected.as_bytes(), given.as_bytes());
    let difference = expected
        .iter()
        .zip(given)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(difference) == 0 && expected.len() == given.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_only_exactly() {
        assert!(same_key("sk-abc", "sk-abc"));
        assert!(!same_key("sk-abc", "sk-abd"));
        assert!(!same_key("sk-abc", "sk-ab"));
        assert!(!same_key("sk-abc", "sk-abcd"));
        assert!(!same_key("sk-abc", ""));
    }

    #[test]
    fn refusals_and_model_failures_are_not_retried_but_capacity_is() {
        for status in [400, 401, 403, 404, 405, 413, 422, 500] {
            assert!(
                deterministic(StatusCode::from_u16(status).unwrap()),
                "{status}"
            );
        }
        for status in [200, 204, 408, 409, 429, 502, 503] {
            assert!(
                !deterministic(StatusCode::from_u16(status).unwrap()),
                "{status}"
            );
        }
    }
}
