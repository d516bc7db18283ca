//! A graph flow on the default local model: writer → reviewer; the reviewer sends the text
//! back to the writer until it says APPROVE, then on to an editor who gives the final text.
//!
//! ```text
//! cargo run -p agentgen-local --example team_graph -- "a slogan for a bakery"
//! ```
//!
//! The model is `$AGENTGEN_TEST_MODEL` when set, else the default model in the cache.

use std::sync::Arc;

use agentgen_core::{
    AgentEvent, AgentMessage, AssistantAgent, CancellationToken, ChatBackend, DiGraphBuilder,
    EdgeCondition, StreamItem, Team, Termination,
};
use agentgen_local::{LocalBackend, LocalConfig};
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let topic = std::env::args().nth(1).unwrap_or_else(|| "a slogan for a bakery".into());
    let path = match std::env::var_os(agentgen_models::cache::TEST_MODEL_ENV) {
        Some(p) if !p.is_empty() => p.into(),
        _ => agentgen_models::cache::default_model_path(),
    };
    let backend: Arc<dyn ChatBackend> = Arc::new(LocalBackend::load(LocalConfig::new(path))?);
    let agent = |name: &str, system: &str| {
        AssistantAgent::new(name, backend.clone())
            .with_system_message(Some(system.to_owned()))
            .with_temperature(0.0)
    };
    let approved = |m: &AgentMessage| m.content.contains("APPROVE");
    let mut flow = DiGraphBuilder::new()
        .add_node(agent("writer", "Write or revise the requested text. Reply with the text only."))
        .add_node(agent(
            "reviewer",
            "Review the text in one sentence. Say APPROVE if it is good, else say what to change.",
        ))
        .add_node(agent("editor", "Give the final, polished version of the approved text only."))
        .add_edge("writer", "reviewer")
        .add_conditional_edge(
            "reviewer",
            "writer",
            EdgeCondition::Func(Arc::new(move |m| !approved(m))),
        )
        .add_conditional_edge("reviewer", "editor", EdgeCondition::Contains("APPROVE".into()))
        .set_entry_point("writer")
        .activation_any("writer")
        .build()?
        // The review loop may never approve: cap it.
        .with_termination(Termination::max_messages(8));
    let mut stream = flow.run_stream(format!("Write {topic}.").into(), CancellationToken::new());
    while let Some(item) = stream.next().await {
        match item? {
            StreamItem::Event(AgentEvent::Message(m)) => println!("[{}] {}\n", m.source, m.content),
            StreamItem::Event(_) => {}
            StreamItem::Done(result) => {
                println!("stopped: {}", result.stop_reason.unwrap_or_default())
            }
        }
    }
    Ok(())
}
