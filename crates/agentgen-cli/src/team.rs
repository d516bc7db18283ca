//! Team files: the TOML schema that describes agents, the team type and termination, parsed
//! with errors that name the file, line, column and field.
//!
//! ```toml
//! [team]
//! type = "round_robin"          # round_robin | selector | swarm
//! name = "writers"              # optional: the team's name in traces (default: its type)
//! speaker_names = "prefix"      # prefix ("name: text", default) | name_field | off
//!
//! [termination]
//! max_messages = 6              # the task counts as one
//! text_mention = "APPROVE"
//!
//! [session]                     # optional: where `run --session NAME` journals the run
//! store = "runs.sqlite"         # relative to this file; --store / AGENTGEN_SESSIONS override it
//! durability = "power_loss"     # power_loss (the default) | process_crash
//!
//! [[mcp_servers]]              # an MCP server whose tools agents may use
//! name = "geo"
//! command = ["python3", "geo_server.py"]  # stdio; or: url = "http://127.0.0.1:9000/mcp"
//! timeout_s = 60                # optional: seconds one tool call may take
//!
//! [[agents]]
//! name = "writer"
//! system_message = "You write."
//! tools = ["word_count", "geo.*"]  # built-in tools; `server.*` or `server.tool` for MCP
//! tool_choice = "auto"          # auto | required | none
//! backend = "groq"              # optional: this agent's own backend
//! model = "openai/gpt-oss-20b"   # optional
//! handoffs = ["reviewer"]       # swarm teams: agents it may hand over to
//!
//! [[agents]]
//! name = "terminal"
//! kind = "code_executor"        # runs the python/bash blocks it sees, sandboxed
//! allow_network = false         # the default
//! timeout_s = 60                # the default
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use agentgen_core::SpeakerNames;
use agentgen_mcp::McpServerConfig;
use serde::Deserialize;
use toml::Spanned;

/// The built-in team file: a writer and a reviewer taking turns until the reviewer approves.
pub const DEFAULT_TEAM: &str = include_str!("../teams/default.toml");

/// Names of the tools a team file may give its agents.
pub const BUILTIN_TOOLS: &[&str] = &["add", "multiply", "current_time", "word_count"];

/// A malformed team file: where, which field, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {}{message}", .path.display(), field_prefix(.field))]
pub struct TeamFileError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The field, dotted (`agents[1].tools`), when known.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

fn field_prefix(field: &Option<String>) -> String {
    field.as_ref().map(|f| format!("field `{f}`: ")).unwrap_or_default()
}

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
}

impl fmt::Display for TeamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RoundRobin => "round_robin",
            Self::Selector => "selector",
            Self::Swarm => "swarm",
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

/// `[termination]`: the run stops when any condition holds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerminationSpec {
    /// Most messages, the task included.
    #[serde(default)]
    pub max_messages: Option<Spanned<usize>>,
    /// Stop when a message contains this text.
    #[serde(default)]
    pub text_mention: Option<Spanned<String>>,
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
    /// What it is: a model-backed assistant (the default) or a code executor.
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
    /// Tools it may call: built-in names, `server.*` or `server.tool` for MCP servers.
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
    /// Agents it may hand the conversation to (swarm teams).
    #[serde(default)]
    pub handoffs: Vec<Spanned<String>>,
}

/// A whole team file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamSpec {
    /// `[team]`.
    pub team: TeamSection,
    /// `[termination]`.
    #[serde(default)]
    pub termination: TerminationSpec,
    /// `[session]`.
    #[serde(default)]
    pub session: SessionSpec,
    /// `[[mcp_servers]]`.
    #[serde(default)]
    pub mcp_servers: Vec<McpServerSpec>,
    /// `[[agents]]`.
    pub agents: Vec<AgentSpec>,
}

impl TeamSpec {
    /// Reads and checks a team file.
    pub fn from_file(path: &Path) -> Result<Self, TeamFileError> {
        let text = std::fs::read_to_string(path).map_err(|e| TeamFileError {
            path: path.to_owned(),
            line: 0,
            column: 0,
            field: None,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, path)
    }

    /// The built-in writer + reviewer team.
    pub fn builtin() -> Self {
        Self::parse(DEFAULT_TEAM, Path::new("<built-in default team>"))
            .expect("the built-in team file is valid")
    }

    /// Parses and checks team-file text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, TeamFileError> {
        let at = |span: std::ops::Range<usize>, field: Option<String>, message: String| {
            let (line, column) = line_col(text, span.start);
            TeamFileError { path: path.to_owned(), line, column, field, message }
        };
        let spec: TeamSpec = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let field = field_from_message(e.message()).or_else(|| field_at(text, span.start));
            at(span, field, e.message().trim().to_owned())
        })?;

        if spec.agents.is_empty() {
            return Err(at(0..0, Some("agents".into()), "a team needs at least one agent".into()));
        }
        for (i, agent) in spec.agents.iter().enumerate() {
            let name = agent.name.get_ref();
            if name.trim().is_empty() {
                return Err(at(
                    agent.name.span(),
                    Some(format!("agents[{i}].name")),
                    "must not be empty".into(),
                ));
            }
            if spec.agents[..i].iter().any(|a| a.name.get_ref() == name) {
                return Err(at(
                    agent.name.span(),
                    Some(format!("agents[{i}].name")),
                    format!("two agents are named `{name}`"),
                ));
            }
            match agent.kind {
                AgentKind::Assistant if agent.system_message.is_none() => {
                    return Err(at(
                        agent.name.span(),
                        Some(format!("agents[{i}].system_message")),
                        "an assistant needs a system_message".into(),
                    ));
                }
                AgentKind::CodeExecutor
                    if !agent.tools.is_empty()
                        || !agent.handoffs.is_empty()
                        || agent.backend.is_some()
                        || agent.model.is_some()
                        || agent.system_message.is_some() =>
                {
                    return Err(at(
                        agent.name.span(),
                        Some(format!("agents[{i}].kind")),
                        "a code_executor has no model: no system_message, tools, handoffs, \
                         backend or model"
                            .into(),
                    ));
                }
                AgentKind::Assistant if agent.allow_network || agent.timeout_s.is_some() => {
                    return Err(at(
                        agent.name.span(),
                        Some(format!("agents[{i}].kind")),
                        "allow_network and timeout_s are for kind = \"code_executor\"".into(),
                    ));
                }
                _ => {}
            }
            for tool in &agent.tools {
                if let Some((server, _)) = tool.get_ref().split_once('.') {
                    if !spec.mcp_servers.iter().any(|m| m.name.get_ref() == server) {
                        return Err(at(
                            tool.span(),
                            Some(format!("agents[{i}].tools")),
                            format!("no [[mcp_servers]] entry is named `{server}`"),
                        ));
                    }
                } else if !BUILTIN_TOOLS.contains(&tool.get_ref().as_str()) {
                    return Err(at(
                        tool.span(),
                        Some(format!("agents[{i}].tools")),
                        format!(
                            "unknown tool `{}` (built-in tools: {})",
                            tool.get_ref(),
                            BUILTIN_TOOLS.join(", ")
                        ),
                    ));
                }
            }
            for target in &agent.handoffs {
                if !spec.agents.iter().any(|a| a.name.get_ref() == target.get_ref()) {
                    return Err(at(
                        target.span(),
                        Some(format!("agents[{i}].handoffs")),
                        format!("no agent is named `{}`", target.get_ref()),
                    ));
                }
            }
            if let Some(backend) = &agent.backend {
                if backend.get_ref().parse::<crate::config::BackendKind>().is_err() {
                    return Err(at(
                        backend.span(),
                        Some(format!("agents[{i}].backend")),
                        format!(
                            "unknown backend `{}` (expected one of: local, groq, openai)",
                            backend.get_ref()
                        ),
                    ));
                }
            }
        }
        for (i, server) in spec.mcp_servers.iter().enumerate() {
            let field = Some(format!("mcp_servers[{i}]"));
            if server.command.is_some() == server.url.is_some() {
                return Err(at(server.name.span(), field, "needs one of command or url".into()));
            }
            if let Err(e) = server.config().validate() {
                return Err(at(server.name.span(), field, e.to_string()));
            }
            if spec.mcp_servers[..i].iter().any(|m| m.name.get_ref() == server.name.get_ref()) {
                return Err(at(
                    server.name.span(),
                    field,
                    "two MCP servers share this name".into(),
                ));
            }
        }
        if let Some(store) = &spec.session.store {
            if store.get_ref().trim().is_empty() {
                return Err(at(
                    store.span(),
                    Some("session.store".into()),
                    "must name a file (or leave `store` out for the default store)".into(),
                ));
            }
        }
        if let Some(max) = &spec.termination.max_messages {
            if *max.get_ref() == 0 {
                return Err(at(
                    max.span(),
                    Some("termination.max_messages".into()),
                    "must be at least 1".into(),
                ));
            }
        }
        if let Some(text_mention) = &spec.termination.text_mention {
            if text_mention.get_ref().is_empty() {
                return Err(at(
                    text_mention.span(),
                    Some("termination.text_mention".into()),
                    "must not be empty".into(),
                ));
            }
        }
        Ok(spec)
    }

    /// The store `[session]` names, relative to the folder of the team file at `path`.
    pub fn session_store(&self, path: &Path) -> Option<PathBuf> {
        let store = Path::new(self.session.store.as_ref()?.get_ref());
        let dir = path.parent().unwrap_or(Path::new(""));
        Some(dir.join(store))
    }

    /// The agents' names, in order.
    #[cfg(test)]
    pub fn agent_names(&self) -> Vec<String> {
        self.agents.iter().map(|a| a.name.get_ref().clone()).collect()
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, column)
}

/// `missing field `x`` / `unknown field `x`` / `unknown variant `x`` name the field themselves.
fn field_from_message(message: &str) -> Option<String> {
    for marker in ["missing field `", "unknown field `"] {
        if let Some(rest) = message.split(marker).nth(1) {
            return rest.split('`').next().map(str::to_owned);
        }
    }
    None
}

/// The dotted key of the `key = value` line the offset falls in, with its table header.
fn field_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = &text[line_start..line_end];
    let key = line.split_once('=').map(|(k, _)| k.trim().trim_matches('"').to_owned())?;
    if key.is_empty() || key.starts_with('[') {
        return None;
    }
    let table = text[..line_start].lines().rev().find_map(|l| {
        let l = l.trim();
        l.starts_with('[').then(|| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned())
    });
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TeamSpec, TeamFileError> {
        TeamSpec::parse(text, Path::new("team.toml"))
    }

    #[test]
    fn the_builtin_team_is_a_writer_and_a_reviewer() {
        let spec = TeamSpec::builtin();
        assert_eq!(spec.team.kind, TeamKind::RoundRobin);
        assert_eq!(spec.agent_names(), ["writer", "reviewer"]);
        assert_eq!(
            spec.termination.text_mention.as_ref().map(|t| t.get_ref().as_str()),
            Some("APPROVE")
        );
    }

    #[test]
    fn a_wrong_type_names_line_and_field() {
        let err = parse(
            "[team]\ntype = \"round_robin\"\n\n[[agents]]\nname = \"a\"\nsystem_message = 42\n",
        )
        .unwrap_err();
        assert_eq!((err.line, err.column), (6, 18), "{err}");
        assert_eq!(err.field.as_deref(), Some("agents.system_message"), "{err}");
        assert!(
            err.to_string().starts_with("team.toml:6:18: field `agents.system_message`"),
            "{err}"
        );
    }

    #[test]
    fn a_misspelt_field_is_named() {
        let err = parse(
            "[team]\ntype = \"round_robin\"\n[[agents]]\nnmae = \"a\"\nsystem_message = \"x\"\n",
        )
        .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("nmae"), "{err}");
        assert_eq!(err.line, 4, "{err}");
    }

    #[test]
    fn an_unknown_team_type_is_reported_at_its_line() {
        let err =
            parse("[team]\ntype = \"mesh\"\n[[agents]]\nname = \"a\"\nsystem_message = \"x\"\n")
                .unwrap_err();
        assert_eq!(err.line, 2, "{err}");
        assert_eq!(err.field.as_deref(), Some("team.type"), "{err}");
        assert!(err.message.contains("mesh"), "{err}");
    }

    #[test]
    fn unknown_tools_and_duplicate_names_are_caught() {
        let err = parse(
            "[team]\ntype = \"selector\"\n[[agents]]\nname = \"a\"\nsystem_message = \"x\"\ntools = [\"add\", \"fly\"]\n",
        )
        .unwrap_err();
        assert_eq!(err.line, 6);
        assert_eq!(err.field.as_deref(), Some("agents[0].tools"));
        assert!(err.message.contains("fly"));

        let err = parse(
            "[team]\ntype = \"swarm\"\n[[agents]]\nname = \"a\"\nsystem_message = \"x\"\n[[agents]]\nname = \"a\"\nsystem_message = \"y\"\n",
        )
        .unwrap_err();
        assert_eq!((err.line, err.field.as_deref()), (7, Some("agents[1].name")));
    }

    #[test]
    fn the_example_team_files_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("teams");
        let selector = TeamSpec::from_file(&dir.join("selector.toml")).unwrap();
        assert_eq!(selector.team.kind, TeamKind::Selector);
        let swarm = TeamSpec::from_file(&dir.join("swarm.toml")).unwrap();
        assert_eq!(swarm.team.kind, TeamKind::Swarm);
        assert_eq!(swarm.agents[0].handoffs[0].get_ref(), "counter");
    }

    #[test]
    fn mcp_servers_and_their_tool_selectors_are_checked() {
        let head = "[team]\ntype = \"round_robin\"\nspeaker_names = \"off\"\n";
        let spec = parse(&format!(
            "{head}[[mcp_servers]]\nname = \"geo\"\ncommand = [\"python3\", \"geo.py\"]\n\
             [[agents]]\nname = \"a\"\nsystem_message = \"x\"\ntools = [\"geo.*\", \"add\"]\n\
             tool_choice = \"required\"\n"
        ))
        .unwrap();
        assert_eq!(spec.team.speaker_names, SpeakerNames::Off);
        assert_eq!(spec.agents[0].tool_choice, ToolChoiceSpec::Required);
        assert_eq!(spec.mcp_servers[0].config().name, "geo");
        let err = parse(&format!(
            "{head}[[agents]]\nname = \"a\"\nsystem_message = \"x\"\ntools = [\"maps.*\"]\n"
        ))
        .unwrap_err();
        assert_eq!((err.line, err.field.as_deref()), (7, Some("agents[0].tools")), "{err}");
        let err = parse(&format!(
            "{head}[[mcp_servers]]\nname = \"geo\"\ncommand = [\"x\"]\nurl = \"http://h/mcp\"\n\
             [[agents]]\nname = \"a\"\nsystem_message = \"x\"\n"
        ))
        .unwrap_err();
        assert!(err.message.contains("one of command or url"), "{err}");
        let err = parse(&format!(
            "{head}[[mcp_servers]]\nname = \"g.o\"\nurl = \"http://h/mcp\"\n\
             [[agents]]\nname = \"a\"\nsystem_message = \"x\"\n"
        ))
        .unwrap_err();
        assert_eq!((err.line, err.field.as_deref()), (5, Some("mcp_servers[0]")), "{err}");
    }

    #[test]
    fn a_session_section_names_the_store_and_its_durability() {
        let agents = "[[agents]]\nname = \"a\"\nsystem_message = \"x\"\n";
        let spec = TeamSpec::parse(
            &format!(
                "[team]\ntype = \"round_robin\"\n[session]\nstore = \"runs/s.sqlite\"\n\
                 durability = \"process_crash\"\n{agents}"
            ),
            Path::new("teams/t.toml"),
        )
        .unwrap();
        assert_eq!(spec.session.durability, DurabilitySpec::ProcessCrash);
        let store = spec.session_store(Path::new("teams/t.toml")).unwrap();
        assert_eq!(store, Path::new("teams/runs/s.sqlite"));
        let plain = parse(&format!("[team]\ntype = \"round_robin\"\n{agents}")).unwrap();
        assert_eq!(plain.session.durability, DurabilitySpec::PowerLoss);
        assert_eq!(plain.session_store(Path::new("t.toml")), None);

        let err = parse(&format!(
            "[team]\ntype = \"round_robin\"\n[session]\ndurability = \"sometimes\"\n{agents}"
        ))
        .unwrap_err();
        assert_eq!((err.line, err.field.as_deref()), (4, Some("session.durability")), "{err}");
        assert!(err.message.contains("power_loss"), "{err}");
        let err =
            parse(&format!("[team]\ntype = \"round_robin\"\n[session]\nstore = \" \"\n{agents}"))
                .unwrap_err();
        assert_eq!((err.line, err.field.as_deref()), (4, Some("session.store")), "{err}");
        let err =
            parse(&format!("[team]\ntype = \"round_robin\"\n[session]\npath = \"x\"\n{agents}"))
                .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("path"), "{err}");
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let err = parse("[team\ntype = 1\n").unwrap_err();
        assert_eq!(err.line, 1, "{err}");
    }

    #[test]
    fn a_code_executor_has_no_model_and_an_assistant_needs_instructions() {
        let spec = parse(
            "[team]\ntype = \"round_robin\"\n[[agents]]\nname = \"a\"\nsystem_message = \"x\"\n\
             [[agents]]\nname = \"run\"\nkind = \"code_executor\"\nallow_network = true\n",
        )
        .unwrap();
        assert_eq!(spec.agents[1].kind, AgentKind::CodeExecutor);
        assert!(spec.agents[1].allow_network);
        assert_eq!(spec.agents[0].kind, AgentKind::Assistant);

        let err = parse(
            "[team]\ntype = \"round_robin\"\n[[agents]]\nname = \"run\"\nkind = \"code_executor\"\n\
             tools = [\"add\"]\n",
        )
        .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("agents[0].kind"), "{err}");
        let err = parse("[team]\ntype = \"round_robin\"\n[[agents]]\nname = \"a\"\n").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("agents[0].system_message"), "{err}");
    }
}
