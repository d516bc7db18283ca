//! Code tasks with hidden tests: the default team (writer → executor → reviewer) against one
//! plain model call, on problems of HumanEval (all 164 committed; MIT, OpenAI; see
//! `fixtures/humaneval/README.md`). Both run through the real `agentgen` binary on the same
//! model and settings; each answer is scored by the problem's hidden `check` in the sandbox
//! (no network, its own folder, a timeout), so a wrong answer can neither pass by side effect
//! nor reach this machine.
//!
//! The team's answer is the writer's last code block that the executor ran with exit code 0 —
//! the last version whose own asserts passed — or, when none did, the writer's last block. The
//! single call's answer is its last code block.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use agentgen_core::agent::extract_code_blocks;
use agentgen_core::sandbox::{Sandbox, SandboxError, SandboxPolicy};
use agentgen_core::CancellationToken;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The problems, as committed.
const PROBLEMS: &str = include_str!("../fixtures/humaneval/humaneval.jsonl");

/// The one-call contender: one agent, one answer.
pub const ONE_CALL_TEAM: &str = r#"# One plain model call: the baseline the default team must beat.
termination = "max_messages(2)"

[team]
type = "round_robin"

[[agents]]
name = "writer"
system_message = "You write Python. Reply with one ```python block that defines what the task asks for."
"#;

/// Runs the candidate's definitions, then the hidden `check`, in the sandbox. Top-level
/// statements other than imports, definitions and call-free assignments (the writer's own
/// asserts and prints) are dropped, so only the function is scored.
const HARNESS: &str = r#"import ast, sys
entry = sys.argv[1]
def keep(node):
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        return not any(isinstance(n, ast.Call) for n in ast.walk(node))
    return False
ns = {}
for node in ast.parse(open("prompt.py").read()).body:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        exec(compile(ast.Module(body=[node], type_ignores=[]), "prompt.py", "exec"), ns)
try:
    tree = ast.parse(open("candidate.py").read())
except SyntaxError as e:
    print("syntax error:", e)
    sys.exit(2)
body = ast.Module(body=[n for n in tree.body if keep(n)], type_ignores=[])
exec(compile(body, "candidate.py", "exec"), ns)
if not callable(ns.get(entry)):
    print("the answer does not define", entry)
    sys.exit(3)
exec(compile(open("test.py").read(), "test.py", "exec"), ns)
ns["check"](ns[entry])
print("passed")
"#;

/// Seconds the hidden tests of one answer may run.
const SCORE_TIMEOUT: Duration = Duration::from_secs(20);

/// Seconds one contender's run of one problem may take before it counts as unsolved.
const RUN_TIMEOUT: Duration = Duration::from_secs(900);

/// Why the code-task benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum CodeTaskError {
    /// The committed problems did not parse.
    #[error("problem {line} of the committed HumanEval subset does not parse: {message}")]
    Problems {
        /// 1-based line.
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// The `agentgen` binary could not be started.
    #[error("cannot start {binary}: {message}")]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// The OS error.
        message: String,
    },
    /// The sandbox could not be set up.
    #[error("sandbox: {0}")]
    Sandbox(#[from] SandboxError),
    /// A temporary file could not be written.
    #[error("cannot write {path}: {message}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
}

/// One HumanEval problem.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Problem {
    /// `HumanEval/N`.
    pub task_id: String,
    /// The signature and docstring the model completes.
    pub prompt: String,
    /// The function the hidden tests call.
    pub entry_point: String,
    /// The hidden tests: a `check(candidate)` function.
    pub test: String,
}

impl Problem {
    /// The task both contenders get.
    pub fn task(&self) -> String {
        format!(
            "Write this Python function. Keep its name and signature.\n\n```python\n{}```",
            self.prompt
        )
    }
}

/// The committed problems, in order.
pub fn problems() -> Result<Vec<Problem>, CodeTaskError> {
    PROBLEMS
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| CodeTaskError::Problems { line: i + 1, message: e.to_string() })
        })
        .collect()
}

/// Who answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Contender {
    /// One plain model call ([`ONE_CALL_TEAM`]).
    OneCall,
    /// `agentgen run`'s built-in team.
    DefaultTeam,
}

/// How one contender did on one problem.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    /// Whether the hidden tests passed.
    pub solved: bool,
    /// Messages in the run, the task included.
    pub messages: usize,
    /// Code blocks the executor ran, and how many of those exited 0.
    pub executed: usize,
    /// Executed blocks that exited 0.
    pub passed_own_checks: usize,
    /// Tokens over every model call of the run.
    pub tokens: u64,
    /// Wall time of the run (the model load included).
    pub wall_s: f64,
    /// The run's stop reason, or why it failed.
    pub stop: String,
    /// The last line the hidden tests printed.
    pub verdict: String,
}

/// The code blocks of a message, Python (or untagged) only.
fn python_blocks(text: &str) -> Vec<String> {
    extract_code_blocks(text)
        .into_iter()
        .filter(|b| matches!(b.language.as_str(), "python" | "py" | "python3" | ""))
        .map(|b| b.code)
        .collect()
}

/// `(source, content)` of every message event of a `--json` run.
fn messages(events: &[Value]) -> Vec<(&str, &str)> {
    events
        .iter()
        .filter(|e| e["event"] == "message")
        .map(|e| (e["source"].as_str().unwrap_or(""), e["content"].as_str().unwrap_or("")))
        .collect()
}

/// The answer a run stands behind (see the module doc), with the executor's counts.
pub fn answer(events: &[Value]) -> (Option<String>, usize, usize) {
    let msgs = messages(events);
    let mut last = None;
    let mut last_passed = None;
    let (mut executed, mut passed) = (0, 0);
    for (i, (source, content)) in msgs.iter().enumerate() {
        if *source == "writer" {
            if let Some(code) = python_blocks(content).pop() {
                last = Some(code);
            }
            continue;
        }
        if *source != "executor" || !content.starts_with("exit code:") {
            continue;
        }
        executed += 1;
        if passed_all(content) {
            passed += 1;
            let ran = msgs[..i].iter().rev().find(|(s, _)| *s == "writer");
            if let Some(code) = ran.and_then(|(_, c)| python_blocks(c).pop()) {
                last_passed = Some(code);
            }
        }
    }
    (last_passed.or(last), executed, passed)
}

/// Whether every block of an executor's report exited 0 (none timed out or was refused).
fn passed_all(report: &str) -> bool {
    let mut codes = report.lines().filter(|l| l.starts_with("exit code:")).peekable();
    codes.peek().is_some()
        && codes.all(|l| l.trim_end() == "exit code: 0")
        && !report.lines().any(|l| l.starts_with("timed out; output so far"))
        && !report.contains("Code execution was not approved.")
}

/// Settings of every run.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// The `agentgen` binary.
    pub agentgen: PathBuf,
    /// The GGUF both contenders run.
    pub model: PathBuf,
    /// Most tokens per model call.
    pub max_tokens: u32,
    /// A folder for the one-call team file and the runs' working directories.
    pub work: PathBuf,
}

/// Runs `problem` with `who` and scores the answer.
pub async fn attempt(
    settings: &RunSettings,
    problem: &Problem,
    who: Contender,
) -> Result<Attempt, CodeTaskError> {
    let mut cmd = tokio::process::Command::new(&settings.agentgen);
    cmd.arg("run").arg("--json").arg("--yes");
    if who == Contender::OneCall {
        let file = settings.work.join("one_call.toml");
        std::fs::write(&file, ONE_CALL_TEAM)
            .map_err(|e| CodeTaskError::Write { path: file.clone(), message: e.to_string() })?;
        cmd.arg("--team").arg(file);
    }
    cmd.arg("--model")
        .arg(&settings.model)
        .args(["--temperature", "0", "--max-tokens"])
        .arg(settings.max_tokens.to_string())
        .arg(problem.task())
        .current_dir(&settings.work)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let started = Instant::now();
    let child = cmd.spawn().map_err(|e| CodeTaskError::Spawn {
        binary: settings.agentgen.clone(),
        message: e.to_string(),
    })?;
    let out = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output()).await;
    let wall_s = started.elapsed().as_secs_f64();
    let (events, failed) = match out {
        Err(_) => (Vec::new(), Some(format!("timed out after {} s", RUN_TIMEOUT.as_secs()))),
        Ok(Err(e)) => (Vec::new(), Some(format!("the run failed: {e}"))),
        Ok(Ok(out)) => {
            let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            let failed = (!out.status.success()).then(|| format!("exit status {}", out.status));
            (events, failed)
        }
    };
    let summary = events.iter().rev().find(|e| e["event"] == "summary");
    let (code, executed, passed_own_checks) = answer(&events);
    let (solved, verdict) = match &code {
        Some(code) => score(problem, code).await?,
        None => (false, "no code block in the answer".to_owned()),
    };
    Ok(Attempt {
        solved,
        messages: messages(&events).len(),
        executed,
        passed_own_checks,
        tokens: summary.and_then(|s| s["total_tokens"].as_u64()).unwrap_or(0),
        wall_s,
        stop: failed.unwrap_or_else(|| {
            summary.and_then(|s| s["stop_reason"].as_str()).unwrap_or("").to_owned()
        }),
        verdict,
    })
}

/// Runs the hidden tests on `code`: whether they passed, and the last line printed.
pub async fn score(problem: &Problem, code: &str) -> Result<(bool, String), CodeTaskError> {
    let sandbox = Sandbox::new(SandboxPolicy::default()).await?;
    for (name, text) in [
        ("harness.py", HARNESS),
        ("prompt.py", problem.prompt.as_str()),
        ("candidate.py", code),
        ("test.py", problem.test.as_str()),
    ] {
        sandbox.write_file(name, text.as_bytes()).await?;
    }
    let args: Vec<OsString> =
        vec!["harness.py".into(), OsString::from(problem.entry_point.as_str())];
    let out =
        sandbox.run("python3", &args, SCORE_TIMEOUT, 16 * 1024, &CancellationToken::new()).await?;
    let last = out.output.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").to_owned();
    let verdict = if out.timed_out { format!("timed out; {last}") } else { last };
    Ok((out.exit_code == Some(0) && !out.timed_out, verdict))
}

/// The folder runs work in: a fresh one under `root`.
pub fn work_dir(root: &Path) -> Result<tempfile::TempDir, CodeTaskError> {
    std::fs::create_dir_all(root)
        .and_then(|()| tempfile::Builder::new().prefix("code-tasks-").tempdir_in(root))
        .map_err(|e| CodeTaskError::Write { path: root.to_owned(), message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn msg(source: &str, content: &str) -> Value {
        json!({"event": "message", "source": source, "content": content})
    }

    #[test]
    fn the_committed_problems_are_all_of_humaneval_in_order() {
        let all = problems().unwrap();
        assert_eq!(all.len(), 164);
        for (i, p) in all.iter().enumerate() {
            assert_eq!(p.task_id, format!("HumanEval/{i}"));
            assert!(p.test.contains("def check(candidate)"), "{}", p.task_id);
            assert!(p.prompt.contains(&format!("def {}(", p.entry_point)), "{}", p.task_id);
        }
    }

    #[tokio::test]
    async fn the_hidden_tests_tell_a_right_answer_from_a_wrong_one() {
        let problem = &problems().unwrap()[0];
        // Right, with a wrong assert of the writer's own below it: only the function counts.
        let right = "def has_close_elements(numbers, threshold):\n    return any(abs(a - b) < \
                     threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n\n\
                     assert has_close_elements([1.0], 0.5) is True\nprint('ok')\n";
        let (solved, verdict) = score(problem, right).await.unwrap();
        assert!(solved, "{verdict}");
        assert_eq!(verdict, "passed");
        let wrong = "def has_close_elements(numbers, threshold):\n    return False\n";
        let (solved, verdict) = score(problem, wrong).await.unwrap();
        assert!(!solved && verdict.contains("AssertionError"), "{verdict}");
        let (solved, verdict) = score(problem, "def other(): pass\n").await.unwrap();
        assert!(!solved && verdict.contains("does not define"), "{verdict}");
        let (solved, verdict) = score(problem, "def has_close_elements(:\n").await.unwrap();
        assert!(!solved && verdict.starts_with("syntax error"), "{verdict}");
    }

    #[test]
    fn the_team_stands_behind_its_last_block_that_passed() {
        let events = [
            msg("user", "task"),
            msg("writer", "```python\ndef f(): return 1\n```"),
            msg("executor", "exit code: 0\nok"),
            msg("reviewer", "make it 2"),
            msg("writer", "```python\ndef f(): return 2\n```"),
            msg("executor", "exit code: 1\nTraceback"),
            msg("reviewer", "fix it"),
        ];
        let (code, executed, passed) = answer(&events);
        assert_eq!(code.as_deref(), Some("def f(): return 1\n"));
        assert_eq!((executed, passed), (2, 1));
    }

    #[test]
    fn a_report_passes_only_when_every_block_exited_zero() {
        assert!(passed_all("exit code: 0\nok"));
        assert!(passed_all("exit code: 0\n\n\nexit code: 0\nok"));
        assert!(!passed_all("exit code: 0\n\n\nexit code: 1\nTraceback"));
        assert!(!passed_all("timed out; output so far:\n"));
        assert!(!passed_all("exit code: none (killed or did not start)\n"));
        assert!(!passed_all("No code blocks found in the thread."));
    }

    #[test]
    fn without_a_passing_block_the_last_block_is_the_answer() {
        let events = [
            msg("writer", "```python\ndef f(): return 1\n```"),
            msg("executor", "exit code: 1\nboom"),
            msg("writer", "text, then\n```python\ndef f(): return 3\n```"),
            msg("executor", "No code blocks found in the thread."),
        ];
        assert_eq!(answer(&events), (Some("def f(): return 3\n".to_owned()), 1, 0));
        assert_eq!(answer(&[msg("writer", "no code")]), (None, 0, 0));
    }
}
