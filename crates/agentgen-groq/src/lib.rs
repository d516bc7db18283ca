//! agentgen-groq: the OpenAI-compatible client, a [`ChatBackend`](agentgen_core::ChatBackend)
//! over reqwest on tokio, with Groq as its first provider profile (then OpenAI, llama-server,
//! Ollama, vLLM and any other OpenAI-compatible endpoint, `agentgen serve` included).
//!
//! [`OpenAiBackend`] sends chat completions (whole or streamed as server-sent events, with
//! tools, tool choice, response formats, stop, seed and token limits) in core's typed wire
//! format ([`agentgen_core::openai`]), applies its provider's [`ProviderProfile`] before
//! sending, maps every error status to a
//! [`BackendError`](agentgen_core::BackendError) a caller can act on, retries transient
//! failures with backoff while honouring `retry-after`, remembers the `x-ratelimit-*`
//! headers (optionally pacing requests by them), counts tokens with a `tokenizer.json` or
//! an estimate, and lists the endpoint's models.
//!
//! ```no_run
//! use agentgen_core::{ChatBackend, ChatMessage, ChatRequest};
//! use agentgen_groq::GroqBackend;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let groq = GroqBackend::from_env("openai/gpt-oss-20b")?;
//! let answer = groq.complete(ChatRequest::new(vec![ChatMessage::user("Hi!")])).await?;
//! println!("{}", answer.text().unwrap_or_default());
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod backend;
pub mod config;
pub mod duration;
mod errors;
pub mod profile;
pub mod ratelimit;
pub mod sse;
mod stream;
pub mod tokens;
mod wire;

pub use backend::{GroqBackend, OpenAiBackend};
pub use config::{ConfigError, OpenAiConfig, Provider, GROQ_API_KEY_VAR, GROQ_BASE_URL};
pub use duration::{parse_go_duration, DurationError};
pub use profile::ProviderProfile;
pub use ratelimit::RateLimits;
pub use tokens::TokenCounter;
pub use wire::{ModelInfo, GROQ_MAX_STOP};
