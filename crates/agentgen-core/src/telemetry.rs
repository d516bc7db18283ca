//! Tracing spans named and shaped after OpenTelemetry's GenAI semantic conventions: a team run,
//! each agent turn, each model call and each tool call. Core only emits `tracing` spans; a
//! subscriber (the `agentgen` binary's OTLP exporter, say) decides whether they go anywhere.
//! With no subscriber interested in them a span costs one atomic load, and its fields are never
//! computed.
//!
//! | span (`otel.name`)      | `gen_ai.operation.name` | main attributes |
//! |-------------------------|-------------------------|-----------------|
//! | `invoke_agent {team}`   | `invoke_agent`          | `gen_ai.agent.name` (the team), `agentgen.team.messages` |
//! | `invoke_agent {agent}`  | `invoke_agent`          | `gen_ai.agent.name`, `gen_ai.usage.*` |
//! | `chat {model}`          | `chat`                  | `gen_ai.provider.name`, `gen_ai.request.model`, `gen_ai.response.model`, `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`, `gen_ai.response.finish_reasons`, `agentgen.timings.*` |
//! | `execute_tool {tool}`   | `execute_tool`          | `gen_ai.tool.name`, `gen_ai.tool.call.id`, `error.type` |
//!
//! Message contents and tool arguments are left out unless
//! [`set_capture_content`] turned them on (the conventions make content opt-in: it may hold
//! secrets).

use std::sync::atomic::{AtomicBool, Ordering};

use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::backend::{BackendInfo, ChatBackend};
use crate::error::{AgentError, BackendError};
use crate::events::ToolResult;
use crate::message::{ChatMessage, ToolCall};
use crate::request::ChatRequest;
use crate::response::{ChatResponse, FinishReason, Timings, Usage};

static CAPTURE_CONTENT: AtomicBool = AtomicBool::new(false);

/// Whether spans carry message contents, tool arguments and tool results (off by default).
pub fn set_capture_content(on: bool) {
    CAPTURE_CONTENT.store(on, Ordering::Relaxed);
}

/// Whether [`set_capture_content`] turned content capture on.
pub fn capture_content() -> bool {
    CAPTURE_CONTENT.load(Ordering::Relaxed)
}

/// The span of a whole team run.
pub fn team_span(team: &str, kind: &str) -> Span {
    tracing::info_span!(
        "invoke_agent",
        otel.name = %format_args!("invoke_agent {team}"),
        otel.kind = "internal",
        otel.status_code = Empty,
        otel.status_description = Empty,
        error.type = Empty,
        gen_ai.operation.name = "invoke_agent",
        gen_ai.agent.name = %team,
        agentgen.span.kind = "team",
        agentgen.team.type = %kind,
        agentgen.team.messages = Empty,
        agentgen.stop_reason = Empty,
    )
}

/// The span of one agent's turn.
pub fn agent_span(agent: &str) -> Span {
    tracing::info_span!(
        "invoke_agent",
        otel.name = %format_args!("invoke_agent {agent}"),
        otel.kind = "internal",
        otel.status_code = Empty,
        otel.status_description = Empty,
        error.type = Empty,
        gen_ai.operation.name = "invoke_agent",
        gen_ai.agent.name = %agent,
        agentgen.span.kind = "agent",
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
    )
}

/// The span of one model call on `backend` (record its answer with [`record_response`]).
pub fn chat_span(backend: &BackendInfo, req: &ChatRequest) -> Span {
    let model = req.model.as_deref().unwrap_or(&backend.model);
    let span = tracing::info_span!(
        "chat",
        otel.name = %format_args!("chat {model}"),
        otel.kind = "client",
        otel.status_code = Empty,
        otel.status_description = Empty,
        error.type = Empty,
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = %backend.name,
        gen_ai.system = %backend.name,
        gen_ai.request.model = %model,
        gen_ai.request.temperature = Empty,
        gen_ai.request.top_p = Empty,
        gen_ai.request.max_tokens = Empty,
        gen_ai.request.seed = Empty,
        gen_ai.response.id = Empty,
        gen_ai.response.model = Empty,
        gen_ai.response.finish_reasons = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        gen_ai.usage.cache_read.input_tokens = Empty,
        gen_ai.input.messages = Empty,
        gen_ai.output.messages = Empty,
        agentgen.served_by = Empty,
        agentgen.timings.prompt_n = Empty,
        agentgen.timings.prompt_ms = Empty,
        agentgen.timings.predicted_n = Empty,
        agentgen.timings.predicted_ms = Empty,
        agentgen.timings.time_to_first_token_ms = Empty,
        agentgen.timings.draft_n_accepted = Empty,
    );
    if span.is_disabled() {
        return span;
    }
    if let Some(t) = req.temperature {
        span.record("gen_ai.request.temperature", f64::from(t));
    }
    if let Some(p) = req.top_p {
        span.record("gen_ai.request.top_p", f64::from(p));
    }
    if let Some(n) = req.max_tokens {
        span.record("gen_ai.request.max_tokens", i64::from(n));
    }
    if let Some(seed) = req.seed {
        span.record("gen_ai.request.seed", seed);
    }
    if capture_content() {
        span.record("gen_ai.input.messages", messages_json(&req.messages).as_str());
    }
    span
}

/// `backend.complete(req)` inside a [`chat_span`], its answer or error recorded.
pub async fn complete_traced(
    backend: &dyn ChatBackend,
    req: ChatRequest,
) -> Result<ChatResponse, AgentError> {
    let span = chat_span(backend.info(), &req);
    let res = backend.complete(req).instrument(span.clone()).await.map_err(AgentError::from);
    match &res {
        Ok(resp) => record_response(&span, resp),
        Err(e) => record_error(&span, e),
    }
    res
}

/// The conventions' spelling of a finish reason.
pub fn finish_reason_name(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
    }
}

/// Records an answer on a [`chat_span`]: response model and id, finish reason, token counts
/// and the engine's timings when it measured them.
pub fn record_response(span: &Span, resp: &ChatResponse) {
    if span.is_disabled() {
        return;
    }
    if !resp.id.is_empty() {
        span.record("gen_ai.response.id", resp.id.as_str());
    }
    if let Some(by) = &resp.served_by {
        span.record("agentgen.served_by", by.as_str());
    }
    record_outcome(span, &resp.model, resp.finish_reason, resp.usage, resp.timings.as_ref());
    if capture_content() {
        span.record(
            "gen_ai.output.messages",
            messages_json(std::slice::from_ref(&resp.message)).as_str(),
        );
    }
}

/// Records how a model call ended on a [`chat_span`] — model, finish reason, token counts and
/// timings — without its content (a stream's last chunk has no whole message).
pub fn record_outcome(
    span: &Span,
    model: &str,
    finish_reason: FinishReason,
    usage: Usage,
    timings: Option<&Timings>,
) {
    if span.is_disabled() {
        return;
    }
    if !model.is_empty() {
        span.record("gen_ai.response.model", model);
    }
    span.record("gen_ai.response.finish_reasons", finish_reason_name(finish_reason));
    span.record("gen_ai.usage.input_tokens", i64::from(usage.prompt_tokens));
    span.record("gen_ai.usage.output_tokens", i64::from(usage.completion_tokens));
    if usage.cached_tokens > 0 {
        span.record("gen_ai.usage.cache_read.input_tokens", i64::from(usage.cached_tokens));
    }
    if let Some(t) = timings {
        span.record("agentgen.timings.prompt_n", i64::from(t.prompt_n));
        span.record("agentgen.timings.prompt_ms", t.prompt_ms);
        span.record("agentgen.timings.predicted_n", i64::from(t.predicted_n));
        span.record("agentgen.timings.predicted_ms", t.predicted_ms);
        span.record("agentgen.timings.time_to_first_token_ms", t.time_to_first_token_ms);
        if t.draft_n > 0 {
            span.record("agentgen.timings.draft_n_accepted", i64::from(t.draft_n_accepted));
        }
    }
}

/// Marks a span failed with `error`: its kind in `error.type` and the status; its text too
/// when content capture is on (an error's text can quote the model's output).
pub fn record_error(span: &Span, error: &AgentError) {
    if !span.is_disabled() {
        record_failure(span, error_kind(error), error);
    }
}

/// [`record_error`] for a backend's error.
pub fn record_backend_error(span: &Span, error: &BackendError) {
    if !span.is_disabled() {
        record_failure(span, backend_error_kind(error), error);
    }
}

fn record_failure(span: &Span, kind: &str, error: &dyn std::fmt::Display) {
    span.record("otel.status_code", "ERROR");
    span.record("error.type", kind);
    if capture_content() {
        span.record("otel.status_description", tracing::field::display(error));
    } else {
        span.record("otel.status_description", kind);
    }
}

/// A short, content-free name for an error (`error.type`).
pub fn error_kind(error: &AgentError) -> &'static str {
    match error {
        AgentError::Backend(e) => backend_error_kind(e),
        AgentError::Tool(_) => "tool",
        AgentError::Cancelled => "cancelled",
        AgentError::Config(_) => "config",
        AgentError::State(_) => "state",
        AgentError::StructuredOutput { .. } => "structured_output",
        AgentError::Input(_) => "input",
        AgentError::Memory(_) => "memory",
        AgentError::UnknownAgent(_) => "unknown_agent",
        AgentError::CodeExecution(_) => "code_execution",
        AgentError::Sandbox(_) => "sandbox",
        AgentError::Journal(_) => "journal",
        AgentError::PromptTemplate(_) => "config",
    }
}

/// A short name for a backend's error (`error.type`).
pub fn backend_error_kind(error: &BackendError) -> &'static str {
    match error {
        BackendError::RateLimited { .. } => "rate_limited",
        BackendError::Unauthorized { .. } => "unauthorized",
        BackendError::ModelNotFound { .. } => "model_not_found",
        BackendError::ContextOverflow { .. } => "context_overflow",
        BackendError::InvalidRequest { .. } => "invalid_request",
        BackendError::ToolUseFailed { .. } => "tool_use_failed",
        BackendError::Unavailable { .. } => "unavailable",
        BackendError::Timeout(_) => "timeout",
        BackendError::Cancelled => "cancelled",
        BackendError::Protocol(_) => "protocol",
        BackendError::ModelFile(_) => "model_file",
        BackendError::Internal(_) => "internal",
    }
}

/// The span of one tool call (record its result with [`record_tool_result`]).
pub fn tool_span(call: &ToolCall) -> Span {
    let span = tracing::info_span!(
        "execute_tool",
        otel.name = %format_args!("execute_tool {}", call.function.name),
        otel.kind = "internal",
        otel.status_code = Empty,
        otel.status_description = Empty,
        error.type = Empty,
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = %call.function.name,
        gen_ai.tool.call.id = %call.id,
        gen_ai.tool.type = "function",
        gen_ai.tool.call.arguments = Empty,
        gen_ai.tool.call.result = Empty,
    );
    if !span.is_disabled() && capture_content() {
        span.record("gen_ai.tool.call.arguments", call.function.arguments.as_str());
    }
    span
}

/// Records a tool's result on a [`tool_span`]: an error result marks the span failed.
pub fn record_tool_result(span: &Span, result: &ToolResult) {
    if span.is_disabled() {
        return;
    }
    if result.is_error {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", "tool_error");
    }
    if capture_content() {
        span.record("gen_ai.tool.call.result", result.content.as_str());
    }
}

fn messages_json(messages: &[ChatMessage]) -> String {
    serde_json::to_string(messages).unwrap_or_default()
}
