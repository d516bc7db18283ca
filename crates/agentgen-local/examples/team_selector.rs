//! A selector team on the default local model: the model itself picks who speaks next among
//! a planner, a coder and a tester (unusable picks fall back to the next in turn).
//!
//! ```text
//! cargo run -p agentgen-local --example team_selector -- "reverse a string in Python"
//! ```
//!
//! The model is `$AGENTGEN_TEST_MODEL` when set, else the default model in the cache.

use std::sync::Arc;

use agentgen_core::{
    AgentEvent, AssistantAgent, CancellationToken, ChatAgent, ChatBackend, SelectorGroupChat,
    StreamItem, Team, Termination,
};
use agentgen_local::{LocalBackend, LocalConfig};
use futures::StreamExt;

fn agent(backend: &Arc<dyn ChatBackend>, name: &str, role: &str) -> Box<dyn ChatAgent> {
    Box::new(
        AssistantAgent::new(name, backend.clone())
            .with_system_message(Some(format!("You are the {name}. {role} Be brief.")))
            .with_description(role)
            .with_temperature(0.0),
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let task = std::env::args().nth(1).unwrap_or_else(|| "reverse a string in Python".into());
    let path = match std::env::var_os(agentgen_models::cache::TEST_MODEL_ENV) {
        Some(p) if !p.is_empty() => p.into(),
        _ => agentgen_models::cache::default_model_path(),
    };
    let backend: Arc<dyn ChatBackend> = Arc::new(LocalBackend::load(LocalConfig::new(path))?);
    let agents = vec![
        agent(&backend, "planner", "Breaks the task into steps."),
        agent(&backend, "coder", "Writes the code."),
        agent(&backend, "tester", "Checks the code and says DONE when it is right."),
    ];
    let mut team = SelectorGroupChat::new(agents, backend.clone())?.with_termination(
        Termination::text_mention_from("DONE", &["tester"]) | Termination::max_messages(6),
    );
    let mut stream = team.run_stream(task.into(), CancellationToken::new());
    while let Some(item) = stream.next().await {
        match item? {
            StreamItem::Event(AgentEvent::SpeakerSelected { speaker, fallback }) => {
                eprintln!(
                    "(selector picked {speaker}{})",
                    if fallback { ", by fallback" } else { "" }
                )
            }
            StreamItem::Event(AgentEvent::Message(m)) => println!("[{}] {}\n", m.source, m.content),
            StreamItem::Event(_) => {}
            StreamItem::Done(result) => {
                println!("stopped: {}", result.stop_reason.unwrap_or_default())
            }
        }
    }
    Ok(())
}
