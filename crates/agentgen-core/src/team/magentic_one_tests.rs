use std::sync::Arc;

use super::*;
use crate::events::Task;
use crate::message::ChatMessage;
use crate::team::Team;
use crate::testing::{Reply, ScriptedBackend};
use crate::AssistantAgent;

fn echo(name: &str) -> Box<dyn ChatAgent> {
    let tag = name.to_owned();
    let backend = ScriptedBackend::new().with_responder(move |req: &ChatRequest| {
        Reply::text(format!("{tag}:{}", req.messages.len()))
    });
    Box::new(AssistantAgent::new(name, Arc::new(backend)).with_description(format!("the {name}")))
}

fn last_prompt(req: &ChatRequest) -> String {
    match req.messages.last() {
        Some(ChatMessage::User { content, .. }) => content.to_string(),
        _ => String::new(),
    }
}

fn ledger(satisfied: bool, progress: bool, next: &str, instruction: &str) -> String {
    json!({
        "is_request_satisfied": {"reason": "r", "answer": satisfied},
        "is_in_loop": {"reason": "r", "answer": false},
        "is_progress_being_made": {"reason": "r", "answer": progress},
        "next_speaker": {"reason": "r", "answer": next},
        "instruction_or_question": {"reason": "r", "answer": instruction},
    })
    .to_string()
}

/// An orchestrator that answers facts/plan/final prompts by their wording and progress
/// ledgers from `ledgers` in order (then "satisfied").
fn orchestrator(ledgers: Vec<String>) -> Arc<ScriptedBackend> {
    let queue = std::sync::Mutex::new(std::collections::VecDeque::from(ledgers));
    Arc::new(ScriptedBackend::new().with_responder(move |req| {
        let p = last_prompt(req);
        if p.contains("pre-survey") || p.contains("rewrite the following fact sheet") {
            Reply::text("FACTS")
        } else if p.contains("plan") && !p.contains("pure JSON") {
            Reply::text("PLAN")
        } else if p.contains("final answer") {
            Reply::text("FINAL")
        } else {
            let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
            Reply::text(next.unwrap_or_else(|| ledger(true, true, "", "")))
        }
    }))
}

fn sources(m: &[AgentMessage]) -> Vec<&str> {
    m.iter().map(|m| m.source.as_str()).collect()
}

#[test]
fn ledgers_parse_leniently() {
    let l = parse_progress_ledger(&format!("```json\n{}\n```", ledger(false, true, "a", "go")))
        .unwrap();
    assert_eq!(l.next_speaker, "a");
    assert_eq!(l.instruction_or_question, "go");
    let bare = r#"Sure! {"is_request_satisfied": "false", "next_speaker": "b", "instruction_or_question": "x"} ok"#;
    let l = parse_progress_ledger(bare).unwrap();
    assert!(!l.is_request_satisfied && l.is_progress_being_made && !l.is_in_loop);
    assert_eq!(parse_progress_ledger("no json"), Err(LedgerError::NoJson));
    assert_eq!(parse_progress_ledger("{}"), Err(LedgerError::Key("is_request_satisfied")));
    assert_eq!(
        parse_progress_ledger(r#"{"is_request_satisfied": {"answer": false}}"#),
        Err(LedgerError::Key("next_speaker"))
    );
    // Satisfied needs no speaker; hostile input never panics.
    assert!(
        parse_progress_ledger(r#"{"is_request_satisfied": true}"#).unwrap().is_request_satisfied
    );
    for s in ["{", "}{", "{\u{e9}}", "}", "{\"is_request_satisfied\": [1]}", "\u{1F600}{"] {
        assert!(parse_progress_ledger(s).is_err(), "{s}");
    }
}

#[tokio::test]
async fn orchestrator_ledger_instructions_then_final_answer() {
    let orch = orchestrator(vec![
        ledger(false, true, "b", "b, do the thing"),
        ledger(false, true, "a", "a, check it"),
    ]);
    let mut team = MagenticOneGroupChat::new(vec![echo("a"), echo("b")], orch.clone()).unwrap();
    let result = team.run("task".into()).await.unwrap();
    let o = ORCHESTRATOR_NAME;
    assert_eq!(sources(&result.messages), vec!["user", o, o, "b", o, "a", o]);
    assert!(
        result.messages[1].content.contains("FACTS") && result.messages[1].content.contains("PLAN")
    );
    assert_eq!(result.messages[2].content, "b, do the thing");
    assert_eq!(result.messages[6].content, "FINAL");
    assert_eq!(result.stop_reason.as_deref(), Some("The request is satisfied."));
    assert_eq!(team.policy().facts(), "FACTS");
    // The run's usage counts the orchestrator's calls (facts, plan, 3 ledgers, final answer)
    // beside the agents' two turns; each scripted call reports 15 tokens.
    assert_eq!(orch.request_count(), 6);
    assert_eq!(result.usage.total_tokens, (6 + 2) * 15, "{:?}", result.usage);
}

#[tokio::test]
async fn first_speaker_skips_the_first_progress_ledger() {
    let orch = orchestrator(vec![]);
    let mut team = MagenticOneGroupChat::new(vec![echo("a"), echo("b")], orch.clone())
        .unwrap()
        .with_first_speaker("b")
        .unwrap();
    let result = team.run("task".into()).await.unwrap();
    let o = ORCHESTRATOR_NAME;
    assert_eq!(sources(&result.messages), vec!["user", o, o, "b", o]);
    assert!(matches!(
        MagenticOneGroupChat::new(vec![echo("a")], orch).unwrap().with_first_speaker("zed"),
        Err(AgentError::UnknownAgent(_))
    ));
}

#[tokio::test]
async fn garbage_ledgers_fall_back_to_next_in_turn_and_turns_are_bounded() {
    let orch = Arc::new(ScriptedBackend::new().with_responder(|req| {
        if last_prompt(req).contains("final answer") {
            Reply::text("FINAL")
        } else {
            Reply::text("{not json ```")
        }
    }));
    let mut team = MagenticOneGroupChat::new(vec![echo("a"), echo("b")], orch.clone())
        .unwrap()
        .with_orchestrator_max_turns(3)
        .with_max_stalls(100);
    let result = team.run("task".into()).await.unwrap();
    let speakers: Vec<&str> =
        sources(&result.messages).into_iter().filter(|s| *s != ORCHESTRATOR_NAME).collect();
    assert_eq!(speakers, vec!["user", "a", "b", "a"]);
    assert_eq!(result.messages.last().unwrap().content, "FINAL");
    assert!(result.stop_reason.unwrap().contains("Maximum number of turns 3"));
    // 2 ledger calls + 3 turns x 3 attempts + 1 final answer.
    assert_eq!(orch.request_count(), 2 + 9 + 1);
}

#[tokio::test]
async fn stalls_trigger_a_replan_and_reset_the_agents() {
    let orch = orchestrator(vec![
        ledger(false, false, "a", "try"),
        ledger(false, false, "a", "try again"),
        ledger(false, true, "b", "new plan"),
    ]);
    let mut team = MagenticOneGroupChat::new(vec![echo("a"), echo("b")], orch.clone())
        .unwrap()
        .with_max_stalls(2);
    let result = team.run("task".into()).await.unwrap();
    let o = ORCHESTRATOR_NAME;
    // Ledger, try, a, [stall 2: re-plan ledger], try again, a, new plan, b, final.
    assert_eq!(sources(&result.messages), vec!["user", o, o, "a", o, o, "a", o, "b", o]);
    assert!(result.messages[4].content.contains("FACTS"));
    // `a` was reset by the re-plan: it sees its system prompt and the new ledger + instruction.
    assert_eq!(result.messages[6].content, "a:3");
    assert_eq!(team.policy().stalls(), 0);
    // State round-trips.
    let saved = team.save_state().await.unwrap();
    team.load_state(saved).await.unwrap();
    let more = team.run(Task::Continue).await.unwrap();
    assert!(more.messages.is_empty() || more.messages.iter().all(|m| m.source == o));
}

#[tokio::test]
async fn a_failed_turn_does_not_count_its_selection() {
    // Two stalls re-plan; `a` fails once, after the first stalled selection.
    let orch = orchestrator(vec![
        ledger(false, false, "a", "try"),
        ledger(false, false, "a", "try once more"),
        ledger(false, true, "a", "go on"),
    ]);
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let flaky = ScriptedBackend::new().with_responder(move |_req: &ChatRequest| {
        if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            Reply::Error(crate::BackendError::Internal("down".into()))
        } else {
            Reply::text("done")
        }
    });
    let a = Box::new(AssistantAgent::new("a", Arc::new(flaky)).with_description("the a"));
    let mut team = MagenticOneGroupChat::new(vec![a], orch).unwrap().with_max_stalls(2);
    assert!(team.run("task".into()).await.is_err());
    // The failed turn's stall and round were rolled back, in the saved state too.
    let saved = team.save_state().await.unwrap();
    let policy = &saved["policy"];
    assert_eq!(policy["n_stalls"], 0, "{saved}");
    assert_eq!(policy["n_rounds"], 0, "{saved}");
    // The run goes on: the second stalled selection is the first counted, so no re-plan yet.
    let more = team.run(Task::Continue).await.unwrap();
    assert!(!more.messages.iter().any(|m| m.content.contains("FACTS")), "{:?}", more.messages);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_custom_final_answer_prompt_is_filled_and_asked() {
    let orch = orchestrator(vec![]);
    let mut team = MagenticOneGroupChat::new(vec![echo("a"), echo("b")], orch.clone())
        .unwrap()
        .with_final_answer_prompt("Give the final answer to {task} from {names}; known: {facts}")
        .unwrap();
    let result = team.run("the task".into()).await.unwrap();
    assert_eq!(result.messages.last().unwrap().content, "FINAL");
    let requests = orch.requests();
    assert_eq!(
        last_prompt(requests.last().unwrap()),
        "Give the final answer to the task from a, b; known: FACTS"
    );
    // The default request is not sent.
    assert!(!requests.iter().any(|r| last_prompt(r).contains("We have completed the task")));
}

#[test]
fn empty_final_answer_prompts_and_unfilled_placeholders_are_refused() {
    let team = || MagenticOneGroupChat::new(vec![echo("a")], orchestrator(vec![])).unwrap();
    assert_eq!(
        team().with_final_answer_prompt(" \n").err(),
        Some(AgentError::PromptTemplate(PromptTemplateError::Empty {
            prompt: "final answer prompt"
        }))
    );
    let err = team().with_final_answer_prompt("Answer {task} for {user}").err();
    assert!(
        matches!(
            &err,
            Some(AgentError::PromptTemplate(PromptTemplateError::UnknownPlaceholder {
                placeholder, ..
            })) if placeholder == "user"
        ),
        "{err:?}"
    );
    // Braces that are not placeholders are text.
    assert!(team().with_final_answer_prompt("Answer {task} as {\"answer\": \"...\"}").is_ok());
    assert!(MagenticOnePolicy::check_final_answer_prompt("{plan} {team}").is_ok());
}

/// An echo agent and its backend (to count its model calls).
fn counted(name: &str) -> (Box<dyn ChatAgent>, Arc<ScriptedBackend>) {
    let tag = name.to_owned();
    let backend = Arc::new(ScriptedBackend::new().with_responder(move |req: &ChatRequest| {
        Reply::text(format!("{tag}:{}", req.messages.len()))
    }));
    let agent = AssistantAgent::new(name, backend.clone()).with_description(format!("the {name}"));
    (Box::new(agent), backend)
}

/// An orchestrator whose ledgers depend only on how many agent turns its context holds, so a
/// rebuilt one answers a resumed run as the first one did: `b` works, then `a` is asked while
/// no progress is made (with `max_stalls(1)` a re-plan that resets the agents), then the
/// request is satisfied.
fn stateless_orchestrator() -> Arc<ScriptedBackend> {
    Arc::new(ScriptedBackend::new().with_responder(|req| {
        let p = last_prompt(req);
        let turns = req
            .messages
            .iter()
            .filter(|m| {
                matches!(m, ChatMessage::User { content, .. }
                    if content.starts_with("a: ") || content.starts_with("b: "))
            })
            .count();
        if p.contains("pre-survey") || p.contains("rewrite the following fact sheet") {
            Reply::text(format!("FACTS after {turns}"))
        } else if p.contains("plan") && !p.contains("pure JSON") {
            Reply::text(format!("PLAN after {turns}"))
        } else if p.contains("final answer") {
            Reply::text("FINAL")
        } else {
            Reply::text(match turns {
                0 => ledger(false, true, "b", "b, do the thing"),
                1 => ledger(false, false, "a", "a, check it"),
                _ => ledger(true, true, "", ""),
            })
        }
    }))
}

type Backends = [Arc<ScriptedBackend>; 3];

fn journaled_team() -> (MagenticOneGroupChat, Backends) {
    let (a, a_backend) = counted("a");
    let (b, b_backend) = counted("b");
    let orch = stateless_orchestrator();
    let team = MagenticOneGroupChat::new(vec![a, b], orch.clone()).unwrap().with_max_stalls(1);
    (team, [orch, a_backend, b_backend])
}

async fn run_journaled(
    store: &Arc<crate::journal::MemoryStore>,
    team: &mut MagenticOneGroupChat,
    resume: bool,
) -> Result<(), AgentError> {
    use crate::journal::{Journal, Recovered};
    let (journal, task) = if resume {
        Recovered::open(store.clone(), "s")?.restore(team).await?
    } else {
        (Journal::create(store.clone(), "s", json!({}))?, Task::from("task"))
    };
    let sink = EventSink::none().with_journal(journal);
    team.run_with(task, CancellationToken::new(), &sink).await.map(drop)
}

fn journal_texts(store: &crate::journal::MemoryStore) -> Vec<String> {
    use crate::journal::RunStore;
    crate::journal::transcript(&store.records("s").unwrap())
        .into_iter()
        .map(|(_, m)| format!("{}: {}", m.source, m.content))
        .collect()
}

#[tokio::test]
async fn a_run_killed_at_every_record_resumes_with_the_orchestrators_plan_words_and_state() {
    use crate::journal::{JournalError, JournalRecord, MemoryStore, RunStore};
    let calls = |b: &Backends| b.iter().map(|b| b.request_count()).collect::<Vec<_>>();
    // Unjournaled, the run's own messages.
    let (mut team, _) = journaled_team();
    let plain = team.run("task".into()).await.unwrap();
    let plain: Vec<String> =
        plain.messages.iter().map(|m| format!("{}: {}", m.source, m.content)).collect();

    let store = Arc::new(MemoryStore::new());
    let (mut team, backends) = journaled_team();
    run_journaled(&store, &mut team, false).await.unwrap();
    let baseline = journal_texts(&store);
    let baseline_calls = calls(&backends);
    let baseline_records: Vec<JournalRecord> =
        store.records("s").unwrap().into_iter().map(|e| e.record).collect();
    // The journal's transcript is the whole conversation: the orchestrator's ledgers (the
    // re-plan too), instructions and final answer, and `a` answering after the reset.
    assert_eq!(baseline, plain);
    let o = ORCHESTRATOR_NAME;
    for said in ["FACTS after 0", "b, do the thing", "FACTS after 1", "a, check it", "FINAL"] {
        assert!(baseline.iter().any(|t| t.starts_with(o) && t.contains(said)), "{baseline:?}");
    }
    assert!(baseline_records
        .iter()
        .any(|r| matches!(r, JournalRecord::SpeakerChosen { reset_agents: true, .. })));
    assert!(matches!(baseline_records.last(), Some(JournalRecord::Finished { .. })));

    for n in 1..baseline_records.len() as u64 {
        let store = Arc::new(MemoryStore::new());
        store.crash_after(Some(n));
        let (mut team, first) = journaled_team();
        let err = run_journaled(&store, &mut team, false).await.unwrap_err();
        assert!(matches!(err, AgentError::Journal(JournalError::Store(_))), "{err}");
        store.crash_after(None);
        let (mut team, second) = journaled_team();
        run_journaled(&store, &mut team, true).await.unwrap();

        let lost = &baseline_records[n as usize];
        assert_eq!(journal_texts(&store), baseline, "killed before {} (record {n})", lost.kind());
        let total: Vec<usize> =
            calls(&first).iter().zip(calls(&second)).map(|(x, y)| x + y).collect();
        // An agent's model is asked again only for the answer that was not journaled; the
        // orchestrator only for the selection that was not (its ledger calls, at most three).
        for (i, name) in [(1, "a"), (2, "b")] {
            let regenerated = usize::from(
                matches!(lost, JournalRecord::ModelAnswer { agent, .. } if agent == name),
            );
            assert_eq!(total[i], baseline_calls[i] + regenerated, "{name}, lost {}", lost.kind());
        }
        match lost {
            JournalRecord::SpeakerChosen { .. } | JournalRecord::PolicyStopped { .. } => {
                assert!(total[0] > baseline_calls[0] && total[0] <= baseline_calls[0] + 3)
            }
            _ => assert_eq!(total[0], baseline_calls[0], "orchestrator, lost {}", lost.kind()),
        }
    }
}
