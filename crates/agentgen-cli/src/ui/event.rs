//! What the live view's page is sent: the run's own events with their time, who the agents
//! are, per-turn timing, and the run's state.

use agentgen_core::{AgentEvent, Timings, Usage};
use serde::Serialize;

/// One thing the page is told, as a JSON object with a `kind`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UiEvent {
    /// What is shown: a live run or a journaled session, and its agents.
    Info(RunInfo),
    /// The run's state changed.
    Status {
        /// The new state.
        state: RunState,
        /// Why (the stop reason, the error), when there is one.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Something happened in the run, `t_ms` milliseconds after it started.
    Event {
        /// Milliseconds since the run started.
        t_ms: u64,
        /// The event.
        event: AgentEvent,
    },
    /// A turn ended: its timing and tokens.
    Turn(TurnStats),
    /// An event too large to send was left out.
    Omitted {
        /// Milliseconds since the run started.
        t_ms: u64,
        /// Its size in bytes as JSON.
        bytes: usize,
    },
}

/// What the page shows: a run in progress or a past session.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunInfo {
    /// `run` (live) or `session` (journaled, replayed).
    pub mode: &'static str,
    /// The heading: the task, or the session's name.
    pub title: String,
    /// The agents, with the backend and model each runs on.
    pub agents: Vec<AgentInfo>,
    /// Whether the page's stop button can cancel the run.
    pub stoppable: bool,
}

/// One agent of the team.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AgentInfo {
    /// Its name.
    pub name: String,
    /// `assistant`, `code_executor` or `selector` (the model that picks speakers).
    pub kind: &'static str,
    /// The backend (`local`, `groq`, `openai`), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// The model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Where the model runs, in words (for local models: in this process).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
}

impl AgentInfo {
    /// An assistant on a backend, as the backend describes itself.
    pub fn assistant(name: &str, info: &agentgen_core::BackendInfo) -> Self {
        let locality = match &info.locality {
            agentgen_core::Locality::Local => "local: runs in this process".to_owned(),
            agentgen_core::Locality::Remote { endpoint } => format!("remote: {endpoint}"),
        };
        Self {
            name: name.to_owned(),
            kind: "assistant",
            backend: Some(info.name.clone()),
            model: Some(info.model.clone()),
            locality: Some(locality),
        }
    }
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Loading models, starting tool servers.
    Starting,
    /// Agents are taking turns.
    Running,
    /// The run ended on its own (a termination condition).
    Finished,
    /// The run was cancelled (the stop button, Ctrl-C).
    Cancelled,
    /// The run failed.
    Failed,
    /// A journaled run that stopped mid-run (killed) and can be resumed.
    Incomplete,
}

/// One model call of an agent, as measured around the backend.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelCall {
    /// The agent it answered.
    pub agent: String,
    /// When the request was made (ms since the run started).
    pub start_ms: u64,
    /// When the answer was complete.
    pub end_ms: u64,
    /// When the first text or tool-call piece arrived (streamed calls only).
    pub first_token_ms: Option<u64>,
    /// Tokens, as the backend counted them.
    pub usage: Option<Usage>,
    /// Timings, as the backend measured them.
    pub timings: Option<Timings>,
}

/// One turn of one agent: its model calls summed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TurnStats {
    /// The agent.
    pub agent: String,
    /// Which of this agent's turns (1, 2, …).
    pub turn: u32,
    /// When the turn began (ms since the run started).
    pub start_ms: u64,
    /// How long it took, tools included.
    pub duration_ms: u64,
    /// Model calls in the turn.
    pub model_calls: u32,
    /// From the first model request to its first token, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    /// Generated tokens per second of generation, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_s: Option<f64>,
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Prompt tokens served from the prefix cache instead of evaluated.
    pub cached_tokens: u32,
    /// Generated tokens.
    pub completion_tokens: u32,
}
