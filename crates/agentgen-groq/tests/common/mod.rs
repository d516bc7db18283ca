//! A real HTTP server on 127.0.0.1 that speaks Groq's wire format, scripted per test: each
//! `POST /openai/v1/chat/completions` takes the next [`Reply`] of the script, and every
//! request it saw is kept for assertions.

#![allow(dead_code)] // Each test binary uses part of it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentgen_groq::OpenAiConfig;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::StreamExt;
use serde_json::{json, Value};

/// The model tests ask for.
pub const MODEL: &str = "llama-3.1-8b-instant";

/// What the server answers to one chat request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A JSON body with this status and these extra headers.
    Json { status: u16, headers: Vec<(&'static str, String)>, body: Value },
    /// An event stream sent as these separate network writes (a few ms apart), then how
    /// it ends.
    Sse { headers: Vec<(&'static str, String)>, parts: Vec<Vec<u8>>, end: End },
    /// Never answers.
    Stall,
}

/// How a scripted event stream ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The body ends cleanly after the parts.
    Close,
    /// The connection is broken off after the parts.
    Abort,
    /// Nothing more is sent, and the body stays open.
    Hang,
}

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The path.
    pub path: String,
    /// The JSON body (null for GET).
    pub body: Value,
    /// The Authorization header, if any.
    pub authorization: Option<String>,
    /// When it arrived.
    pub at: Instant,
}

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<Reply>>,
    seen: Mutex<Vec<Seen>>,
    models: Vec<&'static str>,
}

/// A running scripted server.
pub struct TestServer {
    /// Base URL up to `/openai/v1`.
    pub base_url: String,
    shared: Arc<Shared>,
}

impl TestServer {
    /// Starts a server answering chat requests with `script`, in order.
    pub async fn start(script: Vec<Reply>) -> Self {
        let shared = Arc::new(Shared {
            script: Mutex::new(script.into()),
            seen: Mutex::default(),
            models: vec![MODEL, "llama-3.3-70b-versatile", "openai/gpt-oss-20b"],
        });
        let app = Router::new()
            .route("/openai/v1/chat/completions", post(chat))
            .route("/openai/v1/models", get(models))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base_url: format!("http://{addr}/openai/v1"), shared }
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Chat requests seen so far.
    pub fn chat_requests(&self) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path.ends_with("/chat/completions")).collect()
    }

    /// A Groq config pointing here, with a test key and short backoffs.
    pub fn groq(&self) -> OpenAiConfig {
        OpenAiConfig::groq(MODEL)
            .with_base_url(&self.base_url)
            .with_api_key("test-key")
            .with_backoff(Duration::from_millis(10), Duration::from_millis(40))
    }
}

fn record(shared: &Shared, path: &str, headers: &HeaderMap, body: Value) {
    let authorization =
        headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    shared.seen.lock().unwrap().push(Seen {
        path: path.to_owned(),
        body,
        authorization,
        at: Instant::now(),
    });
}

async fn chat(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    record(&shared, "/openai/v1/chat/completions", &headers, body);
    let reply = shared.script.lock().unwrap().pop_front();
    match reply {
        None => (StatusCode::INTERNAL_SERVER_ERROR, "the test script ran out").into_response(),
        Some(Reply::Stall) => {
            futures::future::pending::<()>().await;
            unreachable!()
        }
        Some(Reply::Json { status, headers, body }) => {
            let mut resp =
                (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
            add_headers(&mut resp, &headers);
            resp
        }
        Some(Reply::Sse { headers, parts, end }) => {
            let frames = futures::stream::iter(parts).then(|part| async move {
                tokio::time::sleep(Duration::from_millis(3)).await;
                Ok::<_, std::io::Error>(Bytes::from(part))
            });
            let tail = futures::stream::once(async move {
                match end {
                    End::Close => Ok(Bytes::new()),
                    End::Abort => Err(std::io::Error::other("connection broken off")),
                    End::Hang => futures::future::pending().await,
                }
            });
            let mut resp = Response::new(Body::from_stream(frames.chain(tail)));
            resp.headers_mut().insert("content-type", "text/event-stream".parse().unwrap());
            add_headers(&mut resp, &headers);
            resp
        }
    }
}

fn add_headers(resp: &mut Response, headers: &[(&'static str, String)]) {
    for (name, value) in headers {
        resp.headers_mut().insert(*name, value.parse().unwrap());
    }
}

async fn models(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    record(&shared, "/openai/v1/models", &headers, Value::Null);
    let data: Vec<Value> = shared
        .models
        .iter()
        .map(|id| json!({"id": id, "object": "model", "owned_by": "Meta", "active": true, "context_window": 131072}))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

/// Groq's rate-limit headers.
pub fn rate_limit_headers(
    remaining_requests: u64,
    remaining_tokens: u64,
) -> Vec<(&'static str, String)> {
    vec![
        ("x-ratelimit-limit-requests", "14400".into()),
        ("x-ratelimit-limit-tokens", "18000".into()),
        ("x-ratelimit-remaining-requests", remaining_requests.to_string()),
        ("x-ratelimit-remaining-tokens", remaining_tokens.to_string()),
        ("x-ratelimit-reset-requests", "2m59.56s".into()),
        ("x-ratelimit-reset-tokens", "7.66s".into()),
    ]
}

/// A 200 completion with this text.
pub fn completion(text: &str) -> Reply {
    Reply::Json {
        status: 200,
        headers: rate_limit_headers(14399, 17990),
        body: json!({
            "id": "chatcmpl-test", "object": "chat.completion", "created": 1_700_000_000,
            "model": MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "logprobs": null, "finish_reason": "stop"}],
            "usage": {"queue_time": 0.01, "prompt_tokens": 12, "prompt_time": 0.002,
                      "completion_tokens": 3, "completion_time": 0.006, "total_tokens": 15,
                      "total_time": 0.008},
            "system_fingerprint": "fp_test", "x_groq": {"id": "req_test"}
        }),
    }
}

/// An error answer in Groq's shape.
pub fn error(status: u16, code: &str, message: &str) -> Reply {
    Reply::Json {
        status,
        headers: Vec::new(),
        body: json!({"error": {"message": message, "type": "invalid_request_error", "code": code}}),
    }
}

/// Adds headers to a JSON reply.
pub fn with_headers(reply: Reply, extra: &[(&'static str, &str)]) -> Reply {
    match reply {
        Reply::Json { status, mut headers, body } => {
            headers.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
            Reply::Json { status, headers, body }
        }
        other => other,
    }
}

/// One `chat.completion.chunk` event, Groq style.
pub fn chunk_event(delta: Value, finish: Option<&str>, x_groq: Option<Value>) -> String {
    let mut chunk = json!({
        "id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1_700_000_000,
        "model": MODEL, "system_fingerprint": "fp_test",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
    });
    if let Some(x) = x_groq {
        chunk["x_groq"] = x;
    }
    format!("data: {chunk}\n\n")
}

/// Splits text into pieces of `size` bytes, whatever they cut through (UTF-8 characters
/// included), as a network might.
pub fn split_every(text: &str, size: usize) -> Vec<Vec<u8>> {
    text.as_bytes().chunks(size).map(<[u8]>::to_vec).collect()
}

/// An event stream of these events, written in pieces of `size` bytes.
pub fn sse(events: &[String], size: usize, end: End) -> Reply {
    let text: String = events.concat();
    Reply::Sse { headers: rate_limit_headers(14398, 17000), parts: split_every(&text, size), end }
}
