//! A backend wrapper that times each model call of one agent (request, first streamed piece,
//! end) and hands the measurement, with the backend's own usage and timings, to the live view.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use agentgen_core::{
    BackendError, BackendHealth, BackendInfo, ChatBackend, ChatMessage, ChatRequest, ChatResponse,
    ChatStream, Timings, Usage,
};
use futures::Stream;

use super::event::ModelCall;

/// Finished model calls not yet picked up; bounded (the oldest are dropped).
#[derive(Debug)]
pub struct CallLog {
    started: Instant,
    calls: Mutex<std::collections::VecDeque<ModelCall>>,
}

/// Calls kept before the oldest are dropped.
const MAX_CALLS: usize = 64;

impl CallLog {
    /// An empty log; times count from `started`.
    pub fn new(started: Instant) -> Self {
        Self { started, calls: Mutex::new(Default::default()) }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn push(&self, call: ModelCall) {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        if calls.len() >= MAX_CALLS {
            calls.pop_front();
        }
        calls.push_back(call);
    }

    /// Every call finished since the last take.
    pub fn take(&self) -> Vec<ModelCall> {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        calls.drain(..).collect()
    }
}

/// `inner`, with every call of `agent` measured into `log`.
pub struct Metered {
    inner: Arc<dyn ChatBackend>,
    agent: String,
    log: Arc<CallLog>,
}

impl std::fmt::Debug for Metered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metered").field("agent", &self.agent).finish()
    }
}

impl Metered {
    /// Wraps `inner` for `agent`.
    pub fn new(inner: Arc<dyn ChatBackend>, agent: &str, log: Arc<CallLog>) -> Self {
        Self { inner, agent: agent.to_owned(), log }
    }
}

#[async_trait::async_trait]
impl ChatBackend for Metered {
    fn info(&self) -> &BackendInfo {
        self.inner.info()
    }

    async fn complete(&self, req: ChatRequest) -> Result<ChatResponse, BackendError> {
        let start_ms = self.log.now_ms();
        let resp = self.inner.complete(req).await?;
        self.log.push(ModelCall {
            agent: self.agent.clone(),
            start_ms,
            end_ms: self.log.now_ms(),
            first_token_ms: None,
            usage: Some(resp.usage),
            timings: resp.timings,
        });
        Ok(resp)
    }

    async fn stream(&self, req: ChatRequest) -> Result<ChatStream, BackendError> {
        let start_ms = self.log.now_ms();
        let inner = self.inner.stream(req).await?;
        Ok(Box::pin(MeteredStream {
            inner,
            log: Arc::clone(&self.log),
            call: Some(ModelCall {
                agent: self.agent.clone(),
                start_ms,
                end_ms: start_ms,
                first_token_ms: None,
                usage: None,
                timings: None,
            }),
        }))
    }

    async fn count_tokens(&self, messages: &[ChatMessage]) -> Result<Option<usize>, BackendError> {
        self.inner.count_tokens(messages).await
    }

    fn health(&self) -> BackendHealth {
        self.inner.health()
    }
}

/// The stream of a metered call: logs the call when the stream ends (a dropped, cancelled
/// stream logs nothing).
struct MeteredStream {
    inner: ChatStream,
    log: Arc<CallLog>,
    call: Option<ModelCall>,
}

impl Stream for MeteredStream {
    type Item = Result<agentgen_core::ChatChunk, BackendError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = futures::ready!(this.inner.as_mut().poll_next(cx));
        match &item {
            Some(Ok(chunk)) => {
                if let Some(call) = &mut this.call {
                    let text = chunk.content.as_deref().is_some_and(|t| !t.is_empty());
                    if call.first_token_ms.is_none() && (text || !chunk.tool_calls.is_empty()) {
                        call.first_token_ms = Some(this.log.now_ms());
                    }
                    merge(call, chunk.usage, chunk.timings);
                }
            }
            Some(Err(_)) => this.call = None,
            None => {
                if let Some(mut call) = this.call.take() {
                    call.end_ms = this.log.now_ms();
                    this.log.push(call);
                }
            }
        }
        Poll::Ready(item)
    }
}

fn merge(call: &mut ModelCall, usage: Option<Usage>, timings: Option<Timings>) {
    if usage.is_some() {
        call.usage = usage;
    }
    if timings.is_some() {
        call.timings = timings;
    }
}

#[cfg(test)]
mod tests {
    use agentgen_core::testing::ScriptedBackend;
    use futures::StreamExt;

    use super::*;

    #[tokio::test]
    async fn streamed_and_whole_calls_are_logged_with_usage_and_a_dropped_stream_is_not() {
        let log = Arc::new(CallLog::new(Instant::now()));
        let inner: Arc<dyn ChatBackend> =
            Arc::new(ScriptedBackend::with_texts(["one two", "three", "four"]));
        let metered = Metered::new(inner, "w", Arc::clone(&log));
        let mut stream = metered.stream(ChatRequest::default()).await.unwrap();
        while stream.next().await.is_some() {}
        metered.complete(ChatRequest::default()).await.unwrap();
        let calls = log.take();
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert!(calls.iter().all(|c| c.agent == "w" && c.usage.is_some()));
        assert!(calls[0].first_token_ms.is_some(), "the streamed call saw its first piece");
        assert!(calls[0].start_ms <= calls[0].first_token_ms.unwrap());
        assert_eq!(calls[1].first_token_ms, None);
        let stream = metered.stream(ChatRequest::default()).await.unwrap();
        drop(stream);
        assert!(log.take().is_empty(), "a cancelled call has no measurement");
    }
}
