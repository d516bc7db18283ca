//! [`AgentTool`]: an agent another agent's model can call like a function. Each call gives the
//! wrapped agent one task, from a fresh state, and returns its final message's text.

use std::fmt;

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::ChatAgent;
use crate::events::AgentMessage;
use crate::tools::{bounded_output, Tool, ToolContext, ToolError};

/// The default cap on the text one call returns, in bytes.
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 16 * 1024;

/// Why an agent tool call failed before or while the agent ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgentToolError {
    /// The arguments have no `task` string.
    #[error("the arguments need a `task` string")]
    MissingTask,
    /// The `task` is empty or only whitespace.
    #[error("the `task` is empty")]
    EmptyTask,
    /// The wrapped agent failed.
    #[error("agent `{agent}` failed: {message}")]
    Agent {
        /// The wrapped agent.
        agent: String,
        /// Its error.
        message: String,
    },
}

/// Wraps a [`ChatAgent`] as a [`Tool`] taking `{"task": "..."}`.
///
/// Every call resets the agent first, so calls do not see each other, then runs it on the task
/// (sent as a message from `user`) and returns the text of its final message, cut to
/// [`with_max_output_bytes`](Self::with_max_output_bytes). Calls to one tool run one at a time.
/// What the agent does on the way (its tool calls and results, streamed text) goes to the
/// run's sink ([`ToolContext::sink`]).
pub struct AgentTool {
    name: String,
    description: String,
    max_output_bytes: usize,
    agent: Mutex<Box<dyn ChatAgent>>,
}

impl fmt::Debug for AgentTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentTool")
            .field("name", &self.name)
            .field("max_output_bytes", &self.max_output_bytes)
            .finish_non_exhaustive()
    }
}

impl AgentTool {
    /// A tool named and described after the agent.
    pub fn new(agent: Box<dyn ChatAgent>) -> Self {
        Self {
            name: agent.name().to_owned(),
            description: agent.description().to_owned(),
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            agent: Mutex::new(agent),
        }
    }

    /// Sets the name the model calls it by.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the description the model sees.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Caps the returned text at `bytes` (cut at a character boundary, with a note).
    pub fn with_max_output_bytes(mut self, bytes: usize) -> Self {
        self.max_output_bytes = bytes;
        self
    }

    /// The task of a call's arguments.
    pub fn task(args: &Value) -> Result<&str, AgentToolError> {
        let task = args.get("task").and_then(Value::as_str).ok_or(AgentToolError::MissingTask)?;
        if task.trim().is_empty() {
            return Err(AgentToolError::EmptyTask);
        }
        Ok(task)
    }

    fn tool_error(&self, e: AgentToolError) -> ToolError {
        match e {
            AgentToolError::MissingTask | AgentToolError::EmptyTask => {
                ToolError::InvalidArguments { tool: self.name.clone(), message: e.to_string() }
            }
            _ => ToolError::Execution { tool: self.name.clone(), message: e.to_string() },
        }
    }
}

#[async_trait]
impl Tool for AgentTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {"task": {"type": "string", "description": "The task for the agent."}},
            "required": ["task"]
        })
    }

    async fn call(&self, args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        let task = Self::task(&args).map_err(|e| self.tool_error(e))?;
        let mut agent = self.agent.lock().await;
        agent.reset().await;
        let messages = [AgentMessage::text("user", task)];
        let result = agent.on_messages_with(&messages, ctx.cancel.clone(), &ctx.sink).await;
        agent.reset().await;
        let response = match result {
            Ok(r) => r,
            Err(crate::error::AgentError::Cancelled) => return Err(ToolError::Cancelled),
            Err(e) => {
                return Err(self.tool_error(AgentToolError::Agent {
                    agent: agent.name().to_owned(),
                    message: e.to_string(),
                }))
            }
        };
        Ok(Value::String(bounded_output(response.message.content, self.max_output_bytes)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::agent::AssistantAgent;
    use crate::testing::{Reply, ScriptedBackend};

    fn helper(backend: Arc<ScriptedBackend>) -> AgentTool {
        let agent = AssistantAgent::new("researcher", backend)
            .with_description("Finds facts.")
            .with_system_message("You research.".to_owned());
        AgentTool::new(Box::new(agent))
    }

    #[tokio::test]
    async fn a_call_runs_the_agent_on_the_task_from_a_fresh_state() {
        let backend = Arc::new(ScriptedBackend::with_texts(["first answer", "second answer"]));
        let tool = helper(Arc::clone(&backend));
        assert_eq!(tool.name(), "researcher");
        assert_eq!(tool.description(), "Finds facts.");
        assert_eq!(tool.parameters()["required"], json!(["task"]));
        let ctx = ToolContext::default();
        let out = tool.call(json!({"task": "What is 2+2?"}), &ctx).await.unwrap();
        assert_eq!(out, json!("first answer"));
        let out = tool.call(json!({"task": "And 3+3?"}), &ctx).await.unwrap();
        assert_eq!(out, json!("second answer"));
        let requests = backend.requests();
        assert_eq!(requests.len(), 2);
        // The second call does not see the first one's conversation.
        let second: Vec<String> =
            requests[1].messages.iter().filter_map(|m| m.text().map(str::to_owned)).collect();
        assert!(second.iter().any(|t| t.contains("And 3+3?")), "{second:?}");
        assert!(!second.iter().any(|t| t.contains("2+2") || t.contains("first")), "{second:?}");
    }

    #[tokio::test]
    async fn a_missing_or_empty_task_is_a_typed_error() {
        let backend = Arc::new(ScriptedBackend::with_texts(["unused"]));
        let tool = helper(Arc::clone(&backend));
        let ctx = ToolContext::default();
        assert_eq!(AgentTool::task(&json!({})), Err(AgentToolError::MissingTask));
        assert_eq!(AgentTool::task(&json!({"task": 3})), Err(AgentToolError::MissingTask));
        assert_eq!(AgentTool::task(&json!({"task": "  "})), Err(AgentToolError::EmptyTask));
        let err = tool.call(json!({"task": ""}), &ctx).await.unwrap_err();
        assert!(matches!(err, ToolError::InvalidArguments { .. }), "{err}");
        assert_eq!(backend.request_count(), 0);
    }

    #[tokio::test]
    async fn long_output_is_cut_at_a_character_boundary() {
        let backend = Arc::new(ScriptedBackend::with_texts(["éééééééééé"]));
        let tool = helper(backend).with_max_output_bytes(5);
        let out = tool.call(json!({"task": "go"}), &ToolContext::default()).await.unwrap();
        let text = out.as_str().unwrap();
        assert_eq!(text, "éé\n[output cut: 4 of 20 bytes shown]");
    }

    #[tokio::test]
    async fn an_agent_failure_is_an_execution_error() {
        let backend = Arc::new(ScriptedBackend::new());
        let tool = helper(backend);
        let err = tool.call(json!({"task": "go"}), &ToolContext::default()).await.unwrap_err();
        assert!(matches!(err, ToolError::Execution { .. }), "{err}");
    }

    #[tokio::test]
    async fn an_assistant_calls_the_agent_through_its_tool_set() {
        let inner = Arc::new(ScriptedBackend::with_texts(["Paris"]));
        let outer = Arc::new(ScriptedBackend::with_replies([
            Reply::call("c1", "researcher", r#"{"task": "Capital of France?"}"#),
            Reply::text("The capital is Paris."),
        ]));
        let mut lead = AssistantAgent::new("lead", outer)
            .with_system_message("You lead.".to_owned())
            .with_reflect_on_tool_use(true)
            .with_tool(helper(inner))
            .unwrap();
        let resp = lead
            .on_messages(&[AgentMessage::text("user", "Ask.")], Default::default())
            .await
            .unwrap();
        assert_eq!(resp.message.content, "The capital is Paris.");
        let results = resp.inner_events.iter().find_map(|e| match e {
            crate::events::AgentEvent::ToolCallResult { results, .. } => Some(results.clone()),
            _ => None,
        });
        let results = results.unwrap();
        assert_eq!(results[0].content, "Paris");
        assert!(!results[0].is_error);
    }

    #[tokio::test]
    async fn the_wrapped_agent_reports_its_events_to_the_run_sink() {
        use crate::events::{AgentEvent, EventSink};
        use crate::tools::FunctionTool;
        #[derive(serde::Deserialize, schemars::JsonSchema)]
        struct Add {
            a: i64,
            b: i64,
        }
        let add =
            FunctionTool::new("add", "Adds.", |x: Add| async move { Ok::<_, String>(x.a + x.b) });
        let inner = Arc::new(ScriptedBackend::with_replies([Reply::call(
            "i1",
            "add",
            r#"{"a": 2, "b": 3}"#,
        )]));
        let researcher = AssistantAgent::new("researcher", inner)
            .with_system_message("You add.".to_owned())
            .with_tool(add)
            .unwrap();
        let outer = Arc::new(ScriptedBackend::with_replies([
            Reply::call("c1", "researcher", r#"{"task": "2+3?"}"#),
            Reply::text("It is 5."),
        ]));
        let mut lead = AssistantAgent::new("lead", outer)
            .with_system_message("You lead.".to_owned())
            .with_reflect_on_tool_use(true)
            .with_tool(AgentTool::new(Box::new(researcher)))
            .unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let resp = lead
            .on_messages_with(
                &[AgentMessage::text("user", "Ask.")],
                Default::default(),
                &EventSink::channel(tx),
            )
            .await
            .unwrap();
        assert_eq!(resp.message.content, "It is 5.");
        let events: Vec<AgentEvent> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        let kinds: Vec<(&str, &str)> = events
            .iter()
            .filter_map(|e| match e {
                AgentEvent::ToolCallRequest { source, .. } => Some((source.as_str(), "request")),
                AgentEvent::ToolCallResult { source, .. } => Some((source.as_str(), "result")),
                _ => None,
            })
            .collect();
        // The inner agent's call and result come between the lead's.
        assert_eq!(
            kinds,
            [
                ("lead", "request"),
                ("researcher", "request"),
                ("researcher", "result"),
                ("lead", "result")
            ],
            "{events:?}"
        );
        let inner_result = events.iter().find_map(|e| match e {
            AgentEvent::ToolCallResult { source, results } if source == "researcher" => {
                Some(results[0].content.clone())
            }
            _ => None,
        });
        assert_eq!(inner_result.as_deref(), Some("5"));
        assert!(!events.iter().any(|e| matches!(e, AgentEvent::Stop { .. })), "{events:?}");
        // The lead's own record of the turn holds only its own events.
        assert!(resp.inner_events.iter().all(|e| !matches!(
            e,
            AgentEvent::ToolCallRequest { source, .. } if source == "researcher"
        )));
    }
}
