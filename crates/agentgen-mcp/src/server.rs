//! One connected MCP server: starting it, the handshake, listing and checking its tools,
//! stopping it.

use std::fmt;
use std::future::Future;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use agentgen_core::tools::{check_schema, cut_at_char_boundary, Tool};
use rmcp::service::RunningService;
#[cfg(feature = "http")]
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;

use crate::tool::{Listed, McpTool};
use crate::{Limits, McpError, MODEL_NAME_SEPARATOR};

/// How to reach a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpTransport {
    /// Start this command (program and arguments) and speak MCP over its stdin/stdout.
    Stdio {
        /// Program and arguments.
        command: Vec<String>,
    },
    /// A streamable-HTTP endpoint, such as `http://127.0.0.1:9000/mcp`.
    Http {
        /// The endpoint.
        url: String,
    },
}

/// A server to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpServerConfig {
    /// Its name, the prefix of its tools' names.
    pub name: String,
    /// How to reach it.
    pub transport: McpTransport,
    /// Deadlines and size bounds.
    pub limits: Limits,
}

impl McpServerConfig {
    /// A server started from `command`, with default limits.
    pub fn stdio(name: impl Into<String>, command: Vec<String>) -> Self {
        Self {
            name: name.into(),
            transport: McpTransport::Stdio { command },
            limits: Limits::default(),
        }
    }

    /// A server at a streamable-HTTP `url`, with default limits.
    pub fn http(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            transport: McpTransport::Http { url: url.into() },
            limits: Limits::default(),
        }
    }

    /// Checks the name, the command or URL, without starting anything.
    pub fn validate(&self) -> Result<(), McpError> {
        if !valid_server_name(&self.name) {
            return Err(McpError::InvalidServerName(self.name.clone()));
        }
        match &self.transport {
            McpTransport::Stdio { command } if command.first().is_none_or(|p| p.is_empty()) => {
                Err(McpError::EmptyCommand { server: self.name.clone() })
            }
            McpTransport::Http { url }
                if !url.starts_with("http://") || url.len() <= "http://".len() =>
            {
                Err(McpError::InvalidUrl { server: self.name.clone(), url: url.clone() })
            }
            _ => Ok(()),
        }
    }
}

fn valid_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && !name.contains(MODEL_NAME_SEPARATOR)
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A tool the server listed that could not be offered to a model, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedTool {
    /// The name the server gave (cut to 80 bytes).
    pub name: String,
    /// Why it was rejected.
    pub reason: String,
}

/// A connected server and its checked tools. Dropping it (or [`shutdown`](Self::shutdown))
/// stops the server: a stdio server's process is killed; its tools then answer with errors.
pub struct McpServer {
    name: String,
    service: Option<RunningService<RoleClient, ()>>,
    tools: Vec<Arc<McpTool>>,
    rejected: Vec<RejectedTool>,
    pid: Option<u32>,
}

impl fmt::Debug for McpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpServer")
            .field("name", &self.name)
            .field("tools", &self.tools.iter().map(|t| t.name()).collect::<Vec<_>>())
            .field("rejected", &self.rejected)
            .field("pid", &self.pid)
            .finish()
    }
}

async fn deadline<T, E: fmt::Display>(
    server: &str,
    what: &'static str,
    after: Duration,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, McpError> {
    match tokio::time::timeout(after, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            Err(McpError::Protocol { server: server.to_owned(), what, message: e.to_string() })
        }
        Err(_) => Err(McpError::Timeout { server: server.to_owned(), what, after }),
    }
}

impl McpServer {
    /// Starts (stdio) or reaches (HTTP) the server, does the MCP handshake and lists its
    /// tools, all within `limits.connect_timeout`.
    pub async fn connect(config: McpServerConfig) -> Result<Self, McpError> {
        config.validate()?;
        let name = config.name.clone();
        let limits = config.limits;
        let (service, pid) = match &config.transport {
            McpTransport::Stdio { command } => {
                let mut cmd = tokio::process::Command::new(&command[0]);
                cmd.args(&command[1..]).kill_on_drop(true);
                let (child, _stderr) = TokioChildProcess::builder(cmd)
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|source| McpError::Spawn {
                        server: name.clone(),
                        program: command[0].clone(),
                        source,
                    })?;
                let pid = child.id();
                let service =
                    deadline(&name, "the MCP handshake", limits.connect_timeout, ().serve(child))
                        .await?;
                (service, pid)
            }
            #[cfg(not(feature = "http"))]
            McpTransport::Http { .. } => return Err(McpError::HttpNotBuilt { server: name }),
            #[cfg(feature = "http")]
            McpTransport::Http { url } => {
                let transport = StreamableHttpClientTransport::from_uri(url.as_str());
                let service = deadline(
                    &name,
                    "the MCP handshake",
                    limits.connect_timeout,
                    ().serve(transport),
                )
                .await?;
                (service, None)
            }
        };
        let listed = deadline(
            &name,
            "listing tools",
            limits.connect_timeout,
            service.peer().list_all_tools(),
        )
        .await?;
        if listed.len() > limits.max_tools {
            return Err(McpError::TooManyTools {
                server: name,
                count: listed.len(),
                limit: limits.max_tools,
            });
        }
        let mut tools = Vec::new();
        let mut rejected = Vec::new();
        for t in listed {
            match check_tool(&name, &t, &limits) {
                Ok((model_name, schema)) => {
                    if tools.iter().any(|x: &Arc<McpTool>| x.name() == model_name) {
                        rejected.push(RejectedTool {
                            name: cut_at_char_boundary(&t.name, 80).to_owned(),
                            reason: "listed twice".into(),
                        });
                        continue;
                    }
                    let description = t
                        .description
                        .as_deref()
                        .map(|d| d.chars().take(limits.max_description_chars).collect())
                        .unwrap_or_default();
                    let listed =
                        Listed { mcp_name: t.name.to_string(), model_name, description, schema };
                    tools.push(Arc::new(McpTool::new(
                        service.peer().clone(),
                        name.clone(),
                        listed,
                        limits,
                    )));
                }
                Err(reason) => {
                    tracing::warn!(server = %name, tool = %cut_at_char_boundary(&t.name, 80), %reason, "MCP tool rejected");
                    rejected.push(RejectedTool {
                        name: cut_at_char_boundary(&t.name, 80).to_owned(),
                        reason,
                    });
                }
            }
        }
        Ok(Self { name, service: Some(service), tools, rejected, pid })
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id of a stdio server.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Every usable tool, in the server's order.
    pub fn tools(&self) -> Vec<Arc<dyn Tool>> {
        self.tools.iter().map(|t| Arc::clone(t) as Arc<dyn Tool>).collect()
    }

    /// The tools the server listed that were rejected, and why.
    pub fn rejected(&self) -> &[RejectedTool] {
        &self.rejected
    }

    /// The tool the server calls `tool` (its own name, without the server prefix).
    pub fn tool(&self, tool: &str) -> Result<Arc<dyn Tool>, McpError> {
        self.tools
            .iter()
            .find(|t| t.mcp_name() == tool)
            .map(|t| Arc::clone(t) as Arc<dyn Tool>)
            .ok_or_else(|| McpError::UnknownTool {
                server: self.name.clone(),
                tool: cut_at_char_boundary(tool, 80).to_owned(),
                available: self.tools.iter().map(|t| t.mcp_name().to_owned()).collect(),
            })
    }

    /// The tools a selector picks: `*` for all, or one tool's own name.
    pub fn select(&self, selector: &str) -> Result<Vec<Arc<dyn Tool>>, McpError> {
        if selector == "*" {
            Ok(self.tools())
        } else {
            Ok(vec![self.tool(selector)?])
        }
    }

    /// Stops the server: closes the connection and, for a stdio server, waits briefly for
    /// the process to exit before killing it.
    pub async fn shutdown(mut self) {
        if let Some(service) = self.service.take() {
            let close = service.cancel();
            if tokio::time::timeout(Duration::from_secs(5), close).await.is_err() {
                tracing::warn!(server = %self.name, "MCP server did not stop in 5 s; killed");
            }
        }
    }
}

/// Checks a listed tool; returns the model-facing name and the schema.
fn check_tool(
    server: &str,
    tool: &rmcp::model::Tool,
    limits: &Limits,
) -> Result<(String, Value), String> {
    let name = tool.name.as_ref();
    let model_name = format!("{server}{MODEL_NAME_SEPARATOR}{name}");
    let valid = !name.is_empty()
        && model_name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        return Err(format!(
            "the name must be letters, digits, `_` or `-`, and `{server}{MODEL_NAME_SEPARATOR}<name>` at most 64 characters"
        ));
    }
    let schema = Value::Object((*tool.input_schema).clone());
    let size = serde_json::to_vec(&schema).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > limits.max_schema_bytes {
        return Err(format!(
            "the input schema is {size} bytes, more than {}",
            limits.max_schema_bytes
        ));
    }
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        return Err("the input schema must have \"type\": \"object\"".into());
    }
    check_schema(&schema).map_err(|e| format!("the input schema is invalid: {e}"))?;
    Ok((model_name, schema))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn listed(name: &str, schema: Value) -> rmcp::model::Tool {
        let Value::Object(map) = schema else { panic!("object") };
        rmcp::model::Tool::new(name.to_owned(), "d", Arc::new(map))
    }

    #[test]
    fn hostile_tools_are_rejected() {
        let l = Limits::default();
        let ok = listed("capital_of", json!({"type": "object"}));
        assert_eq!(check_tool("geo", &ok, &l).unwrap().0, "geo__capital_of");
        for bad in ["", "a.b", "has space", "x\u{202e}", &"a".repeat(60)] {
            assert!(
                check_tool("geo", &listed(bad, json!({"type": "object"})), &l).is_err(),
                "{bad:?}"
            );
        }
        let not_obj = listed("t", json!({"type": "string"}));
        assert!(check_tool("geo", &not_obj, &l).unwrap_err().contains("type"));
        let invalid = listed("t", json!({"type": "object", "properties": {"x": {"type": 7}}}));
        assert!(check_tool("geo", &invalid, &l).unwrap_err().contains("invalid"));
        let big = listed("t", json!({"type": "object", "description": "x".repeat(70_000)}));
        assert!(check_tool("geo", &big, &l).unwrap_err().contains("bytes"));
    }

    #[test]
    fn configs_are_checked_before_anything_starts() {
        assert!(McpServerConfig::stdio("geo", vec!["python3".into()]).validate().is_ok());
        assert!(matches!(
            McpServerConfig::stdio("geo", vec![]).validate(),
            Err(McpError::EmptyCommand { .. })
        ));
        for bad in ["", "a.b", "a__b", &"x".repeat(33)] {
            assert!(matches!(
                McpServerConfig::stdio(bad, vec!["x".into()]).validate(),
                Err(McpError::InvalidServerName(_))
            ));
        }
        assert!(matches!(
            McpServerConfig::http("geo", "https://example.com/mcp").validate(),
            Err(McpError::InvalidUrl { .. })
        ));
        assert!(McpServerConfig::http("geo", "http://127.0.0.1:9/mcp").validate().is_ok());
    }
}
