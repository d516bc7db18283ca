//! The CLI's error type and the exit code each kind of failure maps to.

use std::path::PathBuf;

use agentgen_core::BackendError;

use crate::team::TeamFileError;

/// Exit status: success.
pub const EXIT_OK: i32 = 0;
/// Exit status: the work itself failed (backend error, I/O).
pub const EXIT_FAILURE: i32 = 1;
/// Exit status: the command line was wrong (same code clap uses).
pub const EXIT_USAGE: i32 = 2;
/// Exit status: the configuration is wrong (backend, key, team or config file, missing feature).
pub const EXIT_CONFIG: i32 = 3;
/// Exit status: a model is unknown or missing.
pub const EXIT_MODEL: i32 = 4;
/// Exit status: `verify-local` found the server not provably local.
pub const EXIT_NOT_LOCAL: i32 = 5;
/// Interrupted by Ctrl-C (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: i32 = 130;

/// Everything a subcommand can fail with.
#[derive(Debug, thiserror::Error)]
#[cfg_attr(not(all(feature = "local", feature = "server")), allow(dead_code))]
pub enum CliError {
    /// The command line is wrong in a way clap cannot see (e.g. an empty task).
    #[error("{0}")]
    Usage(String),
    /// A backend name that is not local, groq or openai.
    #[error("unknown backend `{0}` (expected one of: local, groq, openai)")]
    UnknownBackend(String),
    /// The binary was built without the Cargo feature a request needs.
    #[error(
        "this agentgen was built without the {feature} {what}; rebuild with `--features {feature}`"
    )]
    FeatureMissing {
        /// The Cargo feature.
        feature: &'static str,
        /// What it is (`backend`, or `feature, which … needs`).
        what: &'static str,
    },
    /// An API key is needed and not set.
    #[error("{backend} needs an API key: set {env} (or `api_key` in agentgen.toml)")]
    MissingApiKey {
        /// The backend.
        backend: &'static str,
        /// The environment variable to set.
        env: &'static str,
    },
    /// An API key may not travel to the configured base URL.
    #[error(transparent)]
    KeyTrust(#[from] crate::key_trust::KeyTrustError),
    /// The configuration files or environment could not be read or merged.
    #[error("configuration: {0}")]
    Config(String),
    /// The run was interrupted (Ctrl-C); `session` names it when it can be resumed.
    #[error("interrupted{}", resume_hint(.session, .store))]
    Interrupted {
        /// The journaled session, if any.
        session: Option<String>,
        /// Its store, when `agentgen resume` needs `--store` to find it.
        store: Option<std::path::PathBuf>,
    },
    /// The session store failed, or a session is unknown, finished or taken.
    #[error(transparent)]
    Journal(#[from] agentgen_core::journal::JournalError),
    /// A team file is malformed.
    #[error(transparent)]
    TeamFile(#[from] TeamFileError),
    /// A model name that the catalog does not know.
    #[error("unknown model `{name}`{}", suggestions(.known))]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// Names the catalog does know.
        known: Vec<String>,
    },
    /// The local model is not in the cache and pulling was refused.
    #[error("model file {} is missing; run `agentgen pull {name}` first", .path.display())]
    ModelMissing {
        /// Where it was looked for.
        path: PathBuf,
        /// The catalog name to pull.
        name: String,
    },
    /// A `--model` path names no file.
    #[error("model file {} does not exist; give the path of a GGUF file, or a catalog name (`agentgen models` lists them, `agentgen pull NAME` fetches one)", .path.display())]
    ModelFileMissing {
        /// The path given.
        path: PathBuf,
    },
    /// The server under test is not provably local.
    #[error("verify-local failed: {0}")]
    NotLocal(String),
    /// A model backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// Reading or writing a file or stream failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// An MCP server of the team file could not be started or used.
    #[error(transparent)]
    Mcp(#[from] agentgen_mcp::McpError),
    /// Anything else that failed while doing the work.
    #[error("{0}")]
    Failed(String),
}

fn resume_hint(session: &Option<String>, store: &Option<std::path::PathBuf>) -> String {
    match (session, store) {
        (Some(name), Some(store)) => {
            format!("; resume with `agentgen resume {name} --store {}`", store.display())
        }
        (Some(name), None) => format!("; resume with `agentgen resume {name}`"),
        (None, _) => {
            "; the run was not journaled (run with --session NAME to make it resumable)".into()
        }
    }
}

fn suggestions(known: &[String]) -> String {
    if known.is_empty() {
        String::new()
    } else {
        format!("; known models: {} (see `agentgen models`)", known.join(", "))
    }
}

impl CliError {
    /// An interruption of a journaled run whose store `agentgen resume` must be told
    /// (`--store`); other errors unchanged.
    pub fn with_store(self, store: Option<std::path::PathBuf>) -> Self {
        match self {
            Self::Interrupted { session: Some(session), .. } => {
                Self::Interrupted { session: Some(session), store }
            }
            other => other,
        }
    }

    /// The process exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Usage(_) => EXIT_USAGE,
            Self::UnknownBackend(_)
            | Self::FeatureMissing { .. }
            | Self::MissingApiKey { .. }
            | Self::KeyTrust(_)
            | Self::Config(_)
            | Self::TeamFile(_) => EXIT_CONFIG,
            Self::UnknownModel { .. }
            | Self::ModelMissing { .. }
            | Self::ModelFileMissing { .. } => EXIT_MODEL,
            Self::Backend(BackendError::ModelNotFound { .. } | BackendError::ModelFile(_)) => {
                EXIT_MODEL
            }
            Self::Backend(BackendError::Unauthorized { .. }) => EXIT_CONFIG,
            Self::NotLocal(_) => EXIT_NOT_LOCAL,
            Self::Interrupted { .. } => EXIT_INTERRUPTED,
            Self::Journal(_) => EXIT_FAILURE,
            Self::Backend(_) | Self::Io { .. } | Self::Mcp(_) | Self::Failed(_) => EXIT_FAILURE,
        }
    }

    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { context: context.into(), source }
    }
}

/// What subcommands return.
pub type CliResult<T = ()> = Result<T, CliError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_exit_code() {
        assert_eq!(CliError::Usage("x".into()).exit_code(), EXIT_USAGE);
        assert_eq!(CliError::UnknownBackend("x".into()).exit_code(), EXIT_CONFIG);
        let e = CliError::UnknownModel { name: "x".into(), known: vec!["a".into()] };
        assert_eq!(e.exit_code(), EXIT_MODEL);
        assert!(e.to_string().contains("known models: a"), "{e}");
        assert_eq!(CliError::Backend(BackendError::Cancelled).exit_code(), EXIT_FAILURE);
    }

    #[test]
    fn feature_message_says_how_to_rebuild() {
        let e = CliError::FeatureMissing { feature: "groq", what: "backend" };
        assert_eq!(
            e.to_string(),
            "this agentgen was built without the groq backend; rebuild with `--features groq`"
        );
    }
}
