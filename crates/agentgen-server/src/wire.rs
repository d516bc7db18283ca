//! The OpenAI chat-completions wire format: parsing and checking request bodies, and the
//! shapes of responses and stream chunks.

use agentgen_core::{
    ChatChunk, ChatRequest, ChatResponse, FinishReason, ResponseFormat, ToolChoice, Usage,
};
use serde_json::{json, Map, Value};

use crate::error::ApiError;

/// A parsed `POST /v1/chat/completions` body: core's request plus the transport fields.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatCompletionRequest {
    /// The request the backend gets.
    pub request: ChatRequest,
    /// Answer as server-sent events.
    pub stream: bool,
    /// `stream_options.include_usage`: end the stream with a usage chunk.
    pub include_usage: bool,
}

/// Fields OpenAI defines that this server cannot honour; a request that uses them gets a 400
/// rather than a silently different answer. Each entry says which values are harmless.
/// Says whether a value of an unsupported field is harmless (absent, false, zero…).
type Harmless = fn(&Value) -> bool;

const UNSUPPORTED: &[(&str, Harmless)] = &[
    ("logprobs", |v| v.is_null() || v == &Value::Bool(false)),
    ("top_logprobs", |v| v.is_null() || v.as_u64() == Some(0)),
    ("logit_bias", |v| v.is_null() || v.as_object().is_some_and(Map::is_empty)),
    ("functions", Value::is_null),
    ("function_call", Value::is_null),
    ("audio", Value::is_null),
    ("prediction", Value::is_null),
    ("web_search_options", Value::is_null),
    ("modalities", |v| v.is_null() || v == &json!(["text"])),
    ("frequency_penalty", |v| v.is_null() || v.as_f64() == Some(0.0)),
    ("presence_penalty", |v| v.is_null() || v.as_f64() == Some(0.0)),
];

/// Parses and checks a request body. Every problem is a 400 naming the field when it can.
pub fn parse_chat_request(body: &[u8]) -> Result<ChatCompletionRequest, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(format!(
            "We could not parse the JSON body of your request: {e}. The body must be a JSON object."
        ))
        .with_code("invalid_json")
    })?;
    let Value::Object(mut obj) = value else {
        return Err(
            ApiError::invalid("The request body must be a JSON object.").with_code("invalid_json")
        );
    };
    for (field, harmless) in UNSUPPORTED {
        if let Some(v) = obj.get(*field) {
            if !harmless(v) {
                return Err(ApiError::invalid_param(
                    format!("`{field}` is not supported by this server."),
                    *field,
                )
                .with_code("unsupported_parameter"));
            }
        }
    }
    let stream = match obj.remove("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(wrong_type("stream", "a boolean")),
    };
    let include_usage = match obj.remove("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) => match o.get("include_usage") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(wrong_type("stream_options.include_usage", "a boolean")),
        },
        Some(_) => return Err(wrong_type("stream_options", "an object")),
    };
    match obj.remove("n") {
        None | Some(Value::Null) => {}
        Some(v) if v.as_u64() == Some(1) => {}
        Some(v) if v.is_u64() => {
            return Err(ApiError::invalid_param("Only `n: 1` is supported.", "n")
                .with_code("unsupported_parameter"))
        }
        Some(_) => return Err(wrong_type("n", "an integer")),
    }
    if !obj.contains_key("messages") {
        return Err(ApiError::invalid_param("`messages` is required.", "messages")
            .with_code("missing_required_parameter"));
    }
    let request: ChatRequest = match serde_json::from_value(Value::Object(obj.clone())) {
        Ok(r) => r,
        Err(e) => {
            let param = offending_field(&obj);
            let mut err =
                ApiError::invalid(format!("Invalid request body: {e}")).with_code("invalid_type");
            err.param = param;
            return Err(err);
        }
    };
    validate(&request)?;
    Ok(ChatCompletionRequest { request, stream, include_usage })
}

fn wrong_type(param: &str, expected: &str) -> ApiError {
    ApiError::invalid_param(format!("`{param}` must be {expected}."), param)
        .with_code("invalid_type")
}

/// Finds the first top-level field that fails on its own, to name it in the error.
fn offending_field(obj: &Map<String, Value>) -> Option<String> {
    for (key, value) in obj {
        let mut probe = Map::new();
        probe.insert("messages".into(), if key == "messages" { value.clone() } else { json!([]) });
        probe.insert(key.clone(), value.clone());
        if serde_json::from_value::<ChatRequest>(Value::Object(probe)).is_err() {
            if key == "messages" {
                if let Some(items) = value.as_array() {
                    for (i, m) in items.iter().enumerate() {
                        if serde_json::from_value::<agentgen_core::ChatMessage>(m.clone()).is_err()
                        {
                            return Some(format!("messages[{i}]"));
                        }
                    }
                }
            }
            return Some(key.clone());
        }
    }
    None
}

/// Checks what serde cannot: non-empty messages, tool names and schemas, tool choice, ranges.
fn validate(req: &ChatRequest) -> Result<(), ApiError> {
    if req.messages.is_empty() {
        return Err(ApiError::invalid_param("`messages` must not be empty.", "messages"));
    }
    let mut names = std::collections::HashSet::new();
    for (i, tool) in req.tools.iter().enumerate() {
        let param = format!("tools[{i}]");
        if tool.kind != "function" {
            return Err(ApiError::invalid_param(
                format!("Tool type `{}` is not supported; only `function`.", tool.kind),
                format!("{param}.type"),
            ));
        }
        let name = &tool.function.name;
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok {
            return Err(ApiError::invalid_param(
                format!("Invalid tool name `{name}`: use 1 to 64 letters, digits, `_` or `-`."),
                format!("{param}.function.name"),
            ));
        }
        if !names.insert(name.as_str()) {
            return Err(ApiError::invalid_param(
                format!("Duplicate tool name `{name}`."),
                format!("{param}.function.name"),
            ));
        }
        check_schema(&tool.function.parameters, &format!("{param}.function.parameters"), true)?;
    }
    match &req.tool_choice {
        Some(ToolChoice::Function(name)) if !names.contains(name.as_str()) => {
            return Err(ApiError::invalid_param(
                format!("`tool_choice` names `{name}`, which is not among the tools."),
                "tool_choice",
            ))
        }
        Some(ToolChoice::Required) if req.tools.is_empty() => {
            return Err(ApiError::invalid_param(
                "`tool_choice: required` needs `tools`.",
                "tool_choice",
            ))
        }
        _ => {}
    }
    if let Some(ResponseFormat::JsonSchema { json_schema }) = &req.response_format {
        check_schema(&json_schema.schema, "response_format.json_schema.schema", false)?;
    }
    if let Some(t) = req.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(ApiError::invalid_param(
                "`temperature` must be between 0 and 2.",
                "temperature",
            ));
        }
    }
    if let Some(p) = req.top_p {
        if !(0.0..=1.0).contains(&p) {
            return Err(ApiError::invalid_param("`top_p` must be between 0 and 1.", "top_p"));
        }
    }
    if req.max_tokens == Some(0) {
        return Err(ApiError::invalid_param("`max_tokens` must be at least 1.", "max_tokens"));
    }
    Ok(())
}

fn check_schema(schema: &Value, param: &str, must_be_object: bool) -> Result<(), ApiError> {
    let Some(obj) = schema.as_object() else {
        return Err(ApiError::invalid_param("The schema must be a JSON object.", param)
            .with_code("invalid_schema"));
    };
    if must_be_object {
        if let Some(t) = obj.get("type") {
            if t != "object" {
                return Err(ApiError::invalid_param(
                    format!("Tool parameters must be an object schema, not type {t}."),
                    param,
                )
                .with_code("invalid_schema"));
            }
        }
    }
    jsonschema::validator_for(schema).map_err(|e| {
        ApiError::invalid_param(format!("Invalid JSON schema: {e}"), param)
            .with_code("invalid_schema")
    })?;
    Ok(())
}

/// The `usage` object, with `prompt_tokens_details.cached_tokens`.
pub fn usage_json(usage: &Usage) -> Value {
    json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    })
}

fn finish_str(reason: FinishReason) -> Value {
    serde_json::to_value(reason).unwrap_or(Value::Null)
}

/// A whole `chat.completion` object.
pub fn completion_json(resp: &ChatResponse, id: &str, created: u64, model: &str) -> Value {
    let mut message = json!({"role": "assistant", "content": resp.message.text()});
    if !resp.tool_calls().is_empty() {
        message["tool_calls"] = serde_json::to_value(resp.tool_calls()).unwrap_or(Value::Null);
    }
    let mut body = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": Value::Null,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": Value::Null,
            "finish_reason": finish_str(resp.finish_reason),
        }],
        "usage": usage_json(&resp.usage),
    });
    if let Some(t) = &resp.timings {
        body["timings"] = serde_json::to_value(t).unwrap_or(Value::Null);
    }
    body
}

/// Builds the `chat.completion.chunk` objects of one streamed completion.
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
    fn chunk(&self, choices: Value) -> Value {
        let mut c = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": Value::Null,
            "choices": choices,
        });
        if self.include_usage {
            c["usage"] = Value::Null;
        }
        c
    }

    fn choice(&self, delta: Value, finish: Option<FinishReason>) -> Value {
        json!([{
            "index": 0,
            "delta": delta,
            "logprobs": Value::Null,
            "finish_reason": finish.map(finish_str),
        }])
    }

    /// The first chunk: the role, empty content.
    pub fn role(&self) -> Value {
        self.chunk(self.choice(json!({"role": "assistant", "content": ""}), None))
    }

    /// A chunk of new text and/or tool-call pieces, or `None` when the backend chunk has neither.
    pub fn delta(&self, c: &ChatChunk) -> Option<Value> {
        let mut delta = Map::new();
        if let Some(text) = c.content.as_deref().filter(|t| !t.is_empty()) {
            delta.insert("content".into(), json!(text));
        }
        if !c.tool_calls.is_empty() {
            let calls: Vec<Value> = c
                .tool_calls
                .iter()
                .map(|d| {
                    let mut call = json!({"index": d.index});
                    if let Some(id) = &d.id {
                        call["id"] = json!(id);
                        call["type"] = json!("function");
                    }
                    let mut function = Map::new();
                    if let Some(name) = &d.name {
                        function.insert("name".into(), json!(name));
                    }
                    if let Some(args) = &d.arguments {
                        function.insert("arguments".into(), json!(args));
                    } else if d.name.is_some() {
                        function.insert("arguments".into(), json!(""));
                    }
                    call["function"] = Value::Object(function);
                    call
                })
                .collect();
            delta.insert("tool_calls".into(), Value::Array(calls));
        }
        (!delta.is_empty()).then(|| self.chunk(self.choice(Value::Object(delta), None)))
    }

    /// The chunk that ends the choice: an empty delta, the finish reason, and llama-server's
    /// `timings` when the backend measured them.
    pub fn finish(&self, c: &ChatChunk, reason: FinishReason) -> Value {
        let mut v = self.chunk(self.choice(json!({}), Some(reason)));
        if let Some(t) = &c.timings {
            v["timings"] = serde_json::to_value(t).unwrap_or(Value::Null);
        }
        v
    }

    /// The usage chunk sent after the finish chunk under `include_usage`.
    pub fn usage(&self, usage: &Usage) -> Value {
        let mut v = self.chunk(json!([]));
        v["usage"] = usage_json(usage);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> ApiError {
        parse_chat_request(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn transport_fields_are_read() {
        let r = parse_chat_request(
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,
                "stream_options":{"include_usage":true},"n":1,"user":"u","logprobs":false}"#,
        )
        .unwrap();
        assert!(r.stream && r.include_usage);
        assert_eq!(r.request.model.as_deref(), Some("m"));
    }

    #[test]
    fn bad_bodies_name_their_field() {
        assert_eq!(err("{not json").code.as_deref(), Some("invalid_json"));
        assert_eq!(err("[1]").code.as_deref(), Some("invalid_json"));
        assert_eq!(
            err(r#"{"messages":[{"role":"user","content":"x"}],"logprobs":true}"#).param.as_deref(),
            Some("logprobs")
        );
        assert_eq!(
            err(r#"{"messages":[{"role":"user","content":"x"}],"n":3}"#).param.as_deref(),
            Some("n")
        );
        assert_eq!(
            err(r#"{"messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#)
                .param
                .as_deref(),
            Some("temperature")
        );
        assert_eq!(err(r#"{"messages":"hello"}"#).param.as_deref(), Some("messages"));
        assert_eq!(
            err(r#"{"messages":[{"role":"wizard","content":"x"}]}"#).param.as_deref(),
            Some("messages[0]")
        );
        assert_eq!(err(r#"{"messages":[]}"#).param.as_deref(), Some("messages"));
        assert_eq!(err(r#"{"model":"m"}"#).param.as_deref(), Some("messages"));
    }

    #[test]
    fn bad_tools_are_rejected() {
        let tool = |params: &str| {
            format!(
                r#"{{"messages":[{{"role":"user","content":"x"}}],"tools":[{{"type":"function","function":{{"name":"f","parameters":{params}}}}}]}}"#
            )
        };
        assert_eq!(err(&tool(r#"{"type":"string"}"#)).code.as_deref(), Some("invalid_schema"));
        assert_eq!(
            err(&tool(r#"{"type":"object","properties":{"a":{"type":"nonsense"}}}"#))
                .code
                .as_deref(),
            Some("invalid_schema")
        );
        assert_eq!(err(&tool("[]")).code.as_deref(), Some("invalid_schema"));
        assert!(parse_chat_request(
            tool(r#"{"type":"object","properties":{"a":{"type":"integer"}}}"#).as_bytes()
        )
        .is_ok());
        let choice = r#"{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"g"}}}"#;
        assert_eq!(err(choice).param.as_deref(), Some("tool_choice"));
    }

    #[test]
    fn chunks_have_openai_shape() {
        let w = ChunkWriter { id: "c".into(), created: 1, model: "m".into(), include_usage: true };
        assert_eq!(w.role()["choices"][0]["delta"]["role"], "assistant");
        let d = w
            .delta(&ChatChunk {
                tool_calls: vec![agentgen_core::ToolCallDelta {
                    index: 0,
                    id: Some("call_1".into()),
                    name: Some("add".into()),
                    arguments: None,
                }],
                ..ChatChunk::default()
            })
            .unwrap();
        assert_eq!(d["choices"][0]["delta"]["tool_calls"][0]["type"], "function");
        assert_eq!(d["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"], "");
        assert!(d["usage"].is_null() && d.as_object().unwrap().contains_key("usage"));
        assert!(w.delta(&ChatChunk::default()).is_none());
        let u = w.usage(&Usage::new(3, 2, 1));
        assert_eq!(u["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
        assert_eq!(u["choices"], json!([]));
    }
}
