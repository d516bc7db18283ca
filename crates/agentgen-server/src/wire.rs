//! Reading and checking `POST /v1/chat/completions` bodies into core's typed wire format
//! ([`agentgen_core::openai`]), with a 400 naming the field for every problem; the answers
//! are written with core's [`ChatCompletion`](agentgen_core::openai::ChatCompletion) and
//! [`ChunkWriter`](agentgen_core::openai::ChunkWriter).

use agentgen_core::openai::{ChatCompletionRequest, StreamOptions};
use agentgen_core::{ChatRequest, ResponseFormat, SamplingSetting, ToolChoice};
use serde_json::{json, Map, Value};

use crate::error::ApiError;

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

/// How much a request's tools may ask of the server (the README's limits table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Tools in one request. Default 128.
    pub max_tools: usize,
    /// Bytes of one schema (a tool's parameters or the response format), as compact JSON.
    /// Default 64 KiB.
    pub max_schema_bytes: usize,
    /// Nesting depth of one schema. Default 32.
    pub max_schema_depth: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self { max_tools: 128, max_schema_bytes: 64 * 1024, max_schema_depth: 32 }
    }
}

/// Parses and checks a request body under the default [`RequestLimits`].
pub fn parse_chat_request(body: &[u8]) -> Result<ChatCompletionRequest, ApiError> {
    parse_chat_request_with(body, &RequestLimits::default())
}

/// Parses and checks a request body. Every problem is a 400 naming the field when it can.
pub fn parse_chat_request_with(
    body: &[u8],
    limits: &RequestLimits,
) -> Result<ChatCompletionRequest, ApiError> {
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
    validate(&request, limits)?;
    Ok(ChatCompletionRequest {
        request,
        stream: Some(stream),
        stream_options: Some(StreamOptions { include_usage }),
    })
}

/// Refuses [`Sampling`](agentgen_core::Sampling) settings the backend does not honour (a
/// 400 rather than a silently different answer); `honoured` is the backend's
/// [`Capabilities::sampling`](agentgen_core::Capabilities::sampling).
pub fn check_sampling(req: &ChatRequest, honoured: &[SamplingSetting]) -> Result<(), ApiError> {
    match req.sampling.unsupported(honoured).first() {
        None => Ok(()),
        Some(setting) => Err(ApiError::invalid_param(
            format!("`{setting}` is not supported by this server's backend."),
            setting.field(),
        )
        .with_code("unsupported_parameter")),
    }
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
fn validate(req: &ChatRequest, limits: &RequestLimits) -> Result<(), ApiError> {
    if req.messages.is_empty() {
        return Err(ApiError::invalid_param("`messages` must not be empty.", "messages"));
    }
    if req.tools.len() > limits.max_tools {
        return Err(ApiError::invalid_param(
            format!(
                "At most {} tools per request; this one has {}.",
                limits.max_tools,
                req.tools.len()
            ),
            "tools",
        )
        .with_code("too_many_tools"));
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
        let schema_param = format!("{param}.function.parameters");
        check_schema(&tool.function.parameters, &schema_param, true, limits)?;
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
        check_schema(&json_schema.schema, "response_format.json_schema.schema", false, limits)?;
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

fn check_schema(
    schema: &Value,
    param: &str,
    must_be_object: bool,
    limits: &RequestLimits,
) -> Result<(), ApiError> {
    let Some(obj) = schema.as_object() else {
        return Err(ApiError::invalid_param("The schema must be a JSON object.", param)
            .with_code("invalid_schema"));
    };
    let depth = json_depth(schema);
    if depth > limits.max_schema_depth {
        return Err(ApiError::invalid_param(
            format!("The schema nests {depth} levels deep; at most {}.", limits.max_schema_depth),
            param,
        )
        .with_code("schema_too_deep"));
    }
    let size = serde_json::to_vec(schema).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > limits.max_schema_bytes {
        return Err(ApiError::invalid_param(
            format!("The schema is {size} bytes; at most {}.", limits.max_schema_bytes),
            param,
        )
        .with_code("schema_too_large"));
    }
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

/// How deep arrays and objects nest in `v` (a scalar is 0). Iterative: no recursion on
/// hostile input.
fn json_depth(v: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, depth + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, depth + 1))),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> ApiError {
        parse_chat_request(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn tool_count_schema_depth_and_size_are_bounded() {
        let tool = |i: usize, schema: &Value| json!({"type": "function", "function": {"name": format!("t{i}"), "parameters": schema}});
        let body = |tools: Vec<Value>| {
            json!({"messages": [{"role": "user", "content": "x"}], "tools": tools}).to_string()
        };
        let flat = json!({"type": "object"});
        let ok: Vec<Value> = (0..128).map(|i| tool(i, &flat)).collect();
        assert!(parse_chat_request(body(ok).as_bytes()).is_ok());
        let many: Vec<Value> = (0..129).map(|i| tool(i, &flat)).collect();
        assert_eq!(err(&body(many)).code.as_deref(), Some("too_many_tools"));

        let mut deep = json!({"type": "string"});
        for _ in 0..20 {
            deep = json!({"type": "object", "properties": {"a": deep}});
        }
        let e = err(&body(vec![tool(0, &deep)]));
        assert_eq!(e.code.as_deref(), Some("schema_too_deep"));
        assert_eq!(e.param.as_deref(), Some("tools[0].function.parameters"));

        let props: Map<String, Value> =
            (0..3000).map(|i| (format!("field_{i}"), json!({"type": "string"}))).collect();
        let big = json!({"type": "object", "properties": props});
        assert_eq!(err(&body(vec![tool(0, &big)])).code.as_deref(), Some("schema_too_large"));
    }

    #[test]
    fn transport_fields_are_read() {
        let r = parse_chat_request(
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,
                "stream_options":{"include_usage":true},"n":1,"user":"u","logprobs":false}"#,
        )
        .unwrap();
        assert_eq!(r.stream, Some(true));
        assert!(r.stream_options.is_some_and(|o| o.include_usage));
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
    fn sampling_the_backend_does_not_honour_is_refused() {
        let r = parse_chat_request(br#"{"messages":[{"role":"user","content":"x"}],"min_p":0.1}"#)
            .unwrap();
        assert!(check_sampling(&r.request, &SamplingSetting::ALL).is_ok());
        let e = check_sampling(&r.request, &[SamplingSetting::TopK]).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("min_p"));
        assert_eq!(e.code.as_deref(), Some("unsupported_parameter"));
    }
}
