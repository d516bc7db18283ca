//! Test helpers: [`ScriptedBackend`], a [`ChatBackend`] that answers from a script (or a
//! function of the request) and records every request, for unit tests of agents, teams,
//! servers and CLIs without a model.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::backend::{
    response_chunks, BackendInfo, Capabilities, ChatBackend, ChatStream, Locality,
};
use crate::error::BackendError;
use crate::message::{ChatMessage, ToolCall};
use crate::request::ChatRequest;
use crate::response::{ChatChunk, ChatResponse, FinishReason, Usage};

/// One scripted answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Text.
    Text(String),
    /// Tool calls (with optional text).
    ToolCalls(Option<String>, Vec<ToolCall>),
    /// An error.
    Error(BackendError),
    /// Never answers (until the request is dropped): for cancellation tests.
    Hang,
    /// This exact response.
    Response(ChatResponse),
}

impl Reply {
    /// A text answer.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text(text.into())
    }

    /// One tool call.
    pub fn call(id: &str, name: &str, arguments: &str) -> Self {
        Self::ToolCalls(None, vec![ToolCall::new(id, name, arguments)])
    }

    /// Several tool calls in one turn.
    pub fn calls(calls: &[(&str, &str, &str)]) -> Self {
        Self::ToolCalls(
            None,
            calls.iter().map(|(id, name, args)| ToolCall::new(*id, *name, *args)).collect(),
        )
    }
}

type Responder = Box<dyn Fn(&ChatRequest) -> Reply + Send + Sync>;
type Counter = Box<dyn Fn(&[ChatMessage]) -> usize + Send + Sync>;

/// A backend that answers from a queue of [`Reply`]s, then from its responder function, and
/// records every request. With the queue and responder both empty it answers
/// [`BackendError::Internal`].
pub struct ScriptedBackend {
    info: BackendInfo,
    script: Mutex<VecDeque<Reply>>,
    responder: Option<Responder>,
    counter: Option<Counter>,
    requests: Mutex<Vec<ChatRequest>>,
    usage: Usage,
}

impl fmt::Debug for ScriptedBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScriptedBackend")
            .field("queued", &lock(&self.script).len())
            .field("requests", &lock(&self.requests).len())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Default for ScriptedBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl ScriptedBackend {
    /// A backend with an empty script; every answer reports 10 prompt and 5 completion tokens.
    pub fn new() -> Self {
        Self {
            info: BackendInfo {
                name: "scripted".into(),
                model: "scripted-model".into(),
                locality: Locality::Local,
                capabilities: Capabilities::default(),
            },
            script: Mutex::new(VecDeque::new()),
            responder: None,
            counter: None,
            requests: Mutex::new(Vec::new()),
            usage: Usage::new(10, 5, 0),
        }
    }

    /// A backend answering these replies in order.
    pub fn with_replies(replies: impl IntoIterator<Item = Reply>) -> Self {
        let b = Self::new();
        lock(&b.script).extend(replies);
        b
    }

    /// A backend answering these texts in order.
    pub fn with_texts<S: Into<String>>(texts: impl IntoIterator<Item = S>) -> Self {
        Self::with_replies(texts.into_iter().map(|t| Reply::Text(t.into())))
    }

    /// Answers with `f(request)` once the queue is empty.
    pub fn with_responder(
        mut self,
        f: impl Fn(&ChatRequest) -> Reply + Send + Sync + 'static,
    ) -> Self {
        self.responder = Some(Box::new(f));
        self
    }

    /// Counts tokens with `f` (else the backend cannot count).
    pub fn with_token_counter(
        mut self,
        f: impl Fn(&[ChatMessage]) -> usize + Send + Sync + 'static,
    ) -> Self {
        self.counter = Some(Box::new(f));
        self
    }

    /// Sets the usage reported with every answer.
    pub fn with_usage(mut self, usage: Usage) -> Self {
        self.usage = usage;
        self
    }

    /// Queues one more reply.
    pub fn push(&self, reply: Reply) {
        lock(&self.script).push_back(reply);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<ChatRequest> {
        lock(&self.requests).clone()
    }

    /// How many requests so far.
    pub fn request_count(&self) -> usize {
        lock(&self.requests).len()
    }

    /// How many queued replies are left.
    pub fn remaining(&self) -> usize {
        lock(&self.script).len()
    }

    fn next_reply(&self, req: &ChatRequest) -> Reply {
        lock(&self.requests).push(req.clone());
        let queued = lock(&self.script).pop_front();
        match (queued, &self.responder) {
            (Some(r), _) => r,
            (None, Some(f)) => f(req),
            (None, None) => {
                Reply::Error(BackendError::Internal("scripted backend has no reply left".into()))
            }
        }
    }

    fn response(&self, message: ChatMessage, finish_reason: FinishReason) -> ChatResponse {
        let n = lock(&self.requests).len();
        ChatResponse {
            id: format!("scripted-{n}"),
            model: self.info.model.clone(),
            message,
            finish_reason,
            usage: self.usage,
            timings: None,
            served_by: None,
        }
    }

    async fn answer(&self, reply: Reply) -> Result<ChatResponse, BackendError> {
        match reply {
            Reply::Text(t) => Ok(self.response(ChatMessage::assistant(t), FinishReason::Stop)),
            Reply::ToolCalls(content, tool_calls) => Ok(self.response(
                ChatMessage::Assistant { content, tool_calls, name: None },
                FinishReason::ToolCalls,
            )),
            Reply::Error(e) => Err(e),
            Reply::Hang => futures::future::pending().await,
            Reply::Response(r) => Ok(r),
        }
    }
}

#[async_trait]
impl ChatBackend for ScriptedBackend {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    async fn complete(&self, req: ChatRequest) -> Result<ChatResponse, BackendError> {
        let reply = self.next_reply(&req);
        self.answer(reply).await
    }

    /// Text answers stream word by word; others as one chunk.
    async fn stream(&self, req: ChatRequest) -> Result<ChatStream, BackendError> {
        let reply = self.next_reply(&req);
        let chunks = match reply {
            Reply::Text(text) => {
                let mut chunks: Vec<ChatChunk> =
                    text.split_inclusive(' ').map(ChatChunk::text).collect();
                chunks.push(ChatChunk {
                    finish_reason: Some(FinishReason::Stop),
                    usage: Some(self.usage),
                    ..ChatChunk::default()
                });
                chunks
            }
            other => response_chunks(self.answer(other).await?),
        };
        Ok(Box::pin(futures::stream::iter(chunks.into_iter().map(Ok))))
    }

    async fn count_tokens(&self, messages: &[ChatMessage]) -> Result<Option<usize>, BackendError> {
        Ok(self.counter.as_ref().map(|f| f(messages)))
    }
}

/// The worker of [`worker_and_reviewer`]: calls `append` once per turn (ids `c1`, `c2`, … by the
/// tool results it has seen) and answers "wrote it" when asked to reflect (no tools offered).
pub fn append_then_reflect(req: &ChatRequest) -> Reply {
    if req.tools.is_empty() {
        return Reply::text("wrote it");
    }
    let done = req.messages.iter().filter(|m| matches!(m, ChatMessage::Tool { .. })).count();
    Reply::call(&format!("c{}", done + 1), "append", r#"{"line":"x"}"#)
}

/// A round-robin team for durability tests: `worker` on `worker_backend` with `tool`,
/// reflecting on its results, and `reviewer`, who always says "ok"; `turns` turns.
pub fn worker_and_reviewer(
    worker_backend: std::sync::Arc<dyn ChatBackend>,
    tool: impl crate::tools::Tool + 'static,
    turns: usize,
) -> crate::team::RoundRobinGroupChat {
    let worker = crate::agent::AssistantAgent::new("worker", worker_backend)
        .with_tool(tool)
        .expect("a valid tool")
        .with_reflect_on_tool_use(true);
    let reviewer = crate::agent::AssistantAgent::new(
        "reviewer",
        std::sync::Arc::new(ScriptedBackend::new().with_responder(|_| Reply::text("ok"))),
    );
    crate::team::RoundRobinGroupChat::new(vec![Box::new(worker), Box::new(reviewer)])
        .expect("two named agents")
        .with_max_turns(turns)
}
