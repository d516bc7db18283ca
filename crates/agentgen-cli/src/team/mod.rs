//! Team files: the TOML schema that describes agents, the team type and termination, parsed
//! with errors that name the file, line, column and field.
//!
//! ```toml
//! [team]
//! type = "round_robin"          # round_robin | selector | swarm
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

//! Team files: the TOML schema that describes agents, the team type, termination, edges and
//! tools, parsed with errors that name the file, line, column and field; `team check` prints
//! them ([`show`]) and `team new` writes a starter ([`starter`]). README's "Team files"
//! section lists every key.
//!
//! ```toml
//! [team]
//! type = "round_robin"          # round_robin | selector | swarm | graph
//! speaker_names = "prefix"      # prefix ("name: text", default) | name_field | off
//!
//! # a table: the run stops when any condition holds ...
//! [termination]
//! max_messages = 6              # the task counts as one
//! text_mention = "APPROVE"
//! # ... or one expression: termination = "max_messages(8) | text_mention('APPROVE') & ..."
//!
//! [[agents]]
//! name = "writer"
//! system_message = "You write."
//! tools = ["word_count", "geo.*", "shout"]  # built-in, MCP `server.*`/`server.tool`, command tools
//! ```

mod agent_tools;
pub mod autogen;
mod build;
mod command_tool;
mod expr;
mod show;
mod spec;
mod validate;

use std::path::{Path, PathBuf};

#[cfg(test)]
pub use build::agent_choices;
pub use build::{agent_chains, build_team, Runtime};
pub use show::{show, starter};
pub use spec::*;

/// The built-in team file: a writer, an executor that runs the writer's code with its asserts in
/// the sandbox, and a reviewer who sees the output, in turn until the reviewer approves.
pub const DEFAULT_TEAM: &str = include_str!("../../teams/default.toml");

/// Names of the tools a team file may give its agents.
pub const BUILTIN_TOOLS: &[&str] = &["add", "multiply", "current_time", "word_count"];

/// How deep society-of-mind agents may nest team files.
const MAX_NESTING: usize = 4;

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

/// Reads a team file (`-`: standard input).
pub fn read(path: &Path) -> Result<String, TeamFileError> {
    let result = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    };
    result.map_err(|e| TeamFileError {
        path: path.to_owned(),
        line: 0,
        column: 0,
        field: None,
        message: format!("cannot read: {e}"),
    })
}

fn field_prefix(field: &Option<String>) -> String {
    field.as_ref().map(|f| format!("field `{f}`: ")).unwrap_or_default()
}

impl TeamSpec {
    /// Reads and checks a team file.
    #[cfg(test)]
    pub fn from_file(path: &Path) -> Result<Self, TeamFileError> {
        Self::parse(&read(path)?, path)
    }

    /// The built-in writer + executor + reviewer team.
    pub fn builtin() -> Self {
        Self::parse(DEFAULT_TEAM, Path::new("<built-in default team>"))
            .expect("the built-in team file is valid")
    }

    /// Parses and checks team-file text; `path` names it in errors (and nested team files are
    /// found next to it).
    pub fn parse(text: &str, path: &Path) -> Result<Self, TeamFileError> {
        Self::parse_at(text, path, 0)
    }

    /// [`parse`](Self::parse) of a team nested `depth` levels deep.
    fn parse_at(text: &str, path: &Path, depth: usize) -> Result<Self, TeamFileError> {
        let at = |span: std::ops::Range<usize>, field: Option<String>, message: String| {
            let (line, column) = line_col(text, span.start);
            TeamFileError { path: path.to_owned(), line, column, field, message }
        };
        let mut spec: TeamSpec = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let field = field_from_message(e.message()).or_else(|| field_at(text, span.start));
            at(span, field, e.message().trim().to_owned())
        })?;

        validate::check(&mut spec, text, path, depth)?;
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
mod build_tests;
#[cfg(test)]
mod feature_tests;
#[cfg(test)]
mod tests;
