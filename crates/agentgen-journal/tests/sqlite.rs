//! The SQLite store on a real database file: records survive reopening, sessions list and go,
//! a resumed team run reads its journal back, and the cost of one record per durability level.

use std::sync::Arc;
use std::time::Instant;

use agentgen_core::journal::{transcript, JournalError, JournalRecord, RunStore};
use agentgen_core::{AgentMessage, ToolCall};
use agentgen_journal::{Durability, SqliteStore};

fn started(task: &str) -> JournalRecord {
    JournalRecord::TaskStarted {
        messages: vec![AgentMessage::text("user", task)],
        base_turns: 0,
        meta: serde_json::json!({"team": null}),
    }
}

#[test]
fn records_survive_reopening_in_order_and_sessions_list_and_go() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join("sessions.sqlite");
    {
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.synchronous().unwrap(), 2, "FULL by default");
        assert_eq!(store.append("a", 10, &started("first")).unwrap(), 1);
        let call = ToolCall::new("c1", "append", "{}");
        let rec = JournalRecord::ToolStarted { agent: "w".into(), call };
        assert_eq!(store.append("a", 11, &rec).unwrap(), 2);
        assert_eq!(store.append("b", 12, &started("second")).unwrap(), 1);
    }
    let store = SqliteStore::open_with(&path, Durability::ProcessCrash).unwrap();
    assert_eq!(store.synchronous().unwrap(), 1);
    let a = store.records("a").unwrap();
    assert_eq!(a.iter().map(|e| (e.seq, e.at_ms)).collect::<Vec<_>>(), [(1, 10), (2, 11)]);
    assert_eq!(a[1].record.kind(), "tool_started");
    assert_eq!(transcript(&a)[0].1.content, "first");
    let listed = store.sessions().unwrap();
    assert_eq!(listed.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!((listed[0].records, listed[0].last_kind.as_str()), (2, "tool_started"));
    assert!(store.remove("a").unwrap());
    assert!(!store.remove("a").unwrap());
    assert_eq!(store.records("a").unwrap_err(), JournalError::NotFound("a".into()));
}

#[test]
fn two_handles_on_one_file_never_share_a_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let stores =
        [Arc::new(SqliteStore::open(&path).unwrap()), Arc::new(SqliteStore::open(&path).unwrap())];
    let handles: Vec<_> = stores
        .iter()
        .map(|s| {
            let s = Arc::clone(s);
            std::thread::spawn(move || {
                for _ in 0..25 {
                    s.append("x", 1, &JournalRecord::Cancelled).unwrap();
                }
            })
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    let seqs: Vec<u64> = stores[0].records("x").unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
}

/// `cargo test -p agentgen-journal --release -- --ignored --nocapture cost_per_record`
#[test]
#[ignore = "a measurement; prints the cost of one record per durability level"]
fn cost_per_record() {
    let dir = tempfile::tempdir().unwrap();
    // A realistic record: a model answer's worth of text.
    let record = JournalRecord::Finished { reason: "x".repeat(600) };
    for durability in [Durability::PowerLoss, Durability::ProcessCrash] {
        let store = SqliteStore::open_with(&dir.path().join(format!("{durability:?}")), durability)
            .unwrap();
        let n = 500;
        let t = Instant::now();
        for _ in 0..n {
            store.append("bench", 1, &record).unwrap();
        }
        let us = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        println!("{durability:?}: {us:.1} us per record");
    }
}
