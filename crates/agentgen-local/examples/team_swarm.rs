//! A swarm on the default local model: a triage agent hands the user over to a billing or a
//! tech agent with `transfer_to_…` tool calls; the run ends when an agent hands back to the
//! user.
//!
//! ```text
//! cargo run -p agentgen-local --example team_swarm -- "My invoice is wrong."
//! ```
//!
//! The model is `$AGENTGEN_TEST_MODEL` when set, else the default model in the cache.

use std::sync::Arc;

use agentgen_core::{
    AgentEvent, AssistantAgent, CancellationToken, ChatBackend, Handoff, StreamItem, Swarm, Team,
    Termination,
};
use agentgen_local::{LocalBackend, LocalConfig};
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let task = std::env::args().nth(1).unwrap_or_else(|| "My invoice is wrong.".into());
    let path = match std::env::var_os(agentgen_models::cache::TEST_MODEL_ENV) {
        Some(p) if !p.is_empty() => p.into(),
        _ => agentgen_models::cache::default_model_path(),
    };
    let backend: Arc<dyn ChatBackend> = Arc::new(LocalBackend::load(LocalConfig::new(path))?);
    let system = |s: &str| Some(s.to_owned());
    let triage = AssistantAgent::new("triage", backend.clone())
        .with_system_message(system("You route customers. Billing questions: call transfer_to_billing. Technical problems: call transfer_to_tech."))
        .with_handoff(Handoff::new("billing"))
        .with_handoff(Handoff::new("tech"))
        .with_temperature(0.0);
    let billing = AssistantAgent::new("billing", backend.clone())
        .with_system_message(system(
            "You solve billing problems in two sentences, then call transfer_to_user.",
        ))
        .with_handoff(Handoff::new("user"))
        .with_temperature(0.0);
    let tech = AssistantAgent::new("tech", backend.clone())
        .with_system_message(system(
            "You solve technical problems in two sentences, then call transfer_to_user.",
        ))
        .with_handoff(Handoff::new("user"))
        .with_temperature(0.0);
    // `user` is outside the team: a handoff to it ends the run.
    let mut team = Swarm::new(vec![Box::new(triage), Box::new(billing), Box::new(tech)])?
        .with_termination(Termination::max_messages(6));
    let mut stream = team.run_stream(task.into(), CancellationToken::new());
    while let Some(item) = stream.next().await {
        match item? {
            StreamItem::Event(AgentEvent::Handoff { source, target }) => {
                println!("({source} -> {target})")
            }
            StreamItem::Event(AgentEvent::Message(m)) => println!("[{}] {}", m.source, m.content),
            StreamItem::Event(_) => {}
            StreamItem::Done(result) => {
                println!("stopped: {}", result.stop_reason.unwrap_or_default())
            }
        }
    }
    Ok(())
}
