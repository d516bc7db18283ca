//! The serde types of a team file: one struct per table, every field documented.

use std::collections::BTreeMap;
use std::fmt;

use agentgen_core::model_context::ContextPolicy;
use agentgen_core::SpeakerNames;
use agentgen_mcp::McpServerConfig;
use serde::Deserialize;
use toml::Spanned;

use super::expr::Cond;

/// How the next speaker is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeamKind {
    /// In turn.
    RoundRobin,
    /// The model picks among the agents.
    Selector,
    /// Speakers change by handoff.
    Swarm,
    /// Agents are nodes of a directed graph (`[[edges]]`).
    Graph,
    /// An orchestrator model plans, names each next speaker and instructs it.
    MagenticOne,
}

impl TeamKind {
    /// Every kind, in the order `team new --kind` lists them.
    pub const ALL: [TeamKind; 5] =
        [Self::RoundRobin, Self::Selector, Self::Swarm, Self::Graph, Self::MagenticOne];
}

impl fmt::Display for TeamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RoundRobin => "round_robin",
            Self::Selector => "selector",
            Self::Swarm => "swarm",
            Self::Graph => "graph",
            Self::MagenticOne => "magentic_one",
        })
    }
}

impl std::str::FromStr for TeamKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|k| k.to_string() == s).ok_or_else(|| {
            format!(
                "unknown team type `{s}` (expected one of: {})",
                Self::ALL.map(|k| k.to_string()).join(", ")
            )
        })
    }
}

/// `[team]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamSection {
    /// The team type.
    #[serde(rename = "type")]
    pub kind: TeamKind,
    /// The team's name in traces (default: its type).
    #[serde(default)]
    pub name: Option<String>,
    /// Whether the selector may pick the same agent twice in a row.
    #[serde(default)]
    pub allow_repeated_speaker: bool,
    /// How other agents' names reach each model.
    #[serde(default)]
    pub speaker_names: SpeakerNames,
    /// Selector teams: the prompt that asks for the next speaker (`{roles}`,
    /// `{participants}` and `{history}` are filled in).
    #[serde(default)]
    pub selector_prompt: Option<Spanned<String>>,
    /// Selector teams: after the agent named by the key spoke, the selector chooses only among
    /// these agents.
    #[serde(default)]
    pub candidates: Option<Spanned<BTreeMap<String, Vec<String>>>>,
    /// Graph teams: the node that starts (default: every node without incoming edges).
    #[serde(default)]
    pub entry: Option<Spanned<String>>,
    /// MagenticOne teams: agent turns before the orchestrator gives its final answer.
    #[serde(default)]
    pub max_turns: Option<Spanned<usize>>,
    /// MagenticOne teams: turns without progress before the orchestrator re-plans.
    #[serde(default)]
    pub max_stalls: Option<Spanned<usize>>,
    /// MagenticOne teams: the agent that speaks first after the plan, without asking the
    /// orchestrator.
    #[serde(default)]
    pub first_speaker: Option<Spanned<String>>,
    /// MagenticOne teams: the request for the orchestrator's final answer, instead of the
    /// default (`{task}`, `{team}`, `{names}`, `{facts}` and `{plan}` are filled in).
    #[serde(default)]
    pub final_answer_prompt: Option<Spanned<String>>,
    /// MagenticOne teams: the orchestrator's backend (`local`, `groq`, `openai`; default the
    /// configured one).
    #[serde(default)]
    pub orchestrator_backend: Option<Spanned<String>>,
    /// MagenticOne teams: the orchestrator's model (default the configured one).
    #[serde(default)]
    pub orchestrator_model: Option<Spanned<String>>,
}

/// One `[[edges]]` entry of a graph team.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeSpec {
    /// The agent that spoke.
    pub from: Spanned<String>,
    /// The agent that speaks next.
    pub to: Spanned<String>,
    /// Followed only when the source's message contains this text (always when absent).
    #[serde(default)]
    pub condition: Option<Spanned<String>>,
}

/// One `[[mcp_servers]]` entry: a stdio `command` or a streamable-HTTP `url`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerSpec {
    /// Its name: agents select its tools as `name.*` or `name.tool`.
    pub name: Spanned<String>,
    /// Program and arguments of a stdio server.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// URL of a streamable-HTTP server.
    #[serde(default)]
    pub url: Option<String>,
    /// Seconds one tool call may take (60 by default).
    #[serde(default)]
    pub timeout_s: Option<u64>,
}

impl McpServerSpec {
    /// The connection settings.
    pub fn config(&self) -> McpServerConfig {
        let name = self.name.get_ref().clone();
        let mut config = match (&self.command, &self.url) {
            (Some(command), _) => McpServerConfig::stdio(name, command.clone()),
            (None, url) => McpServerConfig::http(name, url.clone().unwrap_or_default()),
        };
        if let Some(secs) = self.timeout_s {
            config.limits.call_timeout = std::time::Duration::from_secs(secs);
        }
        config
    }
}

/// One `[[command_tools]]` entry: a program run in the sandbox with arguments filled from
/// the model's validated call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandToolSpec {
    /// The tool's name (`[a-zA-Z0-9_-]{1,64}`), as agents list it in `tools`.
    pub name: Spanned<String>,
    /// What it does, for the model.
    pub description: String,
    /// Program and arguments; `{param}` is replaced by the argument `param` (never split,
    /// never seen by a shell).
    pub argv: Spanned<Vec<String>>,
    /// The JSON schema of the arguments: a TOML table or a JSON string.
    pub parameters: Spanned<toml::Value>,
    /// Seconds a call may run before it is killed (30 by default).
    #[serde(default)]
    pub timeout_s: Option<u64>,
    /// Bytes of output kept (64 KiB by default).
    #[serde(default)]
    pub output_cap: Option<usize>,
    /// Whether the program may use the network (it may not by default).
    #[serde(default)]
    pub allow_network: bool,
    /// The parsed schema (set when the file is checked).
    #[serde(skip)]
    pub schema: serde_json::Value,
}

/// How far a journaled record is guaranteed to survive once the run acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DurabilitySpec {
    /// A killed process and a power loss (SQLite `synchronous = FULL`).
    #[default]
    PowerLoss,
    /// A killed process, not a power loss (SQLite `synchronous = NORMAL`): cheaper per record.
    ProcessCrash,
}

/// `[session]`: where `agentgen run --session NAME` journals the run.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSpec {
    /// The store file, relative to the team file's folder; `--store` overrides it.
    #[serde(default)]
    pub store: Option<Spanned<String>>,
    /// How far each record survives.
    #[serde(default)]
    pub durability: DurabilitySpec,
}

/// `tool_choice` of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoiceSpec {
    /// The model decides.
    #[default]
    Auto,
    /// The model must call a tool.
    Required,
    /// The model may not call tools.
    None,
}

/// The table form of `[termination]`: the run stops when any condition holds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerminationTable {
    /// Most messages, the task included.
    #[serde(default)]
    pub max_messages: Option<Spanned<usize>>,
    /// Stop when a message contains this text.
    #[serde(default)]
    pub text_mention: Option<Spanned<String>>,
    /// An expression (`max_messages(8) | text_mention('APPROVE')`), OR-ed with the rest.
    #[serde(default)]
    pub when: Option<Spanned<String>>,
}

/// `termination`: a table (`[termination]`) or an expression string
/// (`termination = "max_messages(8) | text_mention('APPROVE')"`).
#[derive(Debug, Clone)]
pub enum TerminationSpec {
    /// `[termination]`.
    Table(TerminationTable),
    /// `termination = "…"`.
    Expression(String),
}

impl<'de> Deserialize<'de> for TerminationSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = TerminationSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a [termination] table or an expression string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(TerminationSpec::Expression(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                TerminationTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(TerminationSpec::Table)
            }
        }
        d.deserialize_any(V)
    }
}

/// What an agent is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    /// A model with a system message, tools and handoffs.
    #[default]
    Assistant,
    /// Runs the code blocks in the messages it sees, sandboxed (no network, writes only in its
    /// own directory, no keys in its environment); `agentgen run` asks before each block unless
    /// `--yes`.
    CodeExecutor,
    /// The person running the team: each turn reads one line from stdin.
    UserProxy,
    /// A whole team (`team = "other.toml"` or an inline `[agents.team]`) that speaks as one
    /// agent; its model writes the answer from the inner conversation.
    SocietyOfMind,
}

impl fmt::Display for AgentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Assistant => "assistant",
            Self::CodeExecutor => "code_executor",
            Self::UserProxy => "user_proxy",
            Self::SocietyOfMind => "society_of_mind",
        })
    }
}

/// A graph node's activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Runs once every incoming edge fired.
    #[default]
    All,
    /// Runs as soon as any incoming edge fires (loops back into it need this).
    Any,
}

/// One `[[agents]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// Unique name; the speaker label in output.
    pub name: Spanned<String>,
    /// What the agent does, for selector teams.
    #[serde(default)]
    pub description: Option<String>,
    /// What it is: a model-backed assistant (the default), a code executor, a user proxy or
    /// a nested team.
    #[serde(default)]
    pub kind: AgentKind,
    /// Its instructions (assistants need them).
    #[serde(default)]
    pub system_message: Option<String>,
    /// Code executors: whether the code may use the network (it may not by default).
    #[serde(default)]
    pub allow_network: bool,
    /// Code executors: seconds a block may run before it is killed (60 by default).
    #[serde(default)]
    pub timeout_s: Option<u64>,
    /// Code executors: run only the code blocks of these agents' messages (`"user"` is the
    /// task); every message's by default.
    #[serde(default)]
    pub sources: Vec<Spanned<String>>,
    /// Code executors: also run the examples in a Python block's docstrings (doctest).
    #[serde(default)]
    pub doctests: bool,
    /// Tools it may call: built-in names, `[[command_tools]]` names, `server.*` or
    /// `server.tool` for MCP servers.
    #[serde(default)]
    pub tools: Vec<Spanned<String>>,
    /// Whether the model must, may or may not call its tools.
    #[serde(default)]
    pub tool_choice: ToolChoiceSpec,
    /// Its own backend, overriding the configured one.
    #[serde(default)]
    pub backend: Option<Spanned<String>>,
    /// Its own model.
    #[serde(default)]
    pub model: Option<String>,
    /// Agents it may hand the conversation to (swarm teams); `user` ends the run.
    #[serde(default)]
    pub handoffs: Vec<Spanned<String>>,
    /// Whether the model answers once more from its tool results (default: only with
    /// `output_schema`); without it the turn ends with the tool results.
    #[serde(default)]
    pub reflect_on_tool_use: Option<bool>,
    /// How many model calls one turn's tool loop may make (default 1).
    #[serde(default)]
    pub max_tool_iterations: Option<Spanned<usize>>,
    /// A JSON schema (TOML table or JSON string) the final answer must match.
    #[serde(default)]
    pub output_schema: Option<Spanned<toml::Value>>,
    /// Which part of its history the model sees: `{ kind = "buffered", n = 8 }`,
    /// `{ kind = "head_and_tail", head = 2, tail = 6 }`, `{ kind = "token_limited",
    /// limit = 2000 }` or `{ kind = "unbounded" }` (the default).
    #[serde(default)]
    pub model_context: Option<Spanned<ContextPolicy>>,
    /// Facts given to the model with every call (a list memory).
    #[serde(default)]
    pub memory: Vec<String>,
    /// Society-of-mind agents: the team it runs, a file relative to this one
    /// (`team = "inner.toml"`) or an inline `[agents.team]` table.
    #[serde(default)]
    pub team: Option<Spanned<TeamRef>>,
    /// Whether it takes turns in the team (default `true`); `member = false` makes it only
    /// callable as a tool (`tools = ["agent:NAME"]`).
    #[serde(default = "yes")]
    pub member: bool,
    /// Backends tried in order when the agent's own is unavailable, rate-limited or timed out:
    /// `[{ backend = "groq", model = "..." }, { backend = "local" }]`.
    #[serde(default)]
    pub fallback: Vec<FallbackSpec>,
    /// Society-of-mind agents: the instruction before the inner transcript.
    #[serde(default)]
    pub instruction: Option<String>,
    /// Society-of-mind agents: the prompt after the inner transcript.
    #[serde(default)]
    pub response_prompt: Option<String>,
    /// Graph teams: whether it waits for all incoming edges or any one.
    #[serde(default)]
    pub activation: Activation,
    /// The parsed output schema (set when the file is checked).
    #[serde(skip)]
    pub output: Option<serde_json::Value>,
    /// The nested team of a society-of-mind agent (loaded when the file is checked).
    #[serde(skip)]
    pub inner: Option<Box<super::TeamSpec>>,
}

impl AgentSpec {
    /// The fields set beyond name, description and kind, for the per-kind check.
    pub(super) fn set_fields(&self) -> Vec<&'static str> {
        let mut set = Vec::new();
        let mut add = |on: bool, name| {
            if on {
                set.push(name);
            }
        };
        add(self.system_message.is_some(), "system_message");
        add(self.allow_network, "allow_network");
        add(self.timeout_s.is_some(), "timeout_s");
        add(!self.sources.is_empty(), "sources");
        add(self.doctests, "doctests");
        add(!self.tools.is_empty(), "tools");
        add(self.tool_choice != ToolChoiceSpec::Auto, "tool_choice");
        add(self.backend.is_some(), "backend");
        add(self.model.is_some(), "model");
        add(!self.handoffs.is_empty(), "handoffs");
        add(self.reflect_on_tool_use.is_some(), "reflect_on_tool_use");
        add(self.max_tool_iterations.is_some(), "max_tool_iterations");
        add(self.output_schema.is_some(), "output_schema");
        add(self.model_context.is_some(), "model_context");
        add(!self.memory.is_empty(), "memory");
        add(self.team.is_some(), "team");
        add(!self.fallback.is_empty(), "fallback");
        add(self.instruction.is_some(), "instruction");
        add(self.response_prompt.is_some(), "response_prompt");
        set
    }

    /// Whether it calls a model (and so needs a backend).
    pub fn has_model(&self) -> bool {
        matches!(self.kind, AgentKind::Assistant | AgentKind::SocietyOfMind)
    }
}

/// The prefix of a `tools` entry naming another agent of the team.
pub const AGENT_TOOL_PREFIX: &str = "agent:";

fn yes() -> bool {
    true
}

/// One entry of an agent's `fallback` list.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FallbackSpec {
    /// `local`, `groq` or `openai`.
    pub backend: Spanned<String>,
    /// Its model (the backend's default when absent).
    #[serde(default)]
    pub model: Option<String>,
    /// `openai` backends: the endpoint (the configured `base_url` when absent).
    #[serde(default)]
    pub base_url: Option<Spanned<String>>,
}

/// A society-of-mind agent's team: a file or an inline table.
#[derive(Debug, Clone)]
pub enum TeamRef {
    /// `team = "inner.toml"`, relative to the file that names it.
    File(String),
    /// `[agents.team]` with its own `[agents.team.team]`, `[[agents.team.agents]]`, ...
    Inline(Box<TeamSpec>),
}

impl TeamRef {
    /// The file, or `inline` for an inline team.
    pub fn label(&self) -> &str {
        match self {
            Self::File(f) => f,
            Self::Inline(_) => "inline",
        }
    }
}

impl<'de> Deserialize<'de> for TeamRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = TeamRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a team file name or an inline team table")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(TeamRef::File(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                TeamSpec::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|t| TeamRef::Inline(Box::new(t)))
            }
        }
        d.deserialize_any(V)
    }
}

/// The fields each kind may set (besides name, description, kind and activation).
pub(super) fn allowed_fields(kind: AgentKind) -> &'static [&'static str] {
    match kind {
        AgentKind::Assistant => &[
            "system_message",
            "tools",
            "tool_choice",
            "backend",
            "model",
            "handoffs",
            "reflect_on_tool_use",
            "max_tool_iterations",
            "output_schema",
            "model_context",
            "memory",
            "fallback",
        ],
        AgentKind::CodeExecutor => &["allow_network", "timeout_s", "sources", "doctests"],
        AgentKind::UserProxy => &[],
        AgentKind::SocietyOfMind => {
            &["team", "backend", "model", "instruction", "response_prompt", "fallback"]
        }
    }
}

/// A whole team file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamSpec {
    /// `[team]`.
    pub team: TeamSection,
    /// `[termination]` or `termination = "…"`.
    #[serde(default)]
    pub termination: Option<Spanned<TerminationSpec>>,
    /// `[session]`.
    #[serde(default)]
    pub session: SessionSpec,
    /// `[[mcp_servers]]`.
    #[serde(default)]
    pub mcp_servers: Vec<McpServerSpec>,
    /// `[[command_tools]]`.
    #[serde(default)]
    pub command_tools: Vec<CommandToolSpec>,
    /// `[[agents]]`.
    pub agents: Vec<AgentSpec>,
    /// `[[edges]]` (graph teams).
    #[serde(default)]
    pub edges: Vec<EdgeSpec>,
    /// The termination condition, parsed (set when the file is checked).
    #[serde(skip)]
    pub stop: Option<Cond>,
}
