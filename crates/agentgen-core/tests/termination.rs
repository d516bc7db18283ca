//! Every termination condition, alone, combined with `|` and `&`, reset and saved; and the
//! conditions that need a team (stop message, handoff, function call) inside one.

use std::sync::Arc;
use std::time::Duration;

use agentgen_core::events::{AgentEvent, AgentMessage, MessageKind, ToolResult};
use agentgen_core::termination::{Termination, TerminationCondition};
use agentgen_core::testing::{Reply, ScriptedBackend};
use agentgen_core::tools::FunctionTool;
use agentgen_core::{AssistantAgent, RoundRobinGroupChat, Team, Usage};

fn msg(source: &str, text: &str) -> AgentEvent {
    AgentEvent::Message(AgentMessage::text(source, text))
}

fn kind(source: &str, kind: MessageKind) -> AgentEvent {
    AgentEvent::Message(AgentMessage::new(source, "x", kind))
}

#[test]
fn max_messages_counts_across_steps_and_resets() {
    let mut t = Termination::max_messages(3);
    assert_eq!(t.check(&[msg("user", "go")]), None);
    assert_eq!(
        t.check(&[AgentEvent::TokenChunk { source: "a".into(), text: "x".into() }]),
        None,
        "events are not messages"
    );
    assert_eq!(t.check(&[msg("a", "1")]), None);
    assert!(t.check(&[msg("b", "2")]).unwrap().contains("Maximum number of messages 3"));
    t.reset();
    assert_eq!(t.check(&[msg("a", "1")]), None);
}

#[test]
fn text_mention_with_and_without_sources() {
    let mut t = Termination::text_mention("APPROVE");
    assert_eq!(t.check(&[msg("a", "not yet")]), None);
    assert_eq!(t.check(&[msg("a", "I APPROVE")]).as_deref(), Some("Text 'APPROVE' mentioned"));
    let mut t = Termination::text_mention_from("APPROVE", &["reviewer"]);
    assert_eq!(t.check(&[msg("writer", "APPROVE")]), None);
    assert!(t.check(&[msg("reviewer", "APPROVE")]).is_some());
}

#[test]
fn stop_handoff_source_and_text_message_conditions() {
    let mut stop = Termination::stop_message();
    assert_eq!(stop.check(&[msg("a", "STOP")]), None);
    assert!(stop.check(&[kind("a", MessageKind::Stop)]).is_some());

    let mut handoff = Termination::handoff("user");
    assert_eq!(handoff.check(&[kind("a", MessageKind::Handoff { target: "b".into() })]), None);
    assert!(handoff
        .check(&[kind("a", MessageKind::Handoff { target: "user".into() })])
        .unwrap()
        .contains("Handoff to user"));

    let mut source = Termination::source_match(&["critic"]);
    assert_eq!(source.check(&[msg("writer", "x")]), None);
    assert!(source.check(&[msg("critic", "x")]).is_some());

    let mut text = Termination::text_message(Some("a"));
    assert_eq!(text.check(&[kind("a", MessageKind::ToolCallSummary)]), None);
    assert_eq!(text.check(&[msg("b", "words")]), None);
    assert!(text.check(&[msg("a", "words")]).is_some());
    let mut any_text = Termination::text_message(None);
    assert!(any_text.check(&[msg("b", "words")]).is_some());
}

#[test]
fn token_usage_sums_message_usage() {
    let with_usage =
        |n: u32| AgentEvent::Message(AgentMessage::text("a", "x").with_usage(Usage::new(n, n, 0)));
    let mut t = Termination::token_usage(Some(100), None, None);
    assert_eq!(t.check(&[with_usage(20)]), None);
    assert!(t.check(&[with_usage(30)]).unwrap().contains("total_tokens=100"));
    let mut t = Termination::token_usage(None, None, Some(5));
    assert!(t.check(&[with_usage(5)]).is_some());
}

#[test]
fn timeout_fires_once_its_time_has_passed() {
    let mut t = Termination::timeout(Duration::ZERO);
    assert!(t.check(&[]).unwrap().starts_with("Timeout of"));
    let mut long = Termination::timeout(Duration::from_secs(3600));
    assert_eq!(long.check(&[msg("a", "x")]), None);
    let mut resumed = Termination::timeout(Duration::from_secs(3600));
    resumed.load_state(&serde_json::json!({"elapsed_ms": 3_600_000u64})).unwrap();
    assert!(resumed.check(&[]).is_some(), "time used before a save counts after loading");
}

#[test]
fn external_handle_stops_and_reset_clears_it() {
    let (mut t, handle) = Termination::external();
    assert_eq!(t.check(&[msg("a", "x")]), None);
    handle.set();
    assert_eq!(t.check(&[]).as_deref(), Some("External termination requested"));
    t.reset();
    assert!(!handle.is_set());
    assert_eq!(t.check(&[]), None);
}

#[test]
fn function_call_and_functional() {
    let result = |name: &str| AgentEvent::ToolCallResult {
        source: "a".into(),
        results: vec![ToolResult {
            call_id: "1".into(),
            name: name.into(),
            content: "ok".into(),
            is_error: false,
        }],
    };
    let mut t = Termination::function_call("approve");
    assert_eq!(t.check(&[result("other")]), None);
    assert!(t.check(&[result("approve")]).is_some());
    let mut f = Termination::functional(|events| {
        events.iter().filter_map(AgentEvent::as_message).any(|m| m.content.len() > 5)
    });
    assert_eq!(f.check(&[msg("a", "short")]), None);
    assert_eq!(
        f.check(&[msg("a", "longer text")]).as_deref(),
        Some("Functional termination condition met")
    );
}

#[test]
fn or_fires_on_either_and_and_needs_both() {
    let mut or = Termination::max_messages(10) | Termination::text_mention("DONE");
    assert_eq!(or.check(&[msg("a", "x")]), None);
    assert_eq!(or.check(&[msg("a", "DONE")]).as_deref(), Some("Text 'DONE' mentioned"));

    let mut and = Termination::text_mention("DONE") & Termination::max_messages(3);
    assert_eq!(and.check(&[msg("a", "DONE")]), None, "mention seen, count not reached");
    assert_eq!(and.check(&[msg("a", "x")]), None);
    let reason = and.check(&[msg("a", "x")]).unwrap();
    assert!(reason.contains("DONE") && reason.contains("Maximum number of messages 3"), "{reason}");
    and.reset();
    assert_eq!(and.check(&[msg("a", "x")]), None);

    let mut nested = (Termination::text_mention("A") & Termination::text_mention("B"))
        | Termination::max_messages(100);
    assert_eq!(nested.check(&[msg("a", "A")]), None);
    assert!(nested.check(&[msg("a", "B")]).is_some());
}

#[test]
fn combined_state_saves_and_loads() {
    let mut t = Termination::max_messages(3) & Termination::text_mention("OK");
    t.check(&[msg("a", "OK"), msg("a", "x")]);
    let state = t.save_state();
    let mut fresh = Termination::max_messages(3) & Termination::text_mention("OK");
    fresh.load_state(&state).unwrap();
    assert!(fresh.check(&[msg("b", "y")]).is_some(), "count and the fired mention carried over");
    assert!(fresh.load_state(&serde_json::json!([1])).is_err());
}

#[tokio::test]
async fn a_team_stops_on_a_function_call() {
    let tool = FunctionTool::from_json(
        "approve",
        "Approves.",
        serde_json::json!({"type": "object"}),
        |_, _| async { Ok(serde_json::json!("approved")) },
    );
    let backend = Arc::new(ScriptedBackend::with_replies([
        Reply::text("drafting"),
        Reply::call("c", "approve", "{}"),
    ]));
    let agent = AssistantAgent::new("a", backend).with_tool(tool).unwrap();
    let mut team = RoundRobinGroupChat::new(vec![Box::new(agent)])
        .unwrap()
        .with_termination(Termination::function_call("approve"));
    let result = team.run("go".into()).await.unwrap();
    assert_eq!(result.messages.len(), 3);
    assert_eq!(result.stop_reason.as_deref(), Some("Function 'approve' was executed."));
}

#[tokio::test]
async fn a_team_stops_on_a_handoff_to_the_user() {
    let backend =
        Arc::new(ScriptedBackend::with_replies([Reply::call("h", "transfer_to_user", "{}")]));
    let agent = AssistantAgent::new("a", backend).with_handoff("user");
    // `user` is not a member, so a plain round-robin team (which does not check targets) hosts it.
    let mut team = RoundRobinGroupChat::new(vec![Box::new(agent)])
        .unwrap()
        .with_termination(Termination::handoff("user"));
    let result = team.run("go".into()).await.unwrap();
    assert_eq!(result.messages[1].handoff_target(), Some("user"));
    assert!(result.stop_reason.unwrap().contains("Handoff to user"));
}

#[tokio::test]
async fn a_team_stops_on_token_usage() {
    let backend = Arc::new(
        ScriptedBackend::new()
            .with_responder(|_| Reply::text("hi"))
            .with_usage(Usage::new(40, 10, 0)),
    );
    let agent = AssistantAgent::new("a", backend);
    let mut team = RoundRobinGroupChat::new(vec![Box::new(agent)])
        .unwrap()
        .with_termination(Termination::token_usage(Some(120), None, None));
    let result = team.run("go".into()).await.unwrap();
    assert_eq!(result.messages.len(), 4, "three turns of 50 tokens pass 120");
    assert_eq!(result.usage.total_tokens, 150);
}

/// A custom agent: says "working" twice, then asks to stop.
struct Stopper {
    turns: usize,
}

#[async_trait::async_trait]
impl agentgen_core::ChatAgent for Stopper {
    fn name(&self) -> &str {
        "stopper"
    }
    fn description(&self) -> &str {
        "Stops after two turns."
    }
    async fn on_messages_with(
        &mut self,
        _messages: &[AgentMessage],
        _cancel: agentgen_core::CancellationToken,
        _sink: &agentgen_core::EventSink,
    ) -> Result<agentgen_core::Response, agentgen_core::AgentError> {
        self.turns += 1;
        let message = if self.turns > 2 {
            AgentMessage::new("stopper", "all done", MessageKind::Stop)
        } else {
            AgentMessage::text("stopper", "working")
        };
        Ok(agentgen_core::Response::new(message))
    }
    async fn reset(&mut self) {
        self.turns = 0;
    }
    async fn save_state(&self) -> Result<serde_json::Value, agentgen_core::AgentError> {
        Ok(serde_json::json!({"turns": self.turns}))
    }
    async fn load_state(
        &mut self,
        state: serde_json::Value,
    ) -> Result<(), agentgen_core::AgentError> {
        self.turns = state["turns"].as_u64().unwrap_or(0) as usize;
        Ok(())
    }
}

#[tokio::test]
async fn a_team_stops_on_a_stop_message_from_a_custom_agent() {
    let mut team = RoundRobinGroupChat::new(vec![Box::new(Stopper { turns: 0 })])
        .unwrap()
        .with_termination(Termination::stop_message() | Termination::max_messages(100));
    let result = team.run("go".into()).await.unwrap();
    assert_eq!(result.messages.len(), 4);
    assert_eq!(result.stop_reason.as_deref(), Some("all done"));
}

#[tokio::test]
async fn a_team_stops_on_the_first_text_message_from_a_source() {
    let tool = FunctionTool::from_json(
        "noop",
        "Does nothing.",
        serde_json::json!({"type": "object"}),
        |_, _| async { Ok(serde_json::json!("ok")) },
    );
    let backend = Arc::new(ScriptedBackend::with_replies([
        Reply::call("c", "noop", "{}"),
        Reply::text("plain words"),
    ]));
    let agent = AssistantAgent::new("a", backend).with_tool(tool).unwrap();
    let mut team = RoundRobinGroupChat::new(vec![Box::new(agent)])
        .unwrap()
        .with_termination(Termination::text_message(Some("a")));
    let result = team.run("go".into()).await.unwrap();
    assert_eq!(result.messages.len(), 3, "the tool-call summary does not stop it; the text does");
    assert_eq!(result.messages[2].content, "plain words");
}
