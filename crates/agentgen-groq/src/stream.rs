//! A streamed completion body turned into a [`ChatStream`]: SSE events parsed as they come,
//! the finish chunk merged with a usage-only chunk that follows it (OpenAI's
//! `include_usage` shape), and every way a stream can break turned into one error.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use agentgen_core::{BackendError, ChatChunk, ChatStream};
use bytes::Bytes;
use futures::{Stream, StreamExt};

use crate::sse::{SseEvent, SseParser};
use crate::wire::parse_chunk;

type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

/// Wraps a response body. `idle` is the longest gap allowed between network chunks.
pub fn chat_stream(body: ByteStream, idle: Duration) -> ChatStream {
    let state = StreamState {
        body,
        parser: SseParser::new(),
        pending: VecDeque::new(),
        held: None,
        saw_finish: false,
        done: false,
        idle,
    };
    Box::pin(futures::stream::unfold(
        state,
        |mut s| async move { s.next().await.map(|item| (item, s)) },
    ))
}

struct StreamState {
    body: ByteStream,
    parser: SseParser,
    pending: VecDeque<Result<ChatChunk, BackendError>>,
    /// The chunk with the finish reason, held until usage or the end arrives.
    held: Option<ChatChunk>,
    saw_finish: bool,
    /// No more input is read: `[DONE]`, the end of the body, or an error.
    done: bool,
    idle: Duration,
}

impl StreamState {
    async fn next(&mut self) -> Option<Result<ChatChunk, BackendError>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                if item.is_err() {
                    self.pending.clear();
                }
                return Some(item);
            }
            if self.done {
                return None;
            }
            match tokio::time::timeout(self.idle, self.body.next()).await {
                Err(_) => self.fail(BackendError::Timeout(self.idle)),
                Ok(Some(Ok(bytes))) => match self.parser.feed(&bytes) {
                    Ok(events) => events.into_iter().for_each(|e| self.event(e)),
                    Err(e) => self.fail(BackendError::Protocol(e.to_string())),
                },
                Ok(Some(Err(e))) => self
                    .fail(BackendError::Protocol(format!("stream broke off: {}", error_text(&e)))),
                Ok(None) => {
                    match self.parser.finish() {
                        Ok(Some(event)) => self.event(event),
                        Ok(None) => {}
                        Err(e) => self.fail(BackendError::Protocol(e.to_string())),
                    }
                    self.end();
                }
            }
        }
    }

    fn event(&mut self, event: SseEvent) {
        if self.done {
            return;
        }
        let data = event.data.trim();
        if data == "[DONE]" {
            return self.end();
        }
        if data.is_empty() {
            return;
        }
        if event.event.as_deref() == Some("error") {
            return self.fail(BackendError::unavailable(format!("stream stopped: {data}")));
        }
        match parse_chunk(data) {
            Ok(chunk) => self.accept(chunk),
            Err(e) => self.fail(e),
        }
    }

    fn accept(&mut self, chunk: ChatChunk) {
        let carries_output = chunk.content.is_some() || !chunk.tool_calls.is_empty();
        if chunk.finish_reason.is_some() {
            self.saw_finish = true;
            if let Some(previous) = self.held.replace(chunk) {
                self.pending.push_back(Ok(previous));
            }
            return;
        }
        if let Some(held) = &mut self.held {
            if !carries_output {
                if chunk.usage.is_some() {
                    held.usage = chunk.usage;
                }
                if chunk.timings.is_some() {
                    held.timings = chunk.timings;
                }
                return;
            }
            let held = self.held.take();
            self.pending.extend(held.map(Ok));
        }
        if carries_output || chunk.usage.is_some() || chunk.timings.is_some() {
            self.pending.push_back(Ok(chunk));
        }
    }

    /// The input ended (by `[DONE]` or by the body ending).
    fn end(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        match self.held.take() {
            Some(last) => self.pending.push_back(Ok(last)),
            None if !self.saw_finish => self.pending.push_back(Err(BackendError::Protocol(
                "stream ended before a finish reason arrived (truncated)".into(),
            ))),
            None => {}
        }
    }

    fn fail(&mut self, error: BackendError) {
        self.done = true;
        self.held = None;
        self.pending.push_back(Err(error));
    }
}

/// A reqwest error with its causes, which carry the useful part.
pub fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentgen_core::{FinishReason, StreamAccumulator};

    fn body(parts: &[&str]) -> ByteStream {
        let parts: Vec<Result<Bytes, reqwest::Error>> =
            parts.iter().map(|p| Ok(Bytes::copy_from_slice(p.as_bytes()))).collect();
        Box::pin(futures::stream::iter(parts))
    }

    async fn collect(parts: &[&str]) -> Vec<Result<ChatChunk, BackendError>> {
        chat_stream(body(parts), Duration::from_secs(5)).collect().await
    }

    #[tokio::test]
    async fn usage_after_the_finish_chunk_is_merged_into_it() {
        let items = collect(&[
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":1}}\n\n",
            "data: [DONE]\n\n",
        ])
        .await;
        let chunks: Vec<ChatChunk> = items.into_iter().map(Result::unwrap).collect();
        assert_eq!(chunks.len(), 2, "{chunks:?}");
        assert_eq!(chunks[1].finish_reason, Some(FinishReason::Stop));
        assert_eq!(chunks[1].usage.unwrap().total_tokens, 3);
        let mut acc = StreamAccumulator::new();
        chunks.iter().for_each(|c| acc.push(c));
        assert_eq!(acc.finish().unwrap().text(), Some("Hi"));
    }

    #[tokio::test]
    async fn a_body_that_ends_early_is_an_error() {
        let items = collect(&["data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n"]).await;
        assert_eq!(items.len(), 2);
        assert!(matches!(&items[1], Err(BackendError::Protocol(m)) if m.contains("truncated")));
    }

    #[tokio::test]
    async fn nothing_is_read_after_an_error() {
        let items = collect(&[
            "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {oops}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n",
        ])
        .await;
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert!(matches!(&items[1], Err(BackendError::Protocol(_))));
    }

    #[tokio::test]
    async fn a_stalled_body_times_out() {
        let stalled: ByteStream = Box::pin(futures::stream::pending());
        let items: Vec<_> = chat_stream(stalled, Duration::from_millis(50)).collect().await;
        assert!(matches!(items.as_slice(), [Err(BackendError::Timeout(_))]));
    }
}
