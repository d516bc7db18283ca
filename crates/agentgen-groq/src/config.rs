//! How to reach an endpoint: [`OpenAiConfig`], [`Provider`] and the [`ConfigError`]s of
//! building a backend from them.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::profile::{self, ProviderProfile};

/// Groq's OpenAI-compatible base URL.
pub const GROQ_BASE_URL: &str = "https://api.groq.com/openai/v1";

/// The environment variable Groq's key is read from.
pub const GROQ_API_KEY_VAR: &str = "GROQ_API_KEY";

/// Which dialect of the OpenAI API the endpoint speaks; each has a
/// [`ProviderProfile`] stating its rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Provider {
    /// Groq ([`profile::GROQ`]): no `messages[].name`, at most 4 stop sequences,
    /// `json_schema` neither streamed nor with tools and strict only on gpt-oss, no logprobs,
    /// `n` = 1, `max_completion_tokens`, a key required.
    #[default]
    Groq,
    /// OpenAI's own API ([`profile::OPENAI`]).
    OpenAi,
    /// llama.cpp's llama-server or `agentgen serve` ([`profile::LLAMA_SERVER`]).
    LlamaServer,
    /// Ollama ([`profile::OLLAMA`]).
    Ollama,
    /// vLLM ([`profile::VLLM`]).
    Vllm,
    /// Any other OpenAI-compatible server ([`profile::OPENAI_COMPATIBLE`]): the request is
    /// sent as it is, with `max_tokens`; the key is optional.
    OpenAiCompatible,
}

impl Provider {
    /// The short name used in [`agentgen_core::BackendInfo::name`]: `groq` for Groq,
    /// `openai` for every other OpenAI-compatible endpoint.
    pub fn name(self) -> &'static str {
        match self {
            Self::Groq => "groq",
            _ => "openai",
        }
    }

    /// The rules of this dialect.
    pub fn profile(self) -> &'static ProviderProfile {
        match self {
            Self::Groq => &profile::GROQ,
            Self::OpenAi => &profile::OPENAI,
            Self::LlamaServer => &profile::LLAMA_SERVER,
            Self::Ollama => &profile::OLLAMA,
            Self::Vllm => &profile::VLLM,
            Self::OpenAiCompatible => &profile::OPENAI_COMPATIBLE,
        }
    }

    /// The provider whose profile is named `name` (`groq`, `openai`, `llama-server`,
    /// `ollama`, `vllm`, `openai-compatible`).
    pub fn from_profile_name(name: &str) -> Option<Self> {
        [
            Self::Groq,
            Self::OpenAi,
            Self::LlamaServer,
            Self::Ollama,
            Self::Vllm,
            Self::OpenAiCompatible,
        ]
        .into_iter()
        .find(|p| p.profile().name == name)
    }
}

/// Everything an [`OpenAiBackend`](crate::OpenAiBackend) needs to reach one endpoint. Its
/// `Debug` form shows whether a key is set, never the key.
#[derive(Clone, PartialEq)]
pub struct OpenAiConfig {
    /// Base URL up to and including the version, e.g. `https://api.groq.com/openai/v1`;
    /// routes such as `/chat/completions` are appended.
    pub base_url: String,
    /// Bearer key. Required where the provider's profile says so (Groq, OpenAI).
    pub api_key: Option<String>,
    /// The model used when a request names none.
    pub model: String,
    /// The API dialect.
    pub provider: Provider,
    /// Retries after the first attempt for 408, 409, 429, 5xx, timeouts and connection
    /// errors (default 2).
    pub max_retries: u32,
    /// The first backoff between attempts (default 0.5 s); it doubles each retry.
    pub initial_backoff: Duration,
    /// The longest backoff between attempts (default 8 s).
    pub max_backoff: Duration,
    /// The longest `retry-after` honoured (default 60 s); a 429 asking for longer is
    /// returned at once, so a fallback chain can move on.
    pub max_retry_after: Duration,
    /// Time allowed for one attempt to answer: the whole body for a completion, the
    /// headers and then each gap between chunks for a stream (default 120 s).
    pub request_timeout: Duration,
    /// Time allowed to open a connection (default 10 s).
    pub connect_timeout: Duration,
    /// Wait before sending while the last rate-limit headers say the request or token
    /// allowance is spent, until it resets (waits over `max_retry_after` fail instead).
    pub pace_requests: bool,
    /// A Hugging Face `tokenizer.json` for exact token counts; an estimate without it.
    pub tokenizer_path: Option<PathBuf>,
    /// Context size of the model, when known (reported in the backend's capabilities).
    pub context_length: Option<usize>,
    /// Extra top-level body fields sent with every request (e.g. Groq's `service_tier` or
    /// `reasoning_effort`). For Groq, `n` other than 1, `logprobs`, `top_logprobs` and
    /// `logit_bias` are refused before sending.
    pub extra_body: Map<String, Value>,
}

impl std::fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            base_url,
            api_key,
            model,
            provider,
            max_retries,
            initial_backoff,
            max_backoff,
            max_retry_after,
            request_timeout,
            connect_timeout,
            pace_requests,
            tokenizer_path,
            context_length,
            extra_body,
        } = self;
        f.debug_struct("OpenAiConfig")
            .field("base_url", base_url)
            .field("api_key", &api_key.as_ref().map(|_| "******** (set)"))
            .field("model", model)
            .field("provider", provider)
            .field("max_retries", max_retries)
            .field("initial_backoff", initial_backoff)
            .field("max_backoff", max_backoff)
            .field("max_retry_after", max_retry_after)
            .field("request_timeout", request_timeout)
            .field("connect_timeout", connect_timeout)
            .field("pace_requests", pace_requests)
            .field("tokenizer_path", tokenizer_path)
            .field("context_length", context_length)
            .field("extra_body", extra_body)
            .finish()
    }
}

impl OpenAiConfig {
    /// Groq at its public URL with this model and no key yet: set one with
    /// [`with_api_key`](Self::with_api_key) or use
    /// [`OpenAiBackend::from_env`](crate::OpenAiBackend::from_env).
    pub fn groq(model: impl Into<String>) -> Self {
        Self::new(GROQ_BASE_URL, model, Provider::Groq)
    }

    /// Any OpenAI-compatible server at `base_url` (e.g. `http://127.0.0.1:8080/v1`).
    pub fn compatible(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self::new(base_url, model, Provider::OpenAiCompatible)
    }

    fn new(base_url: impl Into<String>, model: impl Into<String>, provider: Provider) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: None,
            model: model.into(),
            provider,
            max_retries: 2,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
            request_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            pace_requests: false,
            tokenizer_path: None,
            context_length: None,
            extra_body: Map::new(),
        }
    }

    /// Sets the key.
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Reads the key from `GROQ_API_KEY` when it is set and not blank.
    pub fn with_api_key_from_env(mut self) -> Self {
        if let Ok(key) = std::env::var(GROQ_API_KEY_VAR) {
            if !key.trim().is_empty() {
                self.api_key = Some(key.trim().to_owned());
            }
        }
        self
    }

    /// Sets the provider (and so the request rules), keeping the URL and key.
    pub fn with_provider(mut self, provider: Provider) -> Self {
        self.provider = provider;
        self
    }

    /// Sets the base URL (e.g. a test server speaking Groq's format).
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// Sets the number of retries.
    pub fn with_max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = max_retries;
        self
    }

    /// Sets the first backoff and its cap.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max;
        self
    }

    /// Sets the per-attempt timeout.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Turns pacing on or off.
    pub fn with_pacing(mut self, pace: bool) -> Self {
        self.pace_requests = pace;
        self
    }

    /// Counts tokens with this `tokenizer.json`.
    pub fn with_tokenizer(mut self, path: impl Into<PathBuf>) -> Self {
        self.tokenizer_path = Some(path.into());
        self
    }

    /// Adds a top-level body field sent with every request.
    pub fn with_extra(mut self, key: impl Into<String>, value: Value) -> Self {
        self.extra_body.insert(key.into(), value);
        self
    }
}

/// Why a backend could not be built from its config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The provider needs a key and none was given.
    #[error("no API key: set {var} or put a key in the config")]
    MissingApiKey {
        /// The environment variable that was read.
        var: &'static str,
    },
    /// The base URL is not an absolute http(s) URL.
    #[error("base URL `{url}` is not usable: {reason}")]
    InvalidBaseUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The key cannot go in an HTTP header.
    #[error("the API key contains characters an HTTP header cannot carry")]
    InvalidApiKey,
    /// The tokenizer file could not be loaded.
    #[error("tokenizer `{path}` could not be loaded: {message}")]
    Tokenizer {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// An extra body field breaks the provider's rules or shadows a request field.
    #[error("extra body field `{field}`: {message}")]
    InvalidExtra {
        /// The field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(String),
}
