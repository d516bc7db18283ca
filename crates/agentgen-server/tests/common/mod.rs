//! A scripted backend and a server on 127.0.0.1:0 for the HTTP tests.
#![allow(dead_code)]

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use agentgen_core::{
    BackendError, BackendInfo, Capabilities, ChatBackend, ChatChunk, ChatMessage, ChatRequest,
    ChatResponse, ChatStream, FinishReason, Locality, ToolCall, ToolCallDelta, Usage,
};
use agentgen_server::{AppState, ModelAttestationSource, ServeConfig, ServeError, Server};
use async_trait::async_trait;
use futures::Stream;
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinHandle;

/// What the backend saw, for tests to assert on.
#[derive(Debug, Default)]
pub struct Probe {
    /// Generations started.
    pub started: AtomicUsize,
    /// Generations dropped before they finished (cancelled).
    pub dropped: AtomicUsize,
    /// The last request received.
    pub last: std::sync::Mutex<Option<ChatRequest>>,
}

/// Counts a drop of an unfinished generation.
struct DropProbe {
    probe: Arc<Probe>,
    finished: bool,
}

impl Drop for DropProbe {
    fn drop(&mut self) {
        if !self.finished {
            self.probe.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A backend scripted by the last user message:
/// - `overflow` → `ContextOverflow`; `badschema` → `InvalidRequest`;
/// - `tool` → a call of `add` with `{"a":2,"b":3}`; after a tool result, says `the answer is <result>`;
/// - `wait` → waits for the gate (non-stream) or, streamed, sends `partial` then waits forever;
/// - `flood`, streamed → 1 KiB chunks for as long as the client reads;
/// - anything else → `echo: <text>`, streamed word by word.
pub struct Scripted {
    pub info: BackendInfo,
    pub probe: Arc<Probe>,
    pub gate: Arc<Semaphore>,
}

impl Scripted {
    pub fn new(locality: Locality) -> Self {
        Self {
            info: BackendInfo {
                name: "scripted".into(),
                model: "test-model".into(),
                locality,
                capabilities: Capabilities { context_length: Some(64), ..Capabilities::default() },
            },
            probe: Arc::default(),
            gate: Arc::new(Semaphore::new(0)),
        }
    }

    pub fn local() -> Self {
        Self::new(Locality::Local)
    }
}

fn last_user(req: &ChatRequest) -> String {
    req.messages
        .iter()
        .rev()
        .find_map(|m| match m {
            ChatMessage::User { content, .. } => Some(content.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn tool_result(req: &ChatRequest) -> Option<String> {
    match req.messages.last() {
        Some(ChatMessage::Tool { content, .. }) => Some(content.clone()),
        _ => None,
    }
}

fn response(message: ChatMessage, finish: FinishReason) -> ChatResponse {
    ChatResponse {
        id: "scripted-1".into(),
        model: "test-model".into(),
        message,
        finish_reason: finish,
        usage: Usage::new(7, 3, 2),
        timings: None,
        served_by: None,
    }
}

impl Scripted {
    fn check(&self, req: &ChatRequest) -> Result<String, BackendError> {
        self.probe.started.fetch_add(1, Ordering::SeqCst);
        *self.probe.last.lock().unwrap() = Some(req.clone());
        let text = last_user(req);
        if text.contains("overflow") {
            return Err(BackendError::ContextOverflow { prompt_tokens: 100, limit: 64 });
        }
        if text.contains("badschema") {
            return Err(BackendError::invalid_param(
                "the schema uses an unsupported keyword",
                "tools",
            ));
        }
        Ok(text)
    }
}

#[async_trait]
impl ChatBackend for Scripted {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    async fn complete(&self, req: ChatRequest) -> Result<ChatResponse, BackendError> {
        let text = self.check(&req)?;
        if let Some(result) = tool_result(&req) {
            return Ok(response(
                ChatMessage::assistant(format!("the answer is {result}")),
                FinishReason::Stop,
            ));
        }
        if text.contains("tool") {
            let call = ToolCall::new("call_1", "add", r#"{"a":2,"b":3}"#);
            return Ok(response(
                ChatMessage::assistant_tool_calls(vec![call]),
                FinishReason::ToolCalls,
            ));
        }
        if text.contains("wait") {
            let mut guard = DropProbe { probe: self.probe.clone(), finished: false };
            let permit = self.gate.acquire().await.map_err(|_| BackendError::Cancelled)?;
            permit.forget();
            guard.finished = true;
        }
        Ok(response(ChatMessage::assistant(format!("echo: {text}")), FinishReason::Stop))
    }

    async fn stream(&self, req: ChatRequest) -> Result<ChatStream, BackendError> {
        let text = self.check(&req)?;
        let last = |finish| ChatChunk {
            finish_reason: Some(finish),
            usage: Some(Usage::new(7, 3, 2)),
            ..ChatChunk::default()
        };
        let chunks: Vec<ChatChunk> = if text.contains("tool") {
            let piece = |id: Option<&str>, name: Option<&str>, args: &str| ChatChunk {
                tool_calls: vec![ToolCallDelta {
                    index: 0,
                    id: id.map(Into::into),
                    name: name.map(Into::into),
                    arguments: Some(args.into()),
                }],
                ..ChatChunk::default()
            };
            vec![
                piece(Some("call_1"), Some("add"), ""),
                piece(None, None, "{\"a\":2,"),
                piece(None, None, "\"b\":3}"),
                last(FinishReason::ToolCalls),
            ]
        } else if text.contains("wait") {
            vec![ChatChunk::text("partial")]
        } else {
            let mut v: Vec<ChatChunk> =
                format!("echo: {text}").split_inclusive(' ').map(ChatChunk::text).collect();
            v.push(last(FinishReason::Stop));
            v
        };
        let hang = text.contains("wait");
        let flood = text.contains("flood");
        Ok(Box::pin(ScriptStream {
            chunks: chunks.into_iter().map(Ok).collect(),
            hang,
            flood,
            _probe: DropProbe { probe: self.probe.clone(), finished: !hang && !flood },
        }))
    }
}

struct ScriptStream {
    chunks: std::collections::VecDeque<Result<ChatChunk, BackendError>>,
    hang: bool,
    /// Never ends: 1 KiB of text per chunk for as long as it is read.
    flood: bool,
    _probe: DropProbe,
}

impl Stream for ScriptStream {
    type Item = Result<ChatChunk, BackendError>;
    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.flood {
            return Poll::Ready(Some(Ok(ChatChunk::text("x".repeat(1024)))));
        }
        match self.chunks.pop_front() {
            Some(c) => Poll::Ready(Some(c)),
            None if self.hang => Poll::Pending,
            None => Poll::Ready(None),
        }
    }
}

/// A running test server.
pub struct TestServer {
    pub url: String,
    pub state: AppState,
    pub stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<Result<(), ServeError>>,
}

impl TestServer {
    pub async fn start(
        mut config: ServeConfig,
        backend: Arc<dyn ChatBackend>,
        attestation: Option<ModelAttestationSource>,
    ) -> Self {
        config.port = 0;
        let server = Server::bind(config, attestation).await.expect("bind");
        let url = format!("http://{}", server.local_addr().unwrap());
        let state = server.state().clone();
        state.install_backend(backend).expect("install");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Self { url, state, stop: Some(tx), task }
    }

    pub async fn local(backend: Arc<dyn ChatBackend>) -> Self {
        Self::start(ServeConfig::default(), backend, None).await
    }

    pub fn chat_url(&self) -> String {
        format!("{}/v1/chat/completions", self.url)
    }

    pub async fn stop(mut self) -> Result<(), ServeError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.await.expect("server task")
    }
}

/// Polls `cond` every 10 ms for up to 10 s; false if it never held.
pub async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..1000 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

pub fn user(text: &str) -> serde_json::Value {
    serde_json::json!({"model": "test-model", "messages": [{"role": "user", "content": text}]})
}

/// Parses an SSE body into its `data:` payloads.
pub fn sse_data(body: &str) -> Vec<String> {
    body.lines().filter_map(|l| l.strip_prefix("data:")).map(|d| d.trim().to_owned()).collect()
}
