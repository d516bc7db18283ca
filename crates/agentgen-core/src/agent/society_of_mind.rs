//! [`SocietyOfMindAgent`]: a whole team presented as one agent. Each turn it runs the team on
//! the new messages, then asks a model to write one answer from the team's conversation.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::{cancellable, AgentError, ChatAgent, Response};
use crate::backend::ChatBackend;
use crate::events::{AgentMessage, EventSink, Task};
use crate::message::ChatMessage;
use crate::request::ChatRequest;
use crate::team::Team;

/// The default instruction for the final answer.
pub const DEFAULT_INSTRUCTION: &str = "Earlier you were asked to fulfill a request. You and your team worked diligently to address that request. Here is a transcript of that conversation:";

/// The default prompt after the transcript.
pub const DEFAULT_RESPONSE_PROMPT: &str =
    "Output a standalone response to the original request, without mentioning any of the intermediate discussion.";

/// A team that speaks as one agent.
pub struct SocietyOfMindAgent {
    name: String,
    description: String,
    team: Box<dyn Team>,
    backend: Arc<dyn ChatBackend>,
    instruction: String,
    response_prompt: String,
    defaults: ChatRequest,
}

impl fmt::Debug for SocietyOfMindAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocietyOfMindAgent").field("name", &self.name).finish_non_exhaustive()
    }
}

impl SocietyOfMindAgent {
    /// Wraps `team`; `backend` writes the final answer.
    pub fn new(
        name: impl Into<String>,
        team: Box<dyn Team>,
        backend: Arc<dyn ChatBackend>,
    ) -> Self {
        Self {
            name: name.into(),
            description: "An agent that uses an inner team of agents to generate responses.".into(),
            team,
            backend,
            instruction: DEFAULT_INSTRUCTION.into(),
            response_prompt: DEFAULT_RESPONSE_PROMPT.into(),
            defaults: ChatRequest::default(),
        }
    }

    /// Sets the description.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Sets the instruction placed before the transcript.
    pub fn with_instruction(mut self, instruction: impl Into<String>) -> Self {
        self.instruction = instruction.into();
        self
    }

    /// Sets the prompt placed after the transcript.
    pub fn with_response_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.response_prompt = prompt.into();
        self
    }

    /// Sampling options of the final call.
    pub fn with_request_defaults(mut self, defaults: ChatRequest) -> Self {
        self.defaults = defaults;
        self
    }
}

#[async_trait]
impl ChatAgent for SocietyOfMindAgent {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    async fn on_messages_with(
        &mut self,
        messages: &[AgentMessage],
        cancel: CancellationToken,
        sink: &EventSink,
    ) -> Result<Response, AgentError> {
        let result = self
            .team
            .run_with(Task::Messages(messages.to_vec()), cancel.clone(), &sink.without_stop())
            .await?;
        let transcript: Vec<String> =
            result.messages.iter().map(|m| format!("{}: {}", m.source, m.content)).collect();
        let mut req = self.defaults.clone();
        req.messages = vec![
            ChatMessage::system(self.instruction.clone()),
            ChatMessage::user(transcript.join("\n\n")),
            ChatMessage::user(self.response_prompt.clone()),
        ];
        let backend = Arc::clone(&self.backend);
        let resp = cancellable(&cancel, async move {
            crate::telemetry::complete_traced(backend.as_ref(), req).await
        })
        .await?;
        self.team.reset().await;
        let usage = resp.usage + result.usage;
        let text = resp.text().unwrap_or_default().to_owned();
        Ok(Response::new(AgentMessage::text(self.name.clone(), text).with_usage(usage)))
    }

    async fn reset(&mut self) {
        self.team.reset().await;
    }

    async fn save_state(&self) -> Result<Value, AgentError> {
        Ok(
            json!({"type": "SocietyOfMindAgentState", "inner_team_state": self.team.save_state().await?}),
        )
    }

    async fn load_state(&mut self, state: Value) -> Result<(), AgentError> {
        let inner = state
            .get("inner_team_state")
            .cloned()
            .ok_or_else(|| AgentError::State(format!("{}: no inner_team_state", self.name)))?;
        self.team.load_state(inner).await
    }
}
