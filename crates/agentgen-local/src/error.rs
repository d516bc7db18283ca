//! [`LocalError`]: what can go wrong loading a local model or running its engine.

use std::path::PathBuf;

use agentgen_core::BackendError;

/// Errors of the local engine, each one a caller can act on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// The model file does not exist.
    #[error("model file {} not found; run `agentgen pull` to download the default model", .path.display())]
    ModelMissing {
        /// The path that was looked at.
        path: PathBuf,
    },
    /// The file exists but is not a GGUF model.
    #[error("{} is not a GGUF model file: {reason}", .path.display())]
    NotGguf {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// llama.cpp could not load the model.
    #[error("cannot load model {}: {reason}", .path.display())]
    Load {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The inference context (KV cache, batch) could not be created with these settings.
    #[error("cannot create the inference context: {0}")]
    Context(String),
    /// The configuration asks for something impossible (zero slots, a zero batch…).
    #[error("invalid engine configuration: {0}")]
    Config(String),
    /// The model's chat template cannot be used.
    #[error("the model's chat template cannot be used: {0}")]
    Template(String),
    /// A request gives more `stop` strings than [`LocalConfig::max_stop_strings`] allows.
    ///
    /// [`LocalConfig::max_stop_strings`]: crate::LocalConfig::max_stop_strings
    #[error("`stop` has {actual} strings; at most {limit} are allowed (setting max_stop_strings)")]
    TooManyStops {
        /// The setting's value.
        limit: usize,
        /// How many the request gave.
        actual: usize,
    },
    /// A `stop` string is longer than [`LocalConfig::max_stop_len`] bytes.
    ///
    /// [`LocalConfig::max_stop_len`]: crate::LocalConfig::max_stop_len
    #[error(
        "a `stop` string is {actual} bytes; at most {limit} are allowed (setting max_stop_len)"
    )]
    StopTooLong {
        /// The setting's value.
        limit: usize,
        /// The longest string's length.
        actual: usize,
    },
    /// The inference thread stopped (it panicked or could not start).
    #[error("the local inference engine has stopped")]
    EngineGone,
}

impl From<LocalError> for BackendError {
    fn from(e: LocalError) -> Self {
        let message = e.to_string();
        match e {
            LocalError::ModelMissing { .. }
            | LocalError::NotGguf { .. }
            | LocalError::Load { .. }
            | LocalError::Template(_) => BackendError::ModelFile(message),
            LocalError::Config(_) => BackendError::invalid(message),
            LocalError::TooManyStops { .. } | LocalError::StopTooLong { .. } => {
                BackendError::invalid_param(message, "stop")
            }
            LocalError::Context(_) | LocalError::EngineGone => BackendError::unavailable(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_model_names_the_path_and_the_fix() {
        let e = LocalError::ModelMissing { path: "/models/x.gguf".into() };
        let text = e.to_string();
        assert!(text.contains("/models/x.gguf"), "{text}");
        assert!(text.contains("agentgen pull"), "{text}");
        assert!(
            matches!(BackendError::from(e), BackendError::ModelFile(m) if m.contains("agentgen pull"))
        );
    }

    #[test]
    fn stop_limits_name_the_setting_and_the_field() {
        let e = LocalError::TooManyStops { limit: 16, actual: 17 };
        assert!(e.to_string().contains("max_stop_strings"), "{e}");
        assert!(matches!(
            BackendError::from(e),
            BackendError::InvalidRequest { param: Some(p), .. } if p == "stop"
        ));
        let e = LocalError::StopTooLong { limit: 256, actual: 300 };
        assert!(e.to_string().contains("max_stop_len") && e.to_string().contains("300"), "{e}");
    }

    #[test]
    fn a_stopped_engine_is_unavailable() {
        assert!(BackendError::from(LocalError::EngineGone).is_retryable());
    }
}
