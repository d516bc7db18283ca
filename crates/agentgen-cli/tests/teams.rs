//! Team files through the real `agentgen` binary: `team check` locates errors exactly, `team
//! new` prints starters that pass it, AutoGen component JSON (dumped by the real Python
//! package when it is installed) loads and runs, and every example team under
//! `examples/teams/` runs on the real local model with a bounded message count.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

mod common;
use common::agentgen;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn check(dir: &Path, file: &Path) -> Output {
    agentgen(dir).args(["team", "check"]).arg(file).output().expect("agentgen runs")
}

#[test]
fn team_check_names_the_exact_place_of_each_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.toml");
    let cases = [
        // (file text, the location and words the error must name)
        (
            "termination = \"max_messages(8) | text_mentoin('OK')\"\n[team]\ntype = \"round_robin\"\n\
             [[agents]]\nname = \"a\"\nsystem_message = \"x\"\n",
            "broken.toml:1:34: field `termination`: unknown condition `text_mentoin`",
        ),
        (
            "[team]\ntype = \"graph\"\n[[agents]]\nname = \"a\"\nsystem_message = \"x\"\n\
             [[edges]]\nfrom = \"a\"\nto = \"nobody\"\n",
            "broken.toml:8:6: field `edges[0].to`: no agent is named `nobody`",
        ),
        (
            "[team]\ntype = \"round_robin\"\n[[command_tools]]\nname = \"t\"\ndescription = \"d\"\n\
             argv = [\"echo\"]\nparameters = { type = \"object\", required = 5 }\n\
             [[agents]]\nname = \"a\"\nsystem_message = \"x\"\n",
            "broken.toml:7:14: field `command_tools[0].parameters`: not a valid JSON schema",
        ),
        (
            "[team]\ntype = \"round_robin\"\n[[agents]]\nname = \"a\"\nsystem_message = \"x\"\n\
             max_tool_iterations = \"many\"\n",
            "broken.toml:6:23: field `agents.max_tool_iterations`",
        ),
    ];
    for (body, expected) in cases {
        std::fs::write(&file, body).unwrap();
        let out = check(dir.path(), &file);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{err}");
        assert!(err.contains(expected), "expected `{expected}` in:\n{err}");
        assert!(out.stdout.is_empty(), "nothing on stdout for a broken file");
    }
}

#[test]
fn every_starter_from_team_new_passes_team_check() {
    let dir = tempfile::tempdir().unwrap();
    for kind in ["round_robin", "selector", "swarm", "graph"] {
        let new = agentgen(dir.path()).args(["team", "new", "--kind", kind]).output().unwrap();
        assert!(new.status.success(), "{}", text(&new.stderr));
        let mut child = agentgen(dir.path())
            .args(["team", "check", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&new.stdout).unwrap();
        let out = child.wait_with_output().unwrap();
        let shown = text(&out.stdout);
        assert!(out.status.success(), "{kind}: {}\n{}", text(&out.stderr), text(&new.stdout));
        assert!(shown.starts_with("-: ok\n"), "{shown}");
        assert!(shown.contains(&format!("team: {kind} ")), "{shown}");
        assert!(shown.contains("termination: max_messages("), "{shown}");
    }
    let out = agentgen(dir.path()).args(["team", "new", "--kind", "mesh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("unknown team type `mesh`"));
}

#[test]
fn every_example_team_passes_team_check() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = 0;
    for entry in std::fs::read_dir(root().join("examples/teams")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = check(dir.path(), &path);
            assert!(out.status.success(), "{}: {}", path.display(), text(&out.stderr));
            seen += 1;
        }
    }
    assert!(seen >= 4, "{seen} examples");
    let graph = check(dir.path(), &root().join("examples/teams/graph_fanout.toml"));
    let shown = text(&graph.stdout);
    assert!(
        shown.contains("writer -> grammar_editor")
            && shown.contains("style_editor -> final_reviewer"),
        "{shown}"
    );
}

#[test]
fn a_user_proxy_reads_its_answers_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("me.toml");
    // No model-backed agent: nothing loads, the person is the whole team.
    std::fs::write(
        &file,
        "termination = \"max_messages(3) | text_mention('bye')\"\n[team]\ntype = \"round_robin\"\n\
         [[agents]]\nname = \"me\"\nkind = \"user_proxy\"\n",
    )
    .unwrap();
    let run = |input: &[u8]| {
        let mut child = agentgen(dir.path())
            .args(["run", "--team"])
            .arg(&file)
            .arg("start")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run(b"hello there\nbye now\n");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("── me ──\nhello there\n") && stdout.contains("bye now"), "{stdout}");
    assert!(text(&out.stderr).contains("your turn"), "the prompt goes to stderr");
    // End of input ends the run with an error, not a hang.
    let out = run(b"");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("standard input ended"), "{}", text(&out.stderr));
}

/// The AutoGen dump: made now by the real `autogen-agentchat` package when
/// `$AGENTGEN_PYTHON` has it (CI's virtualenv does), else the committed fixture it made.
fn autogen_dump(dir: &Path) -> PathBuf {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/autogen/round_robin.json");
    let Ok(python) = std::env::var("AGENTGEN_PYTHON") else {
        eprintln!("AGENTGEN_PYTHON is not set: using the committed AutoGen dump");
        return fixture;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/dump_autogen_team.py");
    let out = Command::new(&python).arg(&script).arg(dir).output().expect("python runs");
    assert!(
        out.status.success(),
        "dumping with AutoGen failed (pip install -r crates/agentgen-server/tests/python/requirements.txt):\n{}",
        text(&out.stderr)
    );
    dir.join("round_robin.json")
}

#[test]
fn an_autogen_dump_is_checked_and_a_bad_one_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let dump = autogen_dump(dir.path());
    let out = check(dir.path(), &dump);
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(shown.contains("team: round_robin"), "{shown}");
    assert!(shown.contains("termination: max_messages(3) | text_mention('APPROVE')"), "{shown}");
    assert!(
        shown.contains("writer (assistant)") && shown.contains("critic (assistant)"),
        "{shown}"
    );

    let bad = std::fs::read_to_string(&dump).unwrap().replacen(
        "teams.RoundRobinGroupChat",
        "teams.SomeOtherGroupChat",
        1,
    );
    let file = dir.path().join("other.json");
    std::fs::write(&file, bad).unwrap();
    let out = check(dir.path(), &file);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("other.json:2:"), "{}", text(&out.stderr));
}

#[cfg(feature = "local")]
mod on_the_local_model {
    use super::*;

    fn model() -> Option<PathBuf> {
        agentgen_models::cache::model_for_tests()
    }

    /// `agentgen run --json` of a team file on the test model: every JSON line.
    /// `extra` flags come first, so `--max-tokens` there replaces the default 16.
    fn run_json(dir: &Path, model: &Path, team: &Path, extra: &[&str], task: &str) -> Vec<Value> {
        let tokens =
            if extra.contains(&"--max-tokens") { &[][..] } else { &["--max-tokens", "16"][..] };
        let started = std::time::Instant::now();
        let out = agentgen(dir)
            .args(["run", "--json", "--team"])
            .arg(team)
            .arg("--model")
            .arg(model)
            .args(tokens)
            .args(["--temperature", "0"])
            .args(extra)
            .arg(task)
            .stdin(Stdio::null())
            .output()
            .expect("agentgen runs");
        eprintln!("{}: {:.1} s", team.display(), started.elapsed().as_secs_f64());
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "exit {:?}\n{stdout}\n{}", out.status, text(&out.stderr));
        stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn speakers(events: &[Value]) -> Vec<String> {
        events
            .iter()
            .filter(|e| e["event"] == "message")
            .map(|e| e["source"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    #[test]
    fn an_autogen_round_robin_dump_runs_with_its_own_termination() {
        let Some(model) = model() else { return };
        let dir = tempfile::tempdir().unwrap();
        let dump = autogen_dump(dir.path());
        let events = run_json(dir.path(), &model, &dump, &[], "Name one colour.");
        let who = speakers(&events);
        // MaxMessageTermination(3) from the dump: the task, the writer, the critic.
        assert_eq!(&who[..2], ["user", "writer"], "{who:?}");
        assert!(who.len() <= 3, "{who:?}");
    }

    #[test]
    fn the_magentic_research_example_calls_its_mcp_tool() {
        let Some(model) = model() else { return };
        // The example's server needs the `mcp` package: CI's virtualenv has it.
        let Ok(python) = std::env::var("AGENTGEN_PYTHON") else {
            eprintln!("AGENTGEN_PYTHON is not set: skipping the MagenticOne example");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let example = root().join("examples/teams/magentic_research.toml");
        let server = root().join("examples/teams/research_server.py");
        let text = std::fs::read_to_string(&example).unwrap().replacen(
            r#"command = ["python3", "examples/teams/research_server.py"]"#,
            &format!("command = [{python:?}, {:?}]", server.display().to_string()),
            1,
        );
        let team = dir.path().join("magentic_research.toml");
        std::fs::write(&team, text).unwrap();
        let events =
            run_json(dir.path(), &model, &team, &["--yes", "--max-tokens", "48"], "Look up Rust.");
        let who = speakers(&events);
        // Task, ledger, instruction, then the first speaker without asking the orchestrator.
        assert_eq!(&who[..4], ["user", ORCH, ORCH, "researcher"], "{who:?}");
        let result = events
            .iter()
            .find(|e| e["event"] == "tool_call_result" && e["source"] == "researcher")
            .map(|e| e["results"][0]["content"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_default();
        assert!(result.starts_with("FACT:"), "the lookup tool answered: {events:?}");
        let researcher = events
            .iter()
            .find(|e| e["event"] == "message" && e["source"] == "researcher")
            .and_then(|e| e["content"].as_str())
            .unwrap_or_default();
        assert!(researcher.contains("FACT:"), "the result reached the thread: {researcher}");
        assert_eq!(events.iter().filter(|e| e["event"] == "stop").count(), 1, "{events:?}");
        assert!(who.len() <= 16, "{who:?}");
    }

    const ORCH: &str = "MagenticOneOrchestrator";

    #[test]
    fn the_graph_example_runs_its_two_branches_at_the_same_time() {
        let Some(model) = model() else { return };
        let dir = tempfile::tempdir().unwrap();
        let team = root().join("examples/teams/graph_fanout.toml");
        // Four messages: the task, the writer, then both branches (checked after the batch).
        let events = run_json(dir.path(), &model, &team, &["--max-messages", "4"], "Rivers.");
        let who = speakers(&events);
        assert_eq!(who, ["user", "writer", "grammar_editor", "style_editor"]);
        // Both branches stream: a chunk of one comes between the other's first chunk and its
        // message.
        let chunk =
            |i: usize, who: &str| events[i]["event"] == "token_chunk" && events[i]["source"] == who;
        let first = |who: &str| (0..events.len()).find(|&i| chunk(i, who)).unwrap();
        let done = |who: &str| {
            (0..events.len())
                .find(|&i| events[i]["event"] == "message" && events[i]["source"] == who)
                .unwrap()
        };
        let (g0, g1) = (first("grammar_editor"), done("grammar_editor"));
        let (s0, s1) = (first("style_editor"), done("style_editor"));
        let interleaved = (g0..g1).any(|i| chunk(i, "style_editor"))
            || (s0..s1).any(|i| chunk(i, "grammar_editor"));
        assert!(interleaved && g0 < s1 && s0 < g1, "the branches did not overlap: {events:?}");
    }

    #[test]
    fn the_code_review_example_runs_the_writers_code_in_the_sandbox() {
        let Some(model) = model() else { return };
        let dir = tempfile::tempdir().unwrap();
        let team = root().join("examples/teams/code_review.toml");
        let events = run_json(
            dir.path(),
            &model,
            &team,
            &["--yes", "--max-messages", "3", "--max-tokens", "96"],
            "Write add(a, b) and check it with one assert.",
        );
        let who = speakers(&events);
        assert_eq!(who, ["user", "writer", "executor"]);
        let ran = events
            .iter()
            .find(|e| e["event"] == "message" && e["source"] == "executor")
            .and_then(|e| e["content"].as_str())
            .unwrap_or_default()
            .to_owned();
        assert!(ran.starts_with("exit code:"), "the executor ran a block: {ran}");
    }

    #[test]
    fn the_travel_and_swarm_examples_keep_their_structure() {
        let Some(model) = model() else { return };
        let dir = tempfile::tempdir().unwrap();
        let travel = root().join("examples/teams/travel_planning.toml");
        let events = run_json(
            dir.path(),
            &model,
            &travel,
            &["--max-messages", "5"],
            "Plan a day in Lisbon.",
        );
        let who = speakers(&events);
        assert_eq!(&who[..2], ["user", "planner"], "{who:?}");
        if who.len() == 5 {
            assert_eq!(&who[2..], ["local_guide", "language_adviser", "summariser"]);
        }

        // tool_choice = "required": the travel agent must call a tool, and its only tools are
        // handoffs; one to `user` stops the run.
        let swarm = root().join("examples/teams/swarm_handoff.toml");
        let events = run_json(
            dir.path(),
            &model,
            &swarm,
            &["--max-messages", "2", "--max-tokens", "48"],
            "Book me a flight.",
        );
        let handoffs: Vec<&Value> = events.iter().filter(|e| e["event"] == "handoff").collect();
        assert!(!handoffs.is_empty(), "{events:?}");
        assert_eq!(handoffs[0]["source"], "travel_agent", "{events:?}");
        let stop = events.iter().find(|e| e["event"] == "stop").map(|e| e["reason"].to_string());
        if handoffs[0]["target"] == "user" {
            assert!(stop.as_deref().unwrap_or_default().contains("user"), "{stop:?}");
        }
    }
}
