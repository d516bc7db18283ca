//! One chat completion on Groq.
//!
//! ```text
//! GROQ_API_KEY=… cargo run -p agentgen-groq --example groq_chat -- [model] [prompt]
//! ```
//!
//! The model defaults to `openai/gpt-oss-20b` (Groq keeps Llama for enterprise accounts only
//! since 2026-08-16; `openai/gpt-oss-120b` and `qwen/qwen3.6-27b` are live too). Without a key
//! it says how to set one and exits with status 2.

use std::process::ExitCode;

use agentgen_core::{BackendError, ChatBackend, ChatMessage, ChatRequest};
use agentgen_groq::{ConfigError, GroqBackend};

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let model = args.next().unwrap_or_else(|| "openai/gpt-oss-20b".to_owned());
    let prompt = args.next().unwrap_or_else(|| "In one sentence: why is the sky blue?".to_owned());

    let groq = match GroqBackend::from_env(&model) {
        Ok(groq) => groq,
        Err(ConfigError::MissingApiKey { var }) => {
            eprintln!("{var} is not set: create a key at console.groq.com and run\n  {var}=… cargo run -p agentgen-groq --example groq_chat");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("cannot set up Groq: {e}");
            return ExitCode::FAILURE;
        }
    };

    let req = ChatRequest::new(vec![ChatMessage::user(prompt)]).with_max_tokens(200);
    match groq.complete(req).await {
        Ok(resp) => {
            println!("{}", resp.text().unwrap_or_default());
            eprintln!(
                "[{}: {} prompt + {} completion tokens; {} requests left today]",
                resp.model,
                resp.usage.prompt_tokens,
                resp.usage.completion_tokens,
                groq.rate_limits().remaining_requests.map_or("?".to_owned(), |n| n.to_string()),
            );
            ExitCode::SUCCESS
        }
        Err(BackendError::ModelNotFound { model, available }) => {
            eprintln!(
                "Groq does not offer `{model}` to this key. Try one of: {}",
                available.join(", ")
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("request failed: {e}");
            ExitCode::FAILURE
        }
    }
}
