//! Every team type driven by scripted backends: order, selection (including garbage answers),
//! handoffs, graphs, streaming, cancellation and resuming from saved state.

use std::sync::Arc;

use agentgen_core::events::{AgentEvent, AgentMessage, StreamItem, Task};
use agentgen_core::team::{
    DiGraphBuilder, EdgeCondition, GraphFlow, RoundRobinGroupChat, SelectorGroupChat, Swarm, Team,
};
use agentgen_core::termination::Termination;
use agentgen_core::testing::{Reply, ScriptedBackend};
use agentgen_core::{AgentError, AssistantAgent, CancellationToken, ChatAgent, ChatRequest};
use futures::StreamExt;

/// An assistant whose model says `<name>:<number of messages it was sent>`: deterministic,
/// and different whenever its history differs.
fn echo(name: &str) -> Box<dyn ChatAgent> {
    let tag = name.to_owned();
    let backend = ScriptedBackend::new().with_responder(move |req: &ChatRequest| {
        Reply::text(format!("{tag}:{}", req.messages.len()))
    });
    Box::new(
        AssistantAgent::new(name, Arc::new(backend)).with_description(format!("the {name} agent")),
    )
}

fn scripted(name: &str, replies: Vec<Reply>) -> (Box<dyn ChatAgent>, Arc<ScriptedBackend>) {
    let backend = Arc::new(ScriptedBackend::with_replies(replies));
    (Box::new(AssistantAgent::new(name, backend.clone())), backend)
}

fn sources(messages: &[AgentMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.source.as_str()).collect()
}

#[tokio::test]
async fn round_robin_takes_turns_until_max_messages() {
    let mut team = RoundRobinGroupChat::new(vec![echo("a"), echo("b")])
        .unwrap()
        .with_termination(Termination::max_messages(5));
    let result = team.run("start".into()).await.unwrap();
    assert_eq!(sources(&result.messages), vec!["user", "a", "b", "a", "b"]);
    assert_eq!(result.messages[3].content, "a:4", "a sees system, task, own answer, b's answer");
    assert!(result.stop_reason.unwrap().contains("Maximum number of messages 5"));
    assert_eq!(result.usage.total_tokens, 4 * 15);
    // The condition was reset when it fired: a second run goes on from where the first stopped.
    let more = team.run(Task::Continue).await.unwrap();
    assert_eq!(sources(&more.messages), vec!["a", "b", "a", "b", "a"]);
    assert_eq!(team.thread().len(), 10);
}

#[tokio::test]
async fn duplicate_names_and_empty_teams_are_config_errors() {
    assert!(matches!(
        RoundRobinGroupChat::new(vec![echo("a"), echo("a")]),
        Err(AgentError::Config(_))
    ));
    assert!(matches!(RoundRobinGroupChat::new(vec![]), Err(AgentError::Config(_))));
}

#[tokio::test]
async fn run_stream_yields_messages_then_stop_then_the_result() {
    let mut team = RoundRobinGroupChat::new(vec![echo("a"), echo("b")]).unwrap().with_max_turns(2);
    let items: Vec<_> = team.run_stream("go".into(), CancellationToken::new()).collect().await;
    let kinds: Vec<String> = items
        .iter()
        .map(|i| match i.as_ref().unwrap() {
            StreamItem::Event(AgentEvent::Message(m)) => format!("msg:{}", m.source),
            StreamItem::Event(AgentEvent::Stop { reason }) => format!("stop:{reason}"),
            StreamItem::Event(other) => format!("{other:?}"),
            StreamItem::Done(r) => format!("done:{}", r.messages.len()),
        })
        .collect();
    assert_eq!(
        kinds,
        vec!["msg:user", "msg:a", "msg:b", "stop:Maximum number of turns 2 reached.", "done:3"]
    );
}

#[tokio::test]
async fn selector_uses_the_model_answer() {
    let selector = Arc::new(ScriptedBackend::with_texts(["I pick c.", "b"]));
    let mut team = SelectorGroupChat::new(vec![echo("a"), echo("b"), echo("c")], selector.clone())
        .unwrap()
        .with_termination(Termination::max_messages(3));
    let result = team.run("go".into()).await.unwrap();
    assert_eq!(sources(&result.messages), vec!["user", "c", "b"]);
    let prompt = selector.requests()[0].messages[0].text().unwrap().to_owned();
    assert!(
        prompt.contains("a: the a agent")
            && prompt.contains("[a, b, c]")
            && prompt.contains("user: go"),
        "{prompt}"
    );
    let second = selector.requests()[1].messages[0].text().unwrap().to_owned();
    assert!(second.contains("[a, b]"), "c just spoke, so it is not a candidate: {second}");
    // The selector's two calls count in the run's usage beside the agents' two turns
    // (whatever tokens the scripted agents report).
    let agents: u32 = result.messages.iter().filter_map(|m| m.usage).map(|u| u.total_tokens).sum();
    assert_eq!(result.usage.total_tokens, agents + 2 * 15, "{:?}", result.usage);
}

#[tokio::test]
async fn selector_garbage_is_retried_then_falls_back_to_next_in_turn() {
    let selector = Arc::new(
        ScriptedBackend::new().with_responder(|_| Reply::text("Nobody! {\"json\": true}")),
    );
    let mut team = SelectorGroupChat::new(vec![echo("a"), echo("b"), echo("c")], selector.clone())
        .unwrap()
        .with_max_selector_attempts(2)
        .with_termination(Termination::max_messages(4));
    let mut events = Vec::new();
    let mut stream = team.run_stream("go".into(), CancellationToken::new());
    while let Some(item) = stream.next().await {
        events.push(item.unwrap());
    }
    drop(stream);
    let spoke: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            StreamItem::Event(AgentEvent::Message(m)) => Some(m.source.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(spoke, vec!["user", "a", "b", "c"]);
    assert!(events.iter().any(|e| matches!(
        e,
        StreamItem::Event(AgentEvent::SpeakerSelected { fallback: true, .. })
    )));
    assert_eq!(selector.request_count(), 6, "two attempts for each of three turns");
    let retry = &selector.requests()[1].messages;
    assert_eq!(retry.len(), 3);
    assert!(retry[2].text().unwrap().starts_with("No valid name was mentioned"));
}

#[tokio::test]
async fn selector_names_the_repeated_speaker_problem_and_honours_funcs() {
    let selector = Arc::new(ScriptedBackend::with_texts(["a", "a", "b"]));
    let mut team = SelectorGroupChat::new(vec![echo("a"), echo("b"), echo("c")], selector.clone())
        .unwrap()
        .with_selector_func(|thread| (thread.len() == 1).then(|| "a".to_owned()))
        .with_termination(Termination::max_messages(3));
    let result = team.run("go".into()).await.unwrap();
    assert_eq!(sources(&result.messages), vec!["user", "a", "b"]);
    let feedback = selector.requests()[1].messages[2].text().unwrap().to_owned();
    assert!(feedback.starts_with("Repeated speaker is not allowed"), "{feedback}");

    let selector = Arc::new(ScriptedBackend::new());
    let mut team = SelectorGroupChat::new(vec![echo("a"), echo("b"), echo("c")], selector.clone())
        .unwrap()
        .with_candidate_func(|_| vec!["c".to_owned()])
        .with_termination(Termination::max_messages(3));
    let result = team.run("go".into()).await.unwrap();
    assert_eq!(sources(&result.messages), vec!["user", "c", "c"]);
    assert_eq!(selector.request_count(), 0, "one candidate needs no model call");
}

#[tokio::test]
async fn swarm_follows_the_first_handoff_only() {
    let alice_backend = Arc::new(ScriptedBackend::with_replies([
        Reply::text("thinking"),
        Reply::calls(&[("h1", "transfer_to_bob", "{}"), ("h2", "transfer_to_carol", "{}")]),
    ]));
    let alice = AssistantAgent::new("alice", alice_backend.clone())
        .with_handoff("bob")
        .with_handoff("carol");
    let (bob, _) = scripted("bob", vec![Reply::text("done TERMINATE")]);
    let (carol, carol_backend) = scripted("carol", vec![]);
    let mut team = Swarm::new(vec![Box::new(alice), bob, carol])
        .unwrap()
        .with_termination(Termination::text_mention("TERMINATE"));
    let result = team.run("help".into()).await.unwrap();
    assert_eq!(sources(&result.messages), vec!["user", "alice", "alice", "bob"]);
    assert_eq!(result.messages[2].handoff_target(), Some("bob"));
    assert_eq!(carol_backend.request_count(), 0);
}

#[tokio::test]
async fn swarm_rejects_handoffs_to_strangers() {
    let alice = AssistantAgent::new("alice", Arc::new(ScriptedBackend::new())).with_handoff("zed");
    assert!(matches!(Swarm::new(vec![Box::new(alice), echo("bob")]), Err(AgentError::Config(_))));
}

#[tokio::test]
async fn swarm_handoff_to_the_user_ends_the_run_until_the_next_task() {
    let backend = Arc::new(ScriptedBackend::with_replies([
        Reply::call("h", "transfer_to_user", "{}"),
        Reply::text("thanks"),
    ]));
    let alice = AssistantAgent::new("alice", backend.clone()).with_handoff("user");
    let mut team = Swarm::new(vec![Box::new(alice)]).unwrap();
    let result = team.run("help".into()).await.unwrap();
    assert_eq!(sources(&result.messages), vec!["user", "alice"]);
    assert_eq!(result.stop_reason.as_deref(), Some("Handoff to user, outside the team"));
    let saved = team.save_state().await.unwrap();
    let alice = AssistantAgent::new("alice", backend.clone()).with_handoff("user");
    let mut team = Swarm::new(vec![Box::new(alice)]).unwrap();
    team.load_state(saved).await.unwrap();
    let waiting = team.run(Task::Continue).await.unwrap();
    assert!(waiting.messages.is_empty(), "still waiting for the user: {waiting:?}");
    let next = team.with_max_turns(1).run("here is more".into()).await.unwrap();
    assert_eq!(sources(&next.messages), vec!["user", "alice"], "{:?}", next.stop_reason);
}

#[tokio::test]
async fn swarm_task_handoff_picks_the_first_speaker() {
    let mut team = Swarm::new(vec![echo("a"), echo("b")]).unwrap().with_max_turns(1);
    let task = vec![AgentMessage::new(
        "user",
        "to b",
        agentgen_core::MessageKind::Handoff { target: "b".into() },
    )];
    let result = team.run(task.into()).await.unwrap();
    assert_eq!(sources(&result.messages), vec!["user", "b"]);
}

#[tokio::test]
async fn graph_loops_until_approval_then_exits() {
    let (writer, _) = scripted("writer", vec![Reply::text("draft 1"), Reply::text("draft 2")]);
    let (reviewer, _) =
        scripted("reviewer", vec![Reply::text("REVISE please"), Reply::text("APPROVE")]);
    let (publisher, _) = scripted("publisher", vec![Reply::text("published")]);
    let mut flow: GraphFlow = DiGraphBuilder::new()
        .add_boxed_node(writer)
        .add_boxed_node(reviewer)
        .add_boxed_node(publisher)
        .add_edge("writer", "reviewer")
        .add_conditional_edge("reviewer", "writer", EdgeCondition::Contains("REVISE".into()))
        .add_conditional_edge("reviewer", "publisher", EdgeCondition::Contains("APPROVE".into()))
        .set_entry_point("writer")
        .activation_any("writer")
        .build()
        .unwrap();
    let result = flow.run("write".into()).await.unwrap();
    assert_eq!(
        sources(&result.messages),
        vec!["user", "writer", "reviewer", "writer", "reviewer", "publisher"]
    );
    assert_eq!(result.stop_reason.as_deref(), Some("Digraph execution is complete"));
}

#[tokio::test]
async fn graph_fan_in_waits_for_every_parent() {
    let mut flow = DiGraphBuilder::new()
        .add_boxed_node(echo("a"))
        .add_boxed_node(echo("b"))
        .add_boxed_node(echo("c"))
        .add_boxed_node(echo("d"))
        .add_edge("a", "b")
        .add_edge("a", "c")
        .add_edge("b", "d")
        .add_edge("c", "d")
        .build()
        .unwrap();
    let result = flow.run("go".into()).await.unwrap();
    assert_eq!(sources(&result.messages), vec!["user", "a", "b", "c", "d"]);
    let again = flow.run("again".into()).await.unwrap();
    assert_eq!(
        sources(&again.messages),
        vec!["user", "a", "b", "c", "d"],
        "a finished graph starts over"
    );
}

/// An agent that takes `delay` to answer and records when it started and ended.
struct Slow {
    name: String,
    delay: std::time::Duration,
    log: Arc<std::sync::Mutex<Vec<(String, std::time::Instant, std::time::Instant)>>>,
}

#[async_trait::async_trait]
impl ChatAgent for Slow {
    fn name(&self) -> &str {
        &self.name
    }
    fn description(&self) -> &str {
        "slow"
    }
    async fn on_messages_with(
        &mut self,
        messages: &[AgentMessage],
        _cancel: CancellationToken,
        _sink: &agentgen_core::events::EventSink,
    ) -> Result<agentgen_core::agent::Response, AgentError> {
        let start = std::time::Instant::now();
        tokio::time::sleep(self.delay).await;
        let seen: Vec<&str> = messages.iter().map(|m| m.source.as_str()).collect();
        self.log.lock().unwrap().push((self.name.clone(), start, std::time::Instant::now()));
        Ok(agentgen_core::agent::Response::new(AgentMessage::text(
            self.name.clone(),
            format!("{} saw {}", self.name, seen.join(",")),
        )))
    }
    async fn reset(&mut self) {}
    async fn save_state(&self) -> Result<serde_json::Value, AgentError> {
        Ok(serde_json::Value::Null)
    }
    async fn load_state(&mut self, _state: serde_json::Value) -> Result<(), AgentError> {
        Ok(())
    }
}

#[tokio::test]
async fn graph_branches_whose_parents_are_done_run_concurrently() {
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let delay = std::time::Duration::from_millis(300);
    let slow = |name: &str| Slow { name: name.into(), delay, log: log.clone() };
    let mut flow = DiGraphBuilder::new()
        .add_node(slow("a"))
        .add_node(slow("b"))
        .add_node(slow("c"))
        .add_node(slow("d"))
        .add_edge("a", "b")
        .add_edge("a", "c")
        .add_edge("b", "d")
        .add_edge("c", "d")
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let result = flow.run("go".into()).await.unwrap();
    let took = started.elapsed();
    assert_eq!(sources(&result.messages), vec!["user", "a", "b", "c", "d"]);
    let log = log.lock().unwrap().clone();
    let span = |n: &str| log.iter().find(|(name, ..)| name == n).map(|(_, s, e)| (*s, *e)).unwrap();
    let ((b0, b1), (c0, c1), (d0, _)) = (span("b"), span("c"), span("d"));
    assert!(b0 < c1 && c0 < b1, "the branches b and c overlap in time: {log:?}");
    assert!(d0 >= b1 && d0 >= c1, "the fan-in d waits for both branches: {log:?}");
    // Three steps of 300 ms (a, then b and c together, then d), not four.
    assert!(took < delay * 4, "took {took:?}");
    // Each branch saw what came before the fan-out, not the other branch; d saw both.
    let content = |n: &str| result.messages.iter().find(|m| m.source == n).unwrap().content.clone();
    assert_eq!(content("b"), "b saw user,a");
    assert_eq!(content("c"), "c saw user,a");
    assert_eq!(content("d"), "d saw user,a,b,c");
}

#[tokio::test]
async fn a_graph_batch_respects_the_turn_limit() {
    let mut flow = DiGraphBuilder::new()
        .add_boxed_node(echo("a"))
        .add_boxed_node(echo("b"))
        .add_boxed_node(echo("c"))
        .add_edge("a", "b")
        .add_edge("a", "c")
        .build()
        .unwrap()
        .with_max_turns(2);
    let result = flow.run("go".into()).await.unwrap();
    assert_eq!(sources(&result.messages), vec!["user", "a", "b"]);
}

#[tokio::test]
async fn graph_rejects_unconditional_cycles_and_unknown_nodes() {
    let cyc = DiGraphBuilder::new()
        .add_boxed_node(echo("a"))
        .add_boxed_node(echo("b"))
        .add_edge("a", "b")
        .add_edge("b", "a")
        .set_entry_point("a")
        .build();
    assert!(matches!(cyc, Err(AgentError::Config(_))));
    let unknown = DiGraphBuilder::new().add_boxed_node(echo("a")).add_edge("a", "ghost").build();
    assert!(matches!(unknown, Err(AgentError::UnknownAgent(n)) if n == "ghost"));
}

fn rr() -> RoundRobinGroupChat {
    RoundRobinGroupChat::new(vec![echo("a"), echo("b"), echo("c")])
        .unwrap()
        .with_termination(Termination::max_messages(8) | Termination::text_mention("never said"))
}

#[tokio::test]
async fn a_resumed_team_reaches_the_same_end() {
    let mut whole = rr();
    let expected = whole.run("go".into()).await.unwrap();

    let mut first = rr().with_max_turns(3);
    let part = first.run("go".into()).await.unwrap();
    assert_eq!(part.messages.len(), 4);
    let saved = serde_json::to_string(&first.save_state().await.unwrap()).unwrap();

    let mut resumed = rr();
    resumed.load_state(serde_json::from_str(&saved).unwrap()).await.unwrap();
    let rest = resumed.run(Task::Continue).await.unwrap();
    assert_eq!(
        sources(&rest.messages),
        vec!["a", "b", "c", "a"],
        "next speaker and counter carried over"
    );
    assert_eq!(resumed.thread(), whole.thread());
    assert_eq!(rest.stop_reason, expected.stop_reason);
}

#[tokio::test]
async fn cancelling_a_team_keeps_it_resumable() {
    let (a, _) = scripted("a", vec![Reply::text("a1")]);
    let (b, b_backend) = scripted("b", vec![Reply::Hang]);
    let mut team = RoundRobinGroupChat::new(vec![a, b])
        .unwrap()
        .with_termination(Termination::max_messages(3));
    let cancel = CancellationToken::new();
    let canceller = async {
        while b_backend.request_count() == 0 {
            tokio::task::yield_now().await;
        }
        cancel.cancel();
    };
    let sink = agentgen_core::EventSink::none();
    let (res, ()) = tokio::join!(team.run_with("go".into(), cancel.clone(), &sink), canceller);
    assert_eq!(res.unwrap_err(), AgentError::Cancelled);
    assert_eq!(sources(team.thread()), vec!["user", "a"]);
    b_backend.push(Reply::text("b1"));
    let rest = team.run(Task::Continue).await.unwrap();
    assert_eq!(sources(&rest.messages), vec!["b"]);
    let retry = &b_backend.requests()[1].messages;
    assert_eq!(retry.len(), 3, "b still gets the task and a's message: {retry:?}");
}

#[tokio::test]
async fn reset_forgets_everything() {
    let mut team = rr().with_max_turns(2);
    team.run("go".into()).await.unwrap();
    team.reset().await;
    assert!(team.thread().is_empty());
    let again = team.run("go".into()).await.unwrap();
    assert_eq!(again.messages[1].content, "a:2", "a starts over with a fresh history");
}
