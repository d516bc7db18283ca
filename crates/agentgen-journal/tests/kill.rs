//! A journaled team run in a real child process, killed with SIGKILL at ten points (some timed
//! to land while a tool call is running, the rest at random), resumed each time from the SQLite
//! file: the final transcript has every message once, and the file the tool appends to shows
//! each completed call exactly once. The team runs on a scripted backend (deterministic and
//! fast); the child is this test binary running its ignored `child_process` test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentgen_core::journal::{
    transcript, Journal, JournalError, JournalRecord, Recovered, INTERRUPTED,
};
use agentgen_core::team::{RoundRobinGroupChat, Team};
use agentgen_core::testing::{append_then_reflect, worker_and_reviewer, ScriptedBackend};
use agentgen_core::tools::{FunctionTool, ToolError};
use agentgen_core::{CancellationToken, EventSink, RunStore};
use agentgen_journal::SqliteStore;

const CHILD_ENV: &str = "AGENTGEN_KILL_TEST_DIR";
const SESSION: &str = "k";
const TURNS: usize = 20;

fn team(lines: PathBuf) -> RoundRobinGroupChat {
    let worker_backend = ScriptedBackend::new().with_responder(append_then_reflect);
    let tool = FunctionTool::from_json(
        "append",
        "Appends a line to the file.",
        serde_json::json!({"type": "object", "properties": {"line": {"type": "string"}}}),
        move |_args, ctx| {
            let lines = lines.clone();
            async move {
                let fail = |e: std::io::Error| ToolError::Execution {
                    tool: "append".into(),
                    message: e.to_string(),
                };
                tokio::time::sleep(Duration::from_millis(5)).await;
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&lines)
                    .map_err(fail)?;
                std::io::Write::write_all(&mut f, format!("{}\n", ctx.call_id).as_bytes())
                    .map_err(fail)?;
                // A window between the effect and its journaled result, for the kill to land in.
                tokio::time::sleep(Duration::from_millis(30)).await;
                Ok(serde_json::json!("appended"))
            }
        },
    );
    worker_and_reviewer(Arc::new(worker_backend), tool, TURNS)
}

/// The child: starts the session, or resumes it when it exists.
#[tokio::test]
#[ignore = "the child process of `sigkill_at_ten_points_then_resume`"]
async fn child_process() {
    let Some(dir) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else { return };
    let store: Arc<dyn RunStore> = Arc::new(SqliteStore::open(&dir.join("s.sqlite")).unwrap());
    let mut team = team(dir.join("lines.txt"));
    let (journal, task) = match Recovered::open(store.clone(), SESSION) {
        Ok(recovered) => recovered.restore(&mut team).await.unwrap(),
        Err(JournalError::NotFound(_)) => {
            (Journal::create(store, SESSION, serde_json::Value::Null).unwrap(), "go".into())
        }
        Err(JournalError::Finished(_)) => return,
        Err(e) => panic!("{e}"),
    };
    let sink = EventSink::none().with_journal(journal);
    team.run_with(task, CancellationToken::new(), &sink).await.unwrap();
}

fn spawn(dir: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_process", "--include-ignored", "--quiet"])
        .env(CHILD_ENV, dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[test]
fn sigkill_at_ten_points_then_resume() {
    let dir = tempfile::tempdir().unwrap();
    let (db, lines) = (dir.path().join("s.sqlite"), dir.path().join("lines.txt"));
    let mut seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos()
            as u64;
    println!("seed {seed}");
    let mut kills = Vec::new();
    for i in 0..10 {
        let before = file_len(&lines);
        let mut child = spawn(dir.path());
        if i % 3 == 0 {
            // Kill while a tool call runs: its line is written, its result not yet journaled.
            let t = Instant::now();
            while file_len(&lines) == before
                && t.elapsed() < Duration::from_secs(20)
                && child.try_wait().unwrap().is_none()
            {
                std::thread::sleep(Duration::from_micros(200));
            }
        } else {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            std::thread::sleep(Duration::from_millis(10 + (seed >> 33) % 60));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let last = SqliteStore::open(&db)
            .unwrap()
            .records(SESSION)
            .ok()
            .and_then(|e| e.last().map(|e| e.record.kind()));
        kills.push(last);
    }
    println!("last record at each kill: {kills:?}");
    assert!(kills.contains(&Some("tool_started")), "no kill landed mid-tool: {kills:?}");
    let t = Instant::now();
    let status = spawn(dir.path()).wait().unwrap();
    println!("final resume ran {:?}", t.elapsed());
    assert!(status.success());

    let store = SqliteStore::open(&db).unwrap();
    let entries = store.records(SESSION).unwrap();
    assert!(matches!(entries.last().unwrap().record, JournalRecord::Finished { .. }));
    let said: Vec<String> = transcript(&entries)
        .into_iter()
        .map(|(_, m)| format!("{}: {}", m.source, m.content))
        .collect();
    let mut expected = vec!["user: go".to_owned()];
    for _ in 0..TURNS / 2 {
        expected.push("worker: wrote it".into());
        expected.push("reviewer: ok".into());
    }
    assert_eq!(said, expected, "a message was lost or doubled");

    let text = std::fs::read_to_string(&lines).unwrap();
    let ran: Vec<&str> = text.lines().collect();
    let results: Vec<_> = entries
        .iter()
        .filter_map(|e| match &e.record {
            JournalRecord::ToolFinished { result, .. } => Some(result.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(results.len(), TURNS / 2, "one result per worker turn");
    for r in &results {
        let n = ran.iter().filter(|l| **l == r.call_id).count();
        if r.content == INTERRUPTED {
            assert!(n <= 1, "{} ran {n} times", r.call_id);
        } else {
            assert_eq!(n, 1, "completed call {} is in the file {n} times", r.call_id);
        }
    }
    for l in &ran {
        assert!(results.iter().any(|r| r.call_id == *l), "unknown line {l}");
        assert_eq!(ran.iter().filter(|x| *x == l).count(), 1, "{l} ran twice: {ran:?}");
    }
}
