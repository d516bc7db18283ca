//! The errors of core: [`BackendError`], the one error type every backend returns, and
//! [`AgentError`], why an agent or a team could not go on; both with variants a caller can act on.

use std::time::Duration;

use crate::tools::ToolError;

/// What went wrong talking to a model, in terms a caller can act on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// Too many requests or tokens; wait and retry.
    #[error("rate limited{}: {message}", fmt_after(.retry_after))]
    RateLimited {
        /// How long the provider asked us to wait, when it said.
        retry_after: Option<Duration>,
        /// The provider's message.
        message: String,
    },
    /// The key is missing, wrong or expired.
    #[error("unauthorized: {message}")]
    Unauthorized {
        /// The provider's message.
        message: String,
    },
    /// The model id is unknown or retired.
    #[error("model `{model}` not found{}", fmt_available(.available))]
    ModelNotFound {
        /// The id that was asked for.
        model: String,
        /// Ids the backend does offer, when it could list them.
        available: Vec<String>,
    },
    /// The prompt does not fit the model's context.
    #[error("prompt needs {prompt_tokens} tokens but the context holds {limit}")]
    ContextOverflow {
        /// Tokens the prompt (plus any reserved output) needs.
        prompt_tokens: usize,
        /// The context size.
        limit: usize,
    },
    /// The request itself is wrong (bad schema, unsupported field…); retrying will not help.
    #[error("invalid request{}: {message}", fmt_param(.param))]
    InvalidRequest {
        /// What is wrong.
        message: String,
        /// The offending field, when known.
        param: Option<String>,
        /// A machine-readable code, when known (e.g. `tool_use_failed`).
        code: Option<String>,
    },
    /// The model produced a tool call the provider could not parse (Groq's `tool_use_failed`).
    #[error("tool call failed: {message}")]
    ToolUseFailed {
        /// The provider's message.
        message: String,
        /// The model's raw output, kept so a caller can parse or show it.
        failed_generation: Option<String>,
    },
    /// The backend cannot serve now (5xx, overloaded, loading, unreachable).
    #[error("backend unavailable: {message}")]
    Unavailable {
        /// What happened.
        message: String,
        /// HTTP status, when there was one.
        status: Option<u16>,
        /// When to try again, if known.
        retry_after: Option<Duration>,
    },
    /// No answer within the time allowed.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The caller cancelled the request.
    #[error("cancelled")]
    Cancelled,
    /// The backend's answer broke its own protocol (malformed JSON, truncated stream).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A local model file is missing, unreadable or not a model.
    #[error("model file problem: {0}")]
    ModelFile(String),
    /// Anything else; a bug or an unexpected failure inside the backend.
    #[error("internal error: {0}")]
    Internal(String),
}

fn fmt_after(after: &Option<Duration>) -> String {
    after.map(|d| format!(" (retry after {:.2}s)", d.as_secs_f64())).unwrap_or_default()
}

fn fmt_available(available: &[String]) -> String {
    if available.is_empty() {
        String::new()
    } else {
        format!("; available: {}", available.join(", "))
    }
}

fn fmt_param(param: &Option<String>) -> String {
    param.as_ref().map(|p| format!(" (`{p}`)")).unwrap_or_default()
}

impl BackendError {
    /// An [`BackendError::InvalidRequest`] with only a message.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidRequest { message: message.into(), param: None, code: None }
    }

    /// An [`BackendError::InvalidRequest`] naming the offending field.
    pub fn invalid_param(message: impl Into<String>, param: impl Into<String>) -> Self {
        Self::InvalidRequest { message: message.into(), param: Some(param.into()), code: None }
    }

    /// An [`BackendError::Unavailable`] with only a message.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable { message: message.into(), status: None, retry_after: None }
    }

    /// Whether the same request may succeed if sent again later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Unavailable { .. } | Self::Timeout(_))
    }

    /// Whether a fallback chain should try its next backend.
    pub fn should_fall_back(&self) -> bool {
        self.is_retryable()
    }

    /// The wait the backend asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } | Self::Unavailable { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }
}

/// Why an agent or a team could not go on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The model backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A tool could not be registered.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// The caller cancelled the run.
    #[error("cancelled")]
    Cancelled,
    /// The agent or team was configured wrongly.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Saved state could not be read.
    #[error("invalid state: {0}")]
    State(String),
    /// The model's answer did not parse into the agent's output type.
    #[error("structured output did not parse: {message}; output was: {raw}")]
    StructuredOutput {
        /// What was wrong.
        message: String,
        /// The model's text.
        raw: String,
    },
    /// The input function of a user proxy failed.
    #[error("user input failed: {0}")]
    Input(String),
    /// A memory store failed.
    #[error("memory failed: {0}")]
    Memory(String),
    /// A message named an agent the team does not have.
    #[error("unknown agent `{0}`")]
    UnknownAgent(String),
    /// Running code failed for reasons outside the code (could not spawn, no work dir).
    #[error("code execution failed: {0}")]
    CodeExecution(String),
    /// The code sandbox could not be made or cannot enforce its policy here.
    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::SandboxError),
    /// The run journal could not be written or read.
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    /// A prompt template given to a team is empty or uses a placeholder it never fills.
    #[error(transparent)]
    PromptTemplate(#[from] crate::team::PromptTemplateError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_the_numbers() {
        let e = BackendError::ContextOverflow { prompt_tokens: 5000, limit: 4096 };
        assert_eq!(e.to_string(), "prompt needs 5000 tokens but the context holds 4096");
        let e = BackendError::ModelNotFound {
            model: "m".into(),
            available: vec!["a".into(), "b".into()],
        };
        assert_eq!(e.to_string(), "model `m` not found; available: a, b");
        let e = BackendError::RateLimited {
            retry_after: Some(Duration::from_millis(1500)),
            message: "slow".into(),
        };
        assert_eq!(e.to_string(), "rate limited (retry after 1.50s): slow");
    }

    #[test]
    fn only_transient_errors_are_retryable() {
        assert!(BackendError::unavailable("x").is_retryable());
        assert!(BackendError::Timeout(Duration::from_secs(1)).is_retryable());
        assert!(!BackendError::invalid("x").is_retryable());
        assert!(!BackendError::Cancelled.is_retryable());
    }
}
