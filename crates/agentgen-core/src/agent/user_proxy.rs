//! [`UserProxyAgent`]: a person in the loop, asked through a pluggable async input function.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{cancellable, AgentError, ChatAgent, Response};
use crate::events::{AgentMessage, EventSink};

/// Asks a person: gets a prompt (the latest message), returns their answer or an error text.
pub type InputFn = Arc<dyn Fn(String) -> BoxFuture<'static, Result<String, String>> + Send + Sync>;

/// An agent that answers with what a person types. The CLI plugs in stdin; tests plug in a
/// closure.
pub struct UserProxyAgent {
    name: String,
    description: String,
    input: InputFn,
}

impl fmt::Debug for UserProxyAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserProxyAgent").field("name", &self.name).finish_non_exhaustive()
    }
}

impl UserProxyAgent {
    /// A user proxy that asks `input` for each answer.
    pub fn new<F, Fut>(name: impl Into<String>, input: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<String, String>> + Send + 'static,
    {
        Self {
            name: name.into(),
            description: "A human user.".into(),
            input: Arc::new(move |prompt| Box::pin(input(prompt))),
        }
    }

    /// Sets the description.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }
}

#[async_trait]
impl ChatAgent for UserProxyAgent {
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
        // In a journaled run an answer is journaled once given; a resumed turn reads it back
        // instead of asking again.
        let journal = sink.journal();
        if let Some(answer) = journal.and_then(|j| j.replayed_input(&self.name)) {
            return Ok(Response::new(AgentMessage::text(self.name.clone(), answer)));
        }
        let prompt = messages.last().map(|m| m.content.clone()).unwrap_or_default();
        let input = Arc::clone(&self.input);
        let answer =
            cancellable(&cancel, async move { input(prompt).await.map_err(AgentError::Input) })
                .await?;
        if let Some(j) = journal {
            j.user_input(&self.name, &answer)?;
        }
        Ok(Response::new(AgentMessage::text(self.name.clone(), answer)))
    }

    async fn reset(&mut self) {}

    async fn save_state(&self) -> Result<Value, AgentError> {
        Ok(serde_json::json!({"type": "UserProxyAgentState"}))
    }

    async fn load_state(&mut self, _state: Value) -> Result<(), AgentError> {
        Ok(())
    }
}
