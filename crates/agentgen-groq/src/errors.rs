//! HTTP error answers turned into [`BackendError`]s, and which of them are worth retrying.

use std::time::{Duration, Instant};

use agentgen_core::BackendError;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::duration::{retry_after, wait_in_message};
use crate::ratelimit::RateLimits;

/// The `{"error": {…}}` body of an error answer, read leniently.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ErrorBody {
    /// `error.message` (or the whole body when it is not the usual shape).
    pub message: String,
    /// `error.type`.
    pub kind: Option<String>,
    /// `error.code`, as text.
    pub code: Option<String>,
    /// `error.param`.
    pub param: Option<String>,
    /// `error.failed_generation` (Groq's `tool_use_failed`).
    pub failed_generation: Option<String>,
}

impl ErrorBody {
    /// Reads a body; text that is not JSON becomes the message.
    pub fn parse(body: &[u8]) -> Self {
        let text = || String::from_utf8_lossy(body).trim().chars().take(2000).collect::<String>();
        let Ok(value) = serde_json::from_slice::<Value>(body) else {
            return Self { message: text(), ..Self::default() };
        };
        let err = match value.get("error") {
            Some(Value::String(s)) => return Self { message: s.clone(), ..Self::default() },
            Some(obj @ Value::Object(_)) => obj,
            _ => &value, // vLLM and others put the fields at the top level.
        };
        let str_field = |name: &str| match err.get(name) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        Self {
            message: str_field("message").or_else(|| str_field("detail")).unwrap_or_else(text),
            kind: str_field("type"),
            code: str_field("code"),
            param: str_field("param"),
            failed_generation: str_field("failed_generation"),
        }
    }
}

/// What an error status means, before any follow-up (such as listing models for a 404).
pub fn map_status(
    status: u16,
    headers: &HeaderMap,
    body: &ErrorBody,
    model: &str,
    limits: Option<&RateLimits>,
) -> BackendError {
    let message =
        if body.message.is_empty() { format!("HTTP {status}") } else { body.message.clone() };
    let invalid = |code: Option<String>| BackendError::InvalidRequest {
        message: format!("HTTP {status}: {message}"),
        param: body.param.clone(),
        code,
    };
    match status {
        400 if body.code.as_deref() == Some("tool_use_failed") => BackendError::ToolUseFailed {
            message,
            failed_generation: body.failed_generation.clone(),
        },
        401 | 403 => BackendError::Unauthorized { message: format!("HTTP {status}: {message}") },
        400 if body.code.as_deref() == Some("model_decommissioned") => {
            BackendError::ModelNotFound { model: model.to_owned(), available: Vec::new() }
        }
        404 if is_model_not_found(body) => {
            BackendError::ModelNotFound { model: model.to_owned(), available: Vec::new() }
        }
        413 => invalid(Some("request_too_large".into())),
        429 => BackendError::RateLimited {
            retry_after: rate_limit_wait(headers, &message, limits),
            message,
        },
        498 => BackendError::Unavailable {
            message: format!("flex capacity exceeded: {message}"),
            status: Some(498),
            retry_after: retry_after(headers),
        },
        499 => BackendError::Cancelled,
        408 | 409 | 500..=599 => BackendError::Unavailable {
            message: format!("HTTP {status}: {message}"),
            status: Some(status),
            retry_after: retry_after(headers),
        },
        _ => invalid(body.code.clone()),
    }
}

fn is_model_not_found(body: &ErrorBody) -> bool {
    body.code.as_deref() == Some("model_not_found")
        || body.message.to_ascii_lowercase().contains("model")
}

/// How long a 429 asks to wait: `retry-after-ms` / `retry-after`, else the wait named in
/// the message, else the rate-limit reset headers.
fn rate_limit_wait(
    headers: &HeaderMap,
    message: &str,
    limits: Option<&RateLimits>,
) -> Option<Duration> {
    retry_after(headers)
        .or_else(|| wait_in_message(message))
        .or_else(|| limits.and_then(|l| l.reset_wait(Instant::now())))
}

/// Whether the status is one the client retries: 408, 409, 429 and 5xx. A server's
/// `x-should-retry: true|false` overrides it.
pub fn should_retry_status(status: u16, headers: &HeaderMap) -> bool {
    match headers.get("x-should-retry").and_then(|v| v.to_str().ok()) {
        Some("true") => return true,
        Some("false") => return false,
        _ => {}
    }
    matches!(status, 408 | 409 | 429 | 500..=599)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn body(json: &str) -> ErrorBody {
        ErrorBody::parse(json.as_bytes())
    }

    fn map(status: u16, json: &str) -> BackendError {
        map_status(status, &HeaderMap::new(), &body(json), "m", None)
    }

    #[test]
    fn error_bodies_of_several_shapes() {
        let b = body(
            r#"{"error":{"message":"x","type":"invalid_request_error","code":"c","param":"p"}}"#,
        );
        assert_eq!(
            (b.message.as_str(), b.code.as_deref(), b.param.as_deref()),
            ("x", Some("c"), Some("p"))
        );
        assert_eq!(body(r#"{"error":"plain"}"#).message, "plain");
        assert_eq!(
            body(r#"{"object":"error","message":"vllm","code":404}"#).code.as_deref(),
            Some("404")
        );
        assert_eq!(body("<html>oops</html>").message, "<html>oops</html>");
    }

    #[test]
    fn statuses_map_to_actionable_errors() {
        let e = map(
            400,
            r#"{"error":{"message":"Failed to call a function.","code":"tool_use_failed","failed_generation":"<fn>"}}"#,
        );
        assert_eq!(
            e,
            BackendError::ToolUseFailed {
                message: "Failed to call a function.".into(),
                failed_generation: Some("<fn>".into())
            }
        );
        assert!(matches!(map(401, "{}"), BackendError::Unauthorized { .. }));
        assert!(matches!(
            map(404, r#"{"error":{"message":"The model `m` does not exist","code":"model_not_found"}}"#),
            BackendError::ModelNotFound { model, .. } if model == "m"
        ));
        assert!(matches!(
            map(400, r#"{"error":{"message":"The model `m` has been decommissioned","code":"model_decommissioned"}}"#),
            BackendError::ModelNotFound { model, .. } if model == "m"
        ));
        assert!(matches!(map(404, "no route"), BackendError::InvalidRequest { .. }));
        assert!(
            matches!(map(413, "{}"), BackendError::InvalidRequest { code: Some(c), .. } if c == "request_too_large")
        );
        assert!(matches!(map(422, r#"{"error":{"message":"bad","param":"tools"}}"#),
            BackendError::InvalidRequest { param: Some(p), .. } if p == "tools"));
        assert!(matches!(map(498, "{}"), BackendError::Unavailable { status: Some(498), .. }));
        assert!(matches!(map(503, "{}"), BackendError::Unavailable { status: Some(503), .. }));
    }

    #[test]
    fn rate_limit_waits_come_from_headers_then_message() {
        let mut h = HeaderMap::new();
        let msg =
            r#"{"error":{"message":"Please try again in 5.289s.","code":"rate_limit_exceeded"}}"#;
        let e = map_status(429, &h, &body(msg), "m", None);
        assert_eq!(e.retry_after(), Some(Duration::from_millis(5289)));
        h.insert("retry-after", HeaderValue::from_static("1"));
        let e = map_status(429, &h, &body(msg), "m", None);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
    }

    #[test]
    fn retry_statuses() {
        let h = HeaderMap::new();
        for s in [408, 409, 429, 500, 502, 503] {
            assert!(should_retry_status(s, &h), "{s}");
        }
        for s in [400, 401, 404, 413, 422, 498] {
            assert!(!should_retry_status(s, &h), "{s}");
        }
        let mut h = HeaderMap::new();
        h.insert("x-should-retry", HeaderValue::from_static("false"));
        assert!(!should_retry_status(503, &h));
    }
}
