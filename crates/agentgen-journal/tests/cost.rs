//! What journaling costs a team run on the real model (Qwen2.5-Coder-0.5B Q4_K_M, greedy): a
//! scribe that must call a tool appending a line to a file, and a reviewer, for eight turns,
//! journaled into SQLite at each durability level. Prints the time per append (mean, median,
//! max), the journal's share of the run's wall time, and what resuming a run stopped halfway
//! takes (reading the session and restoring the team; then up to its next record and its first
//! new model answer, in the same process, so the engine's prefix cache is warm).
//!
//! `cargo test -p agentgen-journal --release --test cost -- --ignored --nocapture`

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use agentgen_core::journal::{Entry, Journal, JournalError, JournalRecord, Recovered, SessionInfo};
use agentgen_core::team::{RoundRobinGroupChat, Team};
use agentgen_core::tools::{FunctionTool, ToolError};
use agentgen_core::{
    AssistantAgent, CancellationToken, ChatAgent, ChatBackend, ChatRequest, EventSink, RunStore,
    ToolChoice,
};
use agentgen_journal::{Durability, SqliteStore};
use agentgen_local::{LocalBackend, LocalConfig};

const TURNS: usize = 8;

/// A [`SqliteStore`] that times its appends and can fail from the `fail_at`-th on (a stop).
#[derive(Debug)]
struct TimedStore {
    inner: SqliteStore,
    /// When each append returned, what it took, and the record's kind.
    times: Mutex<Vec<(Instant, Duration, &'static str)>>,
    fail_at: Mutex<Option<usize>>,
}

impl TimedStore {
    fn times(&self) -> Vec<(Instant, Duration, &'static str)> {
        self.times.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl RunStore for TimedStore {
    fn append(
        &self,
        session: &str,
        at_ms: u64,
        record: &JournalRecord,
    ) -> Result<u64, JournalError> {
        let mut times = self.times.lock().unwrap_or_else(PoisonError::into_inner);
        if self
            .fail_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|n| times.len() >= n)
        {
            return Err(JournalError::Store("stopped".into()));
        }
        let t = Instant::now();
        let seq = self.inner.append(session, at_ms, record)?;
        times.push((Instant::now(), t.elapsed(), record.kind()));
        Ok(seq)
    }
    fn records(&self, session: &str) -> Result<Vec<Entry>, JournalError> {
        self.inner.records(session)
    }
    fn sessions(&self) -> Result<Vec<SessionInfo>, JournalError> {
        self.inner.sessions()
    }
    fn remove(&self, session: &str) -> Result<bool, JournalError> {
        self.inner.remove(session)
    }
}

fn greedy(max_tokens: u32, tool_choice: Option<ToolChoice>) -> ChatRequest {
    ChatRequest {
        temperature: Some(0.0),
        seed: Some(7),
        max_tokens: Some(max_tokens),
        tool_choice,
        ..ChatRequest::default()
    }
}

fn team(backend: &Arc<dyn ChatBackend>, lines: PathBuf) -> RoundRobinGroupChat {
    let tool = FunctionTool::from_json(
        "append",
        "Appends one short line of text to the notes file.",
        serde_json::json!({"type": "object", "properties": {"text": {"type": "string"}},
                           "required": ["text"]}),
        move |args, _ctx| {
            let lines = lines.clone();
            async move {
                let fail = |e: std::io::Error| ToolError::Execution {
                    tool: "append".into(),
                    message: e.to_string(),
                };
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&lines)
                    .map_err(fail)?;
                let text = args["text"].as_str().unwrap_or_default().replace('\n', " ");
                std::io::Write::write_all(&mut f, format!("{text}\n").as_bytes()).map_err(fail)?;
                f.sync_all().map_err(fail)?;
                Ok(serde_json::json!("appended"))
            }
        },
    );
    let scribe = AssistantAgent::new("scribe", backend.clone())
        .with_system_message(Some(
            "You keep notes. Each time, call the append tool with one new short fact about the sea."
                .to_owned(),
        ))
        .with_tool(tool)
        .unwrap()
        .with_request_defaults(greedy(40, Some(ToolChoice::Required)));
    let reviewer = AssistantAgent::new("reviewer", backend.clone())
        .with_system_message(Some("You answer with one short word about the last note.".to_owned()))
        .with_request_defaults(greedy(8, None));
    let agents: Vec<Box<dyn ChatAgent>> = vec![Box::new(scribe), Box::new(reviewer)];
    RoundRobinGroupChat::new(agents).unwrap().with_max_turns(TURNS)
}

fn open(dir: &Path, durability: Durability, fail_at: Option<usize>) -> Arc<TimedStore> {
    let path = dir.join(format!("{durability:?}.sqlite"));
    Arc::new(TimedStore {
        inner: SqliteStore::open_with(&path, durability).unwrap(),
        times: Mutex::new(Vec::new()),
        fail_at: Mutex::new(fail_at),
    })
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement on the real model; run with --ignored --nocapture"]
async fn journal_cost_on_the_real_model() {
    let Some(path) = agentgen_models::cache::model_for_tests() else { return };
    let backend: Arc<dyn ChatBackend> =
        Arc::new(LocalBackend::load(LocalConfig::new(path)).unwrap());
    let dir = tempfile::tempdir().unwrap();
    // A warm-up run so that neither level pays for first-touch page faults of the model.
    let _ = team(&backend, dir.path().join("warm.txt")).run("Go.".into()).await.unwrap();
    for durability in [Durability::PowerLoss, Durability::ProcessCrash] {
        let store = open(dir.path(), durability, None);
        let journal = Journal::create(store.clone(), "full", serde_json::Value::Null).unwrap();
        let mut t = team(&backend, dir.path().join("lines.txt"));
        let started = Instant::now();
        let sink = EventSink::none().with_journal(journal);
        t.run_with("Go.".into(), CancellationToken::new(), &sink).await.unwrap();
        let wall = started.elapsed();
        let mut times: Vec<Duration> = store.times().into_iter().map(|(_, d, _)| d).collect();
        let total: Duration = times.iter().sum();
        times.sort();
        println!(
            "{durability:?}: {} records in a {:.2} s run; per record mean {:.0} us, median {:.0} us, \
             max {:.0} us; journal {:.3} % of wall time",
            times.len(),
            wall.as_secs_f64(),
            us(total) / times.len() as f64,
            us(times[times.len() / 2]),
            us(*times.last().unwrap()),
            100.0 * total.as_secs_f64() / wall.as_secs_f64(),
        );

        // The same run stopped halfway (the store fails from record n/2 on), then resumed.
        let half = times.len() / 2;
        let store = open(dir.path(), durability, Some(half));
        let journal = Journal::create(store.clone(), "half", serde_json::Value::Null).unwrap();
        let mut t = team(&backend, dir.path().join("lines2.txt"));
        let sink = EventSink::none().with_journal(journal);
        assert!(t.run_with("Go.".into(), CancellationToken::new(), &sink).await.is_err());
        *store.fail_at.lock().unwrap() = None;
        let mut fresh = team(&backend, dir.path().join("lines2.txt"));
        let t0 = Instant::now();
        let recovered = Recovered::open(store.clone(), "half").unwrap();
        let (journal, task) = recovered.restore(&mut fresh).await.unwrap();
        let restore = t0.elapsed();
        let sink = EventSink::none().with_journal(journal);
        fresh.run_with(task, CancellationToken::new(), &sink).await.unwrap();
        let times = store.times();
        let answer = times[half..].iter().find(|(_, _, k)| *k == "model_answer").unwrap().0;
        println!(
            "{durability:?}: resume of a run stopped at record {half}: read + restore {:.0} us, \
             next record after {:.1} ms, first new model answer after {:.0} ms",
            us(restore),
            times[half].0.duration_since(t0).as_secs_f64() * 1e3,
            answer.duration_since(t0).as_secs_f64() * 1e3,
        );
    }
}
