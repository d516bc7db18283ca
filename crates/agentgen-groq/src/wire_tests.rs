use super::*;
use agentgen_core::ToolSpec;
use serde_json::json;

fn req() -> ChatRequest {
    ChatRequest::new(vec![ChatMessage::system("s"), ChatMessage::user_named("hi", "alice")])
}

#[test]
fn groq_body_strips_names_and_renames_max_tokens() {
    let mut r = req().with_max_tokens(32).with_temperature(0.0);
    r.top_k = Some(40);
    let body = request_body(Provider::Groq, "m1", &r, false, &Map::new()).unwrap();
    assert_eq!(body["model"], "m1");
    assert_eq!(body["messages"][1], json!({"role": "user", "content": "hi"}));
    assert_eq!(body["max_completion_tokens"], 32);
    assert_eq!(body["temperature"], 0.0);
    assert!(body.get("max_tokens").is_none());
    assert!(body.get("top_k").is_none());
    assert!(body.get("stream").is_none());
}

#[test]
fn compatible_body_is_sent_as_is() {
    let r = req().with_max_tokens(8);
    let body = request_body(Provider::OpenAiCompatible, "m", &r, true, &Map::new()).unwrap();
    assert_eq!(body["messages"][1]["name"], "alice");
    assert_eq!(body["max_tokens"], 8);
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
}

#[test]
fn groq_refuses_five_stops_and_schema_with_stream_or_tools() {
    let mut r = req();
    r.stop = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
    let err = request_body(Provider::Groq, "m", &r, false, &Map::new()).unwrap_err();
    assert!(matches!(&err, BackendError::InvalidRequest { param: Some(p), .. } if p == "stop"));
    r.stop.truncate(4);
    assert!(request_body(Provider::Groq, "m", &r, false, &Map::new()).is_ok());

    let r = req().with_response_format(ResponseFormat::json_schema("r", json!({"type": "object"})));
    assert!(request_body(Provider::Groq, "m", &r, false, &Map::new()).is_ok());
    let err = request_body(Provider::Groq, "m", &r, true, &Map::new()).unwrap_err();
    assert!(err.to_string().contains("stream"), "{err}");
    let r = r.with_tools(vec![ToolSpec::function("f", "d", json!({"type": "object"}))]);
    let err = request_body(Provider::Groq, "m", &r, false, &Map::new()).unwrap_err();
    assert!(err.to_string().contains("tools"), "{err}");
    // Other servers get what they are asked for.
    assert!(request_body(Provider::OpenAiCompatible, "m", &r, true, &Map::new()).is_ok());
}

#[test]
fn extras_follow_groq_rules() {
    let extra = |k: &str, v: Value| Map::from_iter([(k.to_owned(), v)]);
    assert!(check_extra(Provider::Groq, &extra("service_tier", json!("flex"))).is_ok());
    assert!(check_extra(Provider::Groq, &extra("n", json!(1))).is_ok());
    assert!(check_extra(Provider::Groq, &extra("n", json!(2))).is_err());
    assert!(check_extra(Provider::Groq, &extra("logprobs", json!(true))).is_err());
    assert!(check_extra(Provider::Groq, &extra("logit_bias", json!({"1": 2}))).is_err());
    assert!(check_extra(Provider::OpenAiCompatible, &extra("logprobs", json!(true))).is_ok());
    assert!(check_extra(Provider::OpenAiCompatible, &extra("stream", json!(true))).is_err());
    let body =
        request_body(Provider::Groq, "m", &req(), false, &extra("service_tier", json!("flex")))
            .unwrap();
    assert_eq!(body["service_tier"], "flex");
}

#[test]
fn completion_with_tool_calls_and_groq_usage() {
    let body = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "llama-3.1-8b-instant",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant",
            "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "add", "arguments": "{\"a\":1}"}}]}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
            "queue_time": 0.01, "prompt_time": 0.02, "completion_time": 0.05, "total_time": 0.08,
            "prompt_tokens_details": {"cached_tokens": 4}},
        "x_groq": {"id": "req_1"}
    });
    let resp = parse_completion(body.to_string().as_bytes()).unwrap();
    assert_eq!(resp.finish_reason, FinishReason::ToolCalls);
    assert_eq!(resp.tool_calls()[0].function.name, "add");
    assert_eq!(resp.usage, Usage::new(10, 5, 4));
    let t = resp.timings.unwrap();
    assert!((t.predicted_per_second - 100.0).abs() < 1e-6);
    assert!((t.time_to_first_token_ms - 30.0).abs() < 1e-6);
}

#[test]
fn bad_completions_are_protocol_errors() {
    assert!(matches!(parse_completion(b"not json"), Err(BackendError::Protocol(_))));
    assert!(matches!(parse_completion(br#"{"choices":[]}"#), Err(BackendError::Protocol(_))));
}

#[test]
fn chunks_carry_deltas_usage_and_errors() {
    let c = parse_chunk(
        r#"{"id":"x","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"c","type":"function","function":{"name":"f","arguments":""}}]}}]}"#,
    )
    .unwrap();
    assert_eq!(c.tool_calls[0].index, 1);
    assert_eq!(c.tool_calls[0].name.as_deref(), Some("f"));
    let c = parse_chunk(
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"x_groq":{"id":"r","usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}}"#,
    )
    .unwrap();
    assert_eq!(c.finish_reason, Some(FinishReason::Stop));
    assert_eq!(c.usage.unwrap().total_tokens, 5);
    let e = parse_chunk(r#"{"choices":[],"x_groq":{"error":"over capacity"}}"#).unwrap_err();
    assert!(e.to_string().contains("over capacity"), "{e}");
    let e = parse_chunk(
        r#"{"error":{"message":"bad","code":"tool_use_failed","failed_generation":"<f>"}}"#,
    )
    .unwrap_err();
    assert!(
        matches!(e, BackendError::ToolUseFailed { failed_generation: Some(g), .. } if g == "<f>")
    );
    assert!(matches!(parse_chunk("{\"choices\": [tru"), Err(BackendError::Protocol(_))));
}

#[test]
fn model_lists_are_read() {
    let models = parse_models(
        br#"{"object":"list","data":[{"id":"a","object":"model","owned_by":"Meta","context_window":131072,"active":true},{"id":"b"}]}"#,
    )
    .unwrap();
    assert_eq!(models.len(), 2);
    assert_eq!(models[0].context_window, Some(131072));
    assert_eq!(models[1].id, "b");
}
