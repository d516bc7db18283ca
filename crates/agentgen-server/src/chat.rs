//! `POST /v1/chat/completions`: whole answers and server-sent-event streams.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agentgen_core::telemetry;
use agentgen_core::{ChatBackend, ChatChunk, ChatStream};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use tracing::Instrument;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::state::{AppState, SlotGuard};
use crate::wire::{check_sampling, parse_chat_request_with};
use agentgen_core::openai::{ChatCompletion, ChatCompletionChunk, ChunkWriter};

/// Maps axum's body rejections (too large, unreadable) to OpenAI errors.
pub(crate) fn body_rejection(rejection: BytesRejection) -> ApiError {
    let status = rejection.status();
    if let Some(timeout) = find_source::<crate::conn::BodyTimeout>(&rejection) {
        return ApiError::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            format!("The request body did not arrive within {:?}.", timeout.0),
        )
        .with_code("body_timeout");
    }
    if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            status,
            "invalid_request_error",
            "The request body is too large for this server.",
        )
        .with_code("request_too_large")
    } else {
        ApiError::new(
            status,
            "invalid_request_error",
            format!("Could not read the request body: {}", rejection.body_text()),
        )
        .with_code("invalid_body")
    }
}

/// Parses and checks a body on a blocking thread (a crafted schema can take a while to
/// compile), a bounded number at once, so the async workers keep serving other requests.
async fn parse_off_the_workers(
    state: &AppState,
    body: Bytes,
) -> Result<agentgen_core::openai::ChatCompletionRequest, ApiError> {
    let _permit = state.inner.parsing.acquire().await.map_err(|_| {
        ApiError::unavailable(
            "The server is shutting down",
            "shutting_down",
            Duration::from_secs(5),
        )
    })?;
    let limits = state.inner.request_limits;
    tokio::task::spawn_blocking(move || parse_chat_request_with(&body, &limits)).await.map_err(
        |e| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                format!("checking the request failed: {e}"),
            )
        },
    )?
}

/// The first error of type `T` in `error`'s source chain.
fn find_source<'a, T: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Whether `model` names the served model.
pub(crate) fn model_matches(state: &AppState, backend: &dyn ChatBackend, model: &str) -> bool {
    model == backend.info().model
        || model == "default"
        || state.inner.model_aliases.iter().any(|a| a == model)
}

/// The handler.
pub(crate) async fn chat_completions(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let body = body.map_err(body_rejection)?;
    let parsed = parse_off_the_workers(&state, body).await?;
    let backend = state.ready_backend()?;
    let stream = parsed.stream == Some(true);
    let include_usage = parsed.stream_options.is_some_and(|o| o.include_usage);
    let mut request = parsed.request;
    check_sampling(&request, &backend.info().capabilities.sampling)?;
    if let Some(model) = &request.model {
        if !model_matches(&state, backend.as_ref(), model) {
            return Err(ApiError::model_not_found(model));
        }
    }
    request.model = Some(backend.info().model.clone());
    let slot = state.acquire_slot().await?;
    let metrics = state.metrics().clone();
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = now_secs();

    let span = telemetry::chat_span(backend.info(), &request);
    if !stream {
        let guard = CancelGuard(Some(metrics.clone()));
        let result = backend.complete(request).instrument(span.clone()).await;
        guard.disarm();
        match &result {
            Ok(resp) => telemetry::record_response(&span, resp),
            Err(e) => telemetry::record_backend_error(&span, e),
        }
        let resp = result?;
        drop(slot);
        metrics.record_latency(started.elapsed());
        metrics.record_usage(&resp.usage);
        if let Some(t) = &resp.timings {
            // A remote backend's timings are its word: a negative, NaN or huge figure is
            // dropped, never turned into a panic.
            if let Ok(ttft) =
                std::time::Duration::try_from_secs_f64(t.time_to_first_token_ms / 1000.0)
            {
                metrics.record_ttft(ttft);
            }
        }
        let model =
            if resp.model.is_empty() { backend.info().model.clone() } else { resp.model.clone() };
        return Ok(Json(ChatCompletion::from_response(&resp, &id, created, &model)).into_response());
    }

    let opened = async {
        let mut stream = backend.stream(request).await?;
        // Wait for the first item so a failure before any token (context overflow, bad
        // schema) still answers a plain HTTP error instead of a broken stream.
        let first = stream.next().await.transpose()?;
        Ok::<_, agentgen_core::BackendError>((stream, first))
    };
    let (stream, first) = match opened.instrument(span.clone()).await {
        Ok(opened) => opened,
        Err(e) => {
            telemetry::record_backend_error(&span, &e);
            return Err(e.into());
        }
    };
    let writer = ChunkWriter { id, created, model: backend.info().model.clone(), include_usage };
    let sse = SseState {
        stream,
        pending: first,
        writer,
        phase: Phase::Role,
        started,
        ttft_seen: false,
        metrics,
        completed: false,
        span,
        _slot: slot,
    };
    let events = futures::stream::unfold(sse, |mut st| async move {
        let events = st.next_events().await?;
        Some((futures::stream::iter(events.into_iter().map(Ok::<Event, Infallible>)), st))
    })
    .flatten();
    Ok(Sse::new(events).into_response())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Role,
    Body,
    Done,
}

/// The state of one SSE answer. It owns the backend stream and the slot: when the client goes
/// away, hyper drops the body, this is dropped, and dropping the stream cancels the generation.
struct SseState {
    stream: ChatStream,
    pending: Option<ChatChunk>,
    writer: ChunkWriter,
    phase: Phase,
    started: Instant,
    ttft_seen: bool,
    metrics: Arc<Metrics>,
    completed: bool,
    /// The `chat {model}` span, open until the stream ends.
    span: tracing::Span,
    _slot: SlotGuard,
}

fn data(chunk: &ChatCompletionChunk) -> Event {
    Event::default().data(serde_json::to_string(chunk).unwrap_or_default())
}

fn error_data(error: ApiError) -> Event {
    Event::default().data(error.body().to_string())
}

impl SseState {
    /// The next events to send, or `None` when the stream is over.
    async fn next_events(&mut self) -> Option<Vec<Event>> {
        match self.phase {
            Phase::Done => None,
            Phase::Role => {
                self.phase = Phase::Body;
                Some(vec![data(&self.writer.role())])
            }
            Phase::Body => {
                let item = match self.pending.take() {
                    Some(chunk) => Some(Ok(chunk)),
                    None => self.stream.next().instrument(self.span.clone()).await,
                };
                Some(match item {
                    Some(Ok(chunk)) => self.on_chunk(&chunk),
                    Some(Err(e)) => {
                        self.phase = Phase::Done;
                        telemetry::record_backend_error(&self.span, &e);
                        tracing::warn!(error = %e, "stream failed mid-way");
                        vec![error_data(ApiError::from(e))]
                    }
                    None => {
                        self.phase = Phase::Done;
                        let e = agentgen_core::BackendError::Protocol(
                            "the backend's stream ended before a finish reason".into(),
                        );
                        vec![error_data(ApiError::from(e))]
                    }
                })
            }
        }
    }

    fn on_chunk(&mut self, chunk: &ChatChunk) -> Vec<Event> {
        let mut out = Vec::new();
        if let Some(delta) = self.writer.delta(chunk) {
            if !self.ttft_seen {
                self.ttft_seen = true;
                self.metrics.record_ttft(self.started.elapsed());
            }
            out.push(data(&delta));
        }
        if let Some(reason) = chunk.finish_reason {
            out.push(data(&self.writer.finish(chunk, reason)));
            let usage = chunk.usage.unwrap_or_default();
            let model = chunk.model.as_deref().unwrap_or_default();
            telemetry::record_outcome(&self.span, model, reason, usage, chunk.timings.as_ref());
            self.metrics.record_usage(&usage);
            self.metrics.record_latency(self.started.elapsed());
            if self.writer.include_usage {
                out.push(data(&self.writer.usage(&usage)));
            }
            out.push(Event::default().data("[DONE]"));
            self.phase = Phase::Done;
            self.completed = true;
        }
        out
    }
}

impl Drop for SseState {
    fn drop(&mut self) {
        if !self.completed && self.phase != Phase::Done {
            tracing::info!("client went away; generation cancelled");
            self.metrics.record_cancelled();
        }
    }
}

/// Counts a whole-answer request whose client went away (its future was dropped mid-way).
struct CancelGuard(Option<Arc<Metrics>>);

impl CancelGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if let Some(m) = self.0.take() {
            tracing::info!("client went away; generation cancelled");
            m.record_cancelled();
        }
    }
}
