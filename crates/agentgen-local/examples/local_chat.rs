//! One chat completion on the default local model, streamed to stdout.
//!
//! ```text
//! cargo run -p agentgen-local --example local_chat -- "Why is the sky blue?"
//! ```
//!
//! The model is `$AGENTGEN_TEST_MODEL` when set, else the default model in the cache
//! (`agentgen pull` fetches it). Timings go to stderr.

use std::io::Write;

use agentgen_core::{ChatBackend, ChatMessage, ChatRequest, StreamAccumulator};
use agentgen_local::{LocalBackend, LocalConfig};
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let question = std::env::args().nth(1).unwrap_or_else(|| "Write a haiku about Rust.".into());
    let path = match std::env::var_os(agentgen_models::cache::TEST_MODEL_ENV) {
        Some(p) if !p.is_empty() => p.into(),
        _ => agentgen_models::cache::default_model_path(),
    };
    let backend = LocalBackend::load(LocalConfig::new(path))?;
    let req = ChatRequest::new(vec![
        ChatMessage::system("You are a concise assistant."),
        ChatMessage::user(question),
    ])
    .with_temperature(0.0)
    .with_max_tokens(256);
    let mut stream = backend.stream(req).await?;
    let mut acc = StreamAccumulator::new();
    let mut stdout = std::io::stdout();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if let Some(text) = &chunk.content {
            write!(stdout, "{text}")?;
            stdout.flush()?;
        }
        acc.push(&chunk);
    }
    writeln!(stdout)?;
    let resp = acc.finish()?;
    if let Some(t) = resp.timings {
        eprintln!(
            "{} prompt tokens ({} cached) at {:.1} t/s, {} generated at {:.1} t/s, first token after {:.0} ms",
            resp.usage.prompt_tokens,
            resp.usage.cached_tokens,
            t.prompt_per_second,
            t.predicted_n,
            t.predicted_per_second,
            t.time_to_first_token_ms
        );
    }
    Ok(())
}
