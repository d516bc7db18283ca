use super::*;
use crate::response::StreamAccumulator;
use proptest::prelude::*;
use serde_json::json;

#[test]
fn completion_with_tool_calls_and_groq_usage_is_read() {
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
    let resp = serde_json::from_value::<ChatCompletion>(body).unwrap().into_response().unwrap();
    assert_eq!(resp.finish_reason, FinishReason::ToolCalls);
    assert_eq!(resp.tool_calls()[0].function.name, "add");
    assert_eq!(resp.usage, Usage::new(10, 5, 4));
    let t = resp.timings.unwrap();
    assert!((t.predicted_per_second - 100.0).abs() < 1e-6);
    assert!((t.time_to_first_token_ms - 30.0).abs() < 1e-6);
}

#[test]
fn hostile_groq_seconds_are_dropped_not_trusted() {
    let usage = WireUsage {
        prompt_tokens: 1,
        completion_tokens: 1,
        prompt_time: Some(1e306),
        completion_time: Some(0.1),
        ..WireUsage::default()
    };
    assert_eq!(usage.timings(), None);
    let usage = WireUsage { prompt_time: Some(f64::NAN), ..usage };
    assert_eq!(usage.timings(), None);
    let usage = WireUsage { prompt_time: Some(0.5), queue_time: Some(-1.0), ..usage };
    assert_eq!(usage.timings(), None);
    let huge = WireUsage { prompt_tokens: u32::MAX, completion_tokens: u32::MAX, ..usage };
    assert_eq!(huge.usage().total_tokens, u32::MAX);
}

#[test]
fn a_completion_without_choices_is_a_protocol_error() {
    let c: ChatCompletion = serde_json::from_str(r#"{"choices":[]}"#).unwrap();
    assert!(matches!(c.into_response(), Err(BackendError::Protocol(_))));
}

#[test]
fn llama_server_timings_without_ttft_read_the_prompt_time() {
    let c: ChatCompletion = serde_json::from_value(json!({
        "choices": [{"message": {"content": "hi"}, "finish_reason": "eos"}],
        "timings": {"prompt_n": 3, "prompt_ms": 12.5, "predicted_n": 1, "predicted_ms": 4.0}
    }))
    .unwrap();
    let r = c.into_response().unwrap();
    assert_eq!(r.finish_reason, FinishReason::Stop);
    assert_eq!(r.timings.unwrap().time_to_first_token_ms, 12.5);
}

#[test]
fn chunks_carry_deltas_usage_and_errors() {
    let read = |s: &str| ChatCompletionChunk::parse(s).and_then(ChatCompletionChunk::into_chunk);
    let c = read(
        r#"{"id":"x","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"c","type":"function","function":{"name":"f","arguments":""}}]}}]}"#,
    )
    .unwrap();
    assert_eq!(c.tool_calls[0].index, 1);
    assert_eq!(c.tool_calls[0].name.as_deref(), Some("f"));
    let c = read(
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"x_groq":{"id":"r","usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}}"#,
    )
    .unwrap();
    assert_eq!(c.finish_reason, Some(FinishReason::Stop));
    assert_eq!(c.usage.unwrap().total_tokens, 5);
    let e = read(r#"{"choices":[],"x_groq":{"error":"over capacity"}}"#).unwrap_err();
    assert!(e.to_string().contains("over capacity"), "{e}");
    let e =
        read(r#"{"error":{"message":"bad","code":"tool_use_failed","failed_generation":"<f>"}}"#)
            .unwrap_err();
    assert!(
        matches!(e, BackendError::ToolUseFailed { failed_generation: Some(g), .. } if g == "<f>")
    );
    assert!(matches!(read("{\"choices\": [tru"), Err(BackendError::Protocol(_))));
    let c = read(r#"{"choices":[{"delta":null,"finish_reason":null}],"usage":null}"#).unwrap();
    assert_eq!(c, ChatChunk::default());
}

#[test]
fn written_chunks_have_openai_shape() {
    let w = ChunkWriter { id: "c".into(), created: 1, model: "m".into(), include_usage: true };
    let v = |c: ChatCompletionChunk| serde_json::to_value(c).unwrap();
    let role = v(w.role());
    assert_eq!(role["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
    assert_eq!(role["object"], "chat.completion.chunk");
    assert!(role["choices"][0]["finish_reason"].is_null());
    let d = v(w
        .delta(&ChatChunk {
            tool_calls: vec![ToolCallDelta {
                index: 0,
                id: Some("call_1".into()),
                name: Some("add".into()),
                arguments: None,
            }],
            ..ChatChunk::default()
        })
        .unwrap());
    assert_eq!(d["choices"][0]["delta"]["tool_calls"][0]["type"], "function");
    assert_eq!(d["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"], "");
    assert!(d["usage"].is_null() && d.as_object().unwrap().contains_key("usage"));
    assert!(w.delta(&ChatChunk::default()).is_none());
    let f = v(w.finish(&ChatChunk::default(), FinishReason::Length));
    assert_eq!(f["choices"][0]["delta"], json!({}));
    assert_eq!(f["choices"][0]["finish_reason"], "length");
    let u = v(w.usage(&Usage::new(3, 2, 1)));
    assert_eq!(u["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
    assert_eq!(u["choices"], json!([]));
    let quiet = ChunkWriter { include_usage: false, ..w };
    assert!(!v(quiet.role()).as_object().unwrap().contains_key("usage"));
}

#[test]
fn a_written_completion_has_openai_shape() {
    let resp = ChatResponse {
        id: "ignored".into(),
        model: "ignored".into(),
        message: ChatMessage::assistant("hi"),
        finish_reason: FinishReason::Stop,
        usage: Usage::new(2, 1, 0),
        timings: None,
        served_by: None,
    };
    let v = serde_json::to_value(ChatCompletion::from_response(&resp, "id1", 7, "m")).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["id"], "id1");
    assert_eq!(v["choices"][0]["message"], json!({"role": "assistant", "content": "hi"}));
    assert!(v["choices"][0]["logprobs"].is_null());
    assert!(v["system_fingerprint"].is_null());
    assert_eq!(v["usage"]["total_tokens"], 3);
    assert!(v.get("timings").is_none());
}

#[test]
fn request_transport_fields_round_trip() {
    let body = json!({
        "model": "m", "messages": [{"role": "user", "content": "hi"}],
        "top_k": 5, "max_tokens": 3, "stream": true, "stream_options": {"include_usage": true}
    });
    let req: ChatCompletionRequest = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(req.stream, Some(true));
    assert_eq!(req.request.sampling.top_k, Some(5));
    assert_eq!(serde_json::to_value(&req).unwrap(), body);
    let plain = ChatCompletionRequest::new(req.request, false);
    assert!(serde_json::to_value(&plain).unwrap().get("stream").is_none());
}

#[test]
fn model_lists_are_read_wrapped_or_bare() {
    let models = ModelList::parse(
        br#"{"object":"list","data":[{"id":"a","object":"model","owned_by":"Meta","context_window":131072,"active":true},{"id":"b"}]}"#,
    )
    .unwrap();
    assert_eq!(models.len(), 2);
    assert_eq!(models[0].context_window, Some(131072));
    assert_eq!(
        ModelList::parse(br#"[{"id":"c","max_model_len":8}]"#).unwrap()[0].context_window,
        Some(8)
    );
    assert!(ModelList::parse(b"{}").is_err());
}

// Generated values: what the server writes, the client reads back unchanged.

fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "\\PC{0,24}", "[ -~]{1,12}"]
}

fn finish() -> impl Strategy<Value = FinishReason> {
    prop_oneof![
        Just(FinishReason::Stop),
        Just(FinishReason::Length),
        Just(FinishReason::ToolCalls),
        Just(FinishReason::ContentFilter),
    ]
}

fn usage() -> impl Strategy<Value = Usage> {
    (0u32..1 << 30, 0u32..1 << 30, 0u32..1 << 30).prop_map(|(p, c, k)| Usage::new(p, c, k.min(p)))
}

fn timings() -> impl Strategy<Value = Option<Timings>> {
    // Eighths: exactly representable, so the JSON text round trip is exact.
    let ms = || (1u32..8_000_000).prop_map(|n| f64::from(n) / 8.0);
    proptest::option::of((0u32..100_000, ms(), 0u32..100_000, ms(), ms(), ms(), ms()).prop_map(
        |(pn, pms, dn, dms, pps, dps, ttft)| Timings {
            prompt_n: pn,
            prompt_ms: pms,
            prompt_per_second: pps,
            predicted_n: dn,
            predicted_ms: dms,
            predicted_per_second: dps,
            time_to_first_token_ms: ttft,
            draft_n: dn / 2,
            draft_n_accepted: dn / 4,
        },
    ))
}

fn tool_calls() -> impl Strategy<Value = Vec<ToolCall>> {
    proptest::collection::vec(
        ("[a-z0-9_]{1,10}", "[a-zA-Z_][a-zA-Z0-9_-]{0,20}", "\\PC{0,30}")
            .prop_map(|(id, name, args)| ToolCall::new(format!("call_{id}"), name, args)),
        0..4,
    )
}

fn response() -> impl Strategy<Value = ChatResponse> {
    (
        "[a-z0-9-]{1,20}",
        "[a-zA-Z0-9./:_-]{1,30}",
        proptest::option::of(text()),
        tool_calls(),
        finish(),
        usage(),
        timings(),
    )
        .prop_map(|(id, model, content, tool_calls, finish_reason, usage, timings)| {
            ChatResponse {
                id,
                model,
                message: ChatMessage::Assistant { content, tool_calls, name: None },
                finish_reason,
                usage,
                timings,
                served_by: None,
            }
        })
}

proptest! {
    #[test]
    fn a_written_completion_reads_back_as_the_same_response(resp in response()) {
        let written = ChatCompletion::from_response(&resp, &resp.id, 1_700_000_000, &resp.model);
        let bytes = serde_json::to_vec(&written).unwrap();
        let read: ChatCompletion = serde_json::from_slice(&bytes).unwrap();
        prop_assert_eq!(read.into_response().unwrap(), resp);
    }

    #[test]
    fn a_written_stream_reads_back_as_the_same_response(
        resp in response(),
        splits in proptest::collection::vec(1usize..8, 1..6),
        include_usage in any::<bool>(),
    ) {
        let writer = ChunkWriter {
            id: resp.id.clone(), created: 1, model: resp.model.clone(), include_usage,
        };
        // The backend's chunks: the text cut at generated places, each call's arguments too.
        let mut chunks = Vec::new();
        let content = resp.message.text().unwrap_or_default().chars().collect::<Vec<_>>();
        let mut at = 0;
        for n in splits.iter().cycle().take(content.len()) {
            if at >= content.len() { break; }
            let end = (at + n).min(content.len());
            chunks.push(ChatChunk::text(content[at..end].iter().collect::<String>()));
            at = end;
        }
        for (i, call) in resp.tool_calls().iter().enumerate() {
            let args = call.function.arguments.chars().collect::<Vec<_>>();
            let cut = splits[i % splits.len()].min(args.len());
            let piece = |id: Option<&str>, name: Option<&str>, a: &[char]| ChatChunk {
                tool_calls: vec![ToolCallDelta {
                    index: i as u32,
                    id: id.map(str::to_owned),
                    name: name.map(str::to_owned),
                    arguments: Some(a.iter().collect()),
                }],
                ..ChatChunk::default()
            };
            chunks.push(piece(Some(&call.id), Some(&call.function.name), &args[..cut]));
            chunks.push(piece(None, None, &args[cut..]));
        }
        let last = ChatChunk { timings: resp.timings, ..ChatChunk::default() };
        // What the server writes, as JSON text.
        let mut wire = vec![serde_json::to_string(&writer.role()).unwrap()];
        wire.extend(chunks.iter().filter_map(|c| writer.delta(c)).map(|c| serde_json::to_string(&c).unwrap()));
        wire.push(serde_json::to_string(&writer.finish(&last, resp.finish_reason)).unwrap());
        if include_usage {
            wire.push(serde_json::to_string(&writer.usage(&resp.usage)).unwrap());
        }
        // What the client reads.
        let mut acc = StreamAccumulator::new();
        for data in &wire {
            acc.push(&ChatCompletionChunk::parse(data).unwrap().into_chunk().unwrap());
        }
        let read = acc.finish().unwrap();
        let mut expected = resp.clone();
        if !include_usage {
            expected.usage = Usage::default();
        }
        if let ChatMessage::Assistant { content, .. } = &mut expected.message {
            // An empty text is not streamed: it reads back as no text.
            if content.as_deref() == Some("") { *content = None; }
        }
        prop_assert_eq!(read, expected);
    }
}
