//! Agents driven by a scripted backend: tool loop, bad tool calls, handoffs, structured
//! output, streaming, memory, model context, cancellation, state, user proxy, society of mind.

use std::sync::Arc;

use agentgen_core::agent::{AssistantAgent, ChatAgent, SocietyOfMindAgent, UserProxyAgent};
use agentgen_core::events::{AgentEvent, AgentMessage, MessageKind, StreamItem};
use agentgen_core::memory::{ListMemory, MemoryContent};
use agentgen_core::model_context::ModelContext;
use agentgen_core::termination::Termination;
use agentgen_core::testing::{Reply, ScriptedBackend};
use agentgen_core::tools::FunctionTool;
use agentgen_core::{
    AgentError, CancellationToken, ChatMessage, ResponseFormat, RoundRobinGroupChat,
};
use futures::StreamExt;

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct AddArgs {
    a: i64,
    b: i64,
}

fn add_tool() -> FunctionTool {
    FunctionTool::new("add", "Adds two integers.", |x: AddArgs| async move {
        Ok::<_, String>(x.a + x.b)
    })
}

fn task(text: &str) -> Vec<AgentMessage> {
    vec![AgentMessage::text("user", text)]
}

fn assistant(backend: &Arc<ScriptedBackend>) -> AssistantAgent {
    AssistantAgent::new("calc", backend.clone()).with_tool(add_tool()).unwrap()
}

#[tokio::test]
async fn tool_call_without_reflection_ends_with_a_summary() {
    let backend =
        Arc::new(ScriptedBackend::with_replies([Reply::call("c1", "add", r#"{"a":2,"b":3}"#)]));
    let mut agent = assistant(&backend);
    let resp = agent.on_messages(&task("2+3?"), CancellationToken::new()).await.unwrap();
    assert_eq!(resp.message.kind, MessageKind::ToolCallSummary);
    assert_eq!(resp.message.content, "5");
    assert_eq!(backend.request_count(), 1);
    let req = &backend.requests()[0];
    assert_eq!(req.tools.len(), 1);
    assert_eq!(req.tools[0].function.parameters["required"], serde_json::json!(["a", "b"]));
    assert!(
        matches!(&resp.inner_events[0], AgentEvent::ToolCallRequest { calls, .. } if calls[0].function.name == "add")
    );
    assert!(
        matches!(&resp.inner_events[1], AgentEvent::ToolCallResult { results, .. } if results[0].content == "5")
    );
}

#[tokio::test]
async fn reflection_answers_from_the_tool_result() {
    let backend = Arc::new(ScriptedBackend::with_replies([
        Reply::call("c1", "add", r#"{"a":2,"b":3}"#),
        Reply::text("The sum is 5."),
    ]));
    let mut agent = assistant(&backend).with_reflect_on_tool_use(true);
    let resp = agent.on_messages(&task("2+3?"), CancellationToken::new()).await.unwrap();
    assert_eq!(resp.message.content, "The sum is 5.");
    assert_eq!(resp.message.kind, MessageKind::Text);
    let second = &backend.requests()[1];
    assert!(second.tools.is_empty(), "the reflection call offers no tools");
    assert!(second.messages.contains(&ChatMessage::tool("c1", "5")));
    assert_eq!(resp.message.usage.unwrap().total_tokens, 30, "usage of both calls");
}

#[tokio::test]
async fn bad_arguments_and_unknown_tools_come_back_as_error_results() {
    let backend = Arc::new(ScriptedBackend::with_replies([
        Reply::calls(&[
            ("c1", "add", r#"{"a":"two","b":3}"#),
            ("c2", "multiply", "{}"),
            ("c3", "add", "{oops"),
        ]),
        Reply::call("c4", "add", r#"{"a":2,"b":3}"#),
        Reply::text("5"),
    ]));
    let mut agent = assistant(&backend).with_max_tool_iterations(3);
    let resp = agent.on_messages(&task("2+3?"), CancellationToken::new()).await.unwrap();
    assert_eq!(resp.message.content, "5");
    let second = &backend.requests()[1].messages;
    let tool_texts: Vec<&str> =
        second.iter().filter(|m| m.role() == "tool").map(|m| m.text().unwrap()).collect();
    assert_eq!(tool_texts.len(), 3);
    assert!(
        tool_texts[0].starts_with("Error: invalid arguments for tool `add`"),
        "{}",
        tool_texts[0]
    );
    assert_eq!(tool_texts[1], "Error: unknown tool `multiply`; available tools: add");
    assert!(tool_texts[2].contains("not valid JSON"), "{}", tool_texts[2]);
    assert_eq!(backend.request_count(), 3);
}

#[tokio::test]
async fn parallel_tool_calls_run_concurrently() {
    // Both calls wait on a two-party barrier: run one after the other, they would never finish.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let tool = FunctionTool::new("meet", "Waits for the other call.", move |x: AddArgs| {
        let barrier = barrier.clone();
        async move {
            barrier.wait().await;
            Ok::<_, String>(x.a)
        }
    });
    let backend = Arc::new(ScriptedBackend::with_replies([Reply::calls(&[
        ("c1", "meet", r#"{"a":1,"b":0}"#),
        ("c2", "meet", r#"{"a":2,"b":0}"#),
    ])]));
    let mut agent = AssistantAgent::new("p", backend.clone()).with_tool(tool).unwrap();
    let msgs = task("go");
    let run = agent.on_messages(&msgs, CancellationToken::new());
    let resp = tokio::time::timeout(std::time::Duration::from_secs(30), run)
        .await
        .expect("deadlock: calls ran in sequence")
        .unwrap();
    assert_eq!(resp.message.content, "1\n2");
}

#[tokio::test]
async fn empty_and_repeated_call_ids_are_made_unique() {
    let backend = Arc::new(ScriptedBackend::with_replies([
        Reply::calls(&[("", "add", r#"{"a":1,"b":1}"#), ("", "add", r#"{"a":2,"b":2}"#)]),
        Reply::text("ok"),
    ]));
    let mut agent = assistant(&backend).with_reflect_on_tool_use(true);
    agent.on_messages(&task("x"), CancellationToken::new()).await.unwrap();
    let msgs = &backend.requests()[1].messages;
    let ids: Vec<String> = msgs[2].tool_calls().iter().map(|c| c.id.clone()).collect();
    assert!(ids.iter().all(|id| !id.is_empty()) && ids[0] != ids[1], "{ids:?}");
    assert_eq!(msgs[3], ChatMessage::tool(ids[0].clone(), "2"));
    assert_eq!(msgs[4], ChatMessage::tool(ids[1].clone(), "4"));
}

#[tokio::test]
async fn handoff_tool_call_becomes_a_handoff_message() {
    let backend =
        Arc::new(ScriptedBackend::with_replies([Reply::call("h", "transfer_to_bob", "{}")]));
    let mut agent = AssistantAgent::new("alice", backend.clone()).with_handoff("bob");
    assert_eq!(agent.handoff_targets(), vec!["bob"]);
    let resp = agent.on_messages(&task("x"), CancellationToken::new()).await.unwrap();
    assert_eq!(resp.message.handoff_target(), Some("bob"));
    assert!(resp
        .inner_events
        .iter()
        .any(|e| matches!(e, AgentEvent::Handoff { target, .. } if target == "bob")));
    assert_eq!(backend.requests()[0].tools[0].function.name, "transfer_to_bob");
}

#[derive(Debug, PartialEq, serde::Deserialize, schemars::JsonSchema)]
struct Verdict {
    score: u32,
    reason: String,
}

#[tokio::test]
async fn structured_output_parses_into_the_type() {
    let backend = Arc::new(ScriptedBackend::with_texts([
        "```json\n{\"score\": 4, \"reason\": \"fine\"}\n```",
        "not json",
    ]));
    let mut agent = AssistantAgent::new("judge", backend.clone()).with_output_type::<Verdict>();
    let resp = agent.on_messages(&task("rate"), CancellationToken::new()).await.unwrap();
    let verdict: Verdict = resp.message.structured().unwrap().unwrap();
    assert_eq!(verdict, Verdict { score: 4, reason: "fine".into() });
    assert!(matches!(
        backend.requests()[0].response_format,
        Some(ResponseFormat::JsonSchema { .. })
    ));
    let err = agent.on_messages(&task("again"), CancellationToken::new()).await.unwrap_err();
    assert!(matches!(err, AgentError::StructuredOutput { .. }), "{err}");
}

#[tokio::test]
async fn streaming_emits_token_chunks_then_the_response() {
    let backend = Arc::new(ScriptedBackend::with_texts(["hello big world"]));
    let mut agent = AssistantAgent::new("s", backend.clone()).with_streaming(true);
    let msgs = task("hi");
    let items: Vec<_> = agent.on_messages_stream(&msgs, CancellationToken::new()).collect().await;
    let chunks: Vec<String> = items
        .iter()
        .filter_map(|i| match i {
            Ok(StreamItem::Event(AgentEvent::TokenChunk { text, .. })) => Some(text.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(chunks, vec!["hello ", "big ", "world"]);
    assert!(
        matches!(items.last(), Some(Ok(StreamItem::Done(r))) if r.message.content == "hello big world")
    );
}

#[tokio::test]
async fn memory_is_added_to_the_prompt() {
    let memory =
        Arc::new(ListMemory::with_items(vec![MemoryContent::text("The user likes cats.")]));
    let backend = Arc::new(ScriptedBackend::with_texts(["Cats!"]));
    let mut agent = AssistantAgent::new("m", backend.clone()).with_memory(memory);
    let resp = agent.on_messages(&task("pet?"), CancellationToken::new()).await.unwrap();
    let requests = backend.requests();
    let sys: Vec<&str> = requests[0]
        .messages
        .iter()
        .filter(|m| m.role() == "system")
        .map(|m| m.text().unwrap())
        .collect();
    assert!(sys.iter().any(|t| t.contains("1. The user likes cats.")), "{sys:?}");
    assert!(
        matches!(&resp.inner_events[0], AgentEvent::MemoryQuery { contents, .. } if contents.len() == 1)
    );
}

#[tokio::test]
async fn buffered_context_limits_what_the_model_sees() {
    let backend = Arc::new(ScriptedBackend::with_texts(["a1", "a2"]));
    let mut agent = AssistantAgent::new("b", backend.clone())
        .with_system_message(None)
        .with_model_context(ModelContext::buffered(1));
    agent.on_messages(&task("q1"), CancellationToken::new()).await.unwrap();
    agent.on_messages(&task("q2"), CancellationToken::new()).await.unwrap();
    // The task is sent without a name (speaker names go into the text, by default).
    assert_eq!(backend.requests()[1].messages, vec![ChatMessage::user("q2")]);
    assert_eq!(agent.context().all().len(), 4, "the history keeps everything");
}

#[tokio::test]
async fn cancellation_stops_the_call_and_keeps_history_unchanged() {
    let backend = Arc::new(ScriptedBackend::with_replies([Reply::Hang]));
    let mut agent = AssistantAgent::new("c", backend.clone());
    let cancel = CancellationToken::new();
    let msgs = task("wait");
    let canceller = async {
        while backend.request_count() == 0 {
            tokio::task::yield_now().await;
        }
        cancel.cancel();
    };
    let (res, ()) = tokio::join!(agent.on_messages(&msgs, cancel.clone()), canceller);
    assert_eq!(res.unwrap_err(), AgentError::Cancelled);
    assert!(agent.context().all().is_empty());
}

#[tokio::test]
async fn state_round_trips_into_a_fresh_agent() {
    let backend = Arc::new(ScriptedBackend::with_texts(["first", "second"]));
    let mut agent = AssistantAgent::new("s", backend.clone());
    agent.on_messages(&task("one"), CancellationToken::new()).await.unwrap();
    let state = agent.save_state().await.unwrap();
    let text = serde_json::to_string(&state).unwrap();
    let mut fresh = AssistantAgent::new("s", backend.clone());
    fresh.load_state(serde_json::from_str(&text).unwrap()).await.unwrap();
    assert_eq!(fresh.context().all(), agent.context().all());
    fresh.on_messages(&task("two"), CancellationToken::new()).await.unwrap();
    assert_eq!(backend.requests()[1].messages.len(), 1 + 3, "system + one, first, two");
    let bad = fresh.load_state(serde_json::json!({"llm_context": 5})).await.unwrap_err();
    assert!(matches!(bad, AgentError::State(_)));
}

#[tokio::test]
async fn zero_tool_iterations_is_a_config_error() {
    let backend = Arc::new(ScriptedBackend::new());
    let mut agent = AssistantAgent::new("z", backend).with_max_tool_iterations(0);
    let err = agent.on_messages(&task("x"), CancellationToken::new()).await.unwrap_err();
    assert!(matches!(err, AgentError::Config(_)));
}

#[tokio::test]
async fn user_proxy_asks_its_input_function() {
    let mut user =
        UserProxyAgent::new("human", |prompt: String| async move { Ok(format!("re: {prompt}")) });
    let resp = user.on_messages(&task("ok?"), CancellationToken::new()).await.unwrap();
    assert_eq!(resp.message.content, "re: ok?");
    let mut broken = UserProxyAgent::new("human", |_| async { Err("stdin closed".to_owned()) });
    let err = broken.on_messages(&task("ok?"), CancellationToken::new()).await.unwrap_err();
    assert_eq!(err, AgentError::Input("stdin closed".into()));
}

#[tokio::test]
async fn society_of_mind_runs_its_team_and_answers_once() {
    let a = AssistantAgent::new("a", Arc::new(ScriptedBackend::with_texts(["idea"])));
    let b = AssistantAgent::new("b", Arc::new(ScriptedBackend::with_texts(["critique"])));
    let team = RoundRobinGroupChat::new(vec![Box::new(a), Box::new(b)])
        .unwrap()
        .with_termination(Termination::max_messages(3));
    let outer = Arc::new(ScriptedBackend::with_texts(["final answer"]));
    let mut som = SocietyOfMindAgent::new("som", Box::new(team), outer.clone());
    let msgs = task("solve");
    let items: Vec<_> = som.on_messages_stream(&msgs, CancellationToken::new()).collect().await;
    let Some(Ok(StreamItem::Done(resp))) = items.last() else { panic!("no response: {items:?}") };
    assert_eq!(resp.message.content, "final answer");
    let transcript = outer.requests()[0].messages[1].text().unwrap().to_owned();
    assert_eq!(transcript, "user: solve\n\na: idea\n\nb: critique");
    assert!(
        !items.iter().any(|i| matches!(i, Ok(StreamItem::Event(AgentEvent::Stop { .. })))),
        "inner stop hidden"
    );
}
