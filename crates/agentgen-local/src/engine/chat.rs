//! From chat requests to engine jobs and back: rendering, constraints, tool-call parsing of
//! the finished text, and the chat stream (which holds back text that may be a tool call).

use std::collections::VecDeque;
use std::sync::Arc;

use agentgen_core::{
    BackendError, ChatChunk, ChatMessage, ChatRequest, ChatResponse, FinishReason, ToolCallDelta,
    ToolChoice,
};
use futures::Stream;
use llguidance::api::TopLevelGrammar;
use tokio::sync::mpsc;

use super::job::{Event, Finished};
use super::{GenerateOptions, Generation, LocalConfig};
use crate::error::LocalError;
use crate::format::{ChatFormat, PromptSegment};

/// A chat request turned into what the engine runs.
#[derive(Debug, Clone)]
pub(super) struct Prepared {
    pub prompt: Vec<PromptSegment>,
    pub options: GenerateOptions,
    pub grammar: Option<TopLevelGrammar>,
    /// The model may answer with tool calls.
    pub tools_active: bool,
    /// The model must answer with a tool call.
    pub must_call: bool,
}

pub(super) fn prepare(
    format: &ChatFormat,
    limits: &LocalConfig,
    req: &ChatRequest,
) -> Result<Prepared, BackendError> {
    if req.messages.is_empty() {
        return Err(BackendError::invalid_param("messages must not be empty", "messages"));
    }
    limits.check_stop(&req.stop)?;
    let options = GenerateOptions::from_request(req)?;
    let prompt = format.render(req)?;
    let grammar = format.constraint(req)?.map(|c| c.grammar);
    let choice = req.effective_tool_choice();
    Ok(Prepared {
        prompt,
        options,
        grammar,
        tools_active: !req.tools.is_empty() && choice != ToolChoice::None,
        must_call: !req.tools.is_empty()
            && matches!(choice, ToolChoice::Required | ToolChoice::Function(_)),
    })
}

/// The chat response for a finished generation.
pub(super) fn response(
    format: &ChatFormat,
    req: &ChatRequest,
    prepared: &Prepared,
    generation: Generation,
    id: String,
    model: &str,
) -> Result<ChatResponse, BackendError> {
    let (message, finish_reason) = if prepared.tools_active {
        let parsed = format.parse_output(&generation.text, req);
        if !parsed.tool_calls.is_empty() {
            let message = ChatMessage::Assistant {
                content: parsed.content,
                tool_calls: parsed.tool_calls,
                name: None,
            };
            (message, FinishReason::ToolCalls)
        } else if prepared.must_call {
            return Err(no_call(generation.text, generation.finish_reason));
        } else {
            (ChatMessage::assistant(generation.text), generation.finish_reason)
        }
    } else {
        (ChatMessage::assistant(generation.text), generation.finish_reason)
    };
    Ok(ChatResponse {
        id,
        model: model.to_owned(),
        message,
        finish_reason,
        usage: generation.usage,
        timings: Some(generation.timings),
        served_by: None,
    })
}

fn no_call(text: String, finish_reason: FinishReason) -> BackendError {
    let why = if finish_reason == FinishReason::Length {
        "the tool call was cut off by max_tokens or the context size"
    } else {
        "the model's output is not a valid tool call"
    };
    BackendError::ToolUseFailed { message: why.into(), failed_generation: Some(text) }
}

/// The state of one chat stream.
pub(super) struct StreamState {
    format: Arc<ChatFormat>,
    req: ChatRequest,
    prepared: Prepared,
    events: mpsc::UnboundedReceiver<Event>,
    id: String,
    model: String,
    /// All text so far.
    text: String,
    /// How much of `text` went out as content.
    streamed: usize,
    out: VecDeque<Result<ChatChunk, BackendError>>,
    done: bool,
}

impl StreamState {
    pub(super) fn new(
        format: Arc<ChatFormat>,
        req: ChatRequest,
        prepared: Prepared,
        events: mpsc::UnboundedReceiver<Event>,
        id: String,
        model: String,
    ) -> Self {
        Self {
            format,
            req,
            prepared,
            events,
            id,
            model,
            text: String::new(),
            streamed: 0,
            out: VecDeque::new(),
            done: false,
        }
    }

    async fn next(&mut self) -> Option<Result<ChatChunk, BackendError>> {
        loop {
            if let Some(item) = self.out.pop_front() {
                return Some(item);
            }
            if self.done {
                return None;
            }
            match self.events.recv().await {
                Some(Event::Text(t)) => self.on_text(&t),
                Some(Event::Done(f)) => {
                    self.done = true;
                    self.on_done(f);
                }
                Some(Event::Error(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                None => {
                    self.done = true;
                    return Some(Err(LocalError::EngineGone.into()));
                }
            }
        }
    }

    fn chunk(&self) -> ChatChunk {
        ChatChunk {
            id: Some(self.id.clone()),
            model: Some(self.model.clone()),
            ..ChatChunk::default()
        }
    }

    fn push_content(&mut self, content: &str) {
        if !content.is_empty() {
            let chunk = ChatChunk { content: Some(content.to_owned()), ..self.chunk() };
            self.out.push_back(Ok(chunk));
        }
    }

    fn on_text(&mut self, t: &str) {
        self.text.push_str(t);
        let end = if self.prepared.tools_active { self.safe_end() } else { self.text.len() };
        if end > self.streamed {
            let piece = self.text[self.streamed..end].to_owned();
            self.streamed = end;
            self.push_content(&piece);
        }
    }

    /// How far the text can be shown without showing a (possible) tool call.
    fn safe_end(&self) -> usize {
        self.format.stream_safe_len(&self.text, &self.req).max(self.streamed)
    }

    fn on_done(&mut self, f: Finished) {
        let mut finish_reason = f.finish_reason;
        let mut calls = Vec::new();
        if self.prepared.tools_active {
            let parsed = self.format.parse_output(&self.text, &self.req);
            if parsed.tool_calls.is_empty() {
                if self.prepared.must_call {
                    self.out.push_back(Err(no_call(self.text.clone(), f.finish_reason)));
                    return;
                }
                let rest = self.text[self.streamed..].to_owned();
                self.push_content(&rest);
            } else {
                // Content outside the calls, minus what was already shown.
                let shown = &self.text[..self.streamed];
                if let Some(rest) = parsed.content.as_deref().and_then(|c| c.strip_prefix(shown)) {
                    let rest = rest.to_owned();
                    self.push_content(&rest);
                }
                calls = parsed.tool_calls;
                finish_reason = FinishReason::ToolCalls;
            }
        } else {
            let rest = self.text[self.streamed..].to_owned();
            self.push_content(&rest);
        }
        let tool_calls = calls
            .into_iter()
            .enumerate()
            .map(|(i, c)| ToolCallDelta {
                index: i as u32,
                id: Some(c.id),
                name: Some(c.function.name),
                arguments: Some(c.function.arguments),
            })
            .collect();
        let last = ChatChunk {
            tool_calls,
            finish_reason: Some(finish_reason),
            usage: Some(f.usage),
            timings: Some(f.timings),
            ..self.chunk()
        };
        self.out.push_back(Ok(last));
    }
}

/// The chat stream; dropping it drops the event receiver, which cancels the generation.
pub(super) fn into_stream(
    state: StreamState,
) -> impl Stream<Item = Result<ChatChunk, BackendError>> + Send {
    futures::stream::unfold(state, |mut s| async move { s.next().await.map(|item| (item, s)) })
}
