//! A fallback chain of two real HTTP backends on 127.0.0.1: when the Groq-style primary is
//! unavailable or rate-limited, the secondary serves and the answer says so.

mod common;

use std::sync::Arc;

use agentgen_core::{
    BackendError, ChatBackend, ChatMessage, ChatRequest, FallbackBackend, StreamAccumulator,
};
use agentgen_groq::{OpenAiBackend, OpenAiConfig};
use common::{chunk_event, completion, error, sse, with_headers, End, TestServer};
use futures::StreamExt;
use serde_json::json;

fn hi() -> ChatRequest {
    ChatRequest::new(vec![ChatMessage::user("hi")])
}

fn chain(primary: &TestServer, secondary: &TestServer) -> FallbackBackend {
    let groq = OpenAiBackend::new(primary.groq().with_max_retries(0)).unwrap();
    let other =
        OpenAiBackend::new(OpenAiConfig::compatible(&secondary.base_url, "local-model")).unwrap();
    FallbackBackend::new(vec![Arc::new(groq), Arc::new(other)])
}

#[tokio::test]
async fn the_secondary_serves_when_the_primary_is_unavailable_and_says_so() {
    let primary = TestServer::start(vec![error(503, "service_unavailable", "down")]).await;
    let secondary = TestServer::start(vec![completion("from the secondary")]).await;
    let resp = chain(&primary, &secondary).complete(hi()).await.unwrap();
    assert_eq!(resp.text(), Some("from the secondary"));
    assert_eq!(resp.served_by.as_deref(), Some("openai"));
    assert_eq!(primary.chat_requests().len(), 1);
    assert_eq!(secondary.chat_requests()[0].body["model"], "local-model");
}

#[tokio::test]
async fn the_primary_serves_when_healthy() {
    let primary = TestServer::start(vec![completion("from groq")]).await;
    let secondary = TestServer::start(vec![]).await;
    let resp = chain(&primary, &secondary).complete(hi()).await.unwrap();
    assert_eq!(resp.served_by.as_deref(), Some("groq"));
    assert!(secondary.seen().is_empty());
}

#[tokio::test]
async fn a_long_rate_limit_falls_back_without_waiting() {
    let limited =
        with_headers(error(429, "rate_limit_exceeded", "daily limit"), &[("retry-after", "3600")]);
    let primary = TestServer::start(vec![limited]).await;
    let secondary = TestServer::start(vec![completion("covered")]).await;
    let groq = OpenAiBackend::new(primary.groq()).unwrap(); // default retries: the cap stops them
    let other = OpenAiBackend::new(OpenAiConfig::compatible(&secondary.base_url, "m")).unwrap();
    let chain = FallbackBackend::new(vec![Arc::new(groq), Arc::new(other)]);
    let resp = chain.complete(hi()).await.unwrap();
    assert_eq!(resp.served_by.as_deref(), Some("openai"));
    assert_eq!(primary.chat_requests().len(), 1);
}

#[tokio::test]
async fn request_errors_do_not_fall_back() {
    let primary = TestServer::start(vec![error(422, "bad", "messages must not be empty")]).await;
    let secondary = TestServer::start(vec![completion("never")]).await;
    let err = chain(&primary, &secondary).complete(hi()).await.unwrap_err();
    assert!(matches!(err, BackendError::InvalidRequest { .. }));
    assert!(secondary.seen().is_empty());
}

#[tokio::test]
async fn a_stream_falls_back_before_its_first_chunk() {
    let primary = TestServer::start(vec![error(500, "internal", "boom")]).await;
    let events = vec![
        chunk_event(json!({"content": "streamed "}), None, None),
        chunk_event(json!({"content": "by secondary"}), Some("stop"), None),
        "data: [DONE]\n\n".to_owned(),
    ];
    let secondary = TestServer::start(vec![sse(&events, 16, End::Close)]).await;
    let mut stream = chain(&primary, &secondary).stream(hi()).await.unwrap();
    let mut acc = StreamAccumulator::new();
    while let Some(chunk) = stream.next().await {
        acc.push(&chunk.unwrap());
    }
    assert_eq!(acc.finish().unwrap().text(), Some("streamed by secondary"));
    assert_eq!(secondary.chat_requests()[0].body["stream"], true);
}
