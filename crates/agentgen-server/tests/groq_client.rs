//! End to end: agentgen's own Groq/OpenAI client against `agentgen serve`'s router on
//! 127.0.0.1, so the two halves of the wire format are checked against each other.

mod common;

use std::sync::Arc;

use agentgen_core::{
    BackendError, ChatBackend, ChatMessage, ChatRequest, FinishReason, StreamAccumulator, ToolCall,
    ToolSpec,
};
use agentgen_groq::{OpenAiBackend, OpenAiConfig};
use common::{Scripted, TestServer};
use futures::StreamExt;
use serde_json::json;

fn client(server: &TestServer, model: &str) -> OpenAiBackend {
    let config = OpenAiConfig::compatible(format!("{}/v1", server.url), model).with_max_retries(0);
    OpenAiBackend::new(config).expect("client config")
}

fn add_tool() -> ToolSpec {
    ToolSpec::function(
        "add",
        "Adds two integers",
        json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
               "required": ["a", "b"]}),
    )
}

#[tokio::test]
async fn the_client_chats_and_streams_through_the_server() {
    let server = TestServer::local(Arc::new(Scripted::local())).await;
    let client = client(&server, "test-model");

    let resp = client.complete(ChatRequest::new(vec![ChatMessage::user("hello there")])).await;
    let resp = resp.expect("plain chat");
    assert_eq!(resp.text(), Some("echo: hello there"));
    assert_eq!(resp.finish_reason, FinishReason::Stop);
    assert_eq!(resp.usage.cached_tokens, 2, "cached tokens survive the round trip");

    let mut stream = client
        .stream(ChatRequest::new(vec![ChatMessage::user("stream these words")]))
        .await
        .expect("stream starts");
    let mut acc = StreamAccumulator::new();
    let mut chunks = 0;
    while let Some(chunk) = stream.next().await {
        acc.push(&chunk.expect("chunk"));
        chunks += 1;
    }
    assert!(chunks > 1, "the answer arrives in pieces, got {chunks}");
    assert_eq!(acc.finish().expect("finished stream").text(), Some("echo: stream these words"));
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_tool_call_round_trip_works_through_the_server() {
    let server = TestServer::local(Arc::new(Scripted::local())).await;
    let client = client(&server, "test-model");
    let mut messages = vec![ChatMessage::user("use the tool please")];
    let req = ChatRequest::new(messages.clone()).with_tools(vec![add_tool()]);
    let resp = client.complete(req).await.expect("tool call");
    assert_eq!(resp.finish_reason, FinishReason::ToolCalls);
    let call: ToolCall = resp.tool_calls().first().cloned().expect("one call");
    assert_eq!(call.function.name, "add");
    assert_eq!(call.parsed_arguments().unwrap(), json!({"a": 2, "b": 3}));

    messages.push(resp.message.clone());
    messages.push(ChatMessage::tool(call.id.clone(), "5"));
    let req = ChatRequest::new(messages).with_tools(vec![add_tool()]);
    let resp = client.complete(req).await.expect("answer after the tool result");
    assert_eq!(resp.text(), Some("the answer is 5"));
}

#[tokio::test]
async fn server_errors_reach_the_client_as_typed_errors() {
    let server = TestServer::local(Arc::new(Scripted::local())).await;

    let err = client(&server, "no-such-model")
        .complete(ChatRequest::new(vec![ChatMessage::user("hi")]))
        .await
        .unwrap_err();
    match err {
        BackendError::ModelNotFound { model, available } => {
            assert_eq!(model, "no-such-model");
            assert!(
                available.iter().any(|m| m == "test-model"),
                "lists served models: {available:?}"
            );
        }
        other => panic!("expected ModelNotFound, got {other:?}"),
    }

    let err = client(&server, "test-model")
        .complete(ChatRequest::new(vec![ChatMessage::user("overflow please")]))
        .await
        .unwrap_err();
    match err {
        BackendError::InvalidRequest { code, .. } => {
            assert_eq!(code.as_deref(), Some("context_length_exceeded"))
        }
        other => panic!("expected InvalidRequest(context_length_exceeded), got {other:?}"),
    }
}
