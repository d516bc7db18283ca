//! Timing one streamed chat completion through any [`ChatBackend`], the way agent code sees it.

use std::time::Instant;

use agentgen_core::{BackendError, ChatBackend, ChatMessage, ChatRequest, Timings};
use futures::StreamExt;

/// What one streamed completion took.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// From sending the request to the first generated text (client side).
    pub ttft_ms: f64,
    /// From sending the request to the end of the stream.
    pub latency_ms: f64,
    /// Prompt tokens (usage), 0 when the backend does not say.
    pub prompt_tokens: u32,
    /// Prompt tokens served from a cache (usage).
    pub cached_tokens: u32,
    /// Generated tokens: usage when given, else the number of text chunks.
    pub completion_tokens: u32,
    /// Generated tokens per second after the first one, measured on the client.
    pub decode_tokens_per_s: f64,
    /// The engine's own timings, when it reports them.
    pub timings: Option<Timings>,
}

/// Sends `req` as a stream and times it. A stream that yields no text is an error: a figure
/// computed from zero tokens would be meaningless.
pub async fn stream_once(
    backend: &dyn ChatBackend,
    req: ChatRequest,
) -> Result<Sample, BackendError> {
    let start = Instant::now();
    let mut stream = backend.stream(req).await?;
    let mut first: Option<Instant> = None;
    let mut last = start;
    let mut chunks = 0u32;
    let mut usage = None;
    let mut timings = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        let has_text = chunk.content.as_deref().is_some_and(|c| !c.is_empty())
            || chunk
                .tool_calls
                .iter()
                .any(|t| t.arguments.as_deref().is_some_and(|a| !a.is_empty()));
        if has_text {
            let now = Instant::now();
            first.get_or_insert(now);
            last = now;
            chunks += 1;
        }
        if chunk.usage.is_some() {
            usage = chunk.usage;
        }
        if chunk.timings.is_some() {
            timings = chunk.timings;
        }
    }
    let end = Instant::now();
    let Some(first) = first else {
        return Err(BackendError::Internal("the stream ended without generating any text".into()));
    };
    let completion_tokens = usage.map_or(chunks, |u| u.completion_tokens.max(1));
    let decode_secs = last.duration_since(first).as_secs_f64();
    let decode_tokens_per_s = if completion_tokens > 1 && decode_secs > 0.0 {
        f64::from(completion_tokens - 1) / decode_secs
    } else {
        timings.map_or(0.0, |t| t.predicted_per_second)
    };
    Ok(Sample {
        ttft_ms: first.duration_since(start).as_secs_f64() * 1e3,
        latency_ms: end.duration_since(start).as_secs_f64() * 1e3,
        prompt_tokens: usage.map_or(0, |u| u.prompt_tokens),
        cached_tokens: usage.map_or(0, |u| u.cached_tokens),
        completion_tokens,
        decode_tokens_per_s,
        timings,
    })
}

/// Filler prose of roughly `tokens` tokens (about one token per short word) that starts with a
/// unique tag, so that no prefix cache can serve it from an earlier run.
pub fn filler(tag: &str, tokens: usize) -> String {
    const WORDS: &[&str] = &[
        "the", "river", "carries", "small", "stones", "past", "old", "mills", "while", "birds",
        "watch", "from", "green", "hills", "and", "farmers", "count", "their", "sheep", "at",
        "dawn", "near", "a", "quiet", "road",
    ];
    let mut out = format!("[{tag}] ");
    for i in 0..tokens {
        out.push_str(WORDS[(i * 7 + i / WORDS.len()) % WORDS.len()]);
        out.push_str(if i % 12 == 11 { ". " } else { " " });
    }
    out
}

/// A request that makes a model write a long answer (counting), after `prompt_tokens` of filler.
pub fn counting_request(tag: &str, prompt_tokens: usize, max_tokens: u32) -> ChatRequest {
    let text = format!(
        "{}\n\nIgnore the text above. Count from 1 to 500 in digits, separated by commas, and write nothing else.",
        filler(tag, prompt_tokens)
    );
    ChatRequest::new(vec![
        ChatMessage::system(format!("Benchmark run {tag}. You are a helpful assistant.")),
        ChatMessage::user(text),
    ])
    .with_temperature(0.0)
    .with_max_tokens(max_tokens)
}

/// A [`counting_request`] whose prompt is `tokens` tokens by the backend's own count, or the
/// nearest of a few tries (a filler word is one or two tokens); as asked when the backend
/// cannot count. The tokens a prefix cache already holds (the template's first few) still
/// count here: the engine's timings say how many it evaluated.
pub async fn sized_counting_request(
    backend: &dyn ChatBackend,
    tag: &str,
    tokens: usize,
    max_tokens: u32,
) -> Result<ChatRequest, BackendError> {
    const TRIES: usize = 8;
    let mut filler = tokens.saturating_sub(crate::workloads::PROMPT_OVERHEAD_TOKENS).max(1);
    let mut best = counting_request(tag, filler, max_tokens);
    let mut best_off = usize::MAX;
    for _ in 0..TRIES {
        let req = counting_request(tag, filler, max_tokens);
        let Some(n) = backend.count_tokens(&req.messages).await? else { return Ok(req) };
        let off = n.abs_diff(tokens);
        if off < best_off {
            (best, best_off) = (req, off);
        }
        let next = (filler + tokens).saturating_sub(n).max(1);
        if off == 0 || next == filler {
            break;
        }
        filler = next;
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filler_is_tagged_and_sized() {
        let a = filler("run-1", 100);
        let b = filler("run-2", 100);
        assert!(a.starts_with("[run-1] "));
        assert_ne!(a, b);
        let words = a.split_whitespace().count();
        assert!((100..=102).contains(&words), "{words}");
    }

    #[tokio::test]
    async fn sized_requests_hit_the_count() {
        // A backend that counts words: the size is found exactly.
        let words = agentgen_core::testing::ScriptedBackend::new().with_token_counter(|m| {
            m.iter().map(|m| m.text().unwrap_or_default().split_whitespace().count()).sum()
        });
        let req = sized_counting_request(&words, "t", 300, 8).await.unwrap();
        let n = words.count_tokens(&req.messages).await.unwrap().unwrap();
        assert_eq!(n, 300);
        assert_eq!(req.max_tokens, Some(8));
    }

    #[test]
    fn counting_request_is_greedy_and_bounded() {
        let req = counting_request("x", 10, 32);
        assert_eq!(req.temperature, Some(0.0));
        assert_eq!(req.max_tokens, Some(32));
        assert_eq!(req.messages.len(), 2);
    }
}
