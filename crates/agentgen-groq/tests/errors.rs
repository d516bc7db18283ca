//! Failures against a real HTTP server on 127.0.0.1 that speaks Groq's format: every error
//! status, retries (honouring retry-after, stopping at the limit), broken and malformed
//! streams, stalled servers and timeouts.

mod common;

use std::time::Duration;

use agentgen_core::{BackendError, ChatBackend, ChatMessage, ChatRequest, StreamAccumulator};
use agentgen_groq::OpenAiBackend;
use common::{chunk_event, completion, error, sse, with_headers, End, Reply, TestServer, MODEL};
use futures::StreamExt;
use serde_json::json;

fn hi() -> ChatRequest {
    ChatRequest::new(vec![ChatMessage::user("hi")])
}

/// The error one scripted reply gives, without retries.
async fn error_for(reply: Reply) -> (BackendError, TestServer) {
    let server = TestServer::start(vec![reply]).await;
    let backend = OpenAiBackend::new(server.groq().with_max_retries(0)).unwrap();
    let err = backend.complete(hi()).await.unwrap_err();
    (err, server)
}

#[tokio::test]
async fn tool_use_failed_keeps_the_failed_generation() {
    let reply = Reply::Json {
        status: 400,
        headers: Vec::new(),
        body: json!({"error": {
            "message": "Failed to call a function. Please adjust your prompt. See 'failed_generation' for more details.",
            "type": "invalid_request_error", "code": "tool_use_failed",
            "failed_generation": "<function=add>{\"a\": 1,}</function>"}}),
    };
    let (err, _) = error_for(reply).await;
    match err {
        BackendError::ToolUseFailed { message, failed_generation } => {
            assert!(message.starts_with("Failed to call a function"));
            assert_eq!(failed_generation.as_deref(), Some("<function=add>{\"a\": 1,}</function>"));
        }
        other => panic!("expected ToolUseFailed, got {other:?}"),
    }
}

#[tokio::test]
async fn unauthorized_is_its_own_error() {
    let (err, server) = error_for(error(401, "invalid_api_key", "Invalid API Key")).await;
    assert!(
        matches!(&err, BackendError::Unauthorized { message } if message.contains("Invalid API Key"))
    );
    assert_eq!(server.chat_requests().len(), 1, "401 is not retried");
}

#[tokio::test]
async fn model_not_found_lists_what_the_server_offers() {
    let reply = error(
        404,
        "model_not_found",
        "The model `llama-9-retired` does not exist or you do not have access to it.",
    );
    let server = TestServer::start(vec![reply]).await;
    let backend = OpenAiBackend::new(server.groq()).unwrap();
    let mut req = hi();
    req.model = Some("llama-9-retired".into());
    let err = backend.complete(req).await.unwrap_err();
    assert_eq!(
        err,
        BackendError::ModelNotFound {
            model: "llama-9-retired".into(),
            available: vec![
                MODEL.into(),
                "llama-3.3-70b-versatile".into(),
                "openai/gpt-oss-20b".into()
            ],
        }
    );
    assert!(err.to_string().contains("available: llama-3.1-8b-instant"), "{err}");
    let paths: Vec<String> = server.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, vec!["/openai/v1/chat/completions", "/openai/v1/models"]);
}

#[tokio::test]
async fn too_large_and_unprocessable_are_invalid_requests() {
    let (err, _) =
        error_for(error(413, "rate_limit_exceeded", "Request too large for model")).await;
    assert!(
        matches!(&err, BackendError::InvalidRequest { code: Some(c), .. } if c == "request_too_large"),
        "{err:?}"
    );
    let (err, _) =
        error_for(error(422, "unprocessable_entity", "messages must not be empty")).await;
    assert!(
        matches!(&err, BackendError::InvalidRequest { message, .. } if message.contains("422")),
        "{err:?}"
    );
}

#[tokio::test]
async fn rate_limited_reads_the_wait_from_headers() {
    let reply = with_headers(
        error(
            429,
            "rate_limit_exceeded",
            "Rate limit reached for model on tokens per minute (TPM)",
        ),
        &[
            ("retry-after-ms", "1500"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "7.66s"),
        ],
    );
    let (err, _) = error_for(reply).await;
    assert!(matches!(err, BackendError::RateLimited { .. }));
    assert_eq!(err.retry_after(), Some(Duration::from_millis(1500)));

    // Without retry-after, the exhausted allowance's reset is the wait.
    let reply = with_headers(
        error(429, "rate_limit_exceeded", "Rate limit reached"),
        &[("x-ratelimit-remaining-tokens", "0"), ("x-ratelimit-reset-tokens", "2m59.56s")],
    );
    let (err, _) = error_for(reply).await;
    let wait = err.retry_after().unwrap();
    assert!(wait > Duration::from_secs(179) && wait <= Duration::from_millis(179_560), "{wait:?}");
}

#[tokio::test]
async fn flex_capacity_and_server_errors_are_unavailable() {
    for status in [498u16, 500, 502, 503] {
        let (err, server) = error_for(error(status, "server_error", "try later")).await;
        assert!(
            matches!(err, BackendError::Unavailable { status: Some(s), .. } if s == status),
            "{status}: {err:?}"
        );
        assert!(err.should_fall_back());
        assert_eq!(server.chat_requests().len(), 1);
    }
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_after_the_delay() {
    let limited =
        with_headers(error(429, "rate_limit_exceeded", "slow down"), &[("retry-after", "1")]);
    let server = TestServer::start(vec![limited, completion("finally")]).await;
    let backend = OpenAiBackend::new(server.groq()).unwrap();
    let resp = backend.complete(hi()).await.unwrap();
    assert_eq!(resp.text(), Some("finally"));
    let seen = server.chat_requests();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at.duration_since(seen[0].at);
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}, before the 1 s asked for");
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_is_returned_at_once() {
    let limited =
        with_headers(error(429, "rate_limit_exceeded", "daily limit"), &[("retry-after", "3600")]);
    let server = TestServer::start(vec![limited]).await;
    let backend = OpenAiBackend::new(server.groq()).unwrap();
    let err = backend.complete(hi()).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3600)));
    assert_eq!(server.chat_requests().len(), 1);
}

#[tokio::test]
async fn retries_stop_at_the_limit() {
    let script = (0..10).map(|_| error(503, "service_unavailable", "overloaded")).collect();
    let server = TestServer::start(script).await;
    let backend = OpenAiBackend::new(server.groq().with_max_retries(3)).unwrap();
    let err = backend.complete(hi()).await.unwrap_err();
    assert!(matches!(err, BackendError::Unavailable { status: Some(503), .. }));
    assert_eq!(server.chat_requests().len(), 4, "1 attempt + 3 retries");

    // The default is 2 retries; a 500 then a 502 then success gets through.
    let script = vec![error(500, "e", "boom"), error(502, "e", "bad gateway"), completion("ok")];
    let server = TestServer::start(script).await;
    let backend = OpenAiBackend::new(server.groq()).unwrap();
    assert_eq!(backend.complete(hi()).await.unwrap().text(), Some("ok"));
    assert_eq!(server.chat_requests().len(), 3);
}

#[tokio::test]
async fn request_errors_are_not_retried() {
    let script = vec![error(400, "invalid_request_error", "bad"), completion("never")];
    let server = TestServer::start(script).await;
    let backend = OpenAiBackend::new(server.groq()).unwrap();
    assert!(matches!(backend.complete(hi()).await, Err(BackendError::InvalidRequest { .. })));
    assert_eq!(server.chat_requests().len(), 1);
}

#[tokio::test]
async fn a_stalled_server_hits_the_timeout() {
    let server = TestServer::start(vec![Reply::Stall, Reply::Stall]).await;
    let config = server.groq().with_max_retries(1).with_request_timeout(Duration::from_millis(300));
    let backend = OpenAiBackend::new(config).unwrap();
    let err = backend.complete(hi()).await.unwrap_err();
    assert_eq!(err, BackendError::Timeout(Duration::from_millis(300)));
    assert_eq!(server.chat_requests().len(), 2, "a timed-out attempt is retried once");

    let server = TestServer::start(vec![Reply::Stall]).await;
    let config = server.groq().with_max_retries(0).with_request_timeout(Duration::from_millis(300));
    let backend = OpenAiBackend::new(config).unwrap();
    assert!(matches!(backend.stream(hi()).await, Err(BackendError::Timeout(_))));
}

#[tokio::test]
async fn a_stream_that_goes_quiet_times_out() {
    let events = vec![chunk_event(json!({"content": "partial"}), None, None)];
    let server = TestServer::start(vec![sse(&events, 64, End::Hang)]).await;
    let config = server.groq().with_request_timeout(Duration::from_millis(300));
    let backend = OpenAiBackend::new(config).unwrap();
    let items: Vec<_> = backend.stream(hi()).await.unwrap().collect().await;
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].as_ref().unwrap().content.as_deref(), Some("partial"));
    assert_eq!(items[1], Err(BackendError::Timeout(Duration::from_millis(300))));
}

#[tokio::test]
async fn a_truncated_stream_is_an_error_not_a_hang() {
    for end in [End::Close, End::Abort] {
        let events = vec![
            chunk_event(json!({"content": "The answer is"}), None, None),
            "data: {\"choices\": [{\"delta\": {\"content\": \" 4".to_owned(), // cut mid-event
        ];
        let server = TestServer::start(vec![sse(&events, 10, end)]).await;
        let backend = OpenAiBackend::new(server.groq()).unwrap();
        let mut stream = backend.stream(hi()).await.unwrap();
        let mut acc = StreamAccumulator::new();
        let mut failure = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) => acc.push(&chunk),
                Err(e) => failure = Some(e),
            }
        }
        assert_eq!(acc.content(), "The answer is");
        assert!(matches!(failure, Some(BackendError::Protocol(_))), "{end:?}: {failure:?}");
    }
}

#[tokio::test]
async fn a_malformed_chunk_is_a_protocol_error() {
    let events = vec![
        chunk_event(json!({"content": "ok"}), None, None),
        "data: {\"choices\": [{\"delta\": {\"content\": oops}}]}\n\n".to_owned(),
        chunk_event(json!({}), Some("stop"), None),
        "data: [DONE]\n\n".to_owned(),
    ];
    let server = TestServer::start(vec![sse(&events, 1000, End::Close)]).await;
    let backend = OpenAiBackend::new(server.groq()).unwrap();
    let items: Vec<_> = backend.stream(hi()).await.unwrap().collect().await;
    assert_eq!(items.len(), 2, "nothing after the malformed chunk: {items:?}");
    assert!(matches!(&items[1], Err(BackendError::Protocol(m)) if m.contains("malformed")));
}

#[tokio::test]
async fn x_groq_error_in_a_stream_is_an_error() {
    let events = vec![
        chunk_event(json!({"content": "so far"}), None, None),
        chunk_event(
            json!({}),
            None,
            Some(json!({"id": "req_1", "error": "the model is over capacity"})),
        ),
    ];
    let server = TestServer::start(vec![sse(&events, 1000, End::Close)]).await;
    let backend = OpenAiBackend::new(server.groq()).unwrap();
    let items: Vec<_> = backend.stream(hi()).await.unwrap().collect().await;
    assert!(matches!(&items[1], Err(e) if e.to_string().contains("over capacity")), "{items:?}");
}

#[tokio::test]
async fn a_streamed_request_is_retried_before_the_stream_starts() {
    let events =
        vec![chunk_event(json!({"content": "hi"}), Some("stop"), None), "data: [DONE]\n\n".into()];
    let script = vec![error(503, "e", "busy"), sse(&events, 1000, End::Close)];
    let server = TestServer::start(script).await;
    let backend = OpenAiBackend::new(server.groq()).unwrap();
    let items: Vec<_> = backend.stream(hi()).await.unwrap().collect().await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].as_ref().unwrap().content.as_deref(), Some("hi"));
    assert_eq!(server.chat_requests().len(), 2);
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_after_retries() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let config = agentgen_groq::OpenAiConfig::compatible(format!("http://{addr}/v1"), "m")
        .with_backoff(Duration::from_millis(5), Duration::from_millis(20));
    let backend = OpenAiBackend::new(config).unwrap();
    let err = backend.complete(hi()).await.unwrap_err();
    assert!(matches!(&err, BackendError::Unavailable { status: None, .. }), "{err:?}");
    assert!(err.should_fall_back());
}

#[tokio::test]
async fn dropping_a_request_during_its_backoff_sends_nothing_more() {
    let limited =
        with_headers(error(429, "rate_limit_exceeded", "slow down"), &[("retry-after", "1")]);
    let server = TestServer::start(vec![limited, completion("too late")]).await;
    let backend = OpenAiBackend::new(server.groq()).unwrap();
    // Give up while the client sleeps out the 1 s retry-after; the drop cancels the retry.
    let gave_up = tokio::time::timeout(Duration::from_millis(300), backend.complete(hi())).await;
    assert!(gave_up.is_err());
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(server.chat_requests().len(), 1, "the cancelled request was retried anyway");
}

/// A hostile endpoint's oversized bodies are cut at their limits: an error body is read to
/// 64 KiB (the message stays bounded), a whole answer over 16 MiB and one streamed event over
/// 4 MiB are protocol errors, not memory growth.
#[tokio::test]
async fn oversized_error_bodies_answers_and_events_are_bounded() {
    let huge = "x".repeat(8 * 1024 * 1024);
    let reply = Reply::Json {
        status: 400,
        headers: Vec::new(),
        body: json!({"error": {"message": huge, "type": "invalid_request_error"}}),
    };
    let (err, _) = error_for(reply).await;
    let text = err.to_string();
    assert!(text.len() <= 64 * 1024 + 512, "an error of {} bytes was kept", text.len());

    let reply = Reply::Json {
        status: 200,
        headers: Vec::new(),
        body: json!({"choices": [{"message": {"content": "y".repeat(17 * 1024 * 1024)}}]}),
    };
    let (err, _) = error_for(reply).await;
    assert!(matches!(&err, BackendError::Protocol(m) if m.contains("larger than")), "{err}");

    let line = format!("data: {}\n", "z".repeat(32 * 1024));
    let events = vec![line.repeat(160), "\n".to_owned()];
    let server = TestServer::start(vec![sse(&events, 256 * 1024, End::Close)]).await;
    let backend = OpenAiBackend::new(server.groq().with_max_retries(0)).unwrap();
    let items: Vec<_> = backend.stream(hi()).await.unwrap().collect().await;
    assert_eq!(items.len(), 1, "{:?}", items.iter().map(|i| i.is_ok()).collect::<Vec<_>>());
    assert!(
        matches!(&items[0], Err(BackendError::Protocol(m)) if m.contains("larger than")),
        "{:?}",
        items[0]
    );
}
