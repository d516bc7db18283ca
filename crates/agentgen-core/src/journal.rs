//! The run journal: every event of a team run is committed to a [`RunStore`] before it is acted
//! on, so a run killed at any moment resumes where it stopped, with no message lost or doubled
//! and no tool call run twice.
//!
//! A team run writes, in order: [`JournalRecord::TaskStarted`], then per turn
//! [`SpeakerChosen`](JournalRecord::SpeakerChosen) (with what the speaker policy itself said and
//! decided: an orchestrator's plan and instruction, a reset of the agents, its state), each model answer
//! ([`ModelAnswer`](JournalRecord::ModelAnswer), tool calls included, before any tool runs),
//! each answer a person gives a user proxy ([`UserInput`](JournalRecord::UserInput)),
//! [`ToolStarted`](JournalRecord::ToolStarted) and [`ToolFinished`](JournalRecord::ToolFinished)
//! per call, and [`TurnCommitted`](JournalRecord::TurnCommitted) with the team's whole saved
//! state (agents, model contexts, speaker policy, termination counters); at the end
//! [`PolicyStopped`](JournalRecord::PolicyStopped) when the speaker policy ends the run (with its
//! final words), then [`Finished`](JournalRecord::Finished) or
//! [`Cancelled`](JournalRecord::Cancelled).
//!
//! [`Recovered::restore`] loads the last committed state into a team built the same way and
//! replays the records after it: a journaled speaker choice (and the policy's messages and state
//! that came with it) or model answer is used instead of asking again, a journaled tool result instead of running the tool (code blocks of a
//! [`CodeExecutorAgent`](crate::agent::CodeExecutorAgent) count as calls of a tool that is not
//! idempotent). A tool that was started
//! but has no result runs again only if it declares itself
//! [`idempotent`](crate::tools::Tool::idempotent); otherwise the model reads
//! [`INTERRUPTED`] as its result and the run goes on.
//!
//! The journal is attached to a run through its [`EventSink`](crate::events::EventSink)
//! ([`EventSink::with_journal`](crate::events::EventSink::with_journal)). The SQLite store lives
//! in its own crate; [`MemoryStore`] here is for tests.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::AgentError;
use crate::events::{AgentMessage, Task, ToolResult};
use crate::message::ToolCall;
use crate::response::ChatResponse;
use crate::team::Team;

/// The result a model reads for a non-idempotent tool call that was started before the run
/// stopped and has no journaled result.
pub const INTERRUPTED: &str = "Error: interrupted; not re-run";

/// Why the journal could not be written or read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The store failed (I/O, database, lock).
    #[error("run store failed: {0}")]
    Store(String),
    /// A stored record could not be read back.
    #[error("session `{session}` record {seq} is unreadable: {message}")]
    Corrupt {
        /// The session.
        session: String,
        /// The record's sequence number.
        seq: u64,
        /// What is wrong.
        message: String,
    },
    /// No session of this name.
    #[error("no session named `{0}`")]
    NotFound(String),
    /// A new run was started under a name that already has records.
    #[error("session `{0}` already exists")]
    Exists(String),
    /// The session ran to its end; there is nothing to resume.
    #[error("session `{0}` has finished")]
    Finished(String),
    /// The records do not describe a run (e.g. no task).
    #[error("session `{session}` is inconsistent: {message}")]
    Inconsistent {
        /// The session.
        session: String,
        /// What is wrong.
        message: String,
    },
}

/// One event of a team run, as journaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum JournalRecord {
    /// The run started on these task messages.
    TaskStarted {
        /// The task.
        messages: Vec<AgentMessage>,
        /// The team's turn count before the task (turn limits count from here).
        base_turns: usize,
        /// What the caller needs to build the same team again (opaque to core).
        meta: Value,
    },
    /// The speaker policy chose who speaks next.
    SpeakerChosen {
        /// The agent.
        speaker: String,
        /// What the policy said before the speaker speaks (an orchestrator's plan and
        /// instruction), posted to the thread.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        posts: Vec<AgentMessage>,
        /// Whether the agents started over before the posts (an orchestrator re-planned).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        reset_agents: bool,
        /// The policy's state after the choice, when its choice changes it
        /// ([`SpeakerPolicy::selection_state`](crate::team::SpeakerPolicy::selection_state)).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy_state: Option<Value>,
    },
    /// The speaker policy ended the run, with its last messages (an orchestrator's final
    /// answer).
    PolicyStopped {
        /// Why the run stops.
        reason: String,
        /// What the policy said last, posted to the thread.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        posts: Vec<AgentMessage>,
    },
    /// A model answered an agent (tool calls included), before any tool ran.
    ModelAnswer {
        /// The agent.
        agent: String,
        /// The answer as the backend gave it.
        response: ChatResponse,
    },
    /// A person answered a user proxy (asked once: a resumed turn reads it from here).
    UserInput {
        /// The agent.
        agent: String,
        /// What the person answered.
        text: String,
    },
    /// A tool call is about to run.
    ToolStarted {
        /// The agent.
        agent: String,
        /// The call.
        call: ToolCall,
    },
    /// A tool call ran (or was answered [`INTERRUPTED`]).
    ToolFinished {
        /// The agent.
        agent: String,
        /// Its result.
        result: ToolResult,
    },
    /// A turn (or the task, with no message) is part of the conversation.
    TurnCommitted {
        /// The team's turn count after it.
        turn: usize,
        /// What the speaker said (`None` for the task).
        message: Option<AgentMessage>,
        /// The team's whole state after it ([`Team::save_state`]).
        state: Value,
    },
    /// The run stopped normally.
    Finished {
        /// Why.
        reason: String,
    },
    /// The run was cancelled (Ctrl-C); it can be resumed.
    Cancelled,
}

impl JournalRecord {
    /// The record's kind, as stored (`task_started`, `tool_finished`…).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TaskStarted { .. } => "task_started",
            Self::SpeakerChosen { .. } => "speaker_chosen",
            Self::PolicyStopped { .. } => "policy_stopped",
            Self::ModelAnswer { .. } => "model_answer",
            Self::UserInput { .. } => "user_input",
            Self::ToolStarted { .. } => "tool_started",
            Self::ToolFinished { .. } => "tool_finished",
            Self::TurnCommitted { .. } => "turn_committed",
            Self::Finished { .. } => "finished",
            Self::Cancelled => "cancelled",
        }
    }
}

/// A stored record with its place and time.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Its sequence number within the session (1, 2, …).
    pub seq: u64,
    /// When it was committed, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The record.
    pub record: JournalRecord,
}

/// A session, as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionInfo {
    /// Its name.
    pub name: String,
    /// How many records it has.
    pub records: u64,
    /// When its first record was committed (ms since the epoch).
    pub started_ms: u64,
    /// When its last record was committed (ms since the epoch).
    pub updated_ms: u64,
    /// The kind of its last record ([`JournalRecord::kind`]).
    pub last_kind: String,
}

/// Where run journals are kept. `append` must have committed the record durably (to the
/// store's promise) when it returns: the run acts on it next.
pub trait RunStore: Send + Sync + std::fmt::Debug {
    /// Appends a record to `session` (created on first append); returns its sequence number.
    fn append(
        &self,
        session: &str,
        at_ms: u64,
        record: &JournalRecord,
    ) -> Result<u64, JournalError>;
    /// Every record of `session`, in order ([`JournalError::NotFound`] when it has none).
    fn records(&self, session: &str) -> Result<Vec<Entry>, JournalError>;
    /// Every session, by name.
    fn sessions(&self) -> Result<Vec<SessionInfo>, JournalError>;
    /// Deletes a session; `false` when there was none.
    fn remove(&self, session: &str) -> Result<bool, JournalError>;
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A [`RunStore`] in memory, for tests. [`crash_after`](Self::crash_after) makes it fail every
/// append past a count, as if the process died there.
#[derive(Debug, Default)]
pub struct MemoryStore {
    sessions: Mutex<HashMap<String, Vec<Entry>>>,
    crash_after: Mutex<Option<u64>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on, appends succeed only while the store holds fewer than `n` records in
    /// total; `None` lifts the limit.
    pub fn crash_after(&self, n: Option<u64>) {
        *lock(&self.crash_after) = n;
    }

    /// How many records the store holds.
    pub fn len(&self) -> u64 {
        lock(&self.sessions).values().map(|v| v.len() as u64).sum()
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl RunStore for MemoryStore {
    fn append(
        &self,
        session: &str,
        at_ms: u64,
        record: &JournalRecord,
    ) -> Result<u64, JournalError> {
        if lock(&self.crash_after).is_some_and(|n| self.len() >= n) {
            return Err(JournalError::Store("crashed".into()));
        }
        let mut sessions = lock(&self.sessions);
        let entries = sessions.entry(session.to_owned()).or_default();
        let seq = entries.len() as u64 + 1;
        entries.push(Entry { seq, at_ms, record: record.clone() });
        Ok(seq)
    }

    fn records(&self, session: &str) -> Result<Vec<Entry>, JournalError> {
        lock(&self.sessions)
            .get(session)
            .cloned()
            .ok_or_else(|| JournalError::NotFound(session.to_owned()))
    }

    fn sessions(&self) -> Result<Vec<SessionInfo>, JournalError> {
        let sessions = lock(&self.sessions);
        let mut out: Vec<SessionInfo> = sessions
            .iter()
            .filter_map(|(name, e)| {
                let (first, last) = (e.first()?, e.last()?);
                Some(SessionInfo {
                    name: name.clone(),
                    records: e.len() as u64,
                    started_ms: first.at_ms,
                    updated_ms: last.at_ms,
                    last_kind: last.record.kind().to_owned(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn remove(&self, session: &str) -> Result<bool, JournalError> {
        Ok(lock(&self.sessions).remove(session).is_some())
    }
}

/// What resume knows about a tool call.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolReplay {
    /// Not journaled: journal its start and run it.
    Fresh,
    /// Started before the stop, with no result: re-run only if idempotent.
    Interrupted,
    /// Its result is journaled: use it, do not run it.
    Done(ToolResult),
}

/// A speaker policy's journaled decision, replayed instead of asking the policy again.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Selection {
    /// Who speaks; `None` when the policy ended the run.
    pub speaker: Option<String>,
    /// Why the run stops, when it does.
    pub reason: String,
    /// What the policy said, to post again.
    pub posts: Vec<AgentMessage>,
    /// Whether the agents start over first.
    pub reset_agents: bool,
    /// The policy's state after the choice.
    pub policy_state: Option<Value>,
}

#[derive(Debug, Default)]
struct Replay {
    skip_task: bool,
    base_turns: Option<usize>,
    selection: Option<Selection>,
    answers: HashMap<String, VecDeque<ChatResponse>>,
    inputs: HashMap<String, VecDeque<String>>,
    started: HashSet<String>,
    results: HashMap<String, ToolResult>,
}

/// A run's handle on its session: writes records and, after a resume, hands back the records
/// of the turn that was in flight.
#[derive(Debug)]
pub struct Journal {
    store: Arc<dyn RunStore>,
    session: String,
    meta: Value,
    replay: Mutex<Replay>,
}

impl Journal {
    /// A journal for a new session; `meta` is stored with the task (what the caller needs to
    /// build the same team on resume). Fails with [`JournalError::Exists`] when the name is
    /// taken.
    pub fn create(
        store: Arc<dyn RunStore>,
        session: &str,
        meta: Value,
    ) -> Result<Arc<Self>, JournalError> {
        match store.records(session) {
            Ok(r) if !r.is_empty() => return Err(JournalError::Exists(session.to_owned())),
            Ok(_) | Err(JournalError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        Ok(Arc::new(Self {
            store,
            session: session.to_owned(),
            meta,
            replay: Mutex::new(Replay::default()),
        }))
    }

    /// The session's name.
    pub fn session(&self) -> &str {
        &self.session
    }

    fn write(&self, record: &JournalRecord) -> Result<(), AgentError> {
        self.store.append(&self.session, now_ms(), record)?;
        Ok(())
    }

    pub(crate) fn task_started(
        &self,
        messages: &[AgentMessage],
        base_turns: usize,
    ) -> Result<(), AgentError> {
        {
            let mut r = lock(&self.replay);
            if std::mem::take(&mut r.skip_task) {
                return Ok(());
            }
            r.base_turns = Some(base_turns);
        }
        self.write(&JournalRecord::TaskStarted {
            messages: messages.to_vec(),
            base_turns,
            meta: self.meta.clone(),
        })
    }

    /// The team's turn count when the task started, once known.
    pub(crate) fn base_turns(&self) -> Option<usize> {
        lock(&self.replay).base_turns
    }

    /// The policy's decision in the turn being replayed.
    pub(crate) fn replayed_selection(&self) -> Option<Selection> {
        lock(&self.replay).selection.take()
    }

    pub(crate) fn speaker_chosen(
        &self,
        speaker: &str,
        posts: &[AgentMessage],
        reset_agents: bool,
        policy_state: Option<Value>,
    ) -> Result<(), AgentError> {
        self.write(&JournalRecord::SpeakerChosen {
            speaker: speaker.to_owned(),
            posts: posts.to_vec(),
            reset_agents,
            policy_state,
        })
    }

    pub(crate) fn policy_stopped(
        &self,
        reason: &str,
        posts: &[AgentMessage],
    ) -> Result<(), AgentError> {
        self.write(&JournalRecord::PolicyStopped {
            reason: reason.to_owned(),
            posts: posts.to_vec(),
        })
    }

    /// The next journaled answer of `agent`'s model in the turn being replayed.
    pub(crate) fn replayed_answer(&self, agent: &str) -> Option<ChatResponse> {
        lock(&self.replay).answers.get_mut(agent)?.pop_front()
    }

    pub(crate) fn model_answer(
        &self,
        agent: &str,
        response: &ChatResponse,
    ) -> Result<(), AgentError> {
        self.write(&JournalRecord::ModelAnswer {
            agent: agent.to_owned(),
            response: response.clone(),
        })
    }

    /// The next journaled answer a person gave `agent` in the turn being replayed.
    pub(crate) fn replayed_input(&self, agent: &str) -> Option<String> {
        lock(&self.replay).inputs.get_mut(agent)?.pop_front()
    }

    pub(crate) fn user_input(&self, agent: &str, text: &str) -> Result<(), AgentError> {
        self.write(&JournalRecord::UserInput { agent: agent.to_owned(), text: text.to_owned() })
    }

    /// What the journal knows about the call with this id.
    pub(crate) fn tool_replay(&self, call_id: &str) -> ToolReplay {
        let r = lock(&self.replay);
        match r.results.get(call_id) {
            Some(result) => ToolReplay::Done(result.clone()),
            None if r.started.contains(call_id) => ToolReplay::Interrupted,
            None => ToolReplay::Fresh,
        }
    }

    pub(crate) fn tool_started(&self, agent: &str, call: &ToolCall) -> Result<(), AgentError> {
        self.write(&JournalRecord::ToolStarted { agent: agent.to_owned(), call: call.clone() })
    }

    pub(crate) fn tool_finished(&self, agent: &str, result: &ToolResult) -> Result<(), AgentError> {
        self.write(&JournalRecord::ToolFinished { agent: agent.to_owned(), result: result.clone() })
    }

    pub(crate) fn turn_committed(
        &self,
        turn: usize,
        message: Option<&AgentMessage>,
        state: Value,
    ) -> Result<(), AgentError> {
        self.write(&JournalRecord::TurnCommitted { turn, message: message.cloned(), state })?;
        let mut r = lock(&self.replay);
        r.selection = None;
        r.answers.clear();
        r.inputs.clear();
        r.started.clear();
        r.results.clear();
        Ok(())
    }

    pub(crate) fn finished(&self, reason: &str) -> Result<(), AgentError> {
        self.write(&JournalRecord::Finished { reason: reason.to_owned() })
    }

    /// Records that the run was cancelled (best effort: the run is stopping anyway).
    pub(crate) fn cancelled(&self) {
        if let Err(e) = self.write(&JournalRecord::Cancelled) {
            tracing::warn!(session = %self.session, "could not journal the cancellation: {e}");
        }
    }
}

/// A session read back for resuming: its task's `meta` tells the caller how to build the team.
#[derive(Debug)]
pub struct Recovered {
    store: Arc<dyn RunStore>,
    session: String,
    entries: Vec<Entry>,
    task: Vec<AgentMessage>,
    base_turns: usize,
    meta: Value,
}

impl Recovered {
    /// Reads `session`; fails when it is unknown, has finished or has no task.
    pub fn open(store: Arc<dyn RunStore>, session: &str) -> Result<Self, JournalError> {
        let entries = store.records(session)?;
        if entries.iter().any(|e| matches!(e.record, JournalRecord::Finished { .. })) {
            return Err(JournalError::Finished(session.to_owned()));
        }
        let Some((task, base_turns, meta)) = entries.iter().find_map(|e| match &e.record {
            JournalRecord::TaskStarted { messages, base_turns, meta } => {
                Some((messages.clone(), *base_turns, meta.clone()))
            }
            _ => None,
        }) else {
            return Err(JournalError::Inconsistent {
                session: session.to_owned(),
                message: "no task_started record".into(),
            });
        };
        Ok(Self { store, session: session.to_owned(), entries, task, base_turns, meta })
    }

    /// What the run was started with besides its task (how to build its team).
    pub fn meta(&self) -> &Value {
        &self.meta
    }

    /// The task's messages.
    pub fn task(&self) -> &[AgentMessage] {
        &self.task
    }

    /// Loads the last committed state into `team` (built the same way as the original) and
    /// returns the journal to run it with and the task to run: continue it, or start it again
    /// when no turn had been committed.
    pub async fn restore(self, team: &mut dyn Team) -> Result<(Arc<Journal>, Task), AgentError> {
        let last = self
            .entries
            .iter()
            .rposition(|e| matches!(e.record, JournalRecord::TurnCommitted { .. }));
        let mut replay = Replay { base_turns: Some(self.base_turns), ..Replay::default() };
        let task = match last {
            Some(i) => {
                if let JournalRecord::TurnCommitted { state, .. } = &self.entries[i].record {
                    team.load_state(state.clone()).await?;
                }
                Task::Continue
            }
            None => {
                replay.skip_task = true;
                Task::Messages(self.task.clone())
            }
        };
        let after = last.map_or(&self.entries[..], |i| &self.entries[i + 1..]);
        for e in after {
            match &e.record {
                JournalRecord::SpeakerChosen { speaker, posts, reset_agents, policy_state } => {
                    replay.selection = Some(Selection {
                        speaker: Some(speaker.clone()),
                        reason: String::new(),
                        posts: posts.clone(),
                        reset_agents: *reset_agents,
                        policy_state: policy_state.clone(),
                    });
                }
                JournalRecord::PolicyStopped { reason, posts } => {
                    replay.selection = Some(Selection {
                        speaker: None,
                        reason: reason.clone(),
                        posts: posts.clone(),
                        reset_agents: false,
                        policy_state: None,
                    });
                }
                JournalRecord::ModelAnswer { agent, response } => {
                    replay.answers.entry(agent.clone()).or_default().push_back(response.clone());
                }
                JournalRecord::UserInput { agent, text } => {
                    replay.inputs.entry(agent.clone()).or_default().push_back(text.clone());
                }
                JournalRecord::ToolStarted { call, .. } => {
                    replay.started.insert(call.id.clone());
                }
                JournalRecord::ToolFinished { result, .. } => {
                    replay.results.insert(result.call_id.clone(), result.clone());
                }
                _ => {}
            }
        }
        let journal = Arc::new(Journal {
            store: self.store,
            session: self.session,
            meta: self.meta,
            replay: Mutex::new(replay),
        });
        Ok((journal, task))
    }
}

/// The conversation a session committed, in order, with each message's commit time (ms since
/// the epoch): the task, then every committed turn and what the speaker policy posted (an
/// orchestrator's plans, instructions and final answer).
pub fn transcript(entries: &[Entry]) -> Vec<(u64, AgentMessage)> {
    let mut out = Vec::new();
    for e in entries {
        match &e.record {
            JournalRecord::TaskStarted { messages, .. }
            | JournalRecord::SpeakerChosen { posts: messages, .. }
            | JournalRecord::PolicyStopped { posts: messages, .. } => {
                out.extend(messages.iter().map(|m| (e.at_ms, m.clone())));
            }
            JournalRecord::TurnCommitted { message: Some(m), .. } => out.push((e.at_ms, m.clone())),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
