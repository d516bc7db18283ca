//! Chat against a real HTTP server on 127.0.0.1 that speaks Groq's format: whole and
//! streamed answers, tool calls streamed in pieces, Groq's request rules, rate-limit
//! headers and pacing, model listing.

mod common;

use std::time::{Duration, Instant};

use agentgen_core::{
    BackendError, ChatBackend, ChatMessage, ChatRequest, FinishReason, Locality, ResponseFormat,
    StreamAccumulator, ToolChoice, ToolSpec,
};
use agentgen_groq::{OpenAiBackend, OpenAiConfig};
use common::{chunk_event, completion, rate_limit_headers, sse, End, Reply, TestServer, MODEL};
use futures::StreamExt;
use serde_json::json;

fn add_tool() -> ToolSpec {
    ToolSpec::function(
        "add",
        "Adds two integers",
        json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
               "required": ["a", "b"]}),
    )
}

async fn collect(
    backend: &OpenAiBackend,
    req: ChatRequest,
) -> Result<agentgen_core::ChatResponse, BackendError> {
    let mut stream = backend.stream(req).await?;
    let mut acc = StreamAccumulator::new();
    while let Some(chunk) = stream.next().await {
        acc.push(&chunk?);
    }
    acc.finish()
}

#[tokio::test]
async fn plain_chat_sends_every_option_and_reads_the_answer() {
    let server = TestServer::start(vec![completion("Hello from Groq")]).await;
    let backend = OpenAiBackend::new(server.groq()).unwrap();
    assert_eq!(backend.info().locality, Locality::Remote { endpoint: server.base_url.clone() });

    let mut req = ChatRequest::new(vec![
        ChatMessage::system("Be brief."),
        ChatMessage::user_named("Hi", "alice"),
    ])
    .with_tools(vec![add_tool()])
    .with_tool_choice(ToolChoice::Function("add".into()))
    .with_temperature(0.0)
    .with_seed(7)
    .with_max_tokens(64)
    .with_response_format(ResponseFormat::JsonObject);
    req.parallel_tool_calls = Some(false);
    req.stop = vec!["END".into()];

    let resp = backend.complete(req).await.unwrap();
    assert_eq!(resp.text(), Some("Hello from Groq"));
    assert_eq!(resp.finish_reason, FinishReason::Stop);
    assert_eq!(
        (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens),
        (12, 3, 15)
    );
    assert_eq!(resp.model, MODEL);
    assert!(resp.timings.is_some(), "Groq's usage times become timings");

    let seen = server.chat_requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer test-key"));
    let body = &seen[0].body;
    assert_eq!(body["model"], MODEL);
    // Groq rejects messages[].name: it must not reach the server.
    assert_eq!(body["messages"][1], json!({"role": "user", "content": "Hi"}));
    assert_eq!(body["tools"][0]["function"]["name"], "add");
    assert_eq!(body["tool_choice"], json!({"type": "function", "function": {"name": "add"}}));
    assert_eq!(body["parallel_tool_calls"], false);
    assert_eq!(body["response_format"], json!({"type": "json_object"}));
    assert_eq!(body["temperature"], 0.0);
    assert_eq!(body["seed"], 7);
    assert_eq!(body["max_completion_tokens"], 64);
    assert_eq!(body["stop"], json!(["END"]));
    assert!(body.get("max_tokens").is_none() && body.get("stream").is_none());
}

#[tokio::test]
async fn rate_limit_headers_are_remembered() {
    let server = TestServer::start(vec![completion("ok")]).await;
    let backend = OpenAiBackend::new(server.groq()).unwrap();
    assert!(!backend.rate_limits().is_known());
    let before = Instant::now();
    backend.complete(ChatRequest::new(vec![ChatMessage::user("hi")])).await.unwrap();
    let rl = backend.rate_limits();
    assert_eq!(rl.limit_requests, Some(14400));
    assert_eq!(rl.remaining_requests, Some(14399));
    assert_eq!(rl.remaining_tokens, Some(17990));
    let reset = rl.reset_tokens_at.unwrap().duration_since(before);
    assert!(
        reset >= Duration::from_millis(7660),
        "tokens reset 7.66s after the answer, got {reset:?}"
    );
    let reset = rl.reset_requests_at.unwrap().duration_since(before);
    assert!(
        reset >= Duration::from_millis(179_560),
        "requests reset 2m59.56s after, got {reset:?}"
    );
}

#[tokio::test]
async fn streamed_chat_assembles_text_and_reads_x_groq_usage() {
    let events = [
        ": keep-alive comment\n\n".to_owned(),
        chunk_event(
            json!({"role": "assistant", "content": ""}),
            None,
            Some(json!({"id": "req_1"})),
        ),
        chunk_event(json!({"content": "Straße "}), None, None),
        chunk_event(json!({"content": "und "}), None, None),
        chunk_event(json!({"content": "Brücke"}), None, None),
        chunk_event(
            json!({}),
            Some("stop"),
            Some(json!({"id": "req_1", "usage": {"prompt_tokens": 9, "completion_tokens": 4,
                "total_tokens": 13, "queue_time": 0.01, "prompt_time": 0.001, "completion_time": 0.004}})),
        ),
        "data: [DONE]\n\n".to_owned(),
    ];
    // CRLF line ends and 5-byte network writes split lines and UTF-8 characters.
    let events: Vec<String> = events.iter().map(|e| e.replace('\n', "\r\n")).collect();
    let server = TestServer::start(vec![sse(&events, 5, End::Close)]).await;
    let backend = OpenAiBackend::new(server.groq()).unwrap();

    let mut stream = backend.stream(ChatRequest::new(vec![ChatMessage::user("hi")])).await.unwrap();
    let mut pieces = Vec::new();
    let mut acc = StreamAccumulator::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        pieces.extend(chunk.content.clone());
        acc.push(&chunk);
    }
    assert_eq!(pieces, vec!["Straße ", "und ", "Brücke"], "text arrives as it was streamed");
    let resp = acc.finish().unwrap();
    assert_eq!(resp.text(), Some("Straße und Brücke"));
    assert_eq!(resp.usage.total_tokens, 13);
    assert_eq!(resp.finish_reason, FinishReason::Stop);

    let body = &server.chat_requests()[0].body;
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
}

#[tokio::test]
async fn streamed_tool_calls_split_over_many_chunks_are_assembled_by_index() {
    let call = |index: u32, id: &str, name: &str| {
        json!({"tool_calls": [{"index": index, "id": id, "type": "function",
            "function": {"name": name, "arguments": ""}}]})
    };
    let args = |index: u32, piece: &str| json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]});
    let mut events = vec![chunk_event(json!({"role": "assistant"}), None, None)];
    events.push(chunk_event(call(0, "call_a", "add"), None, None));
    events.push(chunk_event(call(1, "call_b", "add"), None, None));
    // Argument JSON cut mid-token and interleaved between the two calls.
    for (i, piece) in [
        (0, "{\"a\""),
        (1, "{\"a\": 1"),
        (0, ": 12"),
        (1, "0, \"b\""),
        (0, "3, \"b\": -"),
        (1, ": 5}"),
        (0, "4}"),
    ] {
        events.push(chunk_event(args(i, piece), None, None));
    }
    events.push(chunk_event(
        json!({}),
        Some("tool_calls"),
        Some(json!({"usage": {"prompt_tokens": 30, "completion_tokens": 20, "total_tokens": 50}})),
    ));
    events.push("data: [DONE]\n\n".into());
    let server = TestServer::start(vec![sse(&events, 7, End::Close)]).await;
    let backend = OpenAiBackend::new(server.groq()).unwrap();

    let req = ChatRequest::new(vec![ChatMessage::user("add things")]).with_tools(vec![add_tool()]);
    let resp = collect(&backend, req).await.unwrap();
    assert_eq!(resp.finish_reason, FinishReason::ToolCalls);
    let calls = resp.tool_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!((calls[0].id.as_str(), calls[0].function.name.as_str()), ("call_a", "add"));
    assert_eq!(calls[0].parsed_arguments().unwrap(), json!({"a": 123, "b": -4}));
    assert_eq!(calls[1].id, "call_b");
    assert_eq!(calls[1].parsed_arguments().unwrap(), json!({"a": 10, "b": 5}));
    assert_eq!(resp.usage.total_tokens, 50);
}

#[tokio::test]
async fn groq_rules_refuse_bad_requests_before_sending() {
    let server = TestServer::start(vec![]).await;
    let backend = OpenAiBackend::new(server.groq()).unwrap();
    let mut req = ChatRequest::new(vec![ChatMessage::user("hi")]);
    req.stop = (1..=5).map(|i| format!("S{i}")).collect();
    let err = backend.complete(req).await.unwrap_err();
    assert!(
        matches!(&err, BackendError::InvalidRequest { param: Some(p), .. } if p == "stop"),
        "{err:?}"
    );
    let schema = ResponseFormat::json_schema("answer", json!({"type": "object"}));
    let req = ChatRequest::new(vec![ChatMessage::user("hi")]).with_response_format(schema.clone());
    let err = backend.stream(req).await.err().expect("json_schema cannot be streamed on Groq");
    assert!(
        matches!(&err, BackendError::InvalidRequest { param: Some(p), .. } if p == "response_format")
    );
    let req = ChatRequest::new(vec![ChatMessage::user("hi")])
        .with_response_format(schema)
        .with_tools(vec![add_tool()]);
    assert!(matches!(backend.complete(req).await, Err(BackendError::InvalidRequest { .. })));
    assert!(server.seen().is_empty(), "refused requests must not reach the server");

    let bad = server.groq().with_extra("logprobs", json!(true));
    assert!(OpenAiBackend::new(bad).is_err());
    let bad = server.groq().with_extra("n", json!(2));
    assert!(OpenAiBackend::new(bad).is_err());
}

#[tokio::test]
async fn openai_compatible_servers_get_the_request_as_is() {
    // OpenAI's include_usage shape: usage arrives in a chunk after the finish chunk.
    let events = vec![
        chunk_event(json!({"content": "hi"}), None, None),
        chunk_event(json!({}), Some("length"), None),
        format!(
            "data: {}\n\n",
            json!({"id": "x", "object": "chat.completion.chunk", "choices": [],
                   "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}})
        ),
        "data: [DONE]\n\n".into(),
    ];
    let server = TestServer::start(vec![sse(&events, 64, End::Close)]).await;
    let config = OpenAiConfig::compatible(&server.base_url, "some-model");
    let backend = OpenAiBackend::new(config).unwrap();
    assert_eq!(backend.info().name, "openai");
    let req = ChatRequest::new(vec![ChatMessage::user_named("hi", "bob")]).with_max_tokens(1);
    let chunks: Vec<_> = backend.stream(req).await.unwrap().collect().await;
    let last = chunks.last().unwrap().as_ref().unwrap();
    assert_eq!(last.finish_reason, Some(FinishReason::Length));
    assert_eq!(last.usage.map(|u| u.total_tokens), Some(6), "usage merged into the last chunk");

    let seen = &server.chat_requests()[0];
    assert_eq!(seen.authorization, None);
    assert_eq!(seen.body["model"], "some-model");
    assert_eq!(seen.body["messages"][0]["name"], "bob");
    assert_eq!(seen.body["max_tokens"], 1);
}

#[tokio::test]
async fn models_are_listed() {
    let server = TestServer::start(vec![]).await;
    let backend = OpenAiBackend::new(server.groq()).unwrap();
    let models = backend.list_models().await.unwrap();
    let ids: Vec<&str> = models.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, vec![MODEL, "llama-3.3-70b-versatile", "openai/gpt-oss-20b"]);
    assert_eq!(models[0].context_window, Some(131072));
    assert_eq!(server.seen()[0].authorization.as_deref(), Some("Bearer test-key"));
}

#[tokio::test]
async fn pacing_waits_for_a_spent_allowance_to_reset() {
    let mut spent = rate_limit_headers(0, 17000);
    spent[4] = ("x-ratelimit-reset-requests", "400ms".into());
    let first = match completion("one") {
        Reply::Json { status, body, .. } => Reply::Json { status, headers: spent, body },
        other => other,
    };
    let server = TestServer::start(vec![first, completion("two")]).await;
    let backend = OpenAiBackend::new(server.groq().with_pacing(true)).unwrap();
    let req = ChatRequest::new(vec![ChatMessage::user("hi")]);
    backend.complete(req.clone()).await.unwrap();
    let answered = Instant::now();
    backend.complete(req).await.unwrap();
    let seen = server.chat_requests();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at.duration_since(answered);
    assert!(gap >= Duration::from_millis(350), "the second request waited only {gap:?}");
}

#[tokio::test]
async fn pacing_refuses_when_the_reset_is_too_far_away() {
    let mut spent = rate_limit_headers(0, 17000);
    spent[4] = ("x-ratelimit-reset-requests", "1h2m".into());
    let first = match completion("one") {
        Reply::Json { status, body, .. } => Reply::Json { status, headers: spent, body },
        other => other,
    };
    let server = TestServer::start(vec![first]).await;
    let backend = OpenAiBackend::new(server.groq().with_pacing(true)).unwrap();
    let req = ChatRequest::new(vec![ChatMessage::user("hi")]);
    backend.complete(req.clone()).await.unwrap();
    let err = backend.complete(req).await.unwrap_err();
    let wait = err.retry_after().unwrap();
    assert!(matches!(err, BackendError::RateLimited { .. }));
    assert!(wait > Duration::from_secs(3600), "{wait:?}");
    assert_eq!(server.chat_requests().len(), 1, "the paced request was not sent");
}
