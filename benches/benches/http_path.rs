//! criterion benches of what `agentgen serve` adds around a backend: the same request sent to a
//! backend in-process and through the HTTP server on loopback with agentgen's OpenAI client.
//! The backend answers at once, so the difference is the whole HTTP path: client JSON, hyper
//! both ways, axum routing, the server's validation, SSE framing and parsing.
//!
//! Streamed chunks arrive faster here than a model makes them, so the server may put several
//! into one write; at model speed each token is its own write, as in `cargo xtask bench` (g).

use std::sync::Arc;

use agentgen_core::{
    BackendError, BackendInfo, Capabilities, ChatBackend, ChatChunk, ChatMessage, ChatRequest,
    ChatResponse, ChatStream, FinishReason, Locality, Usage,
};
use async_trait::async_trait;
use benches::workloads::InProcessServer;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::StreamExt;

/// Chunks per streamed answer: one per token of a typical agent turn.
const STREAM_CHUNKS: usize = 128;

/// A backend that answers instantly: one word for `complete`, `STREAM_CHUNKS` one-word
/// chunks for `stream`.
struct InstantBackend {
    info: BackendInfo,
}

impl InstantBackend {
    fn new() -> Self {
        Self {
            info: BackendInfo {
                name: "instant".into(),
                model: "instant".into(),
                locality: Locality::Local,
                capabilities: Capabilities::default(),
            },
        }
    }
}

#[async_trait]
impl ChatBackend for InstantBackend {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    async fn complete(&self, _req: ChatRequest) -> Result<ChatResponse, BackendError> {
        Ok(ChatResponse {
            id: "instant".into(),
            model: self.info.model.clone(),
            message: ChatMessage::assistant("ok"),
            finish_reason: FinishReason::Stop,
            usage: Usage::new(20, 1, 0),
            timings: None,
            served_by: None,
        })
    }

    async fn stream(&self, _req: ChatRequest) -> Result<ChatStream, BackendError> {
        let mut chunks: Vec<Result<ChatChunk, BackendError>> =
            (0..STREAM_CHUNKS).map(|i| Ok(ChatChunk::text(format!(" w{i}")))).collect();
        chunks.push(Ok(ChatChunk {
            finish_reason: Some(FinishReason::Stop),
            usage: Some(Usage::new(20, STREAM_CHUNKS as u32, 0)),
            ..ChatChunk::default()
        }));
        Ok(Box::pin(futures::stream::iter(chunks)))
    }
}

fn request() -> ChatRequest {
    ChatRequest::new(vec![
        ChatMessage::system("You are a helpful assistant."),
        ChatMessage::user("Count from 1 to 10 in digits, separated by commas."),
    ])
    .with_temperature(0.0)
    .with_max_tokens(STREAM_CHUNKS as u32)
}

async fn drain(backend: &dyn ChatBackend) -> usize {
    let mut stream = backend.stream(request()).await.expect("stream");
    let mut n = 0;
    while let Some(chunk) = stream.next().await {
        n += usize::from(chunk.expect("chunk").content.is_some());
    }
    assert_eq!(n, STREAM_CHUNKS, "every chunk must arrive");
    n
}

fn bench_http_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let backend: Arc<dyn ChatBackend> = Arc::new(InstantBackend::new());
    let server =
        rt.block_on(InProcessServer::start(backend.clone(), 4)).expect("server on loopback");
    let client = server.client("instant").expect("client");

    let mut g = c.benchmark_group("http_path");
    g.bench_function("complete/in_process", |b| {
        b.iter(|| rt.block_on(backend.complete(request())).expect("answer"))
    });
    g.bench_function("complete/http", |b| {
        b.iter(|| rt.block_on(client.complete(request())).expect("answer"))
    });
    g.throughput(Throughput::Elements(STREAM_CHUNKS as u64));
    g.bench_function("stream_128_chunks/in_process", |b| {
        b.iter(|| rt.block_on(drain(backend.as_ref())))
    });
    g.bench_function("stream_128_chunks/http", |b| b.iter(|| rt.block_on(drain(&client))));
    g.finish();
    rt.block_on(server.stop()).expect("server stops");
}

criterion_group!(benches, bench_http_path);
criterion_main!(benches);
