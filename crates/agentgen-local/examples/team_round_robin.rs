//! A writer and a reviewer take turns on the default local model until the reviewer says
//! APPROVE (or six messages), streaming each agent's tokens under its name.
//!
//! ```text
//! cargo run -p agentgen-local --example team_round_robin -- "a haiku about autumn"
//! ```
//!
//! The model is `$AGENTGEN_TEST_MODEL` when set, else the default model in the cache
//! (`agentgen pull` fetches it).

use std::io::Write;
use std::sync::Arc;

use agentgen_core::{
    AgentEvent, AssistantAgent, CancellationToken, ChatBackend, RoundRobinGroupChat, StreamItem,
    Team, Termination,
};
use agentgen_local::{LocalBackend, LocalConfig};
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let topic = std::env::args().nth(1).unwrap_or_else(|| "a haiku about autumn".into());
    let path = match std::env::var_os(agentgen_models::cache::TEST_MODEL_ENV) {
        Some(p) if !p.is_empty() => p.into(),
        _ => agentgen_models::cache::default_model_path(),
    };
    let backend: Arc<dyn ChatBackend> = Arc::new(LocalBackend::load(LocalConfig::new(path))?);
    let writer = AssistantAgent::new("writer", backend.clone())
        .with_system_message(Some(
            "You are a writer. Write or revise the text you are asked for. Be brief.".into(),
        ))
        .with_streaming(true)
        .with_temperature(0.3);
    let reviewer = AssistantAgent::new("reviewer", backend.clone())
        .with_system_message(Some(
            "You review the writer's text in one or two sentences. Say APPROVE when it is good."
                .into(),
        ))
        .with_streaming(true)
        .with_temperature(0.3);
    let mut team = RoundRobinGroupChat::new(vec![Box::new(writer), Box::new(reviewer)])?
        .with_termination(Termination::text_mention("APPROVE") | Termination::max_messages(6));

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
            StreamItem::Event(AgentEvent::Message(m)) if m.source == "user" => {
                println!("[user] {}", m.content)
            }
            StreamItem::Event(_) => {}
            StreamItem::Done(result) => {
                println!("\n\nstopped: {}", result.stop_reason.unwrap_or_default());
                eprintln!(
                    "{} messages, {} tokens",
                    result.messages.len(),
                    result.usage.total_tokens
                );
            }
        }
    }
    Ok(())
}
