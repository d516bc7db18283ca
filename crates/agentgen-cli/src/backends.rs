//! Turns [`Settings`] into a [`ChatBackend`]: the local engine (pulling the model first when it
//! is missing), Groq, or any OpenAI-compatible endpoint — each behind its Cargo feature, with a
//! clear error when this binary was built without it.

use std::collections::HashMap;
use std::sync::Arc;

use agentgen_core::ChatBackend;

use crate::config::{BackendKind, Settings};
use crate::error::{CliError, CliResult};

/// What to build: a backend kind and an optional model.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BackendChoice {
    /// Where the model runs.
    pub kind: BackendKind,
    /// Model name, id or path; `None` is the backend's default.
    pub model: Option<String>,
    /// Groq and OpenAI-compatible backends: the endpoint, in place of the configured one.
    pub base_url: Option<String>,
}

impl BackendChoice {
    /// The configured choice.
    pub fn from_settings(settings: &Settings) -> Self {
        Self { kind: settings.backend, model: settings.model.clone(), base_url: None }
    }
}

/// Builds backends once per choice, so agents sharing a model share one engine.
#[derive(Default)]
pub struct BackendPool {
    built: HashMap<BackendChoice, Arc<dyn ChatBackend>>,
    /// Refuse to download a missing local model.
    pub no_pull: bool,
}

impl std::fmt::Debug for BackendPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendPool").field("built", &self.built.keys()).finish()
    }
}

impl BackendPool {
    /// An empty pool.
    pub fn new(no_pull: bool) -> Self {
        Self { built: HashMap::new(), no_pull }
    }

    /// The backend for `choice`, built on first use.
    pub async fn get(
        &mut self,
        settings: &Settings,
        choice: &BackendChoice,
    ) -> CliResult<Arc<dyn ChatBackend>> {
        if let Some(b) = self.built.get(choice) {
            return Ok(Arc::clone(b));
        }
        let backend = build(settings, choice, self.no_pull).await?;
        self.built.insert(choice.clone(), Arc::clone(&backend));
        Ok(backend)
    }

    /// The backend of a chain: its one backend, or a [`FallbackBackend`] trying each in order.
    ///
    /// [`FallbackBackend`]: agentgen_core::FallbackBackend
    pub async fn get_chain(
        &mut self,
        settings: &Settings,
        chain: &[BackendChoice],
    ) -> CliResult<Arc<dyn ChatBackend>> {
        let mut built = Vec::with_capacity(chain.len());
        for choice in chain {
            built.push(self.get(settings, choice).await?);
        }
        match built.len() {
            0 => Err(CliError::Config("an empty backend chain".into())),
            1 => Ok(built.remove(0)),
            _ => Ok(Arc::new(agentgen_core::FallbackBackend::new(built))),
        }
    }
}

/// Checks what can be checked without building: the feature is compiled in and an API key is
/// there. Cheap, so callers run it before anything slow.
pub fn preflight(settings: &Settings, choice: &BackendChoice) -> CliResult {
    match choice.kind {
        BackendKind::Local => {
            if !cfg!(feature = "local") {
                return Err(CliError::FeatureMissing { feature: "local", what: "backend" });
            }
            model::resolve(choice.model.as_deref())?;
        }
        BackendKind::Groq | BackendKind::OpenAi => {
            if !cfg!(feature = "groq") {
                return Err(CliError::FeatureMissing { feature: "groq", what: "backend" });
            }
            if choice.kind == BackendKind::Groq && settings.groq.api_key.is_none() {
                return Err(CliError::MissingApiKey { backend: "groq", env: "GROQ_API_KEY" });
            }
            if choice.kind == BackendKind::OpenAi
                && settings.base_url.is_none()
                && choice.base_url.is_none()
            {
                return Err(CliError::Config(
                    "--backend openai needs --base-url (or base_url in agentgen.toml / \
                     AGENTGEN_BASE_URL), e.g. http://127.0.0.1:8080/v1"
                        .into(),
                ));
            }
        }
    }
    Ok(())
}

/// Builds one backend.
pub async fn build(
    settings: &Settings,
    choice: &BackendChoice,
    no_pull: bool,
) -> CliResult<Arc<dyn ChatBackend>> {
    preflight(settings, choice)?;
    let _ = no_pull;
    match choice.kind {
        #[cfg(feature = "local")]
        BackendKind::Local => local::build(settings, choice.model.as_deref(), no_pull).await,
        #[cfg(feature = "groq")]
        BackendKind::Groq | BackendKind::OpenAi => remote::build(settings, choice),
        #[allow(unreachable_patterns)]
        _ => Err(CliError::Failed(format!("backend {} is not available", choice.kind))),
    }
}

pub mod model {
    //! Which GGUF a local backend loads: a path, a catalog name, or the default model. Needs
    //! no llama.cpp (the catalog and cache are agentgen-models').

    use std::path::{Path, PathBuf};

    use agentgen_models::{catalog_entry, ModelCache};

    use crate::error::{CliError, CliResult};

    /// Where a local model comes from.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum LocalModel {
        /// A GGUF path given directly.
        Path(PathBuf),
        /// A catalog entry and the cache path of its default quantisation.
        Catalog {
            /// The catalog id.
            id: String,
            /// Where the file is (or will be) in the cache.
            path: PathBuf,
        },
    }

    impl LocalModel {
        /// The file.
        #[cfg_attr(not(any(feature = "local", feature = "server")), allow(dead_code))]
        pub fn path(&self) -> &Path {
            match self {
                Self::Path(p) | Self::Catalog { path: p, .. } => p,
            }
        }
    }

    /// Whether `--model` names a GGUF file rather than a catalog entry.
    pub fn is_model_path(model: &str) -> bool {
        let p = Path::new(model);
        model.ends_with(".gguf") || (p.components().count() > 1 && p.exists())
    }

    /// Resolves `--model` for the local backend: a GGUF path, a catalog name, or the default.
    pub fn resolve(model: Option<&str>) -> CliResult<LocalModel> {
        if let Some(m) = model {
            if is_model_path(m) {
                return Ok(LocalModel::Path(m.into()));
            }
        }
        let entry = catalog_entry(model).map_err(|e| match e {
            agentgen_models::PullError::UnknownModel { name, known } => {
                CliError::UnknownModel { name, known }
            }
            other => CliError::Config(other.to_string()),
        })?;
        let quant = entry.quant(None).filter(|_| entry.llama_cpp_cpu).ok_or_else(|| {
            CliError::Config(format!(
                "model `{}` has no GGUF that runs on the CPU; see `agentgen models`",
                entry.id
            ))
        })?;
        Ok(LocalModel::Catalog {
            id: entry.id.clone(),
            path: ModelCache::from_env().path_for(&quant.file),
        })
    }
}

#[cfg(feature = "local")]
pub mod local {
    //! The in-process engine.

    use std::sync::Arc;

    use agentgen_core::ChatBackend;
    use agentgen_local::{KvLayout, LocalBackend, LocalConfig};
    use agentgen_models::{ModelCache, PullOptions};

    use super::model::{resolve, LocalModel};
    use crate::config::{KvLayoutSetting, Settings};
    use crate::error::{CliError, CliResult};

    /// Errors unless the model's file is there, or can be pulled (`no_pull` false, a catalog
    /// model): the error names the path and what to do next.
    pub fn check_present(model: &LocalModel, no_pull: bool) -> CliResult {
        if model.path().is_file() {
            return Ok(());
        }
        match model {
            LocalModel::Path(p) => Err(CliError::ModelFileMissing { path: p.clone() }),
            LocalModel::Catalog { id, path } if no_pull => {
                Err(CliError::ModelMissing { path: path.clone(), name: id.clone() })
            }
            LocalModel::Catalog { .. } => Ok(()),
        }
    }

    /// Loads the model (pulling it first when allowed) on a blocking thread.
    pub async fn build(
        settings: &Settings,
        model: Option<&str>,
        no_pull: bool,
    ) -> CliResult<Arc<dyn ChatBackend>> {
        let resolved = resolve(model)?;
        check_present(&resolved, no_pull)?;
        if let LocalModel::Catalog { id, path } = &resolved {
            if !path.is_file() {
                eprintln!("model {id} is not in the cache; pulling it first");
                let id = id.clone();
                tokio::task::spawn_blocking(move || {
                    agentgen_models::pull_named(
                        Some(&id),
                        None,
                        &ModelCache::from_env(),
                        &PullOptions::default(),
                    )
                })
                .await
                .map_err(|e| CliError::Failed(format!("pull task: {e}")))?
                .map_err(|e| CliError::Failed(format!("pull failed: {e}")))?;
            }
        }
        let mut config = LocalConfig::new(resolved.path());
        config.threads = settings.local.threads;
        config.context_size = settings.local.context_length;
        if let Some(slots) = settings.local.slots {
            config.slots = slots;
        }
        if let Some(layout) = settings.local.kv_layout {
            config.kv_layout = match layout {
                KvLayoutSetting::PerSlot => KvLayout::PerSlot,
                KvLayoutSetting::Shared => KvLayout::Shared,
            };
        }
        let limits = &settings.local;
        config.max_stop_strings = limits.max_stop_strings.unwrap_or(config.max_stop_strings);
        config.max_stop_len = limits.max_stop_len.unwrap_or(config.max_stop_len);
        config.grammar_cache_bytes =
            limits.grammar_cache_bytes.unwrap_or(config.grammar_cache_bytes);
        config.lookup_max_draft = limits.lookup_max_draft.or(config.lookup_max_draft);
        if let LocalModel::Catalog { id, .. } = &resolved {
            config.model_id = Some(id.clone());
        }
        tracing::info!(path = %resolved.path().display(), "loading local model");
        let backend = tokio::task::spawn_blocking(move || LocalBackend::load(config))
            .await
            .map_err(|e| CliError::Failed(format!("model loading task: {e}")))?
            .map_err(|e| CliError::Backend(e.into()))?;
        Ok(Arc::new(backend))
    }
}

#[cfg(feature = "groq")]
mod remote {
    //! Groq and OpenAI-compatible endpoints.

    use std::sync::Arc;

    use agentgen_core::ChatBackend;
    use agentgen_groq::{OpenAiBackend, OpenAiConfig, Provider};

    use super::BackendChoice;
    use crate::config::{BackendKind, Settings, DEFAULT_GROQ_MODEL};
    use crate::error::{CliError, CliResult};

    /// The key to send: to a team file's own base URL only when it may go there.
    fn key<'a>(
        settings: &'a Settings,
        choice: &BackendChoice,
        kind: BackendKind,
    ) -> CliResult<Option<&'a crate::config::Secret>> {
        Ok(match &choice.base_url {
            Some(url) => settings.api_key_for_team_url(kind, url),
            None => settings.api_key(kind)?,
        })
    }

    pub fn build(settings: &Settings, choice: &BackendChoice) -> CliResult<Arc<dyn ChatBackend>> {
        let mut config = match choice.kind {
            BackendKind::Groq => {
                let mut c =
                    OpenAiConfig::groq(choice.model.as_deref().unwrap_or(DEFAULT_GROQ_MODEL));
                if let Some(url) = choice.base_url.as_ref().or(settings.base_url.as_ref()) {
                    c = c.with_base_url(url.as_str());
                }
                if let Some(key) = key(settings, choice, BackendKind::Groq)? {
                    c = c.with_api_key(key.expose());
                }
                c
            }
            _ => {
                let url = choice.base_url.clone().or(settings.base_url.clone()).unwrap_or_default();
                let mut c =
                    OpenAiConfig::compatible(url, choice.model.as_deref().unwrap_or("default"));
                if let Some(name) = &settings.openai.provider {
                    let provider = Provider::from_profile_name(name)
                        .filter(|p| *p != Provider::Groq)
                        .ok_or_else(|| {
                            CliError::Config(format!(
                                "[openai] provider `{name}` is not one of openai, llama-server, \
                                 ollama, vllm, openai-compatible (use --backend groq for Groq)"
                            ))
                        })?;
                    c = c.with_provider(provider);
                }
                if let Some(key) = key(settings, choice, BackendKind::OpenAi)? {
                    c = c.with_api_key(key.expose());
                }
                c
            }
        };
        config.context_length = settings.local.context_length.map(|c| c as usize);
        let backend = OpenAiBackend::new(config).map_err(|e| CliError::Config(e.to_string()))?;
        Ok(Arc::new(backend))
    }
}
