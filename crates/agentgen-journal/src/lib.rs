//! agentgen-journal has one job: keep agentgen's run journals in SQLite. [`SqliteStore`]
//! implements core's [`RunStore`] over one database file (WAL mode), so a team run killed at any
//! moment can be resumed from the file by [`agentgen_core::journal::Recovered`].
//!
//! Durability: every append is its own transaction. [`Durability::PowerLoss`] (the default,
//! `synchronous = FULL`) syncs the WAL to disk before the append returns, so a record the run
//! acts on survives a power cut or kernel crash as well as a killed process: a tool with
//! outside effects is never started without its `tool_started` record on disk.
//! [`Durability::ProcessCrash`] (`synchronous = NORMAL`) leaves the sync to checkpoints: still
//! safe against `kill -9` (the WAL is in the OS's page cache), not against power loss, and much
//! cheaper per record. The cost of each is measured by the ignored tests `cost_per_record`
//! (one record) and `journal_cost_on_the_real_model` (tests/cost.rs: a team run on the real
//! model, per record and as a share of the run's wall time, and the resume time).

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use agentgen_core::journal::{Entry, JournalError, JournalRecord, RunStore, SessionInfo};
use rusqlite::{params, Connection, OptionalExtension};

/// How far a committed record is guaranteed to survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Survives a killed process and a power loss (`synchronous = FULL`: the WAL is synced at
    /// every commit).
    #[default]
    PowerLoss,
    /// Survives a killed process, not a power loss (`synchronous = NORMAL`).
    ProcessCrash,
}

/// A [`RunStore`] in one SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

/// Another process holding the database is waited for at most this long.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

fn store_err(e: rusqlite::Error) -> JournalError {
    JournalError::Store(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` with the default durability.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        Self::open_with(path, Durability::default())
    }

    /// Opens (creating if needed) the store at `path`, creating its folder too.
    pub fn open_with(path: &Path, durability: Durability) -> Result<Self, JournalError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                JournalError::Store(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let conn = Connection::open(path).map_err(store_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(store_err)?;
        let sync = match durability {
            Durability::PowerLoss => "FULL",
            Durability::ProcessCrash => "NORMAL",
        };
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = {sync};
             CREATE TABLE IF NOT EXISTS records (
                 session TEXT NOT NULL,
                 seq INTEGER NOT NULL,
                 at_ms INTEGER NOT NULL,
                 kind TEXT NOT NULL,
                 body TEXT NOT NULL,
                 PRIMARY KEY (session, seq)
             ) WITHOUT ROWID;"
        ))
        .map_err(store_err)?;
        Ok(Self { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl RunStore for SqliteStore {
    fn append(
        &self,
        session: &str,
        at_ms: u64,
        record: &JournalRecord,
    ) -> Result<u64, JournalError> {
        let body = serde_json::to_string(record).map_err(|e| JournalError::Store(e.to_string()))?;
        let mut conn = self.conn();
        // IMMEDIATE: the next sequence number is read and written under one write lock, even
        // with another process appending to the same file.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(store_err)?;
        let seq: u64 = tx
            .query_row(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM records WHERE session = ?1",
                params![session],
                |r| r.get(0),
            )
            .map_err(store_err)?;
        tx.execute(
            "INSERT INTO records (session, seq, at_ms, kind, body) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![session, seq, at_ms, record.kind(), body],
        )
        .map_err(store_err)?;
        tx.commit().map_err(store_err)?;
        Ok(seq)
    }

    fn records(&self, session: &str) -> Result<Vec<Entry>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT seq, at_ms, body FROM records WHERE session = ?1 ORDER BY seq")
            .map_err(store_err)?;
        let rows = stmt
            .query_map(params![session], |r| {
                Ok((r.get::<_, u64>(0)?, r.get::<_, u64>(1)?, r.get::<_, String>(2)?))
            })
            .map_err(store_err)?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, at_ms, body) = row.map_err(store_err)?;
            let record = serde_json::from_str(&body).map_err(|e| JournalError::Corrupt {
                session: session.to_owned(),
                seq,
                message: e.to_string(),
            })?;
            out.push(Entry { seq, at_ms, record });
        }
        if out.is_empty() {
            return Err(JournalError::NotFound(session.to_owned()));
        }
        Ok(out)
    }

    fn sessions(&self) -> Result<Vec<SessionInfo>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT session, COUNT(*), MIN(at_ms), MAX(at_ms),
                        (SELECT kind FROM records l WHERE l.session = r.session
                         ORDER BY seq DESC LIMIT 1)
                 FROM records r GROUP BY session ORDER BY session",
            )
            .map_err(store_err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(SessionInfo {
                    name: r.get(0)?,
                    records: r.get(1)?,
                    started_ms: r.get(2)?,
                    updated_ms: r.get(3)?,
                    last_kind: r.get(4)?,
                })
            })
            .map_err(store_err)?;
        rows.collect::<Result<_, _>>().map_err(store_err)
    }

    fn remove(&self, session: &str) -> Result<bool, JournalError> {
        let n = self
            .conn()
            .execute("DELETE FROM records WHERE session = ?1", params![session])
            .map_err(store_err)?;
        Ok(n > 0)
    }
}

impl SqliteStore {
    /// The `synchronous` level the connection runs with (0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA).
    pub fn synchronous(&self) -> Result<i64, JournalError> {
        self.conn()
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .optional()
            .map_err(store_err)
            .map(Option::unwrap_or_default)
    }
}
