//! What agents say to each other ([`AgentMessage`]), what a run reports as it goes
//! ([`AgentEvent`]), what it ends with ([`TaskResult`]), and the plumbing that turns a run into
//! a [`futures::Stream`] of events.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::error::AgentError;
use crate::journal::Journal;
use crate::message::{ChatMessage, ToolCall};
use crate::response::Usage;

/// What kind of message an agent produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MessageKind {
    /// Plain text from a model, a person or the task.
    Text,
    /// The formatted results of tool calls, when the agent did not reflect on them.
    ToolCallSummary,
    /// The speaker hands the conversation over to `target`.
    Handoff {
        /// The agent that should speak next.
        target: String,
    },
    /// The speaker asks the run to stop.
    Stop,
    /// A JSON value that matched the agent's output schema.
    Structured {
        /// The parsed value.
        value: serde_json::Value,
    },
}

/// One message of a team's conversation, with the name of the agent (or `user`) that said it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentMessage {
    /// Who said it: an agent's name, or `user` for the task.
    pub source: String,
    /// The text.
    pub content: String,
    /// What kind of message it is.
    #[serde(flatten)]
    pub kind: MessageKind,
    /// Tokens the speaker's model calls used to produce it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

impl AgentMessage {
    /// A text message.
    pub fn text(source: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            content: content.into(),
            kind: MessageKind::Text,
            usage: None,
        }
    }

    /// A message of the given kind.
    pub fn new(source: impl Into<String>, content: impl Into<String>, kind: MessageKind) -> Self {
        Self { source: source.into(), content: content.into(), kind, usage: None }
    }

    /// The same message with usage attached.
    pub fn with_usage(mut self, usage: Usage) -> Self {
        self.usage = Some(usage);
        self
    }

    /// The handoff target, when this is a handoff.
    pub fn handoff_target(&self) -> Option<&str> {
        match &self.kind {
            MessageKind::Handoff { target } => Some(target),
            _ => None,
        }
    }

    /// The structured value parsed into `T`, when this is a structured message.
    pub fn structured<T: serde::de::DeserializeOwned>(
        &self,
    ) -> Option<Result<T, serde_json::Error>> {
        match &self.kind {
            MessageKind::Structured { value } => Some(serde_json::from_value(value.clone())),
            _ => None,
        }
    }

    /// How another agent's model sees this message: a user message named after its source.
    pub fn to_chat_message(&self) -> ChatMessage {
        ChatMessage::user_named(self.content.clone(), sanitize_name(&self.source))
    }
}

/// Names in OpenAI messages must match `^[a-zA-Z0-9_-]+$`.
fn sanitize_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

/// The result of one tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    /// The id of the call it answers.
    pub call_id: String,
    /// The tool's name, as the model called it.
    pub name: String,
    /// The text the model reads (`Error: …` when it failed).
    pub content: String,
    /// Whether the call failed (bad arguments, unknown tool, tool error).
    pub is_error: bool,
}

/// Something that happened during a run, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AgentEvent {
    /// A whole message: the task or an agent's turn.
    Message(AgentMessage),
    /// An agent's model asked for tool calls.
    ToolCallRequest {
        /// The agent.
        source: String,
        /// The calls.
        calls: Vec<ToolCall>,
    },
    /// The tool calls ran.
    ToolCallResult {
        /// The agent.
        source: String,
        /// One result per call, in call order.
        results: Vec<ToolResult>,
    },
    /// A piece of text as the model generates it (only when the agent streams).
    TokenChunk {
        /// The agent.
        source: String,
        /// The new text.
        text: String,
    },
    /// An agent handed the conversation over.
    Handoff {
        /// The agent handing over.
        source: String,
        /// The agent taking over.
        target: String,
    },
    /// Memory contents were added to an agent's prompt.
    MemoryQuery {
        /// The agent.
        source: String,
        /// The contents used.
        contents: Vec<String>,
    },
    /// A selector picked the next speaker.
    SpeakerSelected {
        /// The chosen agent.
        speaker: String,
        /// Whether the selector fell back to the next in turn after unusable answers.
        fallback: bool,
    },
    /// The run stopped.
    Stop {
        /// Why.
        reason: String,
    },
}

impl AgentEvent {
    /// The message, when this event is one.
    pub fn as_message(&self) -> Option<&AgentMessage> {
        match self {
            Self::Message(m) => Some(m),
            _ => None,
        }
    }
}

/// What a team run ended with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    /// The messages of this run: the task, then every agent turn.
    pub messages: Vec<AgentMessage>,
    /// Why the run stopped.
    pub stop_reason: Option<String>,
    /// Tokens used by the agents' model calls during this run.
    pub usage: Usage,
}

/// What a team is asked to do.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Task {
    /// Continue the conversation as it stands (after a stop, or after loading state).
    #[default]
    Continue,
    /// Start with these messages.
    Messages(Vec<AgentMessage>),
}

impl From<&str> for Task {
    fn from(text: &str) -> Self {
        Self::Messages(vec![AgentMessage::text("user", text)])
    }
}

impl From<String> for Task {
    fn from(text: String) -> Self {
        Self::Messages(vec![AgentMessage::text("user", text)])
    }
}

impl From<Vec<AgentMessage>> for Task {
    fn from(messages: Vec<AgentMessage>) -> Self {
        Self::Messages(messages)
    }
}

/// An item of a run's stream: an event as it happens, then the final value.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem<T> {
    /// Something happened.
    Event(AgentEvent),
    /// The run ended with this.
    Done(T),
}

/// Where an agent or team reports events as they happen. Cheap to clone; a sink made with
/// [`EventSink::none`] drops everything.
#[derive(Debug, Clone, Default)]
pub struct EventSink {
    tx: Option<mpsc::UnboundedSender<AgentEvent>>,
    drop_stop: bool,
    journal: Option<Arc<Journal>>,
}

impl EventSink {
    /// A sink that drops every event.
    pub fn none() -> Self {
        Self::default()
    }

    /// A sink feeding this channel.
    pub fn channel(tx: mpsc::UnboundedSender<AgentEvent>) -> Self {
        Self { tx: Some(tx), drop_stop: false, journal: None }
    }

    /// The same sink, journaling the run into `journal`: the team and its agents commit every
    /// event there before acting on it (see [`crate::journal`]).
    pub fn with_journal(&self, journal: Arc<Journal>) -> Self {
        Self { journal: Some(journal), ..self.clone() }
    }

    /// The journal the run writes to, if any.
    pub fn journal(&self) -> Option<&Arc<Journal>> {
        self.journal.as_ref()
    }

    /// The same sink, but dropping [`AgentEvent::Stop`] (for a team nested in an agent, whose
    /// stop is not the outer run's) and without the journal (the nested run is one turn of the
    /// outer one).
    pub fn without_stop(&self) -> Self {
        Self { tx: self.tx.clone(), drop_stop: true, journal: None }
    }

    /// Reports an event (ignored when nobody listens).
    pub fn emit(&self, event: AgentEvent) {
        if self.drop_stop && matches!(event, AgentEvent::Stop { .. }) {
            return;
        }
        if let Some(tx) = &self.tx {
            let _ = tx.send(event);
        }
    }

    /// Whether anyone listens.
    pub fn is_active(&self) -> bool {
        self.tx.as_ref().is_some_and(|tx| !tx.is_closed())
    }
}

/// Turns a run that reports into an [`EventSink`] into a stream: every event in order, then
/// [`StreamItem::Done`] (or the error). Dropping the stream drops (cancels) the run.
pub fn drive_stream<'a, T: Send + 'a>(
    run: impl FnOnce(EventSink) -> BoxFuture<'a, Result<T, AgentError>>,
) -> BoxStream<'a, Result<StreamItem<T>, AgentError>> {
    enum State<'a, T> {
        Running(BoxFuture<'a, Result<T, AgentError>>, mpsc::UnboundedReceiver<AgentEvent>),
        Draining(mpsc::UnboundedReceiver<AgentEvent>, Result<T, AgentError>),
        Done,
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let fut = run(EventSink::channel(tx));
    let stream = futures::stream::unfold(State::Running(fut, rx), |state| async move {
        match state {
            State::Running(mut fut, mut rx) => {
                tokio::select! {
                    biased;
                    Some(ev) = rx.recv() => Some((Ok(StreamItem::Event(ev)), State::Running(fut, rx))),
                    res = &mut fut => {
                        drop(fut);
                        match rx.try_recv() {
                            Ok(ev) => Some((Ok(StreamItem::Event(ev)), State::Draining(rx, res))),
                            Err(_) => Some((res.map(StreamItem::Done), State::Done)),
                        }
                    }
                }
            }
            State::Draining(mut rx, res) => match rx.try_recv() {
                Ok(ev) => Some((Ok(StreamItem::Event(ev)), State::Draining(rx, res))),
                Err(_) => Some((res.map(StreamItem::Done), State::Done)),
            },
            State::Done => None,
        }
    });
    Box::pin(stream)
}
