//! Journaled runs of the real `agentgen` binary on the real test model (Qwen2.5-Coder-0.5B
//! Q4_K_M, greedy): a team whose one agent must call `notes.append`, a tool of a stdio MCP
//! server (tests/python/notes_server.py, standard-library Python) that appends one line per call
//! to a file and answers with that line's id. The team file names its store (`[session]`).
//!
//! - `sigkill_at_ten_points_then_resume`: `agentgen run --session` is killed with SIGKILL at ten
//!   record counts of the journal picked by a seeded RNG (three of them at the next
//!   `tool_started`, while that tool call runs), `agentgen resume` each time; the final
//!   transcript has every turn once, no call was started twice, and the file shows each
//!   completed call exactly once.
//! - `ctrl_c_resume_list_show_rm`: SIGINT prints how to resume and exits 130; `resume`,
//!   `sessions list`, `sessions show`, `sessions rm` on the same store.
//! - `a_magentic_one_run_killed_mid_turn_resumes_with_the_orchestrators_plan`: a MagenticOne
//!   run killed with SIGKILL once the orchestrator's plan and instruction are journaled resumes
//!   with them: the speaker answers once, the plan is neither lost nor written twice, and the
//!   final answer closes the transcript.
//!
//! `AGENTGEN_KILL_SEED=N` replays another set of kill points.
#![cfg(all(feature = "local", feature = "journal"))]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use agentgen_core::journal::{transcript, Entry, JournalRecord, RunStore, INTERRUPTED};
use agentgen_journal::SqliteStore;

mod common;

const TASK: &str = "Note down three facts about the sea, one per message.";
/// The longest one process may take to reach its kill point, or to finish.
const PATIENCE: Duration = Duration::from_secs(240);

/// A session's team file in `dir`: one agent that must call `notes.append` each turn, `turns`
/// turns, its journal in `dir/journal.sqlite` (named relative to the team file).
fn team_file(dir: &Path, turns: usize) -> PathBuf {
    let python = std::env::var("AGENTGEN_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python).arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(ok, "these tests need Python 3 as `python3` (or $AGENTGEN_PYTHON)");
    let server = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/notes_server.py");
    let text = format!(
        "[team]\ntype = \"round_robin\"\n\
         [termination]\nmax_messages = {}\n\
         [session]\nstore = \"journal.sqlite\"\n\
         [[mcp_servers]]\nname = \"notes\"\ncommand = [{:?}, {:?}, {:?}, \"0.15\"]\ntimeout_s = 30\n\
         [[agents]]\nname = \"scribe\"\n\
         system_message = \"You keep notes. Each time, call the append tool with one new \
         fact about the sea in under ten words.\"\n\
         tools = [\"notes.append\"]\ntool_choice = \"required\"\n",
        turns + 1,
        python,
        server,
        dir.join("notes.txt"),
    );
    let path = dir.join("team.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The same greedy, short answers for `run` and `resume`.
fn model_flags(model: &Path) -> Vec<String> {
    let flags = ["--temperature", "0", "--seed", "7", "--max-tokens", "96", "--no-pull"];
    let mut v = vec!["--model".to_owned(), model.to_string_lossy().into_owned()];
    v.extend(flags.map(str::to_owned));
    v
}

/// `agentgen run --session NAME` (or `resume NAME`) with stdout and stderr in files of `dir`
/// (an orphaned MCP server holding a pipe could not block the test).
fn spawn(dir: &Path, model: &Path, team: Option<&Path>, session: &str, n: usize) -> Child {
    let mut cmd = common::agentgen(dir);
    match team {
        Some(team) => {
            cmd.args(["run", "--session", session, "--team"]).arg(team);
            cmd.args(model_flags(model)).arg(TASK);
        }
        None => {
            cmd.args(["resume", session, "--store"]).arg(dir.join("journal.sqlite"));
            cmd.args(model_flags(model));
        }
    }
    let log = |kind: &str| std::fs::File::create(dir.join(format!("{n}.{kind}"))).unwrap();
    cmd.stdin(Stdio::null()).stdout(log("out")).stderr(log("err")).spawn().unwrap()
}

fn logs(dir: &Path, n: usize) -> String {
    let read = |kind: &str| std::fs::read_to_string(dir.join(format!("{n}.{kind}")));
    format!(
        "stdout:\n{}\nstderr:\n{}",
        read("out").unwrap_or_default(),
        read("err").unwrap_or_default()
    )
}

/// Records so far and the last one's kind.
fn progress(store: &SqliteStore, session: &str) -> (u64, String) {
    match store.sessions().unwrap().into_iter().find(|s| s.name == session) {
        Some(s) => (s.records, s.last_kind),
        None => (0, String::new()),
    }
}

/// Polls the journal until `reached` holds; `Err` with the exit status when the child ended
/// first.
fn wait_for(
    store: &SqliteStore,
    session: &str,
    child: &mut Child,
    reached: impl Fn(u64, &str) -> bool,
) -> Result<(u64, String), ExitStatus> {
    let t = Instant::now();
    loop {
        let (records, kind) = progress(store, session);
        if reached(records, &kind) {
            return Ok((records, kind));
        }
        if let Some(status) = child.try_wait().unwrap() {
            return Err(status);
        }
        assert!(t.elapsed() < PATIENCE, "no progress in {PATIENCE:?}: {records} records");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits for the child to end by itself.
fn finish(child: &mut Child) -> ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if t.elapsed() > PATIENCE {
            let _ = child.kill();
            panic!("the run did not end in {PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A small deterministic RNG (64-bit LCG, high bits).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn results(entries: &[Entry]) -> Vec<agentgen_core::ToolResult> {
    entries
        .iter()
        .filter_map(|e| match &e.record {
            JournalRecord::ToolFinished { result, .. } => Some(result.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn sigkill_at_ten_points_then_resume() {
    let Some(model) = agentgen_models::cache::model_for_tests() else { return };
    const TURNS: usize = 8;
    const SESSION: &str = "k";
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let team = team_file(dir, TURNS);
    let seed = std::env::var("AGENTGEN_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(17);
    println!("kill seed {seed} (AGENTGEN_KILL_SEED)");
    let mut rng = Rng(seed);
    // Ten distinct record counts to kill at, among the first 22 records of the run (2 + 5 per
    // turn + 1 records, more when the model makes two calls in one answer): each kill may land
    // a few records past its count, so the last ~20 records are room for that overshoot.
    let mut targets = Vec::new();
    while targets.len() < 10 {
        let t = 3 + rng.below(20);
        if !targets.contains(&t) {
            targets.push(t);
        }
    }
    targets.sort_unstable();
    println!("kill at records {targets:?}");
    let store = SqliteStore::open(&dir.join("journal.sqlite")).unwrap();
    let started = Instant::now();
    let mut kills = Vec::new();
    // Per resume: from `agentgen resume` starting to its first new record (model load, journal
    // read, restore, the model re-reading the conversation, and whatever comes next).
    let mut to_progress = Vec::new();
    for (n, &target) in targets.iter().enumerate() {
        let (before, _) = progress(&store, SESSION);
        let mut child = spawn(dir, &model, (n == 0).then_some(team.as_path()), SESSION, n);
        // Kill n lands once the journal holds `targets[n]` records: right then, or up to 300 ms
        // later (mostly while the model generates or a tool runs); kills 1, 4 and 7 at the
        // first `tool_started` from there, while that tool call runs (its line may be written,
        // its result is not journaled).
        let mid_tool = n % 3 == 1;
        let target = target.max(before + 1);
        let spawned = Instant::now();
        let reached = wait_for(&store, SESSION, &mut child, |r, _| r > before);
        if n > 0 && reached.is_ok() {
            to_progress.push(spawned.elapsed());
        }
        let reached = reached.and_then(|_| {
            wait_for(&store, SESSION, &mut child, |r, k| {
                r >= target && (!mid_tool || k == "tool_started")
            })
        });
        if !mid_tool {
            std::thread::sleep(Duration::from_millis(rng.below(300)));
        }
        if let Err(status) = reached {
            panic!("kill {n} (seed {seed}): the run ended ({status}) first\n{}", logs(dir, n));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills.push(progress(&store, SESSION));
    }
    println!("records and last record at each kill: {kills:?}");
    to_progress.sort();
    println!(
        "resume to first new record: min {:?}, median {:?}, max {:?}",
        to_progress[0],
        to_progress[to_progress.len() / 2],
        to_progress[to_progress.len() - 1]
    );
    let t = Instant::now();
    // The last kill may land after the run finished on its own (it waits up to 300 ms past
    // its record): then there is nothing left to resume.
    let done = store
        .records(SESSION)
        .unwrap()
        .last()
        .is_some_and(|e| matches!(e.record, JournalRecord::Finished { .. }));
    if !done {
        let mut last = spawn(dir, &model, None, SESSION, 10);
        let status = finish(&mut last);
        assert!(status.success(), "the last resume failed: {status}\n{}", logs(dir, 10));
    }
    println!("last resume ran {:?}; the whole test {:?}", t.elapsed(), started.elapsed());

    let entries = store.records(SESSION).unwrap();
    assert!(matches!(entries.last().unwrap().record, JournalRecord::Finished { .. }));
    // Every turn once, in order: the task, then turns 1..=TURNS, all the scribe's.
    let said = transcript(&entries);
    assert_eq!(said.len(), TURNS + 1, "{said:?}");
    assert_eq!((said[0].1.source.as_str(), said[0].1.content.as_str()), ("user", TASK));
    assert!(said[1..].iter().all(|(_, m)| m.source == "scribe"), "{said:?}");
    let turns: Vec<usize> = entries
        .iter()
        .filter_map(|e| match &e.record {
            JournalRecord::TurnCommitted { turn, message: Some(_), .. } => Some(*turn),
            _ => None,
        })
        .collect();
    assert_eq!(turns, (1..=TURNS).collect::<Vec<_>>(), "a turn was lost or doubled");

    // No call started twice; every started call has exactly one result.
    let started_ids: Vec<String> = entries
        .iter()
        .filter_map(|e| match &e.record {
            JournalRecord::ToolStarted { call, .. } => Some(call.id.clone()),
            _ => None,
        })
        .collect();
    let unique: HashSet<&String> = started_ids.iter().collect();
    assert_eq!(unique.len(), started_ids.len(), "a call was started twice: {started_ids:?}");
    let results = results(&entries);
    let mut result_ids: Vec<&str> = results.iter().map(|r| r.call_id.as_str()).collect();
    result_ids.sort_unstable();
    let mut sorted_started: Vec<&str> = started_ids.iter().map(String::as_str).collect();
    sorted_started.sort_unstable();
    assert_eq!(result_ids, sorted_started, "one result per started call");

    // The file: each completed call's line exactly once; lines no result reports only from
    // calls cut by a kill (answered INTERRUPTED, never run again).
    let text = std::fs::read_to_string(dir.join("notes.txt")).unwrap();
    let ids: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    let interrupted = results.iter().filter(|r| r.content == INTERRUPTED).count();
    let mut reported = HashSet::new();
    for r in results.iter().filter(|r| r.content != INTERRUPTED) {
        let id = r.content.split("appended ").nth(1).map(str::trim);
        let id = id.unwrap_or_else(|| panic!("unexpected tool result {:?}", r.content));
        let n = ids.iter().filter(|l| **l == id).count();
        assert_eq!(n, 1, "completed call {} is in the file {n} times:\n{text}", r.call_id);
        reported.insert(id);
    }
    let orphans = ids.iter().filter(|l| !reported.contains(*l)).count();
    assert!(orphans <= interrupted, "{orphans} lines no result reports, {interrupted} cut calls");
    let cut_at_tool = kills.iter().filter(|(_, k)| k == "tool_started").count();
    assert!(cut_at_tool >= 1, "no kill landed while a tool ran: {kills:?}");
    // Each call cut by a kill is answered INTERRUPTED. A kill seen at `tool_started` cut one;
    // when the model asked for two calls in one answer, a kill just after the first one's
    // result cuts the second although the last record is a result: so at least the former,
    // and at most one per kill.
    assert!(
        (cut_at_tool..=kills.len()).contains(&interrupted),
        "{interrupted} calls answered INTERRUPTED, {cut_at_tool} kills seen at tool_started"
    );
    println!(
        "{} completed calls, {interrupted} cut and not re-run, {} lines in the file",
        reported.len(),
        ids.len()
    );
}

#[test]
fn ctrl_c_resume_list_show_rm() {
    let Some(model) = agentgen_models::cache::model_for_tests() else { return };
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let team = team_file(dir, 2);
    let db = dir.join("journal.sqlite");
    let store = SqliteStore::open(&db).unwrap();
    let mut child = spawn(dir, &model, Some(&team), "c", 0);
    // Ctrl-C while the model generates the second turn.
    let reached = wait_for(&store, "c", &mut child, |r, k| r > 2 + 5 && k == "speaker_chosen");
    assert!(reached.is_ok(), "the run ended first\n{}", logs(dir, 0));
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let status = finish(&mut child);
    assert_eq!(status.code(), Some(130), "{}", logs(dir, 0));
    let err = std::fs::read_to_string(dir.join("0.err")).unwrap();
    let hint = format!("agentgen resume c --store {}", db.display());
    assert!(err.contains(&hint), "no resume hint `{hint}` in:\n{err}");
    assert_eq!(progress(&store, "c").1, "cancelled");

    let sessions = |args: &[&str]| {
        let out = common::agentgen(dir)
            .arg("sessions")
            .args(args)
            .arg("--store")
            .arg(&db)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.code(), text, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, list, _) = sessions(&["list"]);
    assert_eq!(code, Some(0));
    assert!(list.starts_with("c\t") && list.contains("interrupted (resumable)"), "{list}");

    let mut resumed = spawn(dir, &model, None, "c", 1);
    let status = finish(&mut resumed);
    assert!(status.success(), "{}", logs(dir, 1));
    let out = std::fs::read_to_string(dir.join("1.out")).unwrap();
    assert!(out.contains("── scribe ──"), "resume printed no turn:\n{out}");

    let (_, list, _) = sessions(&["list"]);
    assert!(list.contains("finished"), "{list}");
    let (code, show, _) = sessions(&["show", "c"]);
    assert_eq!(code, Some(0));
    let lines: Vec<&str> = show.lines().collect();
    assert!(lines[0].ends_with(&format!("] user: {TASK}")), "{show}");
    assert_eq!(lines.iter().filter(|l| l.contains("] scribe: ")).count(), 2, "{show}");
    assert!(lines.iter().any(|l| l.contains("] interrupted")), "{show}");
    assert!(lines.last().unwrap().contains("finished: "), "{show}");
    // One timed line per record but the task's commit, in time order.
    let secs: Vec<f64> = lines
        .iter()
        .filter_map(|l| l.strip_prefix('[')?.split_once("s] ")?.0.trim().parse().ok())
        .collect();
    assert_eq!(secs.len() as u64, progress(&store, "c").0 - 1, "{show}");
    assert!(secs.windows(2).all(|w| w[0] <= w[1]), "{show}");
    let again = common::agentgen(dir)
        .args(["resume", "c", "--store"])
        .arg(&db)
        .args(model_flags(&model))
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1), "a finished session is not resumed");
    assert!(String::from_utf8_lossy(&again.stderr).contains("has finished"));

    let (code, rm, _) = sessions(&["rm", "c"]);
    assert_eq!((code, rm.trim()), (Some(0), "removed session `c`"));
    let (code, _, err) = sessions(&["show", "c"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no session named `c`"), "{err}");
    let (_, list, _) = sessions(&["list"]);
    assert!(list.starts_with("no sessions in "), "{list}");
}

#[test]
fn a_magentic_one_run_killed_mid_turn_resumes_with_the_orchestrators_plan() {
    let Some(model) = agentgen_models::cache::model_for_tests() else { return };
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    // One agent turn after the plan, then the final answer.
    let team = dir.join("team.toml");
    std::fs::write(
        &team,
        "termination = \"max_messages(8)\"\n\
         [team]\ntype = \"magentic_one\"\nmax_turns = 1\nfirst_speaker = \"writer\"\n\
         [session]\nstore = \"journal.sqlite\"\n\
         [[agents]]\nname = \"writer\"\ndescription = \"Writes facts.\"\n\
         system_message = \"You write one short fact about the sea.\"\n",
    )
    .unwrap();
    let store = SqliteStore::open(&dir.join("journal.sqlite")).unwrap();
    let mut child = spawn(dir, &model, Some(&team), "m", 0);
    // Killed once the choice (with the plan and the instruction) is journaled: the writer's
    // turn is in flight.
    let reached = wait_for(&store, "m", &mut child, |_, k| k == "speaker_chosen");
    assert!(reached.is_ok(), "the run ended first\n{}", logs(dir, 0));
    child.kill().unwrap();
    finish(&mut child);
    assert_ne!(progress(&store, "m").1, "finished");

    let mut resumed = spawn(dir, &model, None, "m", 1);
    let status = finish(&mut resumed);
    assert!(status.success(), "{}", logs(dir, 1));
    let entries = store.records("m").unwrap();
    assert!(matches!(entries.last().unwrap().record, JournalRecord::Finished { .. }));
    let chosen =
        entries.iter().filter(|e| matches!(e.record, JournalRecord::SpeakerChosen { .. })).count();
    assert_eq!(chosen, 1, "the choice was made again after the resume");
    let messages: Vec<_> = transcript(&entries).into_iter().map(|(_, m)| m).collect();
    let sources: Vec<&str> = messages.iter().map(|m| m.source.as_str()).collect();
    let o = agentgen_core::team::ORCHESTRATOR_NAME;
    // The plan and the instruction, the writer's one answer, the final answer.
    assert_eq!(sources, ["user", o, o, "writer", o], "{messages:#?}");
    assert!(messages[1].content.contains("We are working to address"), "{}", messages[1].content);
    assert!(messages[2].content.starts_with("writer, please begin"), "{}", messages[2].content);
    let out = std::fs::read_to_string(dir.join("1.out")).unwrap();
    assert!(out.contains("── writer ──"), "resume printed no turn:\n{out}");
}
