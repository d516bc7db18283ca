//! The live view's HTTP server on loopback: the page and its two assets (compiled into the
//! binary), the event stream (`GET /api/events`, server-sent events: the history so far, then
//! each event as it happens) and the stop button (`POST /api/stop`).
//!
//! Any web page the user opens can reach 127.0.0.1, so, as `agentgen serve` does: the `Host`
//! must be a loopback name (no DNS rebinding), a cross-site `Origin` or `Sec-Fetch-Site` is
//! refused (no CORS), and `POST` must be `application/json`. The API also needs the random
//! token of the printed URL (other users of this machine can reach loopback too).

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use agentgen_core::CancellationToken;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::{Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use super::hub::{Hub, Published};
use crate::error::{CliError, CliResult};

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// Pages connected to the event stream at once; more are refused with 503.
const MAX_PAGES: usize = 16;

/// The header the page sends the token in.
const TOKEN_HEADER: &str = "x-agentgen-token";

/// What the stop button cancels.
#[derive(Debug, Clone)]
pub struct Stop {
    /// The run's cancellation.
    pub cancel: CancellationToken,
    /// Set when the button (not Ctrl-C) stopped the run.
    pub pressed: Arc<AtomicBool>,
}

#[derive(Debug, Clone)]
struct AppState {
    hub: Arc<Hub>,
    token: Arc<str>,
    port: u16,
    stop: Option<Stop>,
    pages: Arc<AtomicUsize>,
}

/// A running view server; dropping it stops accepting connections.
#[derive(Debug)]
pub struct ViewServer {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl ViewServer {
    /// Binds 127.0.0.1:`port` (0: any free port) and serves `hub`'s events; `stop`, when
    /// given, is what the stop button cancels.
    pub async fn start(hub: Arc<Hub>, port: u16, stop: Option<Stop>) -> CliResult<Self> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .await
            .map_err(|e| CliError::io("binding the live view's port on 127.0.0.1", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| CliError::io("reading the live view's address", e))?
            .port();
        let token: String =
            (0..32).map(|_| char::from(b"0123456789abcdef"[rand_nibble()])).collect();
        let url = format!("http://127.0.0.1:{port}/?token={token}");
        let state = AppState { hub, token: token.into(), port, stop, pages: Arc::default() };
        let app = router(state);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!("live view server stopped: {e}");
            }
        });
        Ok(Self { url, task })
    }

    /// The page's address, token included.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for ViewServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn rand_nibble() -> usize {
    usize::from(rand::random::<u8>() & 0x0f)
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/style.css", get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }))
        .route("/api/events", get(events))
        .route("/api/stop", post(stop))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    resp
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// `Host`, then `Origin` / `Sec-Fetch-Site`, then the content type of a `POST` and the token
/// of an API call; every answer gets `nosniff`, `no-referrer` and `no-store`.
async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut resp = match refusal(&state, req.method(), req.uri(), req.headers()) {
        Some((status, message)) => refuse(status, message),
        None => next.run(req).await,
    };
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn refusal(
    state: &AppState,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
) -> Option<(StatusCode, &'static str)> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !is_loopback_host(host, state.port) {
        return Some((StatusCode::MISDIRECTED_REQUEST, "the Host header does not name this view"));
    }
    let cross_site = match headers.get(header::ORIGIN) {
        Some(origin) => origin.to_str().map_or(true, |o| !is_own_origin(o, state.port)),
        None => headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes() == b"cross-site"),
    };
    if cross_site {
        return Some((StatusCode::FORBIDDEN, "cross-origin requests are refused"));
    }
    if method == Method::POST {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|c| c.to_str().ok())
            .and_then(|c| c.split(';').next())
            .is_some_and(|c| c.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Some((StatusCode::UNSUPPORTED_MEDIA_TYPE, "POST needs application/json"));
        }
    }
    if uri.path().starts_with("/api/") {
        let given = headers
            .get(TOKEN_HEADER)
            .and_then(|t| t.to_str().ok())
            .or_else(|| query_token(uri.query().unwrap_or("")));
        if !given.is_some_and(|t| same(t.as_bytes(), state.token.as_bytes())) {
            return Some((
                StatusCode::UNAUTHORIZED,
                "missing or wrong token (open the printed URL)",
            ));
        }
    }
    None
}

/// Whether a `Host` header value is a loopback name with this port (or no port).
fn is_loopback_host(value: &str, port: u16) -> bool {
    let value = value.trim().to_ascii_lowercase();
    let (name, given_port) = match value.rsplit_once(':') {
        Some((name, p)) if !name.ends_with(':') && p.bytes().all(|b| b.is_ascii_digit()) => {
            (name.to_owned(), Some(p.to_owned()))
        }
        _ => (value.clone(), None),
    };
    let name = name.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.');
    matches!(name, "localhost" | "127.0.0.1" | "::1")
        && given_port.is_none_or(|p| p.parse::<u16>() == Ok(port))
}

/// Whether an `Origin` is this view itself.
fn is_own_origin(origin: &str, port: u16) -> bool {
    let Some(host) = origin.strip_prefix("http://") else { return false };
    let has_port = host.rsplit_once(':').is_some_and(|(name, p)| {
        !name.ends_with(':') && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
    });
    has_port && is_loopback_host(host, port)
}

fn query_token(query: &str) -> Option<&str> {
    query.split('&').find_map(|pair| pair.strip_prefix("token="))
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Counts a connected page; uncounted when its stream is dropped.
struct PageSlot(Arc<AtomicUsize>);

impl Drop for PageSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn events(State(state): State<AppState>) -> Response {
    if state.pages.fetch_add(1, Ordering::SeqCst) >= MAX_PAGES {
        state.pages.fetch_sub(1, Ordering::SeqCst);
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "too many pages are open on this view");
    }
    let slot = PageSlot(Arc::clone(&state.pages));
    let sub = state.hub.subscribe();
    let reset = serde_json::json!({ "kind": "reset", "dropped": sub.dropped }).to_string();
    let head: Vec<Event> =
        std::iter::once(Event::default().retry(std::time::Duration::from_millis(500)).data(reset))
            .chain(sub.history.iter().map(|p| to_sse(p)))
            .collect();
    let head = futures::stream::iter(head);
    let live = futures::stream::unfold(Some((sub.live, slot)), |state| async move {
        let (mut rx, slot) = state?;
        match rx.recv().await {
            Ok(p) => Some((to_sse(&p), Some((rx, slot)))),
            // Too slow: the page reconnects (and gets the history again).
            Err(RecvError::Lagged(_)) => {
                let lagged = r#"{"kind":"lagged"}"#;
                Some((Event::default().data(lagged), None))
            }
            Err(RecvError::Closed) => None,
        }
    });
    let stream: std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>> =
        Box::pin(head.chain(live).map(Ok::<Event, Infallible>));
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

fn to_sse(p: &Published) -> Event {
    Event::default().id(p.seq.to_string()).data(&p.json)
}

async fn stop(State(state): State<AppState>) -> Response {
    match &state.stop {
        Some(stop) => {
            stop.pressed.store(true, Ordering::SeqCst);
            stop.cancel.cancel();
            (StatusCode::ACCEPTED, axum::Json(serde_json::json!({ "stopping": true })))
                .into_response()
        }
        None => refuse(StatusCode::CONFLICT, "no run in progress to stop"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_on_this_port_and_this_origin_are_let_in() {
        for ok in ["127.0.0.1:8080", "localhost:8080", "[::1]:8080", "LOCALHOST", "localhost.:8080"]
        {
            assert!(is_loopback_host(ok, 8080), "{ok}");
        }
        for bad in ["evil.example:8080", "127.0.0.1:8081", "", "127.0.0.2:8080"] {
            assert!(!is_loopback_host(bad, 8080), "{bad}");
        }
        assert!(is_own_origin("http://127.0.0.1:8080", 8080));
        assert!(!is_own_origin("http://127.0.0.1", 8080));
        assert!(!is_own_origin("https://127.0.0.1:8080", 8080));
        assert!(!is_own_origin("http://evil.example:8080", 8080));
        assert!(!is_own_origin("null", 8080));
    }

    #[test]
    fn the_token_comes_from_the_header_or_the_query_and_must_match_exactly() {
        assert_eq!(query_token("a=1&token=abc"), Some("abc"));
        assert_eq!(query_token("tokens=abc"), None);
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd") && !same(b"abc", b"ab"));
    }
}
