//! A span per request (`POST /v1/chat/completions`…), with OpenTelemetry's HTTP attributes,
//! joined to the caller's trace when the request carries a W3C `traceparent` header. The
//! propagator is whatever the process installed globally (none: every request starts its own
//! trace); with no subscriber interested in the span nothing is extracted or recorded.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::field::Empty;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The middleware. Probes (`/health`, `/metrics`) get no span: a poller would bury the
/// requests that matter.
pub(crate) async fn trace_request(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    if matches!(route.as_deref(), Some("/health" | "/metrics")) {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let span = tracing::info_span!(
        "http_request",
        otel.name = %SpanName(&method, route.as_deref()),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = route.as_deref(),
        url.path = %req.uri().path(),
        url.scheme = "http",
        http.response.status_code = Empty,
        error.type = Empty,
    );
    if !span.is_disabled() {
        let parent = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&opentelemetry_http::HeaderExtractor(req.headers()))
        });
        // A malformed or absent header leaves the span a root; that is no error of the request.
        let _ = span.set_parent(parent);
    }
    let resp = next.run(req).instrument(span.clone()).await;
    if !span.is_disabled() {
        let status = resp.status();
        span.record("http.response.status_code", i64::from(status.as_u16()));
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", status.as_str());
        }
    }
    resp
}

/// `METHOD /route`, or just the method for a request no route matched (its path would make
/// a name per URL).
struct SpanName<'a>(&'a axum::http::Method, Option<&'a str>);

impl std::fmt::Display for SpanName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.1 {
            Some(route) => write!(f, "{} {route}", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}
