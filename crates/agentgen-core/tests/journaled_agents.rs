//! A code executor's blocks and a user proxy's answers in a journaled run. The run is stopped
//! (its store fails from a chosen record on, as if the process died there) and resumed from
//! what was committed: a block that started is never run again (its journaled report, or
//! "interrupted; not re-run"), a refusal is not asked again, and a person's answer is asked
//! for once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use agentgen_core::agent::{
    ApprovalPolicy, AssistantAgent, ChatAgent, CodeBlock, CodeExecutorAgent, UserProxyAgent,
};
use agentgen_core::journal::{
    transcript, Journal, JournalRecord, MemoryStore, Recovered, RunStore, INTERRUPTED,
};
use agentgen_core::team::{RoundRobinGroupChat, Team};
use agentgen_core::testing::{Reply, ScriptedBackend};
use agentgen_core::{CancellationToken, EventSink};

const SESSION: &str = "s";

/// Runs a new session, or resumes it when the store has it.
async fn run_or_resume(store: &Arc<MemoryStore>, team: &mut RoundRobinGroupChat) -> bool {
    let store_dyn: Arc<dyn RunStore> = store.clone();
    let (journal, task) = match Recovered::open(store_dyn.clone(), SESSION) {
        Ok(recovered) => recovered.restore(team).await.unwrap(),
        Err(_) => {
            (Journal::create(store_dyn, SESSION, serde_json::Value::Null).unwrap(), "go".into())
        }
    };
    let sink = EventSink::none().with_journal(journal);
    team.run_with(task, CancellationToken::new(), &sink).await.is_ok()
}

fn kinds(store: &MemoryStore) -> Vec<&'static str> {
    store.records(SESSION).unwrap().iter().map(|e| e.record.kind()).collect()
}

fn said(store: &MemoryStore) -> Vec<String> {
    transcript(&store.records(SESSION).unwrap())
        .into_iter()
        .map(|(_, m)| format!("{}: {}", m.source, m.content))
        .collect()
}

/// A coder that writes one shell block, and a terminal that asks `approve` (counted in `asked`)
/// before running it; two turns.
fn coder_and_terminal(asked: &Arc<AtomicUsize>, approve: bool) -> RoundRobinGroupChat {
    let coder = AssistantAgent::new(
        "coder",
        Arc::new(ScriptedBackend::new().with_responder(|_| Reply::text("```sh\necho ran\n```"))),
    );
    let asked = Arc::clone(asked);
    let terminal = CodeExecutorAgent::new(
        "terminal",
        ApprovalPolicy::ask(move |_: CodeBlock| {
            asked.fetch_add(1, Ordering::SeqCst);
            async move { approve }
        }),
    );
    let agents: Vec<Box<dyn ChatAgent>> = vec![Box::new(coder), Box::new(terminal)];
    RoundRobinGroupChat::new(agents).unwrap().with_max_turns(2)
}

/// Runs the team uninterrupted to learn its records, then again stopped right after the first
/// record of `kind`, then resumed; returns the terminal's last word and the approvals asked.
async fn stop_after(kind: &str, approve: bool) -> (String, usize, Vec<&'static str>) {
    let asked = Arc::new(AtomicUsize::new(0));
    let baseline = Arc::new(MemoryStore::new());
    assert!(run_or_resume(&baseline, &mut coder_and_terminal(&asked, approve)).await);
    let at = kinds(&baseline).iter().position(|k| *k == kind).unwrap_or_else(|| {
        panic!("no {kind} record in {:?}", kinds(&baseline));
    });

    let asked = Arc::new(AtomicUsize::new(0));
    let store = Arc::new(MemoryStore::new());
    store.crash_after(Some(at as u64 + 1));
    assert!(!run_or_resume(&store, &mut coder_and_terminal(&asked, approve)).await);
    assert_eq!(kinds(&store).last(), Some(&kind), "stopped right after {kind}");
    store.crash_after(None);
    assert!(run_or_resume(&store, &mut coder_and_terminal(&asked, approve)).await);
    let kinds = kinds(&store);
    let said = said(&store);
    assert_eq!(said.len(), 3, "{said:?}");
    let last = said[2].strip_prefix("terminal: ").unwrap_or_else(|| panic!("{said:?}")).to_owned();
    (last, asked.load(Ordering::SeqCst), kinds)
}

#[tokio::test]
async fn a_block_cut_while_running_is_answered_interrupted_and_not_run_again() {
    let (last, asked, kinds) = stop_after("tool_started", true).await;
    assert_eq!(last, INTERRUPTED);
    assert_eq!(asked, 1, "the resumed run does not ask again");
    assert_eq!(kinds.iter().filter(|k| **k == "tool_started").count(), 1, "{kinds:?}");
}

#[tokio::test]
async fn a_block_with_a_journaled_report_is_not_run_again() {
    let (last, asked, kinds) = stop_after("tool_finished", true).await;
    assert_eq!(last, "exit code: 0\nran\n");
    assert_eq!(asked, 1);
    assert_eq!(kinds.iter().filter(|k| **k == "tool_started").count(), 1, "{kinds:?}");
}

#[tokio::test]
async fn a_refusal_is_journaled_and_not_asked_again() {
    let (last, asked, kinds) = stop_after("tool_finished", false).await;
    assert_eq!(last, "Code execution was not approved.");
    assert_eq!(asked, 1);
    assert!(!kinds.contains(&"tool_started"), "a refused block never starts: {kinds:?}");
}

#[tokio::test]
async fn a_person_s_answer_is_journaled_once_given_and_not_asked_again() {
    let asked = Arc::new(AtomicUsize::new(0));
    let team = |asked: &Arc<AtomicUsize>| {
        let asked = Arc::clone(asked);
        let person = UserProxyAgent::new("person", move |_prompt| {
            let n = asked.fetch_add(1, Ordering::SeqCst) + 1;
            async move { Ok(format!("answer {n}")) }
        });
        let bot = AssistantAgent::new("bot", Arc::new(ScriptedBackend::with_texts(["noted"])));
        let agents: Vec<Box<dyn ChatAgent>> = vec![Box::new(person), Box::new(bot)];
        RoundRobinGroupChat::new(agents).unwrap().with_max_turns(2)
    };
    let store = Arc::new(MemoryStore::new());
    // Stop right after the answer is journaled, before the turn commits.
    store.crash_after(Some(4));
    assert!(!run_or_resume(&store, &mut team(&asked)).await);
    assert_eq!(kinds(&store).last(), Some(&"user_input"));
    store.crash_after(None);
    assert!(run_or_resume(&store, &mut team(&asked)).await);
    assert_eq!(said(&store), ["user: go", "person: answer 1", "bot: noted"]);
    assert_eq!(asked.load(Ordering::SeqCst), 1, "the person was asked again");
    let inputs = store.records(SESSION).unwrap();
    let n = inputs.iter().filter(|e| matches!(e.record, JournalRecord::UserInput { .. })).count();
    assert_eq!(n, 1);
}
