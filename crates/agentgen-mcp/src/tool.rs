//! One MCP tool as an agentgen [`Tool`].

use std::fmt;

use agentgen_core::tools::{bounded_output, Tool, ToolContext, ToolError};
use async_trait::async_trait;
use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock};
use rmcp::service::Peer;
use rmcp::RoleClient;
use serde_json::Value;

use crate::Limits;

/// A tool of an MCP server. A call has [`Limits::call_timeout`] to answer; a server that
/// died, hangs or reports an error gives a [`ToolError::Execution`], which the agent's tool
/// set turns into an `Error: …` result for the model.
pub struct McpTool {
    peer: Peer<RoleClient>,
    server: String,
    listed: Listed,
    limits: Limits,
}

/// A listed tool that passed the checks.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    /// The server's name for it.
    pub mcp_name: String,
    /// `server__tool`.
    pub model_name: String,
    /// Cut to the limit.
    pub description: String,
    /// The checked input schema.
    pub schema: Value,
}

impl fmt::Debug for McpTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpTool")
            .field("server", &self.server)
            .field("name", &self.listed.mcp_name)
            .finish_non_exhaustive()
    }
}

impl McpTool {
    pub(crate) fn new(
        peer: Peer<RoleClient>,
        server: String,
        listed: Listed,
        limits: Limits,
    ) -> Self {
        Self { peer, server, listed, limits }
    }

    /// The name the server gives the tool.
    pub fn mcp_name(&self) -> &str {
        &self.listed.mcp_name
    }

    /// The server it belongs to.
    pub fn server(&self) -> &str {
        &self.server
    }

    fn fail(&self, message: impl Into<String>) -> ToolError {
        ToolError::Execution { tool: self.listed.model_name.clone(), message: message.into() }
    }

    /// The result as text for the model: the text blocks, else the structured content.
    fn result_text(&self, result: &CallToolResult) -> String {
        let mut parts: Vec<String> = result
            .content
            .iter()
            .map(|block| match block {
                ContentBlock::Text(t) => t.text.clone(),
                ContentBlock::Image(_) => "[image]".into(),
                ContentBlock::Audio(_) => "[audio]".into(),
                _ => "[resource]".into(),
            })
            .collect();
        if result.content.is_empty() {
            if let Some(v) = &result.structured_content {
                parts.push(v.to_string());
            }
        }
        bounded_output(parts.join("\n"), self.limits.max_result_bytes)
    }
}

#[async_trait]
impl Tool for McpTool {
    fn name(&self) -> &str {
        &self.listed.model_name
    }

    fn description(&self) -> &str {
        &self.listed.description
    }

    fn parameters(&self) -> Value {
        self.listed.schema.clone()
    }

    async fn call(&self, args: Value, _ctx: &ToolContext) -> Result<Value, ToolError> {
        let mut params = CallToolRequestParams::new(self.listed.mcp_name.clone());
        params.arguments = match args {
            Value::Object(map) => Some(map),
            _ => None,
        };
        let after = self.limits.call_timeout;
        let result = match tokio::time::timeout(after, self.peer.call_tool(params)).await {
            Err(_) => {
                return Err(self
                    .fail(format!("MCP server `{}` did not answer within {after:?}", self.server)))
            }
            Ok(Err(e)) => {
                return Err(self.fail(format!("MCP server `{}`: {e}", self.server)));
            }
            Ok(Ok(result)) => result,
        };
        let text = self.result_text(&result);
        if result.is_error == Some(true) {
            return Err(self.fail(text));
        }
        Ok(Value::String(text))
    }
}
