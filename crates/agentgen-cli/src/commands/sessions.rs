//! Journaled runs: `agentgen resume NAME` and `agentgen sessions [list|show NAME|rm NAME]`, on
//! the session store (SQLite, with the `journal` feature).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use agentgen_core::journal::{Entry, JournalRecord, Recovered, RunStore};
use agentgen_models::cache::ModelCache;

use crate::cli::{ResumeArgs, SessionsAction, SessionsArgs, StoreArgs};
use crate::commands::run::{agent_error, prepare, SessionMeta};
use crate::config::Settings;
use crate::error::{CliError, CliResult};
use crate::team::{DurabilitySpec, TeamSpec};

/// The store file: `--store` (or `AGENTGEN_SESSIONS`), else the one the team file's `[session]`
/// names, else `sessions.sqlite` in the home the model cache uses (`$AGENTGEN_HOME`, or
/// `agentgen` under the platform cache directory).
pub fn store_path(args: &StoreArgs, team_store: Option<PathBuf>) -> PathBuf {
    if let Some(path) = args.store.clone().or(team_store) {
        return path;
    }
    default_store()
}

fn default_store() -> PathBuf {
    let models = ModelCache::from_env().path_for("");
    let home = models.parent().unwrap_or(Path::new("."));
    home.join("sessions.sqlite")
}

/// What `agentgen resume` needs besides the name to find a session in `store`: nothing for the
/// default store, else `--store PATH` (absolute).
pub fn store_flag(store: &Path) -> Option<PathBuf> {
    (store != default_store()).then(|| std::path::absolute(store).unwrap_or(store.to_owned()))
}

/// Opens the session store at `path`, syncing each record as `durability` says.
#[cfg(feature = "journal")]
pub fn open_store(path: &Path, durability: DurabilitySpec) -> CliResult<Arc<dyn RunStore>> {
    use agentgen_journal::{Durability, SqliteStore};
    let durability = match durability {
        DurabilitySpec::PowerLoss => Durability::PowerLoss,
        DurabilitySpec::ProcessCrash => Durability::ProcessCrash,
    };
    Ok(Arc::new(SqliteStore::open_with(path, durability)?))
}

/// Sessions need the `journal` feature.
#[cfg(not(feature = "journal"))]
pub fn open_store(_path: &Path, _durability: DurabilitySpec) -> CliResult<Arc<dyn RunStore>> {
    Err(CliError::FeatureMissing { feature: "journal", what: "feature, which sessions need" })
}

/// Runs `agentgen resume NAME`: rebuilds the session's team, restores its last committed turn,
/// prints the conversation so far and runs on from there.
/// The session is read from `--store` or the default store; the journaled team file's
/// `[session] durability` applies to the records the resumed run writes.
pub async fn resume(args: &ResumeArgs, settings: &Settings) -> CliResult {
    let path = store_path(&args.store, None);
    let recovered = Recovered::open(open_store(&path, DurabilitySpec::default())?, &args.name)?;
    let meta: SessionMeta = serde_json::from_value(recovered.meta().clone())
        .map_err(|e| CliError::Failed(format!("session `{}`: {e}", args.name)))?;
    let spec = match &meta.team {
        Some(text) => TeamSpec::parse(text, Path::new(&format!("<team of {}>", args.name)))?,
        None => TeamSpec::builtin(),
    };
    let recovered = match spec.session.durability {
        DurabilitySpec::PowerLoss => recovered,
        other => Recovered::open(open_store(&path, other)?, &args.name)?,
    };
    let mut prepared =
        prepare(&spec, &args.backend, meta.max_messages, args.yes, settings, None).await?;
    let (journal, task) = recovered.restore(prepared.team.as_mut()).await.map_err(agent_error)?;
    let result = prepared.finish(task, Some(journal), args.json, None).await;
    result.map_err(|e| e.with_store(store_flag(&path)))
}

/// Runs `agentgen sessions`.
pub fn sessions(args: &SessionsArgs) -> CliResult {
    let path = store_path(&args.store, None);
    let store = open_store(&path, DurabilitySpec::default())?;
    let mut out = std::io::stdout().lock();
    let io = |e| CliError::io("writing to stdout", e);
    match &args.action {
        None | Some(SessionsAction::List) => {
            let list = store.sessions()?;
            if list.is_empty() {
                writeln!(out, "no sessions in {}", path.display()).map_err(io)?;
            }
            for s in list {
                let state = match s.last_kind.as_str() {
                    "finished" => "finished",
                    "cancelled" => "interrupted (resumable)",
                    _ => "stopped mid-run (resumable)",
                };
                let secs = s.updated_ms.saturating_sub(s.started_ms) as f64 / 1000.0;
                writeln!(out, "{}\t{} records\t{secs:.1}s\t{state}", s.name, s.records)
                    .map_err(io)?;
            }
        }
        Some(SessionsAction::Show { name, ui: true, ui_port }) => {
            let entries = store.records(name)?;
            let agents = session_agents(&entries);
            let runtime = crate::runtime()?;
            runtime.block_on(crate::ui::show_session(name, &entries, &agents, *ui_port))?;
        }
        Some(SessionsAction::Show { name, .. }) => {
            for line in show(&store.records(name)?) {
                writeln!(out, "{line}").map_err(io)?;
            }
        }
        Some(SessionsAction::Rm { name }) => {
            if !store.remove(name)? {
                return Err(agentgen_core::journal::JournalError::NotFound(name.clone()).into());
            }
            writeln!(out, "removed session `{name}`").map_err(io)?;
        }
    }
    Ok(())
}

/// A session's agents, from the team file its journal kept (name, whether it is an assistant).
fn session_agents(entries: &[Entry]) -> Vec<(String, bool)> {
    let meta = entries.iter().find_map(|e| match &e.record {
        JournalRecord::TaskStarted { meta, .. } => Some(meta),
        _ => None,
    });
    let spec = match meta.and_then(|m| serde_json::from_value::<SessionMeta>(m.clone()).ok()) {
        Some(SessionMeta { team: Some(text), .. }) => {
            TeamSpec::parse(&text, Path::new("<journaled team>")).ok()
        }
        _ => Some(TeamSpec::builtin()),
    };
    spec.map(|s| {
        s.agents
            .iter()
            .map(|a| (a.name.get_ref().clone(), a.kind == crate::team::AgentKind::Assistant))
            .collect()
    })
    .unwrap_or_default()
}

/// A session's records as lines: seconds since the start, then what happened.
pub fn show(entries: &[Entry]) -> Vec<String> {
    let start = entries.first().map_or(0, |e| e.at_ms);
    let mut lines = Vec::new();
    for e in entries {
        let t = e.at_ms.saturating_sub(start) as f64 / 1000.0;
        let what = match &e.record {
            JournalRecord::TaskStarted { messages, .. } => messages
                .iter()
                .map(|m| format!("{}: {}", m.source, m.content))
                .collect::<Vec<_>>()
                .join("\n"),
            JournalRecord::SpeakerChosen { speaker, posts, reset_agents, .. } => {
                let mut lines: Vec<String> = Vec::new();
                if *reset_agents {
                    lines.push("(the agents start over)".to_owned());
                }
                lines.extend(posts.iter().map(|m| format!("{}: {}", m.source, m.content)));
                lines.push(format!("→ {speaker} speaks"));
                lines.join("\n")
            }
            JournalRecord::PolicyStopped { posts, .. } if posts.is_empty() => {
                "(no one speaks next)".to_owned()
            }
            JournalRecord::PolicyStopped { posts, .. } => posts
                .iter()
                .map(|m| format!("{}: {}", m.source, m.content))
                .collect::<Vec<_>>()
                .join("\n"),
            JournalRecord::ModelAnswer { agent, response } => {
                format!("  ({agent}'s model answered, {} tool calls)", response.tool_calls().len())
            }
            JournalRecord::UserInput { agent, text } => format!("  ({agent} typed: {text})"),
            JournalRecord::ToolStarted { call, .. } => {
                format!("  tool {}({}) started", call.function.name, call.function.arguments)
            }
            JournalRecord::ToolFinished { result, .. } => {
                format!("  tool {} → {}", result.name, result.content)
            }
            JournalRecord::TurnCommitted { message: Some(m), .. } => {
                format!("{}: {}", m.source, m.content)
            }
            JournalRecord::TurnCommitted { message: None, .. } => continue,
            JournalRecord::Finished { reason } => format!("finished: {reason}"),
            JournalRecord::Cancelled => "interrupted".to_owned(),
        };
        lines.push(format!("[{t:>7.2}s] {what}"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use agentgen_core::{AgentMessage, ToolCall, ToolResult};

    use super::*;

    fn entry(seq: u64, at_ms: u64, record: JournalRecord) -> Entry {
        Entry { seq, at_ms, record }
    }

    #[test]
    fn show_prints_the_transcript_with_seconds_since_the_start() {
        let entries = [
            entry(
                1,
                1_000,
                JournalRecord::TaskStarted {
                    messages: vec![AgentMessage::text("user", "go")],
                    base_turns: 0,
                    meta: serde_json::Value::Null,
                },
            ),
            entry(
                2,
                1_500,
                JournalRecord::SpeakerChosen {
                    speaker: "w".into(),
                    posts: vec![AgentMessage::text("orchestrator", "w, add them")],
                    reset_agents: false,
                    policy_state: None,
                },
            ),
            entry(
                3,
                2_000,
                JournalRecord::ToolStarted {
                    agent: "w".into(),
                    call: ToolCall::new("c1", "add", "{}"),
                },
            ),
            entry(
                4,
                2_250,
                JournalRecord::ToolFinished {
                    agent: "w".into(),
                    result: ToolResult {
                        call_id: "c1".into(),
                        name: "add".into(),
                        content: "3".into(),
                        is_error: false,
                    },
                },
            ),
            entry(
                5,
                3_000,
                JournalRecord::TurnCommitted {
                    turn: 1,
                    message: Some(AgentMessage::text("w", "done")),
                    state: serde_json::Value::Null,
                },
            ),
            entry(6, 3_100, JournalRecord::Cancelled),
        ];
        assert_eq!(
            show(&entries),
            [
                "[   0.00s] user: go",
                "[   0.50s] orchestrator: w, add them\n→ w speaks",
                "[   1.00s]   tool add({}) started",
                "[   1.25s]   tool add → 3",
                "[   2.00s] w: done",
                "[   2.10s] interrupted",
            ]
        );
    }

    #[test]
    fn the_store_is_the_flag_or_next_to_the_model_cache() {
        let flag = StoreArgs { store: Some(PathBuf::from("x.sqlite")) };
        let team = PathBuf::from("team.sqlite");
        assert_eq!(store_path(&flag, Some(team.clone())), PathBuf::from("x.sqlite"));
        assert_eq!(store_path(&StoreArgs::default(), Some(team.clone())), team);
        let default = store_path(&StoreArgs::default(), None);
        assert_eq!(store_flag(&default), None, "the default store needs no flag");
        assert!(store_flag(Path::new("x.sqlite")).unwrap().is_absolute());
        assert_eq!(default.file_name().unwrap(), "sessions.sqlite");
        let models = ModelCache::from_env().path_for("");
        assert_eq!(default.parent(), models.parent());
    }
}
