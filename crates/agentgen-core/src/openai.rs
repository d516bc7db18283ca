//! The OpenAI / Groq chat-completions wire format, typed in both directions: what a client
//! sends and a server reads ([`ChatCompletionRequest`]), and what a server writes and a client
//! reads ([`ChatCompletion`], [`ChatCompletionChunk`], [`WireUsage`], [`ErrorResponse`],
//! [`ModelList`]). Serde only, no I/O.
//!
//! The server writes these types with [`ChatCompletion::from_response`] and [`ChunkWriter`];
//! clients read them with [`ChatCompletion::into_response`] and
//! [`ChatCompletionChunk::into_chunk`]. Reading is lenient where real servers differ (missing
//! fields default, unknown finish reasons read as `stop`, llama-server's `timings`, Groq's
//! `x_groq`), writing is exactly OpenAI's shape.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::BackendError;
use crate::message::{ChatMessage, ToolCall};
use crate::request::ChatRequest;
use crate::response::{ChatChunk, ChatResponse, FinishReason, Timings, ToolCallDelta, Usage};

/// `object` of a whole completion.
pub const COMPLETION_OBJECT: &str = "chat.completion";
/// `object` of a streamed chunk.
pub const CHUNK_OBJECT: &str = "chat.completion.chunk";

/// A `POST /chat/completions` body: core's request plus the transport fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionRequest {
    /// Everything but the transport fields.
    #[serde(flatten)]
    pub request: ChatRequest,
    /// Answer as server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Streaming options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
}

impl ChatCompletionRequest {
    /// A streamed request asks for usage at the end; a whole one carries no transport fields.
    pub fn new(request: ChatRequest, stream: bool) -> Self {
        Self {
            request,
            stream: stream.then_some(true),
            stream_options: stream.then_some(StreamOptions { include_usage: true }),
        }
    }
}

/// `stream_options`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamOptions {
    /// End the stream with a chunk carrying `usage`.
    #[serde(default)]
    pub include_usage: bool,
}

/// The object around the choices of a whole completion ([`ChatCompletion`]) and of a streamed
/// chunk ([`ChatCompletionChunk`]): the same fields, one definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "C: Deserialize<'de>"))]
pub struct Envelope<C> {
    /// Completion id (the same on every chunk of a stream).
    #[serde(default)]
    pub id: String,
    /// `chat.completion` or `chat.completion.chunk`.
    #[serde(default)]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// Written as `null`.
    #[serde(default)]
    pub system_fingerprint: Option<String>,
    /// One choice (agentgen only asks for `n` = 1); none on a stream's usage chunk.
    #[serde(default)]
    pub choices: Vec<C>,
    /// Token counts (and Groq's seconds). On a stream under `include_usage`, `Some(None)` is
    /// the `null` OpenAI writes on every chunk but the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<WireUsage>>,
    /// llama-server's timings (on a stream, on the finish chunk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
    /// Groq's request id, and on a stream's last chunk its usage or the error that stopped it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_groq: Option<XGroq>,
    /// An error some servers put in a stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

/// A whole `chat.completion` object.
pub type ChatCompletion = Envelope<Choice>;

/// One streamed `chat.completion.chunk`.
pub type ChatCompletionChunk = Envelope<ChunkChoice>;

fn completion_object() -> String {
    COMPLETION_OBJECT.to_owned()
}

fn chunk_object() -> String {
    CHUNK_OBJECT.to_owned()
}

/// One choice of a whole completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// Its index (0).
    #[serde(default)]
    pub index: u32,
    /// The assistant message.
    pub message: AssistantMessage,
    /// Written as `null`.
    #[serde(default)]
    pub logprobs: Option<Value>,
    /// `stop`, `length`, `tool_calls`, `content_filter` (others are read as `stop`).
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// The assistant message of a [`Choice`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssistantMessage {
    /// Always `assistant`.
    #[serde(default = "assistant_role")]
    pub role: String,
    /// The text, `null` when the turn is only tool calls.
    #[serde(default)]
    pub content: Option<String>,
    /// Tool calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_empty")]
    pub tool_calls: Vec<ToolCall>,
}

fn assistant_role() -> String {
    "assistant".to_owned()
}

fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// `usage`, with OpenAI's detail object and Groq's seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireUsage {
    /// Tokens in the prompt.
    #[serde(default)]
    pub prompt_tokens: u32,
    /// Tokens generated.
    #[serde(default)]
    pub completion_tokens: u32,
    /// Both.
    #[serde(default)]
    pub total_tokens: u32,
    /// `cached_tokens`: prompt tokens served from a cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    /// Groq: seconds queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_time: Option<f64>,
    /// Groq: seconds on the prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_time: Option<f64>,
    /// Groq: seconds generating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<f64>,
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    /// Prompt tokens served from a cache.
    #[serde(default)]
    pub cached_tokens: Option<u32>,
}

impl From<&Usage> for WireUsage {
    fn from(u: &Usage) -> Self {
        Self {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.total_tokens,
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: Some(u.cached_tokens),
            }),
            ..Self::default()
        }
    }
}

impl WireUsage {
    /// Core's counts.
    pub fn usage(&self) -> Usage {
        let cached = self.prompt_tokens_details.and_then(|d| d.cached_tokens).unwrap_or(0);
        Usage::new(self.prompt_tokens, self.completion_tokens, cached)
    }

    /// Groq's queue, prompt and completion seconds as [`Timings`]; `None` when they are not
    /// all there or not finite, non-negative numbers an hour or under (a hostile upstream's
    /// `1e306` is dropped, not turned into an infinite duration).
    pub fn timings(&self) -> Option<Timings> {
        let sane = |s: f64| (s.is_finite() && (0.0..=3600.0).contains(&s)).then_some(s);
        let prompt_s = sane(self.prompt_time?)?;
        let completion_s = sane(self.completion_time?)?;
        let queue_s = self.queue_time.map_or(Some(0.0), sane)?;
        let rate = |n: u32, s: f64| if s > 0.0 { f64::from(n) / s } else { 0.0 };
        Some(Timings {
            prompt_n: self.prompt_tokens,
            prompt_ms: prompt_s * 1000.0,
            prompt_per_second: rate(self.prompt_tokens, prompt_s),
            predicted_n: self.completion_tokens,
            predicted_ms: completion_s * 1000.0,
            predicted_per_second: rate(self.completion_tokens, completion_s),
            time_to_first_token_ms: (queue_s + prompt_s) * 1000.0,
            ..Timings::default()
        })
    }
}

/// The wire name of a finish reason.
pub fn finish_reason_str(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
    }
}

/// Reads a finish reason, with the synonyms other servers use; an unknown one is `stop`.
pub fn parse_finish_reason(reason: &str) -> FinishReason {
    match reason {
        "stop" | "eos" | "end_turn" => FinishReason::Stop,
        "length" | "max_tokens" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        other => {
            tracing::warn!(finish_reason = other, "unknown finish_reason read as stop");
            FinishReason::Stop
        }
    }
}

/// llama-server's timings leave `time_to_first_token_ms` out; read it as the prompt time.
fn read_timings(t: Timings) -> Timings {
    if t.time_to_first_token_ms == 0.0 {
        Timings { time_to_first_token_ms: t.prompt_ms, ..t }
    } else {
        t
    }
}

impl ChatCompletion {
    /// The object a server writes for `resp`, under its own id, time and model name.
    pub fn from_response(resp: &ChatResponse, id: &str, created: u64, model: &str) -> Self {
        Self {
            id: id.to_owned(),
            object: completion_object(),
            created,
            model: model.to_owned(),
            system_fingerprint: None,
            choices: vec![Choice {
                index: 0,
                message: AssistantMessage {
                    role: assistant_role(),
                    content: resp.message.text().map(str::to_owned),
                    tool_calls: resp.tool_calls().to_vec(),
                },
                logprobs: None,
                finish_reason: Some(finish_reason_str(resp.finish_reason).to_owned()),
            }],
            usage: Some(Some(WireUsage::from(&resp.usage))),
            timings: resp.timings,
            x_groq: None,
            error: None,
        }
    }

    /// The response a client reads. Errors with [`BackendError::Protocol`] when there is no
    /// choice.
    pub fn into_response(self) -> Result<ChatResponse, BackendError> {
        let choice = self
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| BackendError::Protocol("completion has no choices".into()))?;
        let tool_calls = choice.message.tool_calls;
        let finish_reason = match choice.finish_reason.as_deref() {
            Some(reason) => parse_finish_reason(reason),
            None if !tool_calls.is_empty() => FinishReason::ToolCalls,
            None => FinishReason::Stop,
        };
        let usage = self.usage.flatten();
        let timings =
            self.timings.map(read_timings).or_else(|| usage.as_ref().and_then(WireUsage::timings));
        Ok(ChatResponse {
            id: self.id,
            model: self.model,
            message: ChatMessage::Assistant {
                content: choice.message.content,
                tool_calls,
                name: None,
            },
            finish_reason,
            usage: usage.as_ref().map(WireUsage::usage).unwrap_or_default(),
            timings,
            served_by: None,
        })
    }
}

/// Groq's `x_groq` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct XGroq {
    /// Groq's request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Usage, on the last chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<WireUsage>,
    /// An error that stopped the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

/// One choice of a chunk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// Its index (0).
    #[serde(default)]
    pub index: u32,
    /// What is new.
    #[serde(default)]
    pub delta: Option<Delta>,
    /// Written as `null`.
    #[serde(default)]
    pub logprobs: Option<Value>,
    /// Set on the chunk that ends the choice.
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// What a chunk adds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// `assistant`, on the first chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// New text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// New tool-call pieces.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_empty")]
    pub tool_calls: Vec<ToolCallChunk>,
}

/// A piece of a tool call in a chunk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCallChunk {
    /// Which call of the turn.
    pub index: u32,
    /// The call's id, on its first piece.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `function`, on its first piece.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name and/or more argument text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionDelta>,
}

/// The function half of a [`ToolCallChunk`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionDelta {
    /// The name, on the first piece.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// More of the arguments' JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

impl From<&ToolCallDelta> for ToolCallChunk {
    /// OpenAI's shape: the first piece (the one with an id) says `type: function`, and a
    /// piece that names the function carries `arguments`, empty when none came yet.
    fn from(d: &ToolCallDelta) -> Self {
        let function = (d.name.is_some() || d.arguments.is_some()).then(|| FunctionDelta {
            name: d.name.clone(),
            arguments: d.arguments.clone().or_else(|| d.name.as_ref().map(|_| String::new())),
        });
        Self {
            index: d.index,
            id: d.id.clone(),
            kind: d.id.as_ref().map(|_| "function".to_owned()),
            function,
        }
    }
}

impl From<ToolCallChunk> for ToolCallDelta {
    fn from(c: ToolCallChunk) -> Self {
        let (name, arguments) = c.function.map(|f| (f.name, f.arguments)).unwrap_or_default();
        Self { index: c.index, id: c.id, name, arguments }
    }
}

impl ChatCompletionChunk {
    /// Reads one streamed `data:` payload.
    pub fn parse(data: &str) -> Result<Self, BackendError> {
        serde_json::from_str(data).map_err(|e| {
            let shown: String = data.chars().take(200).collect();
            BackendError::Protocol(format!("malformed stream chunk ({e}): {shown}"))
        })
    }

    /// The chunk a client reads. An `error` in it (Groq's `x_groq.error`, or a top-level
    /// `error` as other servers send) becomes the error.
    pub fn into_chunk(self) -> Result<ChatChunk, BackendError> {
        let x_groq = self.x_groq.unwrap_or_default();
        if let Some(err) = x_groq.error.as_ref().or(self.error.as_ref()) {
            return Err(stream_error(err));
        }
        let mut chunk = ChatChunk {
            id: Some(self.id).filter(|s| !s.is_empty()),
            model: Some(self.model).filter(|s| !s.is_empty()),
            ..ChatChunk::default()
        };
        if let Some(choice) = self.choices.into_iter().next() {
            if let Some(delta) = choice.delta {
                chunk.content = delta.content.filter(|c| !c.is_empty());
                chunk.tool_calls = delta.tool_calls.into_iter().map(ToolCallDelta::from).collect();
            }
            chunk.finish_reason = choice.finish_reason.as_deref().map(parse_finish_reason);
        }
        let usage = x_groq.usage.or(self.usage.flatten());
        chunk.usage = usage.as_ref().map(WireUsage::usage);
        chunk.timings = self.timings.map(read_timings).or_else(|| usage.and_then(|u| u.timings()));
        Ok(chunk)
    }
}

/// An error object met inside a stream, as a [`BackendError`].
pub fn stream_error(err: &Value) -> BackendError {
    let message = match err {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| err.to_string()),
        other => other.to_string(),
    };
    let message: String = message.chars().take(2000).collect();
    if err.get("code").and_then(Value::as_str) == Some("tool_use_failed") {
        let failed_generation =
            err.get("failed_generation").and_then(Value::as_str).map(str::to_owned);
        return BackendError::ToolUseFailed { message, failed_generation };
    }
    BackendError::Unavailable {
        message: format!("stream stopped: {message}"),
        status: None,
        retry_after: None,
    }
}

/// Writes the `chat.completion.chunk` objects of one streamed completion.
#[derive(Debug, Clone)]
pub struct ChunkWriter {
    /// Completion id.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// Model id.
    pub model: String,
    /// Whether `usage: null` rides on every chunk and a usage chunk ends the stream.
    pub include_usage: bool,
}

impl ChunkWriter {
    fn chunk(&self, choices: Vec<ChunkChoice>) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: chunk_object(),
            created: self.created,
            model: self.model.clone(),
            system_fingerprint: None,
            choices,
            usage: self.include_usage.then_some(None),
            timings: None,
            x_groq: None,
            error: None,
        }
    }

    fn choice(delta: Delta, finish: Option<FinishReason>) -> Vec<ChunkChoice> {
        vec![ChunkChoice {
            index: 0,
            delta: Some(delta),
            logprobs: None,
            finish_reason: finish.map(|r| finish_reason_str(r).to_owned()),
        }]
    }

    /// The first chunk: the role, empty content.
    pub fn role(&self) -> ChatCompletionChunk {
        let delta = Delta {
            role: Some(assistant_role()),
            content: Some(String::new()),
            tool_calls: Vec::new(),
        };
        self.chunk(Self::choice(delta, None))
    }

    /// A chunk of new text and/or tool-call pieces; `None` when `c` has neither.
    pub fn delta(&self, c: &ChatChunk) -> Option<ChatCompletionChunk> {
        let delta = Delta {
            role: None,
            content: c.content.clone().filter(|t| !t.is_empty()),
            tool_calls: c.tool_calls.iter().map(ToolCallChunk::from).collect(),
        };
        (delta.content.is_some() || !delta.tool_calls.is_empty())
            .then(|| self.chunk(Self::choice(delta, None)))
    }

    /// The chunk that ends the choice: an empty delta, the finish reason, and the timings
    /// when the backend measured them.
    pub fn finish(&self, c: &ChatChunk, reason: FinishReason) -> ChatCompletionChunk {
        let mut chunk = self.chunk(Self::choice(Delta::default(), Some(reason)));
        chunk.timings = c.timings;
        chunk
    }

    /// The usage chunk sent after the finish chunk under `include_usage`.
    pub fn usage(&self, usage: &Usage) -> ChatCompletionChunk {
        let mut chunk = self.chunk(Vec::new());
        chunk.usage = Some(Some(WireUsage::from(usage)));
        chunk
    }
}

/// `{"error": {…}}`, OpenAI's error body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// The error.
    pub error: ErrorObject,
}

/// The error inside an [`ErrorResponse`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// What went wrong, for a person.
    #[serde(default)]
    pub message: String,
    /// `invalid_request_error`, `authentication_error`…
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The offending request field.
    #[serde(default)]
    pub param: Option<String>,
    /// Machine-readable code (`model_not_found`, `tool_use_failed`…).
    #[serde(default)]
    pub code: Option<String>,
    /// The model's raw output for Groq's `tool_use_failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_generation: Option<String>,
}

/// `GET /models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelList {
    /// Always `list`.
    #[serde(default = "list_object")]
    pub object: String,
    /// The models.
    pub data: Vec<ModelObject>,
}

fn list_object() -> String {
    "list".to_owned()
}

/// One model of a [`ModelList`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelObject {
    /// The id to put in requests.
    pub id: String,
    /// Always `model`.
    #[serde(default = "model_object")]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// Who publishes it.
    #[serde(default)]
    pub owned_by: Option<String>,
    /// Context size in tokens, when said (Groq's `context_window`, vLLM's `max_model_len`).
    #[serde(
        default,
        alias = "context_length",
        alias = "max_model_len",
        skip_serializing_if = "Option::is_none"
    )]
    pub context_window: Option<u64>,
    /// Whether it is served now, when said (Groq).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// llama-server's `meta` (`n_ctx`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
}

fn model_object() -> String {
    "model".to_owned()
}

impl ModelList {
    /// Reads `{"data": [...]}` or a bare array.
    pub fn parse(body: &[u8]) -> Result<Vec<ModelObject>, BackendError> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum List {
            Wrapped { data: Vec<ModelObject> },
            Bare(Vec<ModelObject>),
        }
        match serde_json::from_slice::<List>(body) {
            Ok(List::Wrapped { data } | List::Bare(data)) => Ok(data),
            Err(e) => Err(BackendError::Protocol(format!("model list is not valid: {e}"))),
        }
    }
}

#[cfg(test)]
#[path = "openai_tests.rs"]
mod tests;
