//! The [`ChatBackend`] trait every model provider implements, and what a backend says of itself.

use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::error::BackendError;
use crate::message::ChatMessage;
use crate::request::{ChatRequest, SamplingSetting};
use crate::response::{ChatChunk, ChatResponse, FinishReason};

/// A stream of chunks. Dropping it cancels the generation behind it.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChatChunk, BackendError>> + Send>>;

/// Where a backend's model runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Locality {
    /// In this process or on this machine.
    Local,
    /// Behind a network endpoint.
    Remote {
        /// The base URL.
        endpoint: String,
    },
}

impl Locality {
    /// Whether the model runs on this machine.
    pub fn is_local(&self) -> bool {
        matches!(self, Self::Local)
    }
}

/// What a backend can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Takes `tools` and returns tool calls.
    pub tools: bool,
    /// Tool calls are constrained to valid names and schema-valid arguments.
    pub constrained_tool_calls: bool,
    /// Honours `response_format` json_object / json_schema.
    pub json_output: bool,
    /// Streams tokens as they come.
    pub streaming: bool,
    /// Context size in tokens, when known.
    pub context_length: Option<usize>,
    /// The [`Sampling`](crate::request::Sampling) settings it honours; a request that sets
    /// others gets them dropped or refused, as the backend's profile says.
    #[serde(default)]
    pub sampling: Vec<SamplingSetting>,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self {
            tools: true,
            constrained_tool_calls: false,
            json_output: true,
            streaming: true,
            context_length: None,
            sampling: Vec::new(),
        }
    }
}

/// What a backend says of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendInfo {
    /// Short backend name: `local`, `groq`, `openai`…
    pub name: String,
    /// The model id it serves by default.
    pub model: String,
    /// Where the model runs.
    pub locality: Locality,
    /// What it can do.
    pub capabilities: Capabilities,
}

/// A chat model provider. Object-safe: pick one at run time as `Arc<dyn ChatBackend>`.
///
/// Cancellation: dropping the future of [`complete`](Self::complete) or the stream from
/// [`stream`](Self::stream) cancels the request; backends stop work promptly (local engines
/// within one token).
#[async_trait]
pub trait ChatBackend: Send + Sync {
    /// Name, model, locality and capabilities.
    fn info(&self) -> &BackendInfo;

    /// One whole answer.
    async fn complete(&self, req: ChatRequest) -> Result<ChatResponse, BackendError>;

    /// The answer as a stream of chunks; the last carries the finish reason and usage.
    ///
    /// The default runs [`complete`](Self::complete) and yields its answer as one chunk.
    async fn stream(&self, req: ChatRequest) -> Result<ChatStream, BackendError> {
        let resp = self.complete(req).await?;
        Ok(Box::pin(futures::stream::iter(response_chunks(resp).into_iter().map(Ok))))
    }

    /// How many prompt tokens these messages take, when the backend can count them exactly
    /// or estimate them. `None` means it cannot tell.
    async fn count_tokens(&self, _messages: &[ChatMessage]) -> Result<Option<usize>, BackendError> {
        Ok(None)
    }

    /// Whether the backend can serve right now. The default is always [`BackendHealth::Ready`];
    /// a local engine reports [`BackendHealth::Unavailable`] while it restarts after a crash.
    fn health(&self) -> BackendHealth {
        BackendHealth::Ready
    }
}

/// What [`ChatBackend::health`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendHealth {
    /// Serving.
    Ready,
    /// Not serving now; requests fail until it recovers.
    Unavailable {
        /// Why, for people (e.g. "the inference thread panicked: …; restarting").
        reason: String,
        /// When to try again, if the backend can tell.
        retry_after: Option<std::time::Duration>,
    },
}

/// Splits a whole response into the chunks a stream of it would carry.
pub fn response_chunks(resp: ChatResponse) -> Vec<ChatChunk> {
    use crate::response::ToolCallDelta;
    let mut chunk = ChatChunk {
        content: resp.message.text().map(str::to_owned),
        tool_calls: resp
            .message
            .tool_calls()
            .iter()
            .enumerate()
            .map(|(i, c)| ToolCallDelta {
                index: i as u32,
                id: Some(c.id.clone()),
                name: Some(c.function.name.clone()),
                arguments: Some(c.function.arguments.clone()),
            })
            .collect(),
        finish_reason: Some(resp.finish_reason),
        usage: Some(resp.usage),
        timings: resp.timings,
        model: Some(resp.model),
        id: Some(resp.id),
    };
    if chunk.content.as_deref() == Some("") {
        chunk.content = None;
    }
    if chunk.finish_reason.is_none() {
        chunk.finish_reason = Some(FinishReason::Stop);
    }
    vec![chunk]
}

#[async_trait]
impl<B: ChatBackend + ?Sized> ChatBackend for Arc<B> {
    fn info(&self) -> &BackendInfo {
        (**self).info()
    }
    fn health(&self) -> BackendHealth {
        (**self).health()
    }
    async fn complete(&self, req: ChatRequest) -> Result<ChatResponse, BackendError> {
        (**self).complete(req).await
    }
    async fn stream(&self, req: ChatRequest) -> Result<ChatStream, BackendError> {
        (**self).stream(req).await
    }
    async fn count_tokens(&self, messages: &[ChatMessage]) -> Result<Option<usize>, BackendError> {
        (**self).count_tokens(messages).await
    }
}

#[async_trait]
impl<B: ChatBackend + ?Sized> ChatBackend for Box<B> {
    fn info(&self) -> &BackendInfo {
        (**self).info()
    }
    fn health(&self) -> BackendHealth {
        (**self).health()
    }
    async fn complete(&self, req: ChatRequest) -> Result<ChatResponse, BackendError> {
        (**self).complete(req).await
    }
    async fn stream(&self, req: ChatRequest) -> Result<ChatStream, BackendError> {
        (**self).stream(req).await
    }
    async fn count_tokens(&self, messages: &[ChatMessage]) -> Result<Option<usize>, BackendError> {
        (**self).count_tokens(messages).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::{StreamAccumulator, Usage};
    use futures::StreamExt;

    mockall::mock! {
        pub Backend {}
        #[async_trait]
        impl ChatBackend for Backend {
            fn info(&self) -> &BackendInfo;
            async fn complete(&self, req: ChatRequest) -> Result<ChatResponse, BackendError>;
        }
    }

    fn answer(text: &str) -> ChatResponse {
        ChatResponse {
            id: "r1".into(),
            model: "m".into(),
            message: ChatMessage::assistant(text),
            finish_reason: FinishReason::Stop,
            usage: Usage::new(2, 3, 0),
            timings: None,
            served_by: None,
        }
    }

    #[tokio::test]
    async fn default_stream_replays_complete_as_one_chunk() {
        let mut mock = MockBackend::new();
        mock.expect_complete().times(1).returning(|_| Ok(answer("hello")));
        let backend: Arc<dyn ChatBackend> = Arc::new(mock);
        let mut stream =
            backend.stream(ChatRequest::new(vec![ChatMessage::user("hi")])).await.unwrap();
        let mut acc = StreamAccumulator::new();
        while let Some(chunk) = stream.next().await {
            acc.push(&chunk.unwrap());
        }
        let resp = acc.finish().unwrap();
        assert_eq!(resp.text(), Some("hello"));
        assert_eq!(resp.usage.total_tokens, 5);
    }

    #[tokio::test]
    async fn errors_pass_through_the_arc_impl() {
        let mut mock = MockBackend::new();
        mock.expect_complete().returning(|_| Err(BackendError::Cancelled));
        let backend = Arc::new(mock);
        assert_eq!(
            backend.complete(ChatRequest::default()).await.unwrap_err(),
            BackendError::Cancelled
        );
    }

    #[test]
    fn locality_serialises_with_a_kind_tag() {
        let remote = Locality::Remote { endpoint: "https://api.groq.com/openai/v1".into() };
        assert_eq!(
            serde_json::to_value(&remote).unwrap(),
            serde_json::json!({"kind": "remote", "endpoint": "https://api.groq.com/openai/v1"})
        );
        assert!(Locality::Local.is_local());
    }
}
