//! agentgen-groq: a [`ChatBackend`](agentgen_core::ChatBackend) for Groq and any
//! OpenAI-compatible endpoint (OpenAI, vLLM, TGI, Ollama, llama-server, `agentgen serve`),
//! over reqwest on tokio.
//!
//! [`OpenAiBackend`] sends chat completions (whole or streamed as server-sent events, with
//! tools, tool choice, response formats, stop, seed and token limits), applies Groq's
//! request rules before sending, maps every error status to a
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
//! let groq = GroqBackend::from_env("llama-3.1-8b-instant")?;
//! let answer = groq.complete(ChatRequest::new(vec![ChatMessage::user("Hi!")])).await?;
//! println!("{}", answer.text().unwrap_or_default());
//! # Ok(())
//! # }
//! ```

mod backend;
pub mod config;
pub mod duration;
mod errors;
pub mod ratelimit;
pub mod sse;
mod stream;
pub mod tokens;
mod wire;

pub use backend::{GroqBackend, OpenAiBackend};
pub use config::{ConfigError, OpenAiConfig, Provider, GROQ_API_KEY_VAR, GROQ_BASE_URL};
pub use duration::{parse_go_duration, DurationError};
pub use ratelimit::RateLimits;
pub use tokens::TokenCounter;
pub use wire::{ModelInfo, GROQ_MAX_STOP};
