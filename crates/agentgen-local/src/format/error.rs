//! [`FormatError`]: what can go wrong rendering a prompt or building a constraint.

use std::path::PathBuf;

use agentgen_core::BackendError;

/// Errors of the chat-format layer. User mistakes (bad tool schemas, unknown tool names, bad
/// response schemas) become [`BackendError::InvalidRequest`] naming the offending field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The model's chat template does not compile.
    #[error("the model's chat template does not compile: {reason}")]
    Template {
        /// The template engine's message.
        reason: String,
    },
    /// The template failed while rendering this conversation (e.g. it raised an exception
    /// about the order of roles).
    #[error("the model's chat template rejected the conversation: {reason}")]
    Render {
        /// The template engine's message, or the template's own `raise_exception` text.
        reason: String,
    },
    /// A tool's `parameters` is not a usable JSON schema for an arguments object.
    #[error("tool `{tool}` has an invalid parameters schema: {reason}")]
    InvalidToolSchema {
        /// The tool's name.
        tool: String,
        /// What is wrong.
        reason: String,
    },
    /// Two tools share a name, or a name is empty.
    #[error("invalid tool list: {reason}")]
    InvalidTools {
        /// What is wrong.
        reason: String,
    },
    /// The `json_schema` response format is not a valid JSON schema.
    #[error("response_format json_schema is invalid: {reason}")]
    InvalidResponseSchema {
        /// What is wrong.
        reason: String,
    },
    /// `tool_choice` names a function that is not among the request's tools.
    #[error("tool_choice names `{name}`, which is not among the request's tools")]
    UnknownTool {
        /// The name asked for.
        name: String,
    },
    /// `tool_choice` is `required` or names a function, but the request has no tools.
    #[error("tool_choice requires a tool call but the request has no tools")]
    NoTools,
    /// The request asks for a tool call and a response format at once, which cannot both be
    /// enforced on one answer.
    #[error("a required tool call and a json response_format cannot both be enforced")]
    ConflictingConstraints,
    /// The grammar built for the constraint was rejected by the grammar engine (a bug here, or
    /// a schema feature the engine does not support).
    #[error("could not build the output constraint: {reason}")]
    Grammar {
        /// The grammar engine's message.
        reason: String,
    },
    /// Tool or tool-call data (a name, description, schema, call id or arguments) holds a
    /// special token's text that the chat template rendered in a form that cannot be kept
    /// apart from its own markup; refused rather than turned into control tokens.
    #[error(
        "tool or tool-call data contains special-token text ({count} occurrence(s)) that the \
         chat template would turn into control tokens"
    )]
    SpecialTokenText {
        /// How many special-token texts would have become control tokens.
        count: usize,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a GGUF model (wrong magic).
    #[error("{} is not a GGUF model file (it does not start with the GGUF magic)", .path.display())]
    NotGguf {
        /// The file.
        path: PathBuf,
    },
    /// The file starts like a GGUF but its metadata is malformed.
    #[error("{} has a malformed GGUF header: {reason}", .path.display())]
    Gguf {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl FormatError {
    /// Whether the error is the caller's mistake (to be reported as an invalid request).
    pub fn is_invalid_request(&self) -> bool {
        matches!(
            self,
            Self::InvalidToolSchema { .. }
                | Self::InvalidTools { .. }
                | Self::InvalidResponseSchema { .. }
                | Self::UnknownTool { .. }
                | Self::NoTools
                | Self::ConflictingConstraints
                | Self::Render { .. }
                | Self::SpecialTokenText { .. }
        )
    }
}

impl From<FormatError> for BackendError {
    fn from(e: FormatError) -> Self {
        let message = e.to_string();
        match e {
            FormatError::InvalidToolSchema { .. } | FormatError::InvalidTools { .. } => {
                BackendError::invalid_param(message, "tools")
            }
            FormatError::UnknownTool { .. } | FormatError::NoTools => {
                BackendError::invalid_param(message, "tool_choice")
            }
            FormatError::InvalidResponseSchema { .. } | FormatError::ConflictingConstraints => {
                BackendError::invalid_param(message, "response_format")
            }
            FormatError::Render { .. } | FormatError::SpecialTokenText { .. } => {
                BackendError::invalid_param(message, "messages")
            }
            FormatError::Io { .. } | FormatError::NotGguf { .. } | FormatError::Gguf { .. } => {
                BackendError::ModelFile(message)
            }
            FormatError::Template { .. } | FormatError::Grammar { .. } => {
                BackendError::Internal(message)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(e: FormatError) -> Option<String> {
        match BackendError::from(e) {
            BackendError::InvalidRequest { param, .. } => param,
            other => panic!("not an invalid request: {other:?}"),
        }
    }

    #[test]
    fn user_mistakes_name_the_field() {
        let e = FormatError::InvalidToolSchema { tool: "add".into(), reason: "x".into() };
        assert!(e.is_invalid_request());
        assert_eq!(param(e).as_deref(), Some("tools"));
        assert_eq!(
            param(FormatError::UnknownTool { name: "f".into() }).as_deref(),
            Some("tool_choice")
        );
        assert_eq!(
            param(FormatError::InvalidResponseSchema { reason: "r".into() }).as_deref(),
            Some("response_format")
        );
    }

    #[test]
    fn file_problems_are_model_file_errors() {
        let e = FormatError::NotGguf { path: "/x/y.bin".into() };
        assert!(!e.is_invalid_request());
        match BackendError::from(e) {
            BackendError::ModelFile(m) => assert!(m.contains("/x/y.bin") && m.contains("GGUF")),
            other => panic!("{other:?}"),
        }
    }
}
