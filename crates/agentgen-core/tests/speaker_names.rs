//! Speaker names in a three-agent round-robin: each agent's model sees every other agent's
//! messages as "name: text", its own turns as its own, and no `name` fields.

use std::sync::Arc;

use agentgen_core::agent::AssistantAgent;
use agentgen_core::message::ChatMessage;
use agentgen_core::team::{RoundRobinGroupChat, Team};
use agentgen_core::termination::Termination;
use agentgen_core::testing::ScriptedBackend;
use agentgen_core::SpeakerNames;

const AGENTS: [&str; 3] = ["alice", "bob", "carol"];

/// Runs two rounds; returns each agent's backend (which recorded its requests).
async fn two_rounds(setting: Option<SpeakerNames>) -> Vec<Arc<ScriptedBackend>> {
    let backends: Vec<Arc<ScriptedBackend>> = AGENTS
        .iter()
        .map(|a| Arc::new(ScriptedBackend::with_texts([format!("{a} one"), format!("{a} two")])))
        .collect();
    let agents = AGENTS
        .iter()
        .zip(&backends)
        .map(|(name, b)| {
            let agent = AssistantAgent::new(*name, b.clone());
            let agent = match setting {
                Some(s) => agent.with_speaker_names(s),
                None => agent,
            };
            Box::new(agent) as Box<dyn agentgen_core::agent::ChatAgent>
        })
        .collect();
    let mut team =
        RoundRobinGroupChat::new(agents).unwrap().with_termination(Termination::max_messages(7));
    let result = team.run("Introduce yourselves.".into()).await.unwrap();
    assert_eq!(result.messages.len(), 7);
    backends
}

/// The non-system messages of an agent's last request, as (role, text, name).
fn last_view(backend: &ScriptedBackend) -> Vec<(String, String, Option<String>)> {
    let req = backend.requests().pop().expect("a request");
    req.messages
        .iter()
        .filter(|m| !matches!(m, ChatMessage::System { .. }))
        .map(|m| {
            (m.role().to_owned(), m.text().unwrap_or("").to_owned(), m.name().map(str::to_owned))
        })
        .collect()
}

fn owned(v: &[(&str, &str)]) -> Vec<(String, String, Option<String>)> {
    v.iter().map(|(r, t)| (r.to_string(), t.to_string(), None)).collect()
}

#[tokio::test]
async fn each_agent_sees_who_said_what_by_default() {
    let backends = two_rounds(None).await;
    assert_eq!(
        last_view(&backends[0]),
        owned(&[
            ("user", "Introduce yourselves."),
            ("assistant", "alice one"),
            ("user", "bob: bob one"),
            ("user", "carol: carol one"),
        ])
    );
    assert_eq!(
        last_view(&backends[1]),
        owned(&[
            ("user", "Introduce yourselves."),
            ("user", "alice: alice one"),
            ("assistant", "bob one"),
            ("user", "carol: carol one"),
            ("user", "alice: alice two"),
        ])
    );
    assert_eq!(
        last_view(&backends[2]),
        owned(&[
            ("user", "Introduce yourselves."),
            ("user", "alice: alice one"),
            ("user", "bob: bob one"),
            ("assistant", "carol one"),
            ("user", "alice: alice two"),
            ("user", "bob: bob two"),
        ])
    );
}

#[tokio::test]
async fn name_field_and_off_are_what_they_say() {
    let backends = two_rounds(Some(SpeakerNames::NameField)).await;
    let view = last_view(&backends[0]);
    assert_eq!(view[2], ("user".into(), "bob one".into(), Some("bob".into())));
    assert_eq!(view[0], ("user".into(), "Introduce yourselves.".into(), Some("user".into())));
    let backends = two_rounds(Some(SpeakerNames::Off)).await;
    let view = last_view(&backends[0]);
    assert_eq!(view[2], ("user".into(), "bob one".into(), None));
    assert_eq!(view[3], ("user".into(), "carol one".into(), None));
}
