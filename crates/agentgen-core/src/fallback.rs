//! [`FallbackBackend`]: a chain of backends tried in order (e.g. Groq, then a local model)
//! when one is unavailable, rate-limited or timed out.

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;

use crate::backend::{BackendInfo, Capabilities, ChatBackend, ChatStream, Locality};
use crate::error::BackendError;
use crate::message::ChatMessage;
use crate::request::ChatRequest;
use crate::response::ChatResponse;

/// Tries each backend in turn. It moves on only for errors where
/// [`BackendError::should_fall_back`] holds (unavailable, rate-limited, timed out); any
/// other error is the request's own fault and is returned at once.
///
/// Every [`ChatResponse`] it returns names the backend that served it in `served_by`
/// (kept as is when a nested chain already set it). A stream falls back only when its
/// backend fails before the first chunk; once a chunk has been yielded, a later error is
/// passed to the caller, since the text so far cannot be taken back.
#[derive(Clone)]
pub struct FallbackBackend {
    backends: Vec<Arc<dyn ChatBackend>>,
    info: BackendInfo,
}

impl std::fmt::Debug for FallbackBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.backends.iter().map(|b| b.info().name.as_str()).collect();
        f.debug_struct("FallbackBackend").field("backends", &names).finish()
    }
}

impl FallbackBackend {
    /// A chain: the first backend is the primary, the rest are tried in order. An empty
    /// chain answers every request with [`BackendError::InvalidRequest`].
    pub fn new(backends: Vec<Arc<dyn ChatBackend>>) -> Self {
        let info = chain_info(&backends);
        Self { backends, info }
    }

    /// The backends, in the order they are tried.
    pub fn backends(&self) -> &[Arc<dyn ChatBackend>] {
        &self.backends
    }

    fn empty_error() -> BackendError {
        BackendError::invalid("the fallback chain has no backends")
    }

    fn may_try_next(&self, index: usize, error: &BackendError) -> bool {
        let next = index + 1 < self.backends.len();
        if next && error.should_fall_back() {
            tracing::warn!(
                from = %self.backends[index].info().name,
                to = %self.backends[index + 1].info().name,
                %error,
                "falling back to the next backend"
            );
        }
        next && error.should_fall_back()
    }
}

/// Name `fallback`; the primary's model and locality; only the capabilities every
/// backend has; the smallest known context.
fn chain_info(backends: &[Arc<dyn ChatBackend>]) -> BackendInfo {
    let Some(primary) = backends.first() else {
        return BackendInfo {
            name: "fallback".into(),
            model: String::new(),
            locality: Locality::Local,
            capabilities: Capabilities::default(),
        };
    };
    let all = |f: fn(&Capabilities) -> bool| backends.iter().all(|b| f(&b.info().capabilities));
    BackendInfo {
        name: "fallback".into(),
        model: primary.info().model.clone(),
        locality: primary.info().locality.clone(),
        capabilities: Capabilities {
            tools: all(|c| c.tools),
            constrained_tool_calls: all(|c| c.constrained_tool_calls),
            json_output: all(|c| c.json_output),
            streaming: all(|c| c.streaming),
            context_length: backends
                .iter()
                .filter_map(|b| b.info().capabilities.context_length)
                .min(),
            // A setting is honoured only if every backend of the chain honours it.
            sampling: primary
                .info()
                .capabilities
                .sampling
                .iter()
                .copied()
                .filter(|s| backends.iter().all(|b| b.info().capabilities.sampling.contains(s)))
                .collect(),
        },
    }
}

#[async_trait]
impl ChatBackend for FallbackBackend {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    /// Ready when any backend of the chain is; otherwise the first one's reason.
    fn health(&self) -> crate::BackendHealth {
        let mut first = None;
        for backend in &self.backends {
            match backend.health() {
                crate::BackendHealth::Ready => return crate::BackendHealth::Ready,
                down => {
                    first.get_or_insert(down);
                }
            }
        }
        first.unwrap_or(crate::BackendHealth::Ready)
    }

    async fn complete(&self, req: ChatRequest) -> Result<ChatResponse, BackendError> {
        let mut last = Self::empty_error();
        for (i, backend) in self.backends.iter().enumerate() {
            match backend.complete(req.clone()).await {
                Ok(mut resp) => {
                    if resp.served_by.is_none() {
                        resp.served_by = Some(backend.info().name.clone());
                    }
                    return Ok(resp);
                }
                Err(e) if self.may_try_next(i, &e) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    async fn stream(&self, req: ChatRequest) -> Result<ChatStream, BackendError> {
        let mut last = Self::empty_error();
        for (i, backend) in self.backends.iter().enumerate() {
            let first = match backend.stream(req.clone()).await {
                Ok(mut stream) => match stream.next().await {
                    Some(Ok(chunk)) => {
                        tracing::debug!(served_by = %backend.info().name, "fallback chain streaming");
                        let head = futures::stream::once(async move { Ok(chunk) });
                        return Ok(Box::pin(head.chain(stream)));
                    }
                    None => return Ok(stream),
                    Some(Err(e)) => e,
                },
                Err(e) => e,
            };
            if !self.may_try_next(i, &first) {
                return Err(first);
            }
            last = first;
        }
        Err(last)
    }

    /// The first backend's count that is known.
    async fn count_tokens(&self, messages: &[ChatMessage]) -> Result<Option<usize>, BackendError> {
        for backend in &self.backends {
            if let Some(n) = backend.count_tokens(messages).await? {
                return Ok(Some(n));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::response::{ChatChunk, FinishReason, StreamAccumulator, Usage};

    /// What a scripted backend does for one call.
    enum Step {
        Answer(&'static str),
        Fail(BackendError),
        /// A stream of these items.
        Chunks(Vec<Result<ChatChunk, BackendError>>),
    }

    struct Scripted {
        info: BackendInfo,
        steps: Mutex<VecDeque<Step>>,
        calls: AtomicUsize,
    }

    impl Scripted {
        fn new(name: &str, steps: Vec<Step>) -> Arc<Self> {
            let mut info = BackendInfo {
                name: name.into(),
                model: format!("{name}-model"),
                locality: Locality::Local,
                capabilities: Capabilities::default(),
            };
            if name == "local" {
                info.capabilities.constrained_tool_calls = true;
                info.capabilities.context_length = Some(4096);
            }
            Arc::new(Self { info, steps: Mutex::new(steps.into()), calls: AtomicUsize::new(0) })
        }

        fn next(&self) -> Step {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.steps.lock().unwrap().pop_front().expect("the script ran out")
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    fn answer(text: &str) -> ChatResponse {
        ChatResponse {
            id: "id".into(),
            model: "m".into(),
            message: ChatMessage::assistant(text),
            finish_reason: FinishReason::Stop,
            usage: Usage::new(1, 1, 0),
            timings: None,
            served_by: None,
        }
    }

    #[async_trait]
    impl ChatBackend for Scripted {
        fn info(&self) -> &BackendInfo {
            &self.info
        }
        async fn complete(&self, _req: ChatRequest) -> Result<ChatResponse, BackendError> {
            match self.next() {
                Step::Answer(text) => Ok(answer(text)),
                Step::Fail(e) => Err(e),
                Step::Chunks(_) => panic!("complete() got a stream step"),
            }
        }
        async fn stream(&self, _req: ChatRequest) -> Result<ChatStream, BackendError> {
            match self.next() {
                Step::Chunks(items) => Ok(Box::pin(futures::stream::iter(items))),
                Step::Fail(e) => Err(e),
                Step::Answer(_) => panic!("stream() got a complete step"),
            }
        }
    }

    fn rate_limited() -> BackendError {
        BackendError::RateLimited {
            retry_after: Some(Duration::from_secs(5)),
            message: "slow".into(),
        }
    }

    fn chain(backends: &[&Arc<Scripted>]) -> FallbackBackend {
        FallbackBackend::new(
            backends.iter().map(|b| Arc::clone(b) as Arc<dyn ChatBackend>).collect(),
        )
    }

    fn req() -> ChatRequest {
        ChatRequest::new(vec![ChatMessage::user("hi")])
    }

    #[tokio::test]
    async fn unavailable_primary_falls_back_and_says_who_served() {
        let groq = Scripted::new("groq", vec![Step::Fail(BackendError::unavailable("503"))]);
        let local = Scripted::new("local", vec![Step::Answer("from local")]);
        let resp = chain(&[&groq, &local]).complete(req()).await.unwrap();
        assert_eq!(resp.text(), Some("from local"));
        assert_eq!(resp.served_by.as_deref(), Some("local"));
    }

    #[tokio::test]
    async fn a_healthy_primary_serves_and_the_secondary_is_not_called() {
        let groq = Scripted::new("groq", vec![Step::Answer("fast")]);
        let local = Scripted::new("local", vec![]);
        let resp = chain(&[&groq, &local]).complete(req()).await.unwrap();
        assert_eq!(resp.served_by.as_deref(), Some("groq"));
        assert_eq!(local.calls(), 0);
    }

    #[tokio::test]
    async fn request_errors_do_not_fall_back() {
        let groq = Scripted::new("groq", vec![Step::Fail(BackendError::invalid("bad schema"))]);
        let local = Scripted::new("local", vec![]);
        let err = chain(&[&groq, &local]).complete(req()).await.unwrap_err();
        assert_eq!(err, BackendError::invalid("bad schema"));
        assert_eq!(local.calls(), 0);
    }

    #[tokio::test]
    async fn when_all_fail_the_last_error_is_returned() {
        let a = Scripted::new("a", vec![Step::Fail(rate_limited())]);
        let b = Scripted::new("b", vec![Step::Fail(BackendError::Timeout(Duration::from_secs(1)))]);
        let err = chain(&[&a, &b]).complete(req()).await.unwrap_err();
        assert_eq!(err, BackendError::Timeout(Duration::from_secs(1)));
        assert_eq!((a.calls(), b.calls()), (1, 1));
    }

    #[tokio::test]
    async fn a_stream_failing_before_its_first_chunk_falls_back() {
        let groq = Scripted::new("groq", vec![Step::Chunks(vec![Err(rate_limited())])]);
        let last = ChatChunk { finish_reason: Some(FinishReason::Stop), ..ChatChunk::default() };
        let local = Scripted::new(
            "local",
            vec![Step::Chunks(vec![
                Ok(ChatChunk::text("lo")),
                Ok(ChatChunk::text("cal")),
                Ok(last),
            ])],
        );
        let mut stream = chain(&[&groq, &local]).stream(req()).await.unwrap();
        let mut acc = StreamAccumulator::new();
        while let Some(chunk) = stream.next().await {
            acc.push(&chunk.unwrap());
        }
        assert_eq!(acc.finish().unwrap().text(), Some("local"));
        assert_eq!(local.calls(), 1);
    }

    #[tokio::test]
    async fn a_stream_failing_after_its_first_chunk_does_not_fall_back() {
        let groq = Scripted::new(
            "groq",
            vec![Step::Chunks(vec![
                Ok(ChatChunk::text("par")),
                Err(BackendError::unavailable("cut")),
            ])],
        );
        let local = Scripted::new("local", vec![]);
        let items: Vec<_> = chain(&[&groq, &local]).stream(req()).await.unwrap().collect().await;
        assert_eq!(items.len(), 2);
        assert_eq!(items[0], Ok(ChatChunk::text("par")));
        assert!(matches!(items[1], Err(BackendError::Unavailable { .. })));
        assert_eq!(local.calls(), 0);
    }

    #[tokio::test]
    async fn a_stream_refused_up_front_falls_back() {
        let groq = Scripted::new("groq", vec![Step::Fail(rate_limited())]);
        let done = ChatChunk { finish_reason: Some(FinishReason::Stop), ..ChatChunk::text("ok") };
        let local = Scripted::new("local", vec![Step::Chunks(vec![Ok(done.clone())])]);
        let items: Vec<_> = chain(&[&groq, &local]).stream(req()).await.unwrap().collect().await;
        assert_eq!(items, vec![Ok(done)]);
    }

    #[tokio::test]
    async fn an_empty_chain_is_an_error_not_a_panic() {
        let empty = FallbackBackend::new(Vec::new());
        assert!(matches!(empty.complete(req()).await, Err(BackendError::InvalidRequest { .. })));
        assert!(empty.stream(req()).await.is_err());
    }

    #[test]
    fn info_keeps_only_shared_capabilities() {
        let groq = Scripted::new("groq", vec![]);
        let local = Scripted::new("local", vec![]);
        let info = chain(&[&groq, &local]).info().clone();
        assert_eq!(info.name, "fallback");
        assert_eq!(info.model, "groq-model");
        assert!(!info.capabilities.constrained_tool_calls);
        assert_eq!(info.capabilities.context_length, Some(4096));
    }
}
