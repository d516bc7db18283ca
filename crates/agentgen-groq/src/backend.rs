//! [`OpenAiBackend`]: the [`ChatBackend`] over HTTP, with retries, timeouts, rate-limit
//! memory and pacing.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use agentgen_core::{
    BackendError, BackendInfo, Capabilities, ChatBackend, ChatMessage, ChatRequest, ChatResponse,
    ChatStream, Locality,
};
use async_trait::async_trait;
use bytes::Bytes;
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use reqwest::{Response, StatusCode};
use serde_json::Value;
use url::Url;

use crate::config::{ConfigError, OpenAiConfig, GROQ_API_KEY_VAR};
use crate::errors::{map_status, should_retry_status, ErrorBody};
use crate::ratelimit::RateLimits;
use crate::stream::{chat_stream, error_text};
use crate::tokens::TokenCounter;
use crate::wire::{parse_completion, parse_models, request_body, ModelInfo};

/// A chat backend for Groq or any OpenAI-compatible endpoint.
///
/// Cheap to share behind an `Arc`; all state (the connection pool and the last rate-limit
/// headers) is shared by its clones too.
#[derive(Debug, Clone)]
pub struct OpenAiBackend {
    config: OpenAiConfig,
    http: reqwest::Client,
    info: BackendInfo,
    chat_url: Url,
    models_url: Url,
    limits: Arc<Mutex<RateLimits>>,
    tokens: TokenCounter,
}

/// The Groq flavour of [`OpenAiBackend`]: `GroqBackend::from_env("openai/gpt-oss-20b")`.
pub type GroqBackend = OpenAiBackend;

/// One failed attempt, and whether another may succeed.
struct Failure {
    error: BackendError,
    retry: bool,
}

/// The largest whole (non-streamed) answer read from an endpoint.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// The most of an error body read (the rest is dropped: it only feeds the error message).
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// Why a bounded body read stopped.
enum BodyRead {
    TooLarge,
    Failed(String),
}

/// Reads a body up to `limit` bytes; a longer one is [`BodyRead::TooLarge`].
async fn read_limited(mut resp: Response, limit: usize) -> Result<Bytes, BodyRead> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(BodyRead::TooLarge);
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| BodyRead::Failed(error_text(&e)))? {
        if out.len() + chunk.len() > limit {
            return Err(BodyRead::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

/// An error body, its first [`MAX_ERROR_BODY_BYTES`] at most.
async fn read_error_body(mut resp: Response) -> Bytes {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = MAX_ERROR_BODY_BYTES - out.len();
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= MAX_ERROR_BODY_BYTES {
            break;
        }
    }
    Bytes::from(out)
}

impl Failure {
    fn fatal(error: BackendError) -> Self {
        Self { error, retry: false }
    }
}

impl OpenAiBackend {
    /// Builds a backend; checks the URL, the key (required for Groq), the extra body
    /// fields and the tokenizer file.
    pub fn new(config: OpenAiConfig) -> Result<Self, ConfigError> {
        let base = parse_base(&config.base_url)?;
        let route = |path: &str| {
            base.join(path).map_err(|e| ConfigError::InvalidBaseUrl {
                url: config.base_url.clone(),
                reason: e.to_string(),
            })
        };
        let (chat_url, models_url) = (route("chat/completions")?, route("models")?);
        let key = config.api_key.as_deref().map(str::trim).filter(|k| !k.is_empty());
        let profile = config.provider.profile();
        if profile.key_required && key.is_none() {
            return Err(ConfigError::MissingApiKey { var: GROQ_API_KEY_VAR });
        }
        profile.check_extra(&config.extra_body)?;
        let mut headers = HeaderMap::new();
        if let Some(key) = key {
            let mut value = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| ConfigError::InvalidApiKey)?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("agentgen/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| ConfigError::Client(error_text(&e)))?;
        let tokens = match &config.tokenizer_path {
            Some(path) => TokenCounter::from_file(path)?,
            None => TokenCounter::Estimate,
        };
        let info = BackendInfo {
            name: config.provider.name().to_owned(),
            model: config.model.clone(),
            locality: Locality::Remote { endpoint: config.base_url.clone() },
            capabilities: Capabilities {
                tools: true,
                constrained_tool_calls: false,
                json_output: true,
                streaming: true,
                context_length: config.context_length,
                sampling: profile.sampling.to_vec(),
            },
        };
        Ok(Self { config, http, info, chat_url, models_url, limits: Arc::default(), tokens })
    }

    /// Groq with this model and the key from `GROQ_API_KEY`
    /// ([`ConfigError::MissingApiKey`] when it is unset).
    pub fn from_env(model: impl Into<String>) -> Result<Self, ConfigError> {
        Self::new(OpenAiConfig::groq(model).with_api_key_from_env())
    }

    /// The config it was built from.
    pub fn config(&self) -> &OpenAiConfig {
        &self.config
    }

    /// What the last response's `x-ratelimit-*` headers said (all `None` before any).
    pub fn rate_limits(&self) -> RateLimits {
        *self.limits.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The models the endpoint offers (`GET /models`), with the same retries as chat.
    pub async fn list_models(&self) -> Result<Vec<ModelInfo>, BackendError> {
        self.with_retries(0, || self.fetch_models()).await
    }

    async fn fetch_models(&self) -> Result<Vec<ModelInfo>, Failure> {
        let url = self.models_url.clone();
        let attempt = async {
            let resp = self.http.get(url).send().await.map_err(send_failure)?;
            let (bytes, _) = self.read_ok(resp, "").await?;
            parse_models(&bytes).map_err(Failure::fatal)
        };
        self.timed(attempt).await
    }

    /// Sends `attempt` until it succeeds, fails for good, or the retries run out.
    async fn with_retries<T, F, Fut>(&self, tokens: u64, mut attempt: F) -> Result<T, BackendError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut retries = 0;
        loop {
            self.pace(tokens).await?;
            let failure = match attempt().await {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            if !failure.retry || retries >= self.config.max_retries {
                return Err(failure.error);
            }
            let delay = match failure.error.retry_after() {
                Some(wait) if wait > self.config.max_retry_after => return Err(failure.error),
                Some(wait) => wait,
                None => self.backoff(retries),
            };
            retries += 1;
            tracing::warn!(
                error = %failure.error, retry = retries, of = self.config.max_retries,
                delay_ms = delay.as_millis() as u64, "retrying request"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// Exponential backoff with up to 25 % jitter taken off.
    fn backoff(&self, retries: u32) -> Duration {
        let base = self.config.initial_backoff.saturating_mul(1u32 << retries.min(16));
        let capped = base.min(self.config.max_backoff);
        capped.mul_f64(1.0 - rand::thread_rng().gen_range(0.0..0.25))
    }

    /// With pacing on, waits while the remembered allowance cannot cover the request, then
    /// books the request against it (so concurrent requests pace each other too).
    async fn pace(&self, tokens: u64) -> Result<(), BackendError> {
        if !self.config.pace_requests {
            return Ok(());
        }
        loop {
            let wait = {
                let mut limits = self.limits.lock().unwrap_or_else(PoisonError::into_inner);
                match limits.wait_before(tokens, Instant::now()) {
                    None => {
                        limits.remaining_requests =
                            limits.remaining_requests.map(|r| r.saturating_sub(1));
                        limits.remaining_tokens =
                            limits.remaining_tokens.map(|r| r.saturating_sub(tokens));
                        return Ok(());
                    }
                    Some(wait) => wait,
                }
            };
            if wait > self.config.max_retry_after {
                return Err(BackendError::RateLimited {
                    retry_after: Some(wait),
                    message: "the rate-limit allowance is spent until its reset (paced locally)"
                        .into(),
                });
            }
            tracing::info!(
                wait_ms = wait.as_millis() as u64,
                "pacing: waiting for the rate limit to reset"
            );
            tokio::time::sleep(wait).await;
            // Past the reset the allowance counts as refilled, so the loop goes through.
        }
    }

    /// Runs one attempt under the request timeout.
    async fn timed<T>(
        &self,
        attempt: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        let limit = self.config.request_timeout;
        tokio::time::timeout(limit, attempt)
            .await
            .unwrap_or(Err(Failure { error: BackendError::Timeout(limit), retry: true }))
    }

    /// Remembers the rate-limit headers of any response.
    fn observe(&self, headers: &HeaderMap) {
        if let Some(seen) = RateLimits::from_headers(headers, Instant::now()) {
            *self.limits.lock().unwrap_or_else(PoisonError::into_inner) = seen;
        }
    }

    /// A success's body, or the failure an error status means.
    async fn read_ok(&self, resp: Response, model: &str) -> Result<(Bytes, HeaderMap), Failure> {
        let status = resp.status();
        let headers = resp.headers().clone();
        self.observe(&headers);
        if status.is_success() {
            let bytes = read_limited(resp, MAX_ANSWER_BYTES).await.map_err(|e| match e {
                BodyRead::TooLarge => Failure::fatal(BackendError::Protocol(format!(
                    "the answer is larger than {MAX_ANSWER_BYTES} bytes"
                ))),
                BodyRead::Failed(e) => Failure {
                    error: BackendError::unavailable(format!("reading the answer: {e}")),
                    retry: true,
                },
            })?;
            return Ok((bytes, headers));
        }
        let bytes = read_error_body(resp).await;
        Err(self.status_failure(status, &headers, &bytes, model))
    }

    fn status_failure(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        model: &str,
    ) -> Failure {
        let body = ErrorBody::parse(body);
        let limits = self.rate_limits();
        let error = map_status(status.as_u16(), headers, &body, model, Some(&limits));
        tracing::debug!(status = status.as_u16(), %error, "error answer");
        Failure { error, retry: should_retry_status(status.as_u16(), headers) }
    }

    fn body_for(
        &self,
        req: &ChatRequest,
        stream: bool,
    ) -> Result<(Value, String, u64), BackendError> {
        let body = request_body(
            self.config.provider.profile(),
            &self.config.model,
            req,
            stream,
            &self.config.extra_body,
        )?;
        let model = body.get("model").and_then(Value::as_str).unwrap_or_default().to_owned();
        let prompt = self.tokens.count_messages(&req.messages).unwrap_or(0) as u64;
        Ok((body, model, prompt + u64::from(req.max_tokens.unwrap_or(0))))
    }

    /// Where the provider treats a named `tool_choice` as `auto` (llama-server), an answer
    /// that does not call the named function is [`BackendError::ToolUseFailed`], as a
    /// provider that enforces the choice would have made sure it never is.
    fn check_named_choice(
        &self,
        req: &ChatRequest,
        resp: ChatResponse,
    ) -> Result<ChatResponse, BackendError> {
        let Some(agentgen_core::ToolChoice::Function(name)) = &req.tool_choice else {
            return Ok(resp);
        };
        if !self.config.provider.profile().named_tool_choice_is_auto
            || resp.tool_calls().iter().any(|c| &c.function.name == name)
        {
            return Ok(resp);
        }
        Err(BackendError::ToolUseFailed {
            message: format!(
                "tool_choice named `{name}`, but the {} server treats a named choice as auto and \
                 the model did not call it",
                self.config.provider.profile().name
            ),
            failed_generation: resp.text().map(str::to_owned),
        })
    }

    /// Fills in what `GET /models` offers when a model was not found.
    async fn explain(&self, error: BackendError) -> BackendError {
        match error {
            BackendError::ModelNotFound { model, available } if available.is_empty() => {
                let available = match self.fetch_models().await {
                    Ok(models) => models.into_iter().map(|m| m.id).collect(),
                    Err(f) => {
                        tracing::debug!(error = %f.error, "could not list models");
                        Vec::new()
                    }
                };
                BackendError::ModelNotFound { model, available }
            }
            other => other,
        }
    }
}

fn parse_base(base_url: &str) -> Result<Url, ConfigError> {
    let bad = |reason: &str| ConfigError::InvalidBaseUrl {
        url: base_url.to_owned(),
        reason: reason.into(),
    };
    let mut url = Url::parse(base_url.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a base URL takes no query or fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// The W3C `traceparent` (and `tracestate`) of the current span, when a trace is being
/// exported: the server at the other end joins the caller's trace. Empty otherwise.
fn trace_headers() -> HeaderMap {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let mut headers = HeaderMap::new();
    let span = tracing::Span::current();
    if !span.is_disabled() {
        let cx = span.context();
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&cx, &mut opentelemetry_http::HeaderInjector(&mut headers))
        });
    }
    headers
}

/// A request that got no answer: connection refused or reset, DNS, TLS… all retryable.
fn send_failure(e: reqwest::Error) -> Failure {
    let text = error_text(&e);
    let error = if e.is_timeout() {
        BackendError::unavailable(format!("connect timed out: {text}"))
    } else {
        BackendError::unavailable(format!("no answer: {text}"))
    };
    Failure { error, retry: true }
}

#[async_trait]
impl ChatBackend for OpenAiBackend {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    async fn complete(&self, req: ChatRequest) -> Result<ChatResponse, BackendError> {
        let (body, model, tokens) = self.body_for(&req, false)?;
        tracing::debug!(url = %self.chat_url, model, "chat completion");
        let trace = trace_headers();
        let attempt = || async {
            let send = async {
                let resp = self
                    .http
                    .post(self.chat_url.clone())
                    .headers(trace.clone())
                    .json(&body)
                    .send()
                    .await
                    .map_err(send_failure)?;
                let (bytes, _) = self.read_ok(resp, &model).await?;
                parse_completion(&bytes).map_err(Failure::fatal)
            };
            self.timed(send).await
        };
        match self.with_retries(tokens, attempt).await {
            Ok(resp) => self.check_named_choice(&req, resp),
            Err(e) => Err(self.explain(e).await),
        }
    }

    async fn stream(&self, req: ChatRequest) -> Result<ChatStream, BackendError> {
        let (body, model, tokens) = self.body_for(&req, true)?;
        tracing::debug!(url = %self.chat_url, model, "streamed chat completion");
        let trace = trace_headers();
        let attempt = || async {
            let send = async {
                let resp = self
                    .http
                    .post(self.chat_url.clone())
                    .headers(trace.clone())
                    .json(&body)
                    .send()
                    .await
                    .map_err(send_failure)?;
                let status = resp.status();
                self.observe(resp.headers());
                if status.is_success() {
                    return Ok(resp);
                }
                let headers = resp.headers().clone();
                let bytes = read_error_body(resp).await;
                Err(self.status_failure(status, &headers, &bytes, &model))
            };
            self.timed(send).await
        };
        match self.with_retries(tokens, attempt).await {
            Ok(resp) => Ok(chat_stream(Box::pin(resp.bytes_stream()), self.config.request_timeout)),
            Err(e) => Err(self.explain(e).await),
        }
    }

    async fn count_tokens(&self, messages: &[ChatMessage]) -> Result<Option<usize>, BackendError> {
        self.tokens.count_messages(messages).map(Some).map_err(BackendError::Internal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_key() {
        let config = OpenAiConfig::groq("m").with_api_key("gsk_debug_secret");
        let backend = OpenAiBackend::new(config.clone()).unwrap();
        for shown in [format!("{config:?}"), format!("{config:#?}"), format!("{backend:?}")] {
            assert!(!shown.contains("gsk_debug_secret"), "{shown}");
            assert!(shown.contains("(set)") || shown.contains("Sensitive"), "{shown}");
        }
        assert!(format!("{:?}", OpenAiConfig::groq("m")).contains("api_key: None"));
    }

    #[test]
    fn groq_needs_a_key() {
        let err = OpenAiBackend::new(OpenAiConfig::groq("m")).unwrap_err();
        assert_eq!(err, ConfigError::MissingApiKey { var: "GROQ_API_KEY" });
        let ok = OpenAiBackend::new(OpenAiConfig::groq("m").with_api_key("k")).unwrap();
        assert_eq!(ok.info().name, "groq");
        assert_eq!(
            ok.info().locality,
            Locality::Remote { endpoint: "https://api.groq.com/openai/v1".into() }
        );
        assert_eq!(ok.chat_url.as_str(), "https://api.groq.com/openai/v1/chat/completions");
    }

    #[test]
    fn compatible_servers_need_no_key_but_a_usable_url() {
        let b =
            OpenAiBackend::new(OpenAiConfig::compatible("http://127.0.0.1:9/v1/", "m")).unwrap();
        assert_eq!(b.models_url.as_str(), "http://127.0.0.1:9/v1/models");
        for bad in ["not a url", "ftp://host/v1", "http://host/v1?x=1"] {
            let err = OpenAiBackend::new(OpenAiConfig::compatible(bad, "m")).unwrap_err();
            assert!(matches!(err, ConfigError::InvalidBaseUrl { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let cfg = OpenAiConfig::compatible("http://127.0.0.1:9/v1", "m")
            .with_backoff(Duration::from_millis(100), Duration::from_millis(350));
        let b = OpenAiBackend::new(cfg).unwrap();
        let in_range = |d: Duration, hi: u64| {
            d <= Duration::from_millis(hi) && d >= Duration::from_millis(hi * 3 / 4)
        };
        assert!(in_range(b.backoff(0), 100));
        assert!(in_range(b.backoff(1), 200));
        assert!(in_range(b.backoff(2), 350));
        assert!(in_range(b.backoff(30), 350));
    }

    #[tokio::test]
    async fn estimates_tokens_without_a_tokenizer() {
        let b = OpenAiBackend::new(OpenAiConfig::compatible("http://127.0.0.1:9/v1", "m")).unwrap();
        let n = b.count_tokens(&[ChatMessage::user("abcdefgh")]).await.unwrap();
        assert_eq!(n, Some(2 + crate::tokens::PER_MESSAGE_OVERHEAD + crate::tokens::REPLY_PRIMING));
    }

    #[tokio::test]
    async fn counts_exactly_with_a_configured_tokenizer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        let vocab = r#"{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
            "decoder": null, "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "hi": 1},
            "unk_token": "[UNK]"}}"#;
        std::fs::write(&path, vocab).unwrap();
        let cfg = OpenAiConfig::compatible("http://127.0.0.1:9/v1", "m").with_tokenizer(&path);
        let b = OpenAiBackend::new(cfg).unwrap();
        let n = b.count_tokens(&[ChatMessage::user("hi there everyone")]).await.unwrap();
        assert_eq!(n, Some(3 + crate::tokens::PER_MESSAGE_OVERHEAD + crate::tokens::REPLY_PRIMING));
        let missing = OpenAiConfig::compatible("http://127.0.0.1:9/v1", "m")
            .with_tokenizer(dir.path().join("absent.json"));
        assert!(matches!(OpenAiBackend::new(missing), Err(ConfigError::Tokenizer { .. })));
    }
}
