//! Exactly-once tests of the journal on a scripted backend: the run is "killed" at every record
//! boundary (the store fails from there on) and by dropping its future mid-tool and mid-turn,
//! then resumed from what was committed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::events::EventSink;
use crate::message::ToolCall;
use crate::team::RoundRobinGroupChat;
use crate::testing::{append_then_reflect, worker_and_reviewer, Reply, ScriptedBackend};
use crate::tools::{FunctionTool, ToolError};
use crate::CancellationToken;

const SESSION: &str = "s";

/// What the tool did, in order: one call id per run of the tool (the "file" it appends to).
type Effects = Arc<Mutex<Vec<String>>>;

#[derive(Clone, Default)]
struct Knobs {
    /// The tool hangs after its effect (the run is killed mid-tool).
    hang_tool: Arc<AtomicBool>,
    /// The reflection call hangs (the run is killed after the tool result, before the commit).
    hang_reflect: Arc<AtomicBool>,
    idempotent: bool,
}

/// A worker that calls `append` once per turn (ids c1, c2, …) and reflects on the result, and
/// a reviewer that says "ok"; four turns.
fn build(effects: &Effects, knobs: &Knobs) -> (RoundRobinGroupChat, Arc<ScriptedBackend>) {
    let hang_reflect = Arc::clone(&knobs.hang_reflect);
    let worker_backend = Arc::new(ScriptedBackend::new().with_responder(move |req| {
        if req.tools.is_empty() && hang_reflect.load(Ordering::SeqCst) {
            return Reply::Hang;
        }
        append_then_reflect(req)
    }));
    let (effects, hang_tool) = (Arc::clone(effects), Arc::clone(&knobs.hang_tool));
    let tool = FunctionTool::from_json(
        "append",
        "Appends a line.",
        serde_json::json!({"type": "object", "properties": {"line": {"type": "string"}}}),
        move |_args, ctx| {
            let (effects, hang) = (Arc::clone(&effects), hang_tool.load(Ordering::SeqCst));
            async move {
                effects
                    .lock()
                    .map_err(|e| ToolError::Execution {
                        tool: "append".into(),
                        message: e.to_string(),
                    })?
                    .push(ctx.call_id.clone());
                if hang {
                    futures::future::pending::<()>().await;
                }
                Ok(serde_json::json!("appended"))
            }
        },
    )
    .with_idempotent(knobs.idempotent);
    let team = worker_and_reviewer(worker_backend.clone(), tool, 4);
    (team, worker_backend)
}

async fn run_fresh(
    store: &Arc<MemoryStore>,
    team: &mut RoundRobinGroupChat,
) -> Result<(), AgentError> {
    let journal = Journal::create(store.clone(), SESSION, serde_json::json!({"team": "t"}))?;
    let sink = EventSink::none().with_journal(journal);
    team.run_with("write two lines".into(), CancellationToken::new(), &sink).await.map(drop)
}

async fn resume(
    store: &Arc<MemoryStore>,
    team: &mut RoundRobinGroupChat,
) -> Result<(), AgentError> {
    let recovered = Recovered::open(store.clone(), SESSION)?;
    assert_eq!(recovered.meta(), &serde_json::json!({"team": "t"}));
    let (journal, task) = recovered.restore(team).await?;
    let sink = EventSink::none().with_journal(journal);
    team.run_with(task, CancellationToken::new(), &sink).await.map(drop)
}

fn records(store: &MemoryStore) -> Vec<JournalRecord> {
    store.records(SESSION).unwrap().into_iter().map(|e| e.record).collect()
}

fn texts(store: &MemoryStore) -> Vec<String> {
    transcript(&store.records(SESSION).unwrap())
        .into_iter()
        .map(|(_, m)| format!("{}: {}", m.source, m.content))
        .collect()
}

fn finished_results(store: &MemoryStore) -> Vec<ToolResult> {
    records(store)
        .into_iter()
        .filter_map(|r| match r {
            JournalRecord::ToolFinished { result, .. } => Some(result),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_run_killed_at_every_record_resumes_to_the_same_transcript_with_tools_run_once() {
    let store = Arc::new(MemoryStore::new());
    let effects = Effects::default();
    let (mut team, backend) = build(&effects, &Knobs::default());
    run_fresh(&store, &mut team).await.unwrap();
    let baseline = texts(&store);
    let baseline_records = records(&store);
    let baseline_calls = backend.request_count();
    assert_eq!(baseline.len(), 5, "{baseline:?}");
    assert_eq!(*effects.lock().unwrap(), ["c1", "c2"]);
    assert!(matches!(baseline_records.last(), Some(JournalRecord::Finished { .. })));

    for n in 1..baseline_records.len() as u64 {
        let store = Arc::new(MemoryStore::new());
        let effects = Effects::default();
        store.crash_after(Some(n));
        let (mut team, first) = build(&effects, &Knobs::default());
        let err = run_fresh(&store, &mut team).await.unwrap_err();
        assert!(matches!(err, AgentError::Journal(JournalError::Store(_))), "{err}");
        store.crash_after(None);
        let (mut team, second) = build(&effects, &Knobs::default());
        resume(&store, &mut team).await.unwrap();

        assert_eq!(texts(&store), baseline, "killed after record {n}");
        let lost = &baseline_records[n as usize];
        // The model call whose answer could not be journaled is the only one made twice.
        let regenerated = usize::from(
            matches!(lost, JournalRecord::ModelAnswer { agent, .. } if agent == "worker"),
        );
        assert_eq!(
            first.request_count() + second.request_count(),
            baseline_calls + regenerated,
            "killed before {}",
            lost.kind()
        );
        let effects = effects.lock().unwrap().clone();
        for id in ["c1", "c2"] {
            assert!(
                effects.iter().filter(|e| *e == id).count() <= 1,
                "{id} ran twice: {effects:?}"
            );
        }
        // Every journaled real result is an effect that happened exactly once; an interrupted
        // call is one whose result was lost after it ran.
        for result in finished_results(&store) {
            let ran = effects.iter().filter(|e| **e == result.call_id).count();
            assert_eq!(ran, 1, "{} ran {ran} times", result.call_id);
            if result.content == INTERRUPTED {
                assert!(matches!(lost, JournalRecord::ToolFinished { .. }), "{}", lost.kind());
            }
        }
        assert_eq!(finished_results(&store).len(), 2);
    }
}

/// Drops the run future once the store holds a record of `kind` and the test's condition
/// holds, as a kill would.
async fn run_until_killed(store: &Arc<MemoryStore>, team: &mut RoundRobinGroupChat, kind: &str) {
    let journaled =
        || store.records(SESSION).is_ok_and(|e| e.iter().any(|e| e.record.kind() == kind));
    let killed = async {
        while !journaled() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::select! {
        res = run_fresh(store, team) => panic!("the run ended before the kill: {res:?}"),
        _ = tokio::time::timeout(Duration::from_secs(10), killed) => {}
    }
}

/// Runs until the store holds a `kill_at` record (the tool hangs after its effect when that is
/// `tool_started`, the reflection hangs when it is `tool_finished`), drops the run, and resumes
/// it on a fresh team.
async fn kill_and_resume(
    idempotent: bool,
    kill_at: &str,
) -> (Arc<MemoryStore>, Effects, RoundRobinGroupChat, Arc<ScriptedBackend>) {
    let store = Arc::new(MemoryStore::new());
    let effects = Effects::default();
    let knobs = Knobs { idempotent, ..Knobs::default() };
    let hang = if kill_at == "tool_started" { &knobs.hang_tool } else { &knobs.hang_reflect };
    hang.store(true, Ordering::SeqCst);
    let (mut team1, _) = build(&effects, &knobs);
    run_until_killed(&store, &mut team1, kill_at).await;
    drop(team1);
    assert_eq!(*effects.lock().unwrap(), ["c1"]);
    hang.store(false, Ordering::SeqCst);
    let (mut team2, backend) = build(&effects, &knobs);
    resume(&store, &mut team2).await.unwrap();
    (store, effects, team2, backend)
}

#[tokio::test]
async fn a_tool_killed_while_running_is_not_rerun_and_the_model_is_told() {
    let (store, effects, team, _) = kill_and_resume(false, "tool_started").await;
    assert_eq!(*effects.lock().unwrap(), ["c1", "c2"]);
    let results = finished_results(&store);
    assert_eq!(results[0].content, INTERRUPTED);
    assert!(results[0].is_error);
    assert_eq!(results[1].content, "appended");
    let state = team.save_state().await.unwrap();
    let context = &state["agents"]["worker"]["llm_context"];
    assert!(context.to_string().contains(INTERRUPTED), "{context}");
    assert_eq!(texts(&store).len(), 5);
}

#[tokio::test]
async fn an_idempotent_tool_killed_while_running_runs_again() {
    let (store, effects, ..) = kill_and_resume(true, "tool_started").await;
    assert_eq!(*effects.lock().unwrap(), ["c1", "c1", "c2"]);
    assert!(finished_results(&store).iter().all(|r| r.content == "appended"));
    assert_eq!(texts(&store).len(), 5);
}

#[tokio::test]
async fn a_run_killed_after_the_tool_result_uses_the_journaled_result() {
    for idempotent in [false, true] {
        let (store, effects, _, backend) = kill_and_resume(idempotent, "tool_finished").await;
        assert_eq!(*effects.lock().unwrap(), ["c1", "c2"], "idempotent: {idempotent}");
        // The first answer (the tool call) was replayed: the resumed worker asked its model
        // for the reflection, then turn 3's call and reflection.
        assert_eq!(backend.request_count(), 3);
        assert_eq!(finished_results(&store).len(), 2);
        assert_eq!(texts(&store).len(), 5);
    }
}

#[tokio::test]
async fn finished_and_unknown_sessions_do_not_resume_and_names_are_not_reused() {
    let store = Arc::new(MemoryStore::new());
    let (mut team1, _) = build(&Effects::default(), &Knobs::default());
    run_fresh(&store, &mut team1).await.unwrap();
    assert_eq!(
        Recovered::open(store.clone(), SESSION).unwrap_err(),
        JournalError::Finished(SESSION.into())
    );
    assert_eq!(
        Recovered::open(store.clone(), "nope").unwrap_err(),
        JournalError::NotFound("nope".into())
    );
    let err = Journal::create(store.clone(), SESSION, Value::Null).unwrap_err();
    assert_eq!(err, JournalError::Exists(SESSION.into()));
    let listed = store.sessions().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].last_kind, "finished");
    assert!(store.remove(SESSION).unwrap());
    assert!(!store.remove(SESSION).unwrap());
}

#[test]
fn records_round_trip_as_json() {
    let r =
        JournalRecord::ToolStarted { agent: "a".into(), call: ToolCall::new("c1", "append", "{}") };
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["record"], "tool_started");
    assert_eq!(serde_json::from_value::<JournalRecord>(json).unwrap(), r);
}
