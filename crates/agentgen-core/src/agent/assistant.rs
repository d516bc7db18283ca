//! [`AssistantAgent`]: a model with a system message, tools, handoffs, memory, a model context
//! and optional structured output.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{cancellable, parse_state, to_state, AgentError, ChatAgent, Response};
use crate::backend::ChatBackend;
use crate::events::{AgentEvent, AgentMessage, EventSink, MessageKind, ToolResult};
use crate::journal::{ToolReplay, INTERRUPTED};
use crate::memory::{memory_system_message, Memory};
use crate::message::{ChatMessage, ToolCall};
use crate::model_context::{ModelContext, SpeakerNames};
use crate::request::{ChatRequest, ResponseFormat, ToolChoice, ToolSpec};
use crate::response::{ChatResponse, StreamAccumulator, Usage};
use crate::telemetry;
use crate::tools::{check_schema, schema_for, Tool, ToolError, ToolSet};

/// A handoff the agent may make: a tool named `transfer_to_<target>` that, when the model
/// calls it, passes the conversation to `target`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handoff {
    /// The agent to hand over to.
    pub target: String,
    /// What the tool says to the model.
    pub description: String,
    /// The message the handoff carries to the team.
    pub message: String,
}

impl Handoff {
    /// A handoff to `target` with the default description and message.
    pub fn new(target: impl Into<String>) -> Self {
        let target = target.into();
        Self {
            description: format!("Handoff to {target}."),
            message: format!("Transferred to {target}, adopting the role of {target} immediately."),
            target,
        }
    }

    /// The name of the tool the model calls to make this handoff.
    pub fn tool_name(&self) -> String {
        let clean: String = self
            .target
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .collect();
        format!("transfer_to_{clean}")
    }
}

impl From<&str> for Handoff {
    fn from(target: &str) -> Self {
        Self::new(target)
    }
}

/// An agent backed by a model: system message, tools (a tool loop of at most
/// `max_tool_iterations` model calls), handoffs, memory, a model context, streaming and
/// structured output.
pub struct AssistantAgent {
    name: String,
    description: String,
    backend: Arc<dyn ChatBackend>,
    system_message: Option<String>,
    tools: ToolSet,
    handoffs: Vec<Handoff>,
    max_tool_iterations: usize,
    reflect_on_tool_use: Option<bool>,
    tool_call_summary_format: String,
    context: ModelContext,
    speaker_names: SpeakerNames,
    memory: Vec<Arc<dyn Memory>>,
    stream: bool,
    defaults: ChatRequest,
    output: Option<(String, Value)>,
    call_counter: u64,
}

impl fmt::Debug for AssistantAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssistantAgent")
            .field("name", &self.name)
            .field("backend", &self.backend.info().name)
            .field("tools", &self.tools)
            .field("handoffs", &self.handoffs)
            .field("max_tool_iterations", &self.max_tool_iterations)
            .field("context", &self.context.policy())
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct AssistantState {
    #[serde(rename = "type")]
    kind: String,
    llm_context: Vec<ChatMessage>,
    #[serde(default)]
    call_counter: u64,
}

impl AssistantAgent {
    /// An assistant called `name` on `backend`, with the default system message
    /// ("You are a helpful AI assistant…"), no tools and one tool iteration.
    pub fn new(name: impl Into<String>, backend: Arc<dyn ChatBackend>) -> Self {
        Self {
            name: name.into(),
            description: "An agent that provides assistance with ability to use tools.".into(),
            backend,
            system_message: Some(
                "You are a helpful AI assistant. Solve tasks using your tools. Reply with TERMINATE when the task has been completed.".into(),
            ),
            tools: ToolSet::new(),
            handoffs: Vec::new(),
            max_tool_iterations: 1,
            reflect_on_tool_use: None,
            tool_call_summary_format: "{result}".into(),
            context: ModelContext::unbounded(),
            speaker_names: SpeakerNames::default(),
            memory: Vec::new(),
            stream: false,
            defaults: ChatRequest::default(),
            output: None,
            call_counter: 0,
        }
    }

    /// Sets the system message (`None` sends none).
    pub fn with_system_message(mut self, system: impl Into<Option<String>>) -> Self {
        self.system_message = system.into();
        self
    }

    /// Sets the description other agents and selectors see.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Adds a tool; fails when its name or schema is invalid or taken.
    pub fn with_tool(mut self, tool: impl Tool + 'static) -> Result<Self, ToolError> {
        self.tools.register(Arc::new(tool))?;
        Ok(self)
    }

    /// Adds a shared tool; fails when its name or schema is invalid or taken.
    pub fn with_tool_arc(mut self, tool: Arc<dyn Tool>) -> Result<Self, ToolError> {
        self.tools.register(tool)?;
        Ok(self)
    }

    /// Adds a handoff (a `transfer_to_<target>` tool).
    pub fn with_handoff(mut self, handoff: impl Into<Handoff>) -> Self {
        self.handoffs.push(handoff.into());
        self
    }

    /// Sets how many model calls the tool loop may make (default 1; must be at least 1).
    pub fn with_max_tool_iterations(mut self, n: usize) -> Self {
        self.max_tool_iterations = n;
        self
    }

    /// Whether to ask the model once more to answer from tool results (default: only with
    /// structured output). Without reflection the turn ends with a tool-call summary.
    pub fn with_reflect_on_tool_use(mut self, reflect: bool) -> Self {
        self.reflect_on_tool_use = Some(reflect);
        self
    }

    /// How each tool result is written in the summary: `{tool_name}`, `{arguments}` and
    /// `{result}` are replaced (default `{result}`).
    pub fn with_tool_call_summary_format(mut self, format: impl Into<String>) -> Self {
        self.tool_call_summary_format = format.into();
        self
    }

    /// Sets the model context (default unbounded).
    pub fn with_model_context(mut self, context: ModelContext) -> Self {
        self.context = context;
        self
    }

    /// How other agents' names reach the model (default [`SpeakerNames::Prefix`]:
    /// `"name: text"`, the same on every backend).
    pub fn with_speaker_names(mut self, speaker_names: SpeakerNames) -> Self {
        self.speaker_names = speaker_names;
        self
    }

    /// Adds a memory consulted before each answer.
    pub fn with_memory(mut self, memory: Arc<dyn Memory>) -> Self {
        self.memory.push(memory);
        self
    }

    /// Streams the model's tokens as [`AgentEvent::TokenChunk`] events.
    pub fn with_streaming(mut self, stream: bool) -> Self {
        self.stream = stream;
        self
    }

    /// Sampling options sent with every call (messages, tools and format are set per call).
    pub fn with_request_defaults(mut self, defaults: ChatRequest) -> Self {
        self.defaults = defaults;
        self
    }

    /// Sets the temperature of every call.
    pub fn with_temperature(mut self, temperature: f32) -> Self {
        self.defaults.temperature = Some(temperature);
        self
    }

    /// Makes the final answer a JSON value of type `T` (sent as a `json_schema` response
    /// format; the answer comes as [`MessageKind::Structured`]). Turns reflection on unless
    /// set otherwise.
    pub fn with_output_type<T: JsonSchema>(mut self) -> Self {
        self.output = Some((T::schema_name(), schema_for::<T>()));
        self
    }

    /// Like [`with_output_type`](Self::with_output_type) with a hand-written schema.
    pub fn with_output_schema(
        mut self,
        name: impl Into<String>,
        schema: Value,
    ) -> Result<Self, AgentError> {
        check_schema(&schema).map_err(|e| AgentError::Config(format!("output schema: {e}")))?;
        self.output = Some((name.into(), schema));
        Ok(self)
    }

    /// The history the agent keeps.
    pub fn context(&self) -> &ModelContext {
        &self.context
    }

    fn check_config(&self) -> Result<(), AgentError> {
        if self.max_tool_iterations == 0 {
            return Err(AgentError::Config("max_tool_iterations must be at least 1".into()));
        }
        let mut names = self.tools.names();
        for h in &self.handoffs {
            let tool = h.tool_name();
            if names.contains(&tool) {
                return Err(AgentError::Config(format!("handoff tool `{tool}` is defined twice")));
            }
            names.push(tool);
        }
        Ok(())
    }

    fn tool_specs(&self) -> Vec<ToolSpec> {
        let mut specs = self.tools.specs();
        specs.extend(self.handoffs.iter().map(|h| {
            ToolSpec::function(
                h.tool_name(),
                h.description.clone(),
                serde_json::json!({"type": "object", "properties": {}}),
            )
        }));
        specs
    }

    async fn call_model(
        &self,
        extra: &[ChatMessage],
        tools: bool,
        cancel: &CancellationToken,
        sink: &EventSink,
    ) -> Result<ChatResponse, AgentError> {
        let mut messages = Vec::new();
        if let Some(system) = &self.system_message {
            messages.push(ChatMessage::system(system.clone()));
        }
        messages.extend(extra.iter().cloned());
        messages.extend(self.speaker_names.apply(self.context.view(self.backend.as_ref()).await?));
        let mut req = self.defaults.clone();
        req.messages = messages;
        let specs = if tools { self.tool_specs() } else { Vec::new() };
        if specs.is_empty() {
            req.tools.clear();
            req.tool_choice = None;
            if let Some((name, schema)) = &self.output {
                req.response_format =
                    Some(ResponseFormat::json_schema(name.clone(), schema.clone()));
            }
        } else {
            req.tools = specs;
            req.tool_choice.get_or_insert(ToolChoice::Auto);
        }
        let journal = sink.journal();
        if let Some(answer) = journal.and_then(|j| j.replayed_answer(&self.name)) {
            return Ok(answer);
        }
        let span = telemetry::chat_span(self.backend.info(), &req);
        let backend = Arc::clone(&self.backend);
        let source = self.name.clone();
        let stream = self.stream;
        let answer = cancellable(cancel, async move {
            if !stream {
                return Ok(backend.complete(req).await?);
            }
            let mut chunks = backend.stream(req).await?;
            let mut acc = StreamAccumulator::new();
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk?;
                if let Some(text) = chunk.content.as_deref().filter(|t| !t.is_empty()) {
                    sink.emit(AgentEvent::TokenChunk {
                        source: source.clone(),
                        text: text.to_owned(),
                    });
                }
                acc.push(&chunk);
            }
            Ok(acc.finish()?)
        })
        .instrument(span.clone())
        .await;
        match &answer {
            Ok(a) => telemetry::record_response(&span, a),
            Err(e) => telemetry::record_error(&span, e),
        }
        let answer = answer?;
        if let Some(j) = journal {
            j.model_answer(&self.name, &answer)?;
        }
        Ok(answer)
    }

    /// Gives every call a unique, non-empty id (small models leave them empty or repeat them).
    fn fix_ids(&mut self, calls: &[ToolCall]) -> Vec<ToolCall> {
        let mut seen = std::collections::HashSet::new();
        calls
            .iter()
            .map(|c| {
                let mut c = c.clone();
                if c.id.is_empty() || !seen.insert(c.id.clone()) {
                    self.call_counter += 1;
                    c.id = format!("call_{}_{}", self.name, self.call_counter);
                    seen.insert(c.id.clone());
                }
                c
            })
            .collect()
    }

    fn final_message(&mut self, text: String, usage: Usage) -> Result<AgentMessage, AgentError> {
        let kind = match &self.output {
            None => MessageKind::Text,
            Some((_, schema)) => {
                let value = parse_json_answer(&text).map_err(|message| {
                    AgentError::StructuredOutput { message, raw: text.clone() }
                })?;
                if let Ok(validator) = check_schema(schema) {
                    let errors: Vec<String> =
                        validator.iter_errors(&value).map(|e| e.to_string()).collect();
                    if !errors.is_empty() {
                        return Err(AgentError::StructuredOutput {
                            message: errors.join("; "),
                            raw: text,
                        });
                    }
                }
                MessageKind::Structured { value }
            }
        };
        self.context.push(ChatMessage::assistant(text.clone()));
        Ok(AgentMessage::new(self.name.clone(), text, kind).with_usage(usage))
    }

    async fn respond(
        &mut self,
        messages: &[AgentMessage],
        cancel: &CancellationToken,
        sink: &EventSink,
    ) -> Result<Response, AgentError> {
        self.check_config()?;
        for m in messages {
            self.context.push(m.to_chat_message());
        }
        let mut inner = Vec::new();
        let emit = |inner: &mut Vec<AgentEvent>, ev: AgentEvent| {
            sink.emit(ev.clone());
            inner.push(ev);
        };
        let mut extra = Vec::new();
        for memory in &self.memory {
            let found = memory.query(self.context.all()).await?;
            if !found.is_empty() {
                extra.push(memory_system_message(&found));
                let contents = found.into_iter().map(|c| c.content).collect();
                emit(&mut inner, AgentEvent::MemoryQuery { source: self.name.clone(), contents });
            }
        }
        let mut usage = Usage::default();
        let mut last: Vec<(ToolCall, ToolResult)> = Vec::new();
        for _ in 0..self.max_tool_iterations {
            let resp = self.call_model(&extra, true, cancel, sink).await?;
            usage += resp.usage;
            let text = resp.text().unwrap_or_default().to_owned();
            if resp.tool_calls().is_empty() {
                let message = self.final_message(text, usage)?;
                return Ok(Response { message, inner_events: inner });
            }
            let calls = self.fix_ids(resp.tool_calls());
            self.context.push(ChatMessage::Assistant {
                content: (!text.is_empty()).then_some(text),
                tool_calls: calls.clone(),
                name: None,
            });
            emit(
                &mut inner,
                AgentEvent::ToolCallRequest { source: self.name.clone(), calls: calls.clone() },
            );
            let handoff = calls.iter().find_map(|c| {
                self.handoffs
                    .iter()
                    .find(|h| h.tool_name() == c.function.name)
                    .map(|h| (c.id.clone(), h.clone()))
            });
            let (tools, handoffs, agent) = (&self.tools, &self.handoffs, self.name.as_str());
            let results = futures::future::join_all(calls.iter().map(|c| async move {
                match handoffs.iter().find(|h| h.tool_name() == c.function.name) {
                    Some(h) => Ok(ToolResult {
                        call_id: c.id.clone(),
                        name: c.function.name.clone(),
                        content: h.message.clone(),
                        is_error: false,
                    }),
                    None => run_tool(tools, agent, c, cancel, sink).await,
                }
            }))
            .await;
            if cancel.is_cancelled() {
                return Err(AgentError::Cancelled);
            }
            let results = results.into_iter().collect::<Result<Vec<_>, _>>()?;
            for r in &results {
                self.context.push(ChatMessage::tool(r.call_id.clone(), r.content.clone()));
            }
            emit(
                &mut inner,
                AgentEvent::ToolCallResult { source: self.name.clone(), results: results.clone() },
            );
            if let Some((_, h)) = handoff {
                emit(
                    &mut inner,
                    AgentEvent::Handoff { source: self.name.clone(), target: h.target.clone() },
                );
                let message = AgentMessage::new(
                    self.name.clone(),
                    h.message.clone(),
                    MessageKind::Handoff { target: h.target.clone() },
                )
                .with_usage(usage);
                return Ok(Response { message, inner_events: inner });
            }
            last = calls.into_iter().zip(results).collect();
        }
        let reflect = self.reflect_on_tool_use.unwrap_or(self.output.is_some());
        let message = if reflect {
            let resp = self.call_model(&extra, false, cancel, sink).await?;
            usage += resp.usage;
            let text = resp.text().unwrap_or_default().to_owned();
            self.final_message(text, usage)?
        } else {
            let summary: Vec<String> = last
                .iter()
                .map(|(call, result)| {
                    self.tool_call_summary_format
                        .replace("{tool_name}", &call.function.name)
                        .replace("{arguments}", &call.function.arguments)
                        .replace("{result}", &result.content)
                })
                .collect();
            AgentMessage::new(self.name.clone(), summary.join("\n"), MessageKind::ToolCallSummary)
                .with_usage(usage)
        };
        Ok(Response { message, inner_events: inner })
    }
}

/// Runs one tool call, exactly once across resumes when the run is journaled: a journaled
/// result is returned without running the tool; a call started before a stop without a result
/// runs again only when the tool is idempotent, else answers [`INTERRUPTED`]. A call cut short
/// by cancellation gets no journaled result (resume treats it as interrupted).
async fn run_tool(
    tools: &ToolSet,
    agent: &str,
    call: &ToolCall,
    cancel: &CancellationToken,
    sink: &EventSink,
) -> Result<ToolResult, AgentError> {
    let Some(journal) = sink.journal() else {
        return Ok(tools.execute_with(call, cancel, sink).await);
    };
    match journal.tool_replay(&call.id) {
        ToolReplay::Done(result) => return Ok(result),
        ToolReplay::Interrupted if !tools.is_idempotent(&call.function.name) => {
            let result = ToolResult {
                call_id: call.id.clone(),
                name: call.function.name.clone(),
                content: INTERRUPTED.to_owned(),
                is_error: true,
            };
            journal.tool_finished(agent, &result)?;
            return Ok(result);
        }
        ToolReplay::Interrupted => {}
        ToolReplay::Fresh => journal.tool_started(agent, call)?,
    }
    let result = tools.execute_with(call, cancel, sink).await;
    if !cancel.is_cancelled() {
        journal.tool_finished(agent, &result)?;
    }
    Ok(result)
}

/// Parses a JSON answer, tolerating a ```json fence around it.
fn parse_json_answer(text: &str) -> Result<Value, String> {
    let trimmed = text.trim();
    let body = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|rest| rest.trim_end().strip_suffix("```"))
        .unwrap_or(trimmed);
    serde_json::from_str(body.trim()).map_err(|e| e.to_string())
}

#[async_trait]
impl ChatAgent for AssistantAgent {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn handoff_targets(&self) -> Vec<String> {
        self.handoffs.iter().map(|h| h.target.clone()).collect()
    }

    async fn on_messages_with(
        &mut self,
        messages: &[AgentMessage],
        cancel: CancellationToken,
        sink: &EventSink,
    ) -> Result<Response, AgentError> {
        let saved = (self.context.clone(), self.call_counter);
        let res = self.respond(messages, &cancel, sink).await;
        if res.is_err() {
            (self.context, self.call_counter) = saved;
        }
        res
    }

    async fn reset(&mut self) {
        self.context.clear();
        self.call_counter = 0;
    }

    async fn save_state(&self) -> Result<Value, AgentError> {
        to_state(&AssistantState {
            kind: "AssistantAgentState".into(),
            llm_context: self.context.all().to_vec(),
            call_counter: self.call_counter,
        })
    }

    async fn load_state(&mut self, state: Value) -> Result<(), AgentError> {
        let state: AssistantState = parse_state(&self.name, state)?;
        self.context.set_messages(state.llm_context);
        self.call_counter = state.call_counter;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_answers_parse_with_or_without_fence() {
        assert_eq!(
            parse_json_answer("```json\n{\"a\":1}\n```").unwrap(),
            serde_json::json!({"a":1})
        );
        assert_eq!(parse_json_answer(" {\"a\":1} ").unwrap(), serde_json::json!({"a":1}));
        assert!(parse_json_answer("nope").is_err());
    }

    #[test]
    fn handoff_tool_names_are_clean() {
        assert_eq!(Handoff::new("flight agent").tool_name(), "transfer_to_flight_agent");
    }
}
