//! MCP servers as agentgen tools. This crate's one job: connect to a Model Context Protocol
//! server — a child process spoken to over stdio, or a streamable-HTTP endpoint — list its
//! tools, and turn each into an [`agentgen_core::tools::Tool`] with the server's input schema.
//!
//! What a server sends is treated as hostile input: tool names must fit the OpenAI function-name
//! rule once prefixed with the server's name, schemas must be JSON-schema objects of bounded
//! size, descriptions and results are cut to bounded lengths, and a server may list at most
//! [`Limits::max_tools`] tools. Every request has a deadline, so a server that crashed or hangs
//! gives the agent an error result, never a stuck run. A started server is stopped (its
//! process killed) when its [`McpServer`] is shut down or dropped.
//!
//! Tools are referred to as `server.tool` (team files: `tools = ["geo.*"]` or
//! `["geo.capital_of"]`); the model sees them as `server__tool`, because OpenAI-compatible APIs
//! accept only `[a-zA-Z0-9_-]` in function names.
//!
//! The HTTP transport is plain `http://` (no TLS provider is compiled in): it is meant for
//! servers on this machine or a trusted network.

mod server;
mod tool;

pub use server::{McpServer, McpServerConfig, McpTransport};
pub use tool::McpTool;

use std::time::Duration;

/// Separates the server's name from the tool's in the name the model sees.
pub const MODEL_NAME_SEPARATOR: &str = "__";

/// Bounds on what one server may send and how long it may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Starting the server, the MCP handshake and listing its tools.
    pub connect_timeout: Duration,
    /// One tool call.
    pub call_timeout: Duration,
    /// Tools one server may list.
    pub max_tools: usize,
    /// Bytes of one tool's input schema, as JSON.
    pub max_schema_bytes: usize,
    /// Characters of a tool's description kept (the rest is cut).
    pub max_description_chars: usize,
    /// Bytes of a tool result kept (the rest is cut, with a note).
    pub max_result_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(30),
            call_timeout: Duration::from_secs(60),
            max_tools: 128,
            max_schema_bytes: 64 * 1024,
            max_description_chars: 1024,
            max_result_bytes: 64 * 1024,
        }
    }
}

/// Why a server could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum McpError {
    /// The server's name is not 1–32 characters of `[a-zA-Z0-9_-]` without `__`.
    #[error("MCP server name `{0}` must be 1-32 characters of letters, digits, `_` or `-`, without `__`")]
    InvalidServerName(String),
    /// A stdio server was configured with an empty command.
    #[error("MCP server `{server}`: the command is empty")]
    EmptyCommand {
        /// The server.
        server: String,
    },
    /// This build has no streamable-HTTP transport (agentgen-mcp's `http` feature is off).
    #[error("MCP server `{server}` is reached by URL, but this build has only stdio servers (rebuild with the `mcp-http` feature)")]
    HttpNotBuilt {
        /// The server's name.
        server: String,
    },
    /// The URL is not `http://host[:port]/path`.
    #[error("MCP server `{server}`: URL `{url}` must start with http:// (https is not built in)")]
    InvalidUrl {
        /// The server.
        server: String,
        /// The URL given.
        url: String,
    },
    /// The server's process could not be started.
    #[error("MCP server `{server}`: could not start `{program}`: {source}")]
    Spawn {
        /// The server.
        server: String,
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The handshake or the tool listing failed.
    #[error("MCP server `{server}`: {what} failed: {message}")]
    Protocol {
        /// The server.
        server: String,
        /// What was being done.
        what: &'static str,
        /// The error.
        message: String,
    },
    /// The handshake or the tool listing took too long.
    #[error("MCP server `{server}`: {what} took longer than {after:?}")]
    Timeout {
        /// The server.
        server: String,
        /// What was being done.
        what: &'static str,
        /// The deadline.
        after: Duration,
    },
    /// The server lists more tools than [`Limits::max_tools`].
    #[error("MCP server `{server}` lists {count} tools, more than the limit of {limit}")]
    TooManyTools {
        /// The server.
        server: String,
        /// How many it listed.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A tool selector names a tool the server does not offer (or one that was rejected).
    #[error("MCP server `{server}` has no usable tool `{tool}`; usable tools: {}", .available.join(", "))]
    UnknownTool {
        /// The server.
        server: String,
        /// The tool asked for.
        tool: String,
        /// The tools it has.
        available: Vec<String>,
    },
}
