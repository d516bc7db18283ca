//! What a backend answers: whole responses, streamed chunks, usage and timings.

use serde::{Deserialize, Serialize};

use crate::error::BackendError;
use crate::message::{ChatMessage, ToolCall};

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its turn or hit a stop sequence.
    #[default]
    Stop,
    /// `max_tokens` or the context ran out.
    Length,
    /// The turn ends with tool calls.
    ToolCalls,
    /// A provider's content filter stopped it.
    ContentFilter,
}

/// Token counts for one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
    /// Both.
    pub total_tokens: u32,
    /// Prompt tokens served from a cache instead of evaluated.
    #[serde(default)]
    pub cached_tokens: u32,
}

impl Usage {
    /// Usage from prompt, completion and cached counts.
    pub fn new(prompt_tokens: u32, completion_tokens: u32, cached_tokens: u32) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
            cached_tokens,
        }
    }
}

impl std::ops::Add for Usage {
    type Output = Usage;
    fn add(self, o: Usage) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens.saturating_add(o.prompt_tokens),
            completion_tokens: self.completion_tokens.saturating_add(o.completion_tokens),
            total_tokens: self.total_tokens.saturating_add(o.total_tokens),
            cached_tokens: self.cached_tokens.saturating_add(o.cached_tokens),
        }
    }
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, o: Usage) {
        *self = *self + o;
    }
}

/// How long a response took, llama-server style. Fields a server leaves out read as 0.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Timings {
    /// Prompt tokens actually evaluated (cached ones excluded).
    pub prompt_n: u32,
    /// Milliseconds spent on the prompt.
    pub prompt_ms: f64,
    /// Prompt tokens per second.
    pub prompt_per_second: f64,
    /// Tokens generated.
    pub predicted_n: u32,
    /// Milliseconds spent generating.
    pub predicted_ms: f64,
    /// Generated tokens per second.
    pub predicted_per_second: f64,
    /// Milliseconds from the request to the first generated token.
    pub time_to_first_token_ms: f64,
    /// Tokens drafted by speculative (lookup) decoding and evaluated; 0 without drafts.
    #[serde(skip_serializing_if = "is_zero")]
    pub draft_n: u32,
    /// Drafted tokens the model's own choice confirmed (each saved a decoding step).
    #[serde(skip_serializing_if = "is_zero")]
    pub draft_n_accepted: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A whole (non-streamed) answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// Provider's id for the completion.
    pub id: String,
    /// The model that answered.
    pub model: String,
    /// The assistant message (text and/or tool calls).
    pub message: ChatMessage,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// Token counts.
    pub usage: Usage,
    /// Timings, when the backend measures them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
    /// The name of the backend that served it (set by fallback chains).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_by: Option<String>,
}

impl ChatResponse {
    /// The assistant's text, if any.
    pub fn text(&self) -> Option<&str> {
        self.message.text()
    }

    /// The tool calls, if any.
    pub fn tool_calls(&self) -> &[ToolCall] {
        self.message.tool_calls()
    }
}

/// A piece of a tool call in a stream, keyed by `index`: the first piece of a call carries
/// `id` and `name`, later ones more `arguments` text.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ToolCallDelta {
    /// Which call of the turn this piece belongs to.
    pub index: u32,
    /// The call's id (first piece).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The function name (first piece).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// More of the arguments' JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// One streamed chunk. The last chunk carries `finish_reason` and, when known, `usage`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChatChunk {
    /// New text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// New tool-call pieces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallDelta>,
    /// Set on the last chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
    /// Set on the last chunk when the backend counts tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Set on the last chunk when the backend measures time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
    /// The model, when the backend says it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The completion id, when the backend says it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl ChatChunk {
    /// A chunk of text.
    pub fn text(content: impl Into<String>) -> Self {
        Self { content: Some(content.into()), ..Self::default() }
    }
}

/// Folds a stream of [`ChatChunk`]s into a [`ChatResponse`]: text appended, tool-call pieces
/// assembled by index, the last finish reason, usage and timings kept.
#[derive(Debug, Default)]
pub struct StreamAccumulator {
    content: String,
    saw_content: bool,
    calls: Vec<(u32, ToolCall)>,
    finish_reason: Option<FinishReason>,
    usage: Option<Usage>,
    timings: Option<Timings>,
    model: Option<String>,
    id: Option<String>,
}

impl StreamAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one chunk.
    pub fn push(&mut self, chunk: &ChatChunk) {
        if let Some(text) = &chunk.content {
            self.saw_content = true;
            self.content.push_str(text);
        }
        for delta in &chunk.tool_calls {
            let pos = match self.calls.iter().position(|(i, _)| *i == delta.index) {
                Some(pos) => pos,
                None => {
                    self.calls.push((delta.index, ToolCall::new("", "", "")));
                    self.calls.len() - 1
                }
            };
            let call = &mut self.calls[pos].1;
            if let Some(id) = &delta.id {
                call.id.clone_from(id);
            }
            if let Some(name) = &delta.name {
                call.function.name.push_str(name);
            }
            if let Some(args) = &delta.arguments {
                call.function.arguments.push_str(args);
            }
        }
        if chunk.finish_reason.is_some() {
            self.finish_reason = chunk.finish_reason;
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        if chunk.timings.is_some() {
            self.timings = chunk.timings;
        }
        if chunk.model.is_some() {
            self.model.clone_from(&chunk.model);
        }
        if chunk.id.is_some() && self.id.is_none() {
            self.id.clone_from(&chunk.id);
        }
    }

    /// Whether a finish reason has arrived (a stream that ends without one was cut short).
    pub fn is_finished(&self) -> bool {
        self.finish_reason.is_some()
    }

    /// The text so far.
    pub fn content(&self) -> &str {
        &self.content
    }

    /// The response. Errors with [`BackendError::Protocol`] when the stream ended without a
    /// finish reason, or a tool call never got its name.
    pub fn finish(mut self) -> Result<ChatResponse, BackendError> {
        let finish_reason = self.finish_reason.ok_or_else(|| {
            BackendError::Protocol("stream ended before a finish reason arrived".into())
        })?;
        self.calls.sort_by_key(|(i, _)| *i);
        let tool_calls: Vec<ToolCall> = self.calls.into_iter().map(|(_, c)| c).collect();
        if let Some(bad) = tool_calls.iter().find(|c| c.function.name.is_empty()) {
            return Err(BackendError::Protocol(format!(
                "streamed tool call `{}` has no function name",
                bad.id
            )));
        }
        let content = (self.saw_content && !self.content.is_empty()).then_some(self.content);
        Ok(ChatResponse {
            id: self.id.unwrap_or_default(),
            model: self.model.unwrap_or_default(),
            message: ChatMessage::Assistant { content, tool_calls, name: None },
            finish_reason,
            usage: self.usage.unwrap_or_default(),
            timings: self.timings,
            served_by: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_call_pieces_assemble_by_index() {
        let mut acc = StreamAccumulator::new();
        let piece = |index, id: Option<&str>, name: Option<&str>, args: &str| ChatChunk {
            tool_calls: vec![ToolCallDelta {
                index,
                id: id.map(Into::into),
                name: name.map(Into::into),
                arguments: Some(args.into()),
            }],
            ..ChatChunk::default()
        };
        acc.push(&piece(0, Some("a"), Some("add"), "{\"x\":"));
        acc.push(&piece(1, Some("b"), Some("mul"), "{}"));
        acc.push(&piece(0, None, None, "1}"));
        acc.push(&ChatChunk {
            finish_reason: Some(FinishReason::ToolCalls),
            usage: Some(Usage::new(3, 4, 1)),
            ..ChatChunk::default()
        });
        let resp = acc.finish().unwrap();
        assert_eq!(resp.tool_calls().len(), 2);
        assert_eq!(resp.tool_calls()[0].function.arguments, "{\"x\":1}");
        assert_eq!(resp.tool_calls()[1].function.name, "mul");
        assert_eq!(resp.text(), None);
        assert_eq!(resp.usage.total_tokens, 7);
    }

    #[test]
    fn a_stream_without_finish_reason_is_an_error() {
        let mut acc = StreamAccumulator::new();
        acc.push(&ChatChunk::text("partial"));
        assert!(matches!(acc.finish(), Err(BackendError::Protocol(_))));
    }

    #[test]
    fn usage_adds_up() {
        let total = Usage::new(1, 2, 0) + Usage::new(10, 20, 5);
        assert_eq!(
            total,
            Usage { prompt_tokens: 11, completion_tokens: 22, total_tokens: 33, cached_tokens: 5 }
        );
    }
}
