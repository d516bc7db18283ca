//! The JSON on the wire: request bodies (with Groq's rules applied before sending) and the
//! completion, chunk and model-list bodies read back.

use agentgen_core::{
    BackendError, ChatChunk, ChatMessage, ChatRequest, ChatResponse, FinishReason, ResponseFormat,
    Timings, ToolCall, ToolCallDelta, Usage,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::{ConfigError, Provider};

/// Most stop sequences Groq takes.
pub const GROQ_MAX_STOP: usize = 4;

/// Body fields Groq rejects, refused before sending.
const GROQ_REFUSED: [&str; 3] = ["logprobs", "top_logprobs", "logit_bias"];

/// Fields the client owns, which `extra_body` may not set.
const RESERVED: [&str; 4] = ["model", "messages", "stream", "stream_options"];

/// Checks the config's extra body fields against the provider's rules.
pub fn check_extra(provider: Provider, extra: &Map<String, Value>) -> Result<(), ConfigError> {
    for (field, value) in extra {
        let bad = |message: &str| {
            Err(ConfigError::InvalidExtra { field: field.clone(), message: message.to_owned() })
        };
        if RESERVED.contains(&field.as_str()) {
            return bad("the client sets this field itself");
        }
        if provider == Provider::Groq {
            if GROQ_REFUSED.contains(&field.as_str())
                && !value.is_null()
                && value != &Value::Bool(false)
            {
                return bad("Groq does not support it");
            }
            if field == "n" && value != &Value::from(1) {
                return bad("Groq only accepts n = 1");
            }
        }
    }
    Ok(())
}

/// The JSON body of a chat-completion request, after the provider's rules.
pub fn request_body(
    provider: Provider,
    default_model: &str,
    req: &ChatRequest,
    stream: bool,
    extra: &Map<String, Value>,
) -> Result<Value, BackendError> {
    let mut req = req.clone();
    if req.model.as_deref().is_none_or(str::is_empty) {
        req.model = Some(default_model.to_owned());
    }
    if provider == Provider::Groq {
        groq_rules(&mut req, stream)?;
    }
    let mut body = match serde_json::to_value(&req) {
        Ok(Value::Object(map)) => map,
        Ok(_) | Err(_) => return Err(BackendError::Internal("request did not serialise".into())),
    };
    if provider == Provider::Groq {
        // Local-sampler knobs are not Groq fields.
        for field in ["top_k", "min_p", "repeat_penalty"] {
            body.remove(field);
        }
        if let Some(max) = body.remove("max_tokens") {
            body.insert("max_completion_tokens".into(), max);
        }
    }
    for (k, v) in extra {
        body.insert(k.clone(), v.clone());
    }
    if stream {
        body.insert("stream".into(), Value::Bool(true));
        body.insert("stream_options".into(), serde_json::json!({"include_usage": true}));
    }
    Ok(Value::Object(body))
}

fn groq_rules(req: &mut ChatRequest, stream: bool) -> Result<(), BackendError> {
    if req.stop.len() > GROQ_MAX_STOP {
        return Err(BackendError::invalid_param(
            format!("Groq takes at most {GROQ_MAX_STOP} stop sequences, got {}", req.stop.len()),
            "stop",
        ));
    }
    if matches!(req.response_format, Some(ResponseFormat::JsonSchema { .. })) {
        if stream {
            return Err(BackendError::invalid_param(
                "Groq cannot stream a json_schema response; use complete() or json_object",
                "response_format",
            ));
        }
        if !req.tools.is_empty() {
            return Err(BackendError::invalid_param(
                "Groq cannot combine a json_schema response with tools",
                "response_format",
            ));
        }
    }
    req.messages =
        std::mem::take(&mut req.messages).into_iter().map(ChatMessage::without_name).collect();
    Ok(())
}

#[derive(Debug, Deserialize)]
struct WireCompletion {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    timings: Option<WireTimings>,
}

#[derive(Debug, Deserialize)]
struct WireChoice {
    message: WireMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCall>>,
}

/// `usage`, with Groq's extra timings (seconds) and the OpenAI detail objects.
#[derive(Debug, Clone, Deserialize)]
pub struct WireUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    queue_time: Option<f64>,
    #[serde(default)]
    prompt_time: Option<f64>,
    #[serde(default)]
    completion_time: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u32>,
}

/// llama-server's `timings` object (fields it may leave out default to 0).
#[derive(Debug, Clone, Deserialize)]
struct WireTimings {
    #[serde(default)]
    prompt_n: u32,
    #[serde(default)]
    prompt_ms: f64,
    #[serde(default)]
    prompt_per_second: f64,
    #[serde(default)]
    predicted_n: u32,
    #[serde(default)]
    predicted_ms: f64,
    #[serde(default)]
    predicted_per_second: f64,
    #[serde(default)]
    time_to_first_token_ms: Option<f64>,
}

impl WireUsage {
    fn usage(&self) -> Usage {
        let cached = self.prompt_tokens_details.as_ref().and_then(|d| d.cached_tokens).unwrap_or(0);
        Usage::new(self.prompt_tokens, self.completion_tokens, cached)
    }

    /// Groq reports queue, prompt and completion seconds; turned into [`Timings`].
    fn timings(&self) -> Option<Timings> {
        let (prompt_s, completion_s) = (self.prompt_time?, self.completion_time?);
        let rate = |n: u32, s: f64| if s > 0.0 { f64::from(n) / s } else { 0.0 };
        Some(Timings {
            prompt_n: self.prompt_tokens,
            prompt_ms: prompt_s * 1000.0,
            prompt_per_second: rate(self.prompt_tokens, prompt_s),
            predicted_n: self.completion_tokens,
            predicted_ms: completion_s * 1000.0,
            predicted_per_second: rate(self.completion_tokens, completion_s),
            time_to_first_token_ms: (self.queue_time.unwrap_or(0.0) + prompt_s) * 1000.0,
        })
    }
}

impl WireTimings {
    fn timings(&self) -> Timings {
        Timings {
            prompt_n: self.prompt_n,
            prompt_ms: self.prompt_ms,
            prompt_per_second: self.prompt_per_second,
            predicted_n: self.predicted_n,
            predicted_ms: self.predicted_ms,
            predicted_per_second: self.predicted_per_second,
            time_to_first_token_ms: self.time_to_first_token_ms.unwrap_or(self.prompt_ms),
        }
    }
}

fn finish_reason(reason: &str) -> FinishReason {
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

/// Reads a whole completion body.
pub fn parse_completion(body: &[u8]) -> Result<ChatResponse, BackendError> {
    let wire: WireCompletion = serde_json::from_slice(body)
        .map_err(|e| BackendError::Protocol(format!("completion body is not valid: {e}")))?;
    let choice = wire
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| BackendError::Protocol("completion has no choices".into()))?;
    let tool_calls = choice.message.tool_calls.unwrap_or_default();
    let finish = match choice.finish_reason.as_deref() {
        Some(reason) => finish_reason(reason),
        None if !tool_calls.is_empty() => FinishReason::ToolCalls,
        None => FinishReason::Stop,
    };
    let timings = wire
        .timings
        .as_ref()
        .map(WireTimings::timings)
        .or_else(|| wire.usage.as_ref().and_then(WireUsage::timings));
    Ok(ChatResponse {
        id: wire.id,
        model: wire.model,
        message: ChatMessage::Assistant { content: choice.message.content, tool_calls, name: None },
        finish_reason: finish,
        usage: wire.usage.as_ref().map(WireUsage::usage).unwrap_or_default(),
        timings,
        served_by: None,
    })
}

#[derive(Debug, Deserialize)]
struct WireChunk {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<WireChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    x_groq: Option<XGroq>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    timings: Option<WireTimings>,
}

#[derive(Debug, Deserialize)]
struct WireChunkChoice {
    #[serde(default)]
    delta: Option<WireDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireToolDelta>,
}

#[derive(Debug, Deserialize)]
struct WireToolDelta {
    index: u32,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<WireFunctionDelta>,
}

#[derive(Debug, Deserialize)]
struct WireFunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Debug, Deserialize)]
struct XGroq {
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

/// Reads one streamed `data:` payload. An `error` in it (Groq's `x_groq.error`, or a
/// top-level `error` object as other servers send) becomes the error.
pub fn parse_chunk(data: &str) -> Result<ChatChunk, BackendError> {
    let wire: WireChunk = serde_json::from_str(data).map_err(|e| {
        let shown: String = data.chars().take(200).collect();
        BackendError::Protocol(format!("malformed stream chunk ({e}): {shown}"))
    })?;
    if let Some(err) = wire.x_groq.as_ref().and_then(|x| x.error.as_ref()).or(wire.error.as_ref()) {
        return Err(stream_error(err));
    }
    let mut chunk = ChatChunk { id: wire.id, model: wire.model, ..ChatChunk::default() };
    if let Some(choice) = wire.choices.into_iter().next() {
        if let Some(delta) = choice.delta {
            chunk.content = delta.content.filter(|c| !c.is_empty());
            chunk.tool_calls = delta
                .tool_calls
                .into_iter()
                .map(|d| {
                    let (name, arguments) =
                        d.function.map(|f| (f.name, f.arguments)).unwrap_or_default();
                    ToolCallDelta { index: d.index, id: d.id, name, arguments }
                })
                .collect();
        }
        chunk.finish_reason = choice.finish_reason.as_deref().map(finish_reason);
    }
    let usage = wire.x_groq.and_then(|x| x.usage).or(wire.usage);
    chunk.usage = usage.as_ref().map(WireUsage::usage);
    chunk.timings =
        wire.timings.as_ref().map(WireTimings::timings).or_else(|| usage.and_then(|u| u.timings()));
    Ok(chunk)
}

fn stream_error(err: &Value) -> BackendError {
    let message = match err {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| err.to_string()),
        other => other.to_string(),
    };
    let code = err.get("code").and_then(|c| c.as_str().map(str::to_owned));
    if code.as_deref() == Some("tool_use_failed") {
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

/// Reads `GET /models`: `{"data": [{"id": …}, …]}` (a bare array is accepted too).
pub fn parse_models(body: &[u8]) -> Result<Vec<ModelInfo>, BackendError> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        Wrapped { data: Vec<ModelInfo> },
        Bare(Vec<ModelInfo>),
    }
    let list: List = serde_json::from_slice(body)
        .map_err(|e| BackendError::Protocol(format!("model list is not valid: {e}")))?;
    Ok(match list {
        List::Wrapped { data } | List::Bare(data) => data,
    })
}

/// One model an endpoint offers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ModelInfo {
    /// The id to put in requests.
    pub id: String,
    /// Who publishes it, when said.
    #[serde(default)]
    pub owned_by: Option<String>,
    /// Context size in tokens, when said (Groq's `context_window`).
    #[serde(default, alias = "context_length", alias = "max_model_len")]
    pub context_window: Option<u64>,
    /// Whether it is served now, when said.
    #[serde(default)]
    pub active: Option<bool>,
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
