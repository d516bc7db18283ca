//! The same two-agent team on Groq or on the local CPU model, chosen by a flag: the agent code
//! below never changes, only the backend handed to it.
//!
//! ```text
//! cargo run -p agentgen-cli --example team_groq_or_local -- --local "a haiku about autumn"
//! GROQ_API_KEY=... cargo run -p agentgen-cli --example team_groq_or_local -- --groq "a haiku"
//! ```
//!
//! `--groq` takes the model from `GROQ_MODEL` (default `openai/gpt-oss-20b`); `--local` uses
//! `$AGENTGEN_TEST_MODEL` or the default model in the cache (`agentgen pull` fetches it).

use std::io::Write;
use std::sync::Arc;

use agentgen_core::{
    AgentEvent, AssistantAgent, CancellationToken, ChatBackend, RoundRobinGroupChat, StreamItem,
    Team, Termination,
};
use futures::StreamExt;

fn backend(use_groq: bool) -> Result<Arc<dyn ChatBackend>, Box<dyn std::error::Error>> {
    if use_groq {
        let model = std::env::var("GROQ_MODEL").unwrap_or_else(|_| "openai/gpt-oss-20b".into());
        let config = agentgen_groq::OpenAiConfig::groq(model).with_api_key_from_env();
        return Ok(Arc::new(agentgen_groq::OpenAiBackend::new(config)?));
    }
    let path = match std::env::var_os(agentgen_models::cache::TEST_MODEL_ENV) {
        Some(p) if !p.is_empty() => p.into(),
        _ => agentgen_models::cache::default_model_path(),
    };
    Ok(Arc::new(agentgen_local::LocalBackend::load(agentgen_local::LocalConfig::new(path))?))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut use_groq = false;
    let mut topic = String::from("a haiku about autumn");
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--groq" => use_groq = true,
            "--local" => use_groq = false,
            other => topic = other.to_owned(),
        }
    }
    let backend = backend(use_groq)?;
    eprintln!("backend: {} ({})", backend.info().name, backend.info().model);

    let writer = AssistantAgent::new("writer", backend.clone())
        .with_system_message(Some(
            "You are a writer. Write what you are asked for, briefly.".into(),
        ))
        .with_streaming(true);
    let reviewer = AssistantAgent::new("reviewer", backend)
        .with_system_message(Some(
            "You review the writer's text in one sentence. Say APPROVE when it is good.".into(),
        ))
        .with_streaming(true);
    let mut team = RoundRobinGroupChat::new(vec![Box::new(writer), Box::new(reviewer)])?
        .with_termination(Termination::text_mention("APPROVE") | Termination::max_messages(4));

    let mut stream = team.run_stream(format!("Write {topic}.").into(), CancellationToken::new());
    let mut speaker = String::new();
    while let Some(item) = stream.next().await {
        match item? {
            StreamItem::Event(AgentEvent::TokenChunk { source, text }) => {
                if source != speaker {
                    print!("\n[{source}] ");
                    speaker = source;
                }
                print!("{text}");
                std::io::stdout().flush()?;
            }
            StreamItem::Event(_) => {}
            StreamItem::Done(result) => {
                println!("\n\nstopped: {}", result.stop_reason.unwrap_or_default());
            }
        }
    }
    Ok(())
}
