//! Every failure the API answers, in OpenAI's error shape:
//! `{"error": {"message", "type", "param", "code"}}`.

use std::time::Duration;

use agentgen_core::openai::{ErrorObject, ErrorResponse};
use agentgen_core::BackendError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// An error answered to an API client: an HTTP status and OpenAI's error body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable message.
    pub message: String,
    /// OpenAI error type: `invalid_request_error`, `authentication_error`…
    pub kind: &'static str,
    /// The offending request field, when known.
    pub param: Option<String>,
    /// Machine-readable code, when known (`model_not_found`, `context_length_exceeded`…).
    pub code: Option<String>,
    /// Seconds the client should wait before retrying (sent as `Retry-After`).
    pub retry_after: Option<Duration>,
    /// The model's raw output for `tool_use_failed` (Groq's field); boxed to keep the error small.
    pub failed_generation: Option<Box<String>>,
}

impl ApiError {
    /// An error with a status, a type and a message.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after: None,
            failed_generation: None,
        }
    }

    /// 400 `invalid_request_error`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// 400 `invalid_request_error` naming the offending field.
    pub fn invalid_param(message: impl Into<String>, param: impl Into<String>) -> Self {
        Self::invalid(message).with_param(param)
    }

    /// 401 `authentication_error`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_error", message)
            .with_code("invalid_api_key")
    }

    /// 404 `model_not_found`.
    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("The model `{model}` does not exist or you do not have access to it."),
        )
        .with_param("model")
        .with_code("model_not_found")
    }

    /// 503 `unavailable_error` with a `Retry-After`.
    pub fn unavailable(message: impl Into<String>, code: &str, retry_after: Duration) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable_error", message)
            .with_code(code);
        e.retry_after = Some(retry_after);
        e
    }

    /// 404 for a path the server does not have.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("Unknown request URL: {path}"),
        )
        .with_code("unknown_url")
    }

    /// Sets the offending field.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Sets the machine-readable code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// The body as a JSON value (also used for errors inside an SSE stream).
    pub fn body(&self) -> serde_json::Value {
        serde_json::to_value(ErrorResponse {
            error: ErrorObject {
                message: self.message.clone(),
                kind: Some(self.kind.to_owned()),
                param: self.param.clone(),
                code: self.code.clone(),
                failed_generation: self.failed_generation.as_deref().cloned(),
            },
        })
        .unwrap_or_else(|_| serde_json::json!({"error": {"message": self.message}}))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body().to_string();
        let mut resp =
            (self.status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        if let Some(after) = self.retry_after {
            let secs = after.as_secs_f64().ceil().max(1.0) as u64;
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

impl From<BackendError> for ApiError {
    fn from(err: BackendError) -> Self {
        let message = err.to_string();
        match err {
            BackendError::RateLimited { retry_after, .. } => {
                let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", message)
                    .with_code("rate_limit_exceeded");
                e.retry_after = retry_after;
                e
            }
            BackendError::Unauthorized { .. } => {
                // The server's own upstream key was refused: not the client's mistake.
                Self::new(StatusCode::BAD_GATEWAY, "server_error", message)
                    .with_code("upstream_unauthorized")
            }
            BackendError::ModelNotFound { model, .. } => {
                let mut e = Self::model_not_found(&model);
                e.message = message;
                e
            }
            BackendError::ContextOverflow { .. } => {
                Self::invalid_param(message, "messages").with_code("context_length_exceeded")
            }
            BackendError::InvalidRequest { message: m, param, code } => {
                let mut e = Self::invalid(m);
                e.param = param;
                e.code = code;
                e
            }
            BackendError::ToolUseFailed { failed_generation, .. } => {
                let mut e = Self::invalid(message).with_code("tool_use_failed");
                e.failed_generation = failed_generation.map(Box::new);
                e
            }
            BackendError::Unavailable { retry_after, .. } => {
                let mut e =
                    Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable_error", message)
                        .with_code("backend_unavailable");
                e.retry_after = retry_after.or(Some(Duration::from_secs(1)));
                e
            }
            BackendError::Timeout(_) => {
                Self::new(StatusCode::GATEWAY_TIMEOUT, "timeout_error", message)
                    .with_code("timeout")
            }
            BackendError::Cancelled => {
                // nginx's "client closed request": only logged, the client has gone.
                let status = StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST);
                Self::new(status, "cancelled", message).with_code("cancelled")
            }
            BackendError::Protocol(_) => {
                Self::new(StatusCode::BAD_GATEWAY, "server_error", message)
                    .with_code("backend_protocol_error")
            }
            BackendError::ModelFile(_) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
                    .with_code("model_file_error")
            }
            BackendError::Internal(_) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
                    .with_code("internal_error")
            }
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_overflow_is_a_400_with_its_code() {
        let e = ApiError::from(BackendError::ContextOverflow { prompt_tokens: 9000, limit: 4096 });
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.body()["error"]["code"], "context_length_exceeded");
        assert_eq!(e.body()["error"]["type"], "invalid_request_error");
        assert_eq!(e.body()["error"]["param"], "messages");
    }

    #[test]
    fn user_mistakes_are_4xx() {
        for err in [
            BackendError::invalid("bad"),
            BackendError::ModelNotFound { model: "x".into(), available: vec![] },
            BackendError::ToolUseFailed {
                message: "m".into(),
                failed_generation: Some("g".into()),
            },
            BackendError::RateLimited { retry_after: None, message: "slow".into() },
        ] {
            let e = ApiError::from(err);
            assert!(e.status.is_client_error(), "{e:?}");
        }
    }

    #[test]
    fn retry_after_becomes_a_header() {
        let resp = ApiError::unavailable("full", "queue_full", Duration::from_millis(1500))
            .into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
    }
}
