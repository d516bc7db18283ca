//! Speaker names over the wire: a two-agent round-robin on Groq's format, against a real HTTP
//! server on 127.0.0.1. The other agent's message arrives as "name: text", with no `name` field.

mod common;

use std::sync::Arc;

use agentgen_core::agent::{AssistantAgent, ChatAgent};
use agentgen_core::team::{RoundRobinGroupChat, Team};
use agentgen_core::termination::Termination;
use agentgen_groq::OpenAiBackend;
use common::{completion, TestServer};
use serde_json::json;

#[tokio::test]
async fn groq_receives_prefixed_names_and_no_name_fields() {
    let server =
        TestServer::start(vec![completion("planner here"), completion("critic here")]).await;
    let agents: Vec<Box<dyn ChatAgent>> = ["planner", "critic"]
        .iter()
        .map(|name| {
            let backend = Arc::new(OpenAiBackend::new(server.groq()).unwrap());
            Box::new(AssistantAgent::new(*name, backend).with_system_message(None))
                as Box<dyn ChatAgent>
        })
        .collect();
    let mut team =
        RoundRobinGroupChat::new(agents).unwrap().with_termination(Termination::max_messages(3));
    team.run("Plan a trip.".into()).await.unwrap();
    let requests = server.chat_requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[1].body["messages"],
        json!([
            {"role": "user", "content": "Plan a trip."},
            {"role": "user", "content": "planner: planner here"},
        ])
    );
    for r in &requests {
        for m in r.body["messages"].as_array().unwrap() {
            assert!(m.get("name").is_none(), "{m}");
        }
    }
}
