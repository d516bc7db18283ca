//! The one place configuration is merged: built-in defaults < the user config file <
//! `./agentgen.toml` < `AGENTGEN_*` / `GROQ_API_KEY` / `OPENAI_API_KEY` from the environment <
//! command-line flags. It yields typed [`Settings`]; the library crates get typed structs made
//! from them and never read files or the environment themselves.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use config::{Config, Environment, File, FileFormat};
use serde::{Deserialize, Serialize, Serializer};

use crate::error::{CliError, CliResult};
use crate::key_trust::{self, KeyTrustError, Layers, Origins};

/// The Groq model used when none is configured.
#[cfg(feature = "groq")]
pub const DEFAULT_GROQ_MODEL: &str = "openai/gpt-oss-20b";
/// The file name looked for in the working directory.
pub const PROJECT_FILE: &str = "agentgen.toml";

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// In this process, on the CPU.
    Local,
    /// Groq's API.
    Groq,
    /// Any OpenAI-compatible endpoint.
    #[serde(rename = "openai")]
    OpenAi,
}

impl BackendKind {
    /// The name used in flags and config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Groq => "groq",
            Self::OpenAi => "openai",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackendKind {
    type Err = CliError;
    fn from_str(s: &str) -> Result<Self, CliError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "local" => Ok(Self::Local),
            "groq" => Ok(Self::Groq),
            "openai" | "openai-compatible" => Ok(Self::OpenAi),
            _ => Err(CliError::UnknownBackend(s.to_owned())),
        }
    }
}

/// A secret string: its `Debug` and `Serialize` forms never show the value.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The value itself, for the one place that must send it.
    #[cfg_attr(not(any(feature = "groq", feature = "server")), allow(dead_code))]
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// What is shown instead of the value.
    pub fn masked(&self) -> &'static str {
        "******** (set)"
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.masked())
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.masked())
    }
}

/// Settings of a remote API (`[groq]` or `[openai]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RemoteSettings {
    /// The API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Secret>,
    /// `[openai] provider`: whose rules the endpoint follows — `openai`, `llama-server`,
    /// `ollama`, `vllm` or `openai-compatible` (default: requests are sent as they are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

/// Settings of the in-process engine (`[local]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LocalSettings {
    /// Inference threads; default: physical cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// Context size in tokens (the longest prompt plus answer of one request); default: the
    /// engine's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u32>,
    /// Requests generated at once; default: the engine's (4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<usize>,
    /// How the slots share the KV cache: `per-slot` (default) or `shared`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_layout: Option<KvLayoutSetting>,
    /// Most `stop` strings one request may give; default 16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_stop_strings: Option<usize>,
    /// Longest `stop` string in bytes; default 256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_stop_len: Option<usize>,
    /// Bytes of compiled-grammar text cached; default 8 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grammar_cache_bytes: Option<usize>,
    /// Most tokens lookup decoding drafts in one step; default 16 where the engine's batching
    /// is exact, else 0 (off); 0 turns it off, any other value on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup_max_draft: Option<usize>,
}

/// `[local] kv_layout`: how the engine's slots share the KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KvLayoutSetting {
    /// A KV stream per slot: `slots × context_length` tokens of cache, no slowdown from what
    /// other slots keep cached.
    PerSlot,
    /// One pool of `context_length` tokens for all slots.
    Shared,
}

/// Settings of `agentgen serve` (`[server]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerSettings {
    /// Bind address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Key clients must present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Secret>,
    /// Refuse remote backends.
    #[serde(default)]
    pub local_only: bool,
    // Connection and queue limits; unset ones keep the server's defaults. (CORS origins and
    // extra `Host` names weaken browser defences, so they are flags only, never a file's.)
    /// Seconds to receive a request head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_timeout_s: Option<f64>,
    /// Seconds to receive a request body after its head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_timeout_s: Option<f64>,
    /// Seconds an idle keep-alive connection stays open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_s: Option<f64>,
    /// Seconds a request may wait for a generation slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_timeout_s: Option<f64>,
    /// Seconds a response write may make no progress before the connection is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_stall_timeout_s: Option<f64>,
    /// Open connections at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Requests that may wait for a slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queue: Option<usize>,
    /// Largest request body in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_limit_bytes: Option<usize>,
}

/// Defaults for team runs and chat (`[run]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSettings {
    /// Most messages in a team run (the task counts as one).
    pub max_messages: usize,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Most tokens per answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// Settings of `agentgen pull` (`[pull]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PullSettings {
    /// Refuse files the catalog has no sha256 for.
    #[serde(default)]
    pub verify: bool,
}

/// Trace export (`[telemetry]`); the standard `OTEL_*` environment variables win over it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TelemetrySettings {
    /// The OTLP/HTTP collector's base URL (`/v1/traces` is appended), as
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`. Not taken from `./agentgen.toml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    /// The service name, as `OTEL_SERVICE_NAME` (default `agentgen`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Export message contents, tool arguments and results, as
    /// `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`.
    #[serde(default)]
    pub capture_content: bool,
}

/// The file/env shape before the backend name is checked.
#[derive(Debug, Deserialize)]
struct Raw {
    backend: String,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    groq: RemoteSettings,
    #[serde(default)]
    openai: RemoteSettings,
    #[serde(default)]
    local: LocalSettings,
    server: ServerSettings,
    run: RunSettings,
    #[serde(default)]
    pull: PullSettings,
    #[serde(default)]
    telemetry: TelemetrySettings,
}

/// The merged configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Where the model runs.
    pub backend: BackendKind,
    /// Model name or id; `None` means the backend's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Base URL for remote backends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Groq.
    pub groq: RemoteSettings,
    /// Other OpenAI-compatible endpoints.
    pub openai: RemoteSettings,
    /// The in-process engine.
    pub local: LocalSettings,
    /// `agentgen serve`.
    pub server: ServerSettings,
    /// Runs and chats.
    pub run: RunSettings,
    /// Pulls.
    pub pull: PullSettings,
    /// Trace export.
    pub telemetry: TelemetrySettings,
    /// The config files that were read, lowest precedence first.
    #[serde(skip)]
    pub files: Vec<PathBuf>,
    /// Where `base_url` and the keys came from.
    #[serde(skip)]
    pub origins: Origins,
}

/// Values given on the command line; `None` leaves the lower layers' value.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--backend`.
    pub backend: Option<String>,
    /// `--model`.
    pub model: Option<String>,
    /// `--base-url`.
    pub base_url: Option<String>,
    /// `--temperature`.
    pub temperature: Option<f32>,
    /// `--max-tokens`.
    pub max_tokens: Option<u32>,
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--max-messages`.
    pub max_messages: Option<usize>,
    /// `serve --host`.
    pub host: Option<String>,
    /// `serve --port`.
    pub port: Option<u16>,
    /// `serve --api-key`.
    pub server_api_key: Option<Secret>,
    /// `serve --local-only` (only ever turns it on).
    pub local_only: bool,
}

/// Where the layers come from; [`Sources::from_process`] reads the real ones.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `--config FILE`: replaces the user config file and must exist.
    pub explicit_file: Option<PathBuf>,
    /// The user config file (read when present).
    pub user_file: Option<PathBuf>,
    /// The working directory, where `agentgen.toml` is looked for.
    pub work_dir: Option<PathBuf>,
    /// The environment.
    pub env: HashMap<String, String>,
}

impl Sources {
    /// This process's environment, working directory and user config directory.
    pub fn from_process(explicit_file: Option<PathBuf>) -> Self {
        Self {
            explicit_file,
            user_file: user_config_file(),
            work_dir: std::env::current_dir().ok(),
            env: std::env::vars().collect(),
        }
    }
}

/// The user config file: `<config dir>/agentgen/config.toml`.
pub fn user_config_file() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("agentgen").join("config.toml"))
}

fn config_err(e: config::ConfigError) -> CliError {
    CliError::Config(e.to_string())
}

/// Merges every layer into [`Settings`].
pub fn load(sources: &Sources, flags: &Overrides) -> CliResult<Settings> {
    let mut b = Config::builder()
        .set_default("backend", "local")
        .and_then(|b| b.set_default("server.host", "127.0.0.1"))
        .and_then(|b| b.set_default("server.port", 8080))
        .and_then(|b| b.set_default("server.local_only", false))
        .and_then(|b| b.set_default("run.max_messages", 6))
        .map_err(config_err)?;

    let user_file = match &sources.explicit_file {
        Some(path) => {
            if !path.is_file() {
                return Err(CliError::Config(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            Some(path.clone())
        }
        None => sources.user_file.clone().filter(|p| p.is_file()),
    };
    let project_file =
        sources.work_dir.as_ref().map(|d| d.join(PROJECT_FILE)).filter(|p| p.is_file());
    let files: Vec<PathBuf> = user_file.iter().chain(&project_file).cloned().collect();
    for file in &files {
        b = b.add_source(File::from(file.as_path()).format(FileFormat::Toml).required(true));
    }

    let agentgen_env: HashMap<String, String> = sources
        .env
        .iter()
        .filter(|(k, v)| k.starts_with("AGENTGEN_") && !v.is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    b = b.add_source(
        Environment::with_prefix("AGENTGEN")
            .prefix_separator("_")
            .separator("__")
            .source(Some(agentgen_env)),
    );
    for (var, key) in [("GROQ_API_KEY", "groq.api_key"), ("OPENAI_API_KEY", "openai.api_key")] {
        if let Some(value) = sources.env.get(var).filter(|v| !v.is_empty()) {
            b = b.set_override(key, value.as_str()).map_err(config_err)?;
        }
    }

    let f = flags;
    b = b
        .set_override_option("backend", f.backend.clone())
        .and_then(|b| b.set_override_option("model", f.model.clone()))
        .and_then(|b| b.set_override_option("base_url", f.base_url.clone()))
        .and_then(|b| b.set_override_option("run.temperature", f.temperature.map(f64::from)))
        .and_then(|b| b.set_override_option("run.max_tokens", f.max_tokens.map(u64::from)))
        .and_then(|b| b.set_override_option("run.seed", f.seed))
        .and_then(|b| b.set_override_option("run.max_messages", f.max_messages.map(|n| n as u64)))
        .and_then(|b| b.set_override_option("server.host", f.host.clone()))
        .and_then(|b| b.set_override_option("server.port", f.port.map(u64::from)))
        .and_then(|b| {
            let key = f.server_api_key.as_ref().map(|k| k.expose().to_owned());
            b.set_override_option("server.api_key", key)
        })
        .and_then(|b| b.set_override_option("server.local_only", f.local_only.then_some(true)))
        .map_err(config_err)?;

    let raw: Raw = b.build().and_then(Config::try_deserialize).map_err(config_err)?;
    let backend: BackendKind = raw.backend.parse()?;
    if raw.run.max_messages == 0 {
        return Err(CliError::Config("run.max_messages must be at least 1".into()));
    }
    let origins = Layers {
        user_file: user_file.as_deref(),
        project_file: project_file.as_deref(),
        env: &sources.env,
        base_url_flag: flags.base_url.is_some(),
    }
    .origins();
    Ok(Settings {
        origins,
        backend,
        model: raw.model.filter(|m| !m.trim().is_empty()),
        base_url: raw.base_url.filter(|u| !u.trim().is_empty()),
        groq: raw.groq,
        openai: raw.openai,
        local: raw.local,
        server: raw.server,
        run: raw.run,
        pull: raw.pull,
        telemetry: raw.telemetry,
        files,
    })
}

impl Settings {
    /// The API key for a remote backend, when one is set and may travel to the base URL:
    /// [`KeyTrustError`] when the base URL comes from a less trusted source than the key
    /// (`./agentgen.toml` against the user's file, the environment or a flag) or is plain
    /// http to a host that is not loopback.
    #[cfg_attr(not(feature = "groq"), allow(dead_code))]
    pub fn api_key(&self, kind: BackendKind) -> Result<Option<&Secret>, KeyTrustError> {
        let (key, key_origin, name) = match kind {
            BackendKind::Local => return Ok(None),
            BackendKind::Groq => (&self.groq.api_key, self.origins.groq_key, "the Groq API key"),
            BackendKind::OpenAi => {
                (&self.openai.api_key, self.origins.openai_key, "the OpenAI API key")
            }
        };
        let Some(key) = key else { return Ok(None) };
        if let Some(url) = &self.base_url {
            key_trust::check(name, key_origin, url, self.origins.base_url)?;
        }
        Ok(Some(key))
    }

    /// The key of `kind` for a base URL a team file gave (as untrusted as the project file):
    /// `None` unless the key could travel to a URL of that origin.
    pub fn api_key_for_team_url(&self, kind: BackendKind, url: &str) -> Option<&Secret> {
        let (key, key_origin, name) = match kind {
            BackendKind::Local => return None,
            BackendKind::Groq => (&self.groq.api_key, self.origins.groq_key, "the Groq API key"),
            BackendKind::OpenAi => {
                (&self.openai.api_key, self.origins.openai_key, "the OpenAI API key")
            }
        };
        let key = key.as_ref()?;
        key_trust::check(name, key_origin, url, key_trust::Origin::ProjectFile).ok()?;
        Some(key)
    }

    /// The merged configuration as TOML, secrets masked, with the files it came from.
    pub fn to_masked_toml(&self) -> String {
        let mut out =
            String::from("# merged configuration; files read (lowest precedence first):\n");
        if self.files.is_empty() {
            out.push_str("#   (none: built-in defaults, environment and flags only)\n");
        }
        for f in &self.files {
            out.push_str(&format!("#   {}\n", f.display()));
        }
        match toml::to_string_pretty(self) {
            Ok(body) => out.push_str(&body),
            Err(e) => out.push_str(&format!("# could not render: {e}\n")),
        }
        out
    }

    /// The merged configuration as JSON, secrets masked.
    pub fn to_masked_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            obj.insert(
                "files".into(),
                self.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().into(),
            );
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key_trust::Origin;
    use std::path::Path;

    fn sources(dir: &Path, env: &[(&str, &str)]) -> Sources {
        Sources {
            explicit_file: None,
            user_file: Some(dir.join("user").join("config.toml")),
            work_dir: Some(dir.join("work")),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    fn layout() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("user")).unwrap();
        std::fs::create_dir_all(dir.path().join("work")).unwrap();
        dir
    }

    #[test]
    fn defaults_alone_pick_the_local_backend() {
        let dir = layout();
        let s = load(&sources(dir.path(), &[]), &Overrides::default()).unwrap();
        assert_eq!(s.backend, BackendKind::Local);
        assert_eq!(s.server.host, "127.0.0.1");
        assert_eq!(s.run.max_messages, 6);
        assert!(s.files.is_empty());
    }

    #[test]
    fn each_layer_overrides_the_one_below() {
        let dir = layout();
        std::fs::write(
            dir.path().join("user/config.toml"),
            "backend = \"groq\"\nmodel = \"user-model\"\n[run]\nmax_messages = 9\n[server]\nport = 1111\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("work/agentgen.toml"),
            "model = \"project-model\"\n[server]\nport = 2222\n",
        )
        .unwrap();
        let env = [("AGENTGEN_SERVER__PORT", "3333"), ("AGENTGEN_BASE_URL", "http://env")];
        let s = load(&sources(dir.path(), &env), &Overrides::default()).unwrap();
        assert_eq!(s.backend, BackendKind::Groq, "user file over defaults");
        assert_eq!(s.model.as_deref(), Some("project-model"), "project file over user file");
        assert_eq!(s.run.max_messages, 9);
        assert_eq!(s.server.port, 3333, "environment over files");
        assert_eq!(s.base_url.as_deref(), Some("http://env"));
        assert_eq!(s.files.len(), 2);

        let flags = Overrides {
            model: Some("flag-model".into()),
            port: Some(4444),
            backend: Some("openai".into()),
            ..Overrides::default()
        };
        let s = load(&sources(dir.path(), &env), &flags).unwrap();
        assert_eq!(s.model.as_deref(), Some("flag-model"), "flags over everything");
        assert_eq!(s.server.port, 4444);
        assert_eq!(s.backend, BackendKind::OpenAi);
    }

    #[test]
    fn groq_key_comes_from_the_environment_and_is_masked() {
        let dir = layout();
        let s = load(
            &sources(dir.path(), &[("GROQ_API_KEY", "gsk_secret_value")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(s.groq.api_key.as_ref().map(Secret::expose), Some("gsk_secret_value"));
        let shown = s.to_masked_toml();
        assert!(!shown.contains("gsk_secret_value"), "{shown}");
        assert!(shown.contains("******** (set)"), "{shown}");
        assert!(!format!("{s:?}").contains("gsk_secret_value"));
        assert!(!s.to_masked_json().to_string().contains("gsk_secret_value"));
    }

    #[test]
    fn local_engine_settings_come_from_file_and_environment() {
        let dir = layout();
        std::fs::write(
            dir.path().join("work/agentgen.toml"),
            "[local]\nslots = 2\nkv_layout = \"shared\"\ncontext_length = 4096\nmax_stop_len = 64\n\
             lookup_max_draft = 0\n",
        )
        .unwrap();
        let s = load(&sources(dir.path(), &[]), &Overrides::default()).unwrap();
        assert_eq!(s.local.slots, Some(2));
        assert_eq!(s.local.kv_layout, Some(KvLayoutSetting::Shared));
        assert_eq!(s.local.context_length, Some(4096));
        assert_eq!(s.local.max_stop_len, Some(64));
        assert_eq!(s.local.lookup_max_draft, Some(0));
        let env = [("AGENTGEN_LOCAL__KV_LAYOUT", "per-slot")];
        let s = load(&sources(dir.path(), &env), &Overrides::default()).unwrap();
        assert_eq!(s.local.kv_layout, Some(KvLayoutSetting::PerSlot));
        let env = [("AGENTGEN_LOCAL__KV_LAYOUT", "sideways")];
        let err = load(&sources(dir.path(), &env), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("sideways"), "{err}");
    }

    #[test]
    fn a_project_base_url_never_gets_a_key_from_a_trusted_source() {
        let dir = layout();
        let evil = "base_url = \"https://evil.example/v1\"\n";
        std::fs::write(dir.path().join("work/agentgen.toml"), evil).unwrap();
        let env = [("GROQ_API_KEY", "gsk_from_env"), ("OPENAI_API_KEY", "sk_from_env")];
        let s = load(&sources(dir.path(), &env), &Overrides::default()).unwrap();
        assert_eq!(s.origins.base_url, Origin::ProjectFile);
        assert_eq!(s.origins.groq_key, Origin::Env);
        for kind in [BackendKind::Groq, BackendKind::OpenAi] {
            let err = s.api_key(kind).unwrap_err();
            assert!(matches!(err, KeyTrustError::UntrustedBaseUrl { .. }), "{err}");
            assert!(!err.to_string().contains("_from_env"), "{err}");
        }
        // A key from the user's own file is just as protected.
        std::fs::write(dir.path().join("user/config.toml"), "[groq]\napi_key = \"gsk_user\"\n")
            .unwrap();
        let s = load(&sources(dir.path(), &[]), &Overrides::default()).unwrap();
        assert_eq!(s.origins.groq_key, Origin::UserFile);
        assert!(s.api_key(BackendKind::Groq).is_err());
        // The same URL from the user's side (environment or flag) is trusted.
        let env = [("GROQ_API_KEY", "gsk_from_env"), ("AGENTGEN_BASE_URL", "https://proxy/v1")];
        let s = load(&sources(dir.path(), &env), &Overrides::default()).unwrap();
        assert_eq!(s.api_key(BackendKind::Groq).unwrap().map(Secret::expose), Some("gsk_from_env"));
        let flags =
            Overrides { base_url: Some("http://127.0.0.1:9/v1".into()), ..Overrides::default() };
        let s = load(&sources(dir.path(), &[("GROQ_API_KEY", "k")]), &flags).unwrap();
        assert_eq!(s.origins.base_url, Origin::Flag);
        assert!(s.api_key(BackendKind::Groq).is_ok(), "plain http to loopback is fine");
    }

    #[test]
    fn debug_output_never_shows_a_key() {
        let flags = Overrides {
            server_api_key: Some("srv_secret_1".parse().unwrap()),
            ..Overrides::default()
        };
        assert!(!format!("{flags:?}").contains("srv_secret_1"));
        let dir = layout();
        std::fs::write(
            dir.path().join("user/config.toml"),
            "[openai]\napi_key = \"sk_secret_2\"\n[server]\napi_key = \"srv_secret_3\"\n",
        )
        .unwrap();
        let s = load(&sources(dir.path(), &[]), &flags).unwrap();
        let shown = format!("{s:?} {s:#?}");
        for secret in ["srv_secret_1", "sk_secret_2", "srv_secret_3"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert_eq!(s.server.api_key.as_ref().map(Secret::expose), Some("srv_secret_1"));
    }

    #[test]
    fn an_unknown_backend_is_a_typed_error() {
        let dir = layout();
        let err =
            load(&sources(dir.path(), &[("AGENTGEN_BACKEND", "ollama")]), &Overrides::default())
                .unwrap_err();
        assert!(matches!(err, CliError::UnknownBackend(ref b) if b == "ollama"), "{err}");
    }

    #[test]
    fn a_malformed_config_file_names_the_file() {
        let dir = layout();
        std::fs::write(dir.path().join("work/agentgen.toml"), "backend = \n").unwrap();
        let err = load(&sources(dir.path(), &[]), &Overrides::default()).unwrap_err();
        assert!(matches!(err, CliError::Config(_)));
        assert!(err.to_string().contains("agentgen.toml"), "{err}");
    }

    #[test]
    fn unrelated_agentgen_variables_are_ignored() {
        let dir = layout();
        let env = [("AGENTGEN_HOME", "/tmp/x"), ("AGENTGEN_TEST_MODEL", "/tmp/m.gguf")];
        assert!(load(&sources(dir.path(), &env), &Overrides::default()).is_ok());
    }
}
