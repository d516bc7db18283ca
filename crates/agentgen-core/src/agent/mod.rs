//! Agents: the [`ChatAgent`] trait and the agents that ship with agentgen.

mod agent_tool;
mod assistant;
mod code_executor;
mod society_of_mind;
mod user_proxy;

pub use agent_tool::{AgentTool, AgentToolError, DEFAULT_MAX_OUTPUT_BYTES};
pub use assistant::{AssistantAgent, Handoff};
pub use code_executor::{
    extract_code_blocks, ApprovalFn, ApprovalPolicy, CodeBlock, CodeExecutorAgent, CodeOutcome,
};
pub use society_of_mind::SocietyOfMindAgent;
pub use user_proxy::{InputFn, UserProxyAgent};

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::events::{drive_stream, AgentEvent, AgentMessage, EventSink, StreamItem};

pub use crate::error::AgentError;

/// An agent's answer to new messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The message the agent says to the others.
    pub message: AgentMessage,
    /// What happened on the way (tool calls and results, handoffs, memory queries), in order.
    pub inner_events: Vec<AgentEvent>,
}

impl Response {
    /// A response with no inner events.
    pub fn new(message: AgentMessage) -> Self {
        Self { message, inner_events: Vec::new() }
    }
}

/// An agent that can take part in a team.
///
/// A team calls [`on_messages_stream`](Self::on_messages_stream) with the messages the agent
/// has not seen yet, each time it is the agent's turn. The agent keeps its own history.
#[async_trait]
pub trait ChatAgent: Send + Sync {
    /// Unique name within a team.
    fn name(&self) -> &str;

    /// What the agent does (selectors and handoff tools show it to models).
    fn description(&self) -> &str;

    /// Agents this one may hand over to (checked by [`Swarm`](crate::team::Swarm)).
    fn handoff_targets(&self) -> Vec<String> {
        Vec::new()
    }

    /// Answers new messages, reporting events (tool calls, token chunks) to `sink` as they
    /// happen. On error the agent's history is as it was before the call.
    async fn on_messages_with(
        &mut self,
        messages: &[AgentMessage],
        cancel: CancellationToken,
        sink: &EventSink,
    ) -> Result<Response, AgentError>;

    /// Answers new messages.
    async fn on_messages(
        &mut self,
        messages: &[AgentMessage],
        cancel: CancellationToken,
    ) -> Result<Response, AgentError> {
        self.on_messages_with(messages, cancel, &EventSink::none()).await
    }

    /// Answers new messages as a stream of events, ending with the [`Response`].
    fn on_messages_stream<'a>(
        &'a mut self,
        messages: &'a [AgentMessage],
        cancel: CancellationToken,
    ) -> BoxStream<'a, Result<StreamItem<Response>, AgentError>> {
        drive_stream(move |sink| {
            Box::pin(async move { self.on_messages_with(messages, cancel, &sink).await })
        })
    }

    /// Forgets the conversation.
    async fn reset(&mut self);

    /// The agent's state (history and counters) as JSON.
    async fn save_state(&self) -> Result<Value, AgentError>;

    /// Restores a state saved by [`save_state`](Self::save_state).
    async fn load_state(&mut self, state: Value) -> Result<(), AgentError>;
}

/// Parses a typed state saved as JSON, naming the agent when it does not fit.
pub(crate) fn parse_state<T: serde::de::DeserializeOwned>(
    who: &str,
    state: Value,
) -> Result<T, AgentError> {
    serde_json::from_value(state).map_err(|e| AgentError::State(format!("{who}: {e}")))
}

/// Serialises a state.
pub(crate) fn to_state<T: serde::Serialize>(state: &T) -> Result<Value, AgentError> {
    serde_json::to_value(state).map_err(|e| AgentError::State(e.to_string()))
}

/// Runs `fut` unless `cancel` fires first.
pub(crate) async fn cancellable<T>(
    cancel: &CancellationToken,
    fut: impl std::future::Future<Output = Result<T, AgentError>>,
) -> Result<T, AgentError> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(AgentError::Cancelled),
        res = fut => res,
    }
}
