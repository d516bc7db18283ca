//! `cargo xtask test`: every test the project has, in order, with a summary at the end.
//!
//! 1. system prerequisites (installed with apt-get as root);
//! 2. build the `agentgen` CLI and pull the default (= test) model with it;
//! 3. a Python virtualenv at `.venv` with `openai`, AutoGen and pytest;
//! 4. `cargo test --workspace` (real-model tests included);
//! 5. the Python clients against a started `agentgen serve`, then `agentgen verify-local` on it;
//! 6. the offline proof: server and a tool-using AutoGen team inside `unshare -rn`;
//! 7. the CLI's feature sets built alone (`groq` without llama.cpp, `local` without an HTTP
//!    client), checked with `cargo tree`;
//! 8. `agentgen-bench --quick` (with the virtualenv's AutoGen for its team comparison) and
//!    checks on the JSON and PNG files it writes;
//! 9. `agentgen-load --quick`: 64 hostile and normal clients for 10 s, the server must recover;
//! 10. `agentgen-codebench --quick`: the default team and one plain call on 3 HumanEval
//!     problems, every run finished and scored by the hidden tests.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use crate::cmd::{self, Cmd, Error, Workspace};
use crate::outputs;
use crate::prereq::{self, Need};
use crate::serve::Server;

/// The Python client tests, relative to the workspace root.
const PY_TESTS: &str = "crates/agentgen-server/tests/python";
/// Their pinned requirements (`openai`, AutoGen), relative to [`PY_TESTS`].
const PY_REQUIREMENTS: &str = "requirements.txt";
/// The test runner added to them.
const PY_RUNNER: &str = "pytest";
/// The offline proof, relative to [`PY_TESTS`]: run under `unshare -rn`, it brings loopback
/// up, checks no other interface exists, starts the server and runs the AutoGen tool team.
const OFFLINE_SCRIPT: &str = "offline_team.sh";

/// One step's outcome.
#[derive(Debug)]
struct StepResult {
    name: &'static str,
    ok: bool,
    seconds: f64,
    detail: String,
    /// Tests counted inside the step (passed, failed), when it runs a test runner.
    counts: Option<(u64, u64)>,
}

#[derive(Debug, Default)]
struct Report {
    steps: Vec<StepResult>,
}

impl Report {
    /// Runs a step, records its outcome and returns whether it passed.
    fn run(
        &mut self,
        name: &'static str,
        f: impl FnOnce() -> Result<(String, Option<(u64, u64)>), Error>,
    ) -> bool {
        cmd::step(name);
        let start = Instant::now();
        let (ok, detail, counts) = match f() {
            Ok((detail, counts)) => (counts.is_none_or(|(_, failed)| failed == 0), detail, counts),
            Err(e) => (false, e.to_string(), None),
        };
        if !ok {
            eprintln!("xtask: step `{name}` FAILED: {detail}");
        }
        self.steps.push(StepResult {
            name,
            ok,
            seconds: start.elapsed().as_secs_f64(),
            detail,
            counts,
        });
        ok
    }

    fn skip(&mut self, name: &'static str, why: &str) {
        self.steps.push(StepResult {
            name,
            ok: false,
            seconds: 0.0,
            detail: format!("not run: {why}"),
            counts: None,
        });
    }

    /// Writes the summary table; returns whether everything passed.
    fn print(&self, out: &mut impl Write) -> bool {
        let _ = writeln!(out, "\n{:-<78}\ncargo xtask test summary\n{:-<78}", "", "");
        let (mut passed, mut failed) = (0u64, 0u64);
        for s in &self.steps {
            let mark = if s.ok { "PASS" } else { "FAIL" };
            let detail: String = s.detail.lines().next().unwrap_or("").chars().take(60).collect();
            let _ = writeln!(out, "{mark}  {:<28} {:>7.1}s  {detail}", s.name, s.seconds);
            match s.counts {
                Some((p, f)) => {
                    passed += p;
                    failed += f.max(u64::from(!s.ok && f == 0));
                }
                None if s.ok => passed += 1,
                None => failed += 1,
            }
        }
        let all_ok = self.steps.iter().all(|s| s.ok);
        let _ = writeln!(out, "{:-<78}", "");
        let _ = writeln!(out, "tests: {passed} passed, {failed} failed");
        all_ok && failed == 0
    }
}

/// Runs every test; exits non-zero when any fails.
pub fn run(skip_bench: bool) -> Result<ExitCode, Error> {
    prereq::ensure(&[Need::NativeBuild, Need::Charts, Need::PythonVenv, Need::Netns])?;
    let ws = Workspace::locate()?;
    let logs = ws.target_dir.join("xtask");
    std::fs::create_dir_all(&logs)
        .map_err(|e| Error::Other(format!("cannot create {}: {e}", logs.display())))?;
    let agentgen = ws.agentgen_bin();
    let mut report = Report::default();

    let built = report.run("build agentgen CLI", || {
        ws.cargo(["build", "-p", "agentgen-cli"]).status_ok()?;
        Ok((agentgen.display().to_string(), None))
    });
    let pulled = built
        && report.run("pull test model", || {
            Cmd::new(&agentgen).arg("pull").status_ok()?;
            Ok(("agentgen pull".into(), None))
        });
    let venv = ws.root.join(".venv");
    let python = venv_python(&venv);
    let requirements = ws.root.join(PY_TESTS).join(PY_REQUIREMENTS);
    let have_venv = report.run("python virtualenv", || {
        setup_venv(&venv, &python, &requirements)?;
        Ok((format!("{} + {PY_RUNNER}", requirements.display()), None))
    });

    report.run("cargo test --workspace", || {
        let counts = cargo_test(&ws, have_venv.then_some(python.as_path()))?;
        Ok((format!("{} passed, {} failed", counts.0, counts.1), Some(counts)))
    });

    if pulled && have_venv {
        report.run("python clients vs serve", || {
            let server = Server::start(&agentgen, &logs.join("serve.log"), &["--sealed"])?;
            let counts = pytest(&ws, &python, &server.base_url())?;
            server.stop();
            Ok((format!("{} passed, {} failed", counts.0, counts.1), Some(counts)))
        });
        report.run("verify-local --recompute", || {
            let server = Server::start(&agentgen, &logs.join("serve-verify.log"), &["--sealed"])?;
            Cmd::new(&agentgen)
                .args(["verify-local", "--recompute", &server.base_url()])
                .status_ok()?;
            server.stop();
            Ok(("sealed server checked from the kernel's records".into(), None))
        });
        report.run("offline proof (unshare -rn)", || {
            offline(&ws, &agentgen, &python)?;
            Ok(("server + AutoGen tool team with loopback only".into(), None))
        });
    } else {
        for name in
            ["python clients vs serve", "verify-local --recompute", "offline proof (unshare -rn)"]
        {
            report.skip(name, "no model or no virtualenv");
        }
    }

    report.run("feature builds", || Ok((crate::features::check(&ws)?, None)));

    if !skip_bench {
        report.run("bench --quick + checks", || {
            let dir = ws.target_dir.join("bench");
            // A stale file from an earlier run must not pass the checks.
            let _ = std::fs::remove_file(dir.join("results.json"));
            let mut args = vec!["--quick".into(), "--out".into(), dir.display().to_string()];
            if have_venv {
                // (j): the team with AutoGen-Python, whose packages the virtualenv holds.
                args.extend(["--autogen-python".into(), python.display().to_string()]);
            }
            ws.bench_runner(&args).status_ok()?;
            let summary = outputs::check_dir(&dir)?;
            println!("{summary}");
            Ok(("results.json and charts checked".into(), None))
        });
        report.run("hostile load (64 clients, 10 s)", || {
            ws.load_runner(true, &ws.target_dir.join("bench")).status_ok()?;
            Ok(("slots and queue drained, server answers".into(), None))
        });
        report.run("code tasks --quick (default team vs one call)", || {
            let dir = ws.target_dir.join("bench");
            let _ = std::fs::remove_file(dir.join("code_tasks.json"));
            ws.codebench_runner(true, &dir).status_ok()?;
            Ok((outputs::check_code_tasks(&dir, 3)?, None))
        });
    }

    Ok(if report.print(&mut std::io::stdout().lock()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(crate) fn venv_python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

/// Creates `.venv` and installs the requirements, unless a previous run already did.
fn setup_venv(venv: &Path, python: &Path, requirements: &Path) -> Result<(), Error> {
    let marker = venv.join(".agentgen-requirements");
    let listed = std::fs::read_to_string(requirements)
        .map_err(|e| Error::Other(format!("cannot read {}: {e}", requirements.display())))?;
    let wanted = format!("{listed}\n{PY_RUNNER}\n");
    if python.exists() && std::fs::read_to_string(&marker).is_ok_and(|have| have == wanted) {
        eprintln!("{} is up to date", venv.display());
        return Ok(());
    }
    if !python.exists() {
        Cmd::new("python3").args(["-m", "venv"]).arg(venv).status_ok()?;
    }
    Cmd::new(python)
        .args(["-m", "pip", "install", "--disable-pip-version-check", "--quiet", PY_RUNNER, "-r"])
        .arg(requirements)
        .status_ok()?;
    std::fs::write(&marker, wanted)
        .map_err(|e| Error::Other(format!("cannot write {}: {e}", marker.display())))
}

/// `cargo test --workspace`; tests that drive the Python clients (and MCP servers) use `python`.
fn cargo_test(ws: &Workspace, python: Option<&Path>) -> Result<(u64, u64), Error> {
    let mut cmd = ws.cargo(["test", "--workspace", "--no-fail-fast"]);
    if let Some(python) = python {
        cmd = cmd.env("AGENTGEN_PYTHON", python);
    }
    let mut child = cmd.spawn_piped()?;
    let counts = tee_and_count(child.stdout.take(), count_cargo_line);
    let status = child.wait().map_err(|e| Error::Other(format!("cargo test: {e}")))?;
    if !status.success() && counts.1 == 0 {
        return Err(Error::Other(format!(
            "cargo test failed ({status}) before any test failed: a build error?"
        )));
    }
    Ok(counts)
}

/// pytest on the Python client tests, against the server at `base_url`.
fn pytest(ws: &Workspace, python: &Path, base_url: &str) -> Result<(u64, u64), Error> {
    let mut child = Cmd::new(python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", PY_TESTS])
        .current_dir(&ws.root)
        .env("AGENTGEN_URL", base_url)
        .spawn_piped()?;
    let counts = tee_and_count(child.stdout.take(), count_pytest_line);
    let status = child.wait().map_err(|e| Error::Other(format!("pytest: {e}")))?;
    if counts.0 + counts.1 == 0 {
        return Err(Error::Other(format!("pytest ran no test ({status})")));
    }
    if !status.success() && counts.1 == 0 {
        return Err(Error::Other(format!("pytest failed ({status})")));
    }
    Ok(counts)
}

/// The offline proof: the server and the AutoGen tool team inside `unshare -rn`, a new user and
/// network namespace with nothing but loopback.
fn offline(ws: &Workspace, agentgen: &Path, python: &Path) -> Result<(), Error> {
    let script = ws.root.join(PY_TESTS).join(OFFLINE_SCRIPT);
    if !script.exists() {
        return Err(Error::Other(format!("missing the offline proof script {}", script.display())));
    }
    Cmd::new("unshare")
        .arg("-rn")
        .arg("bash")
        .arg(script)
        .env("PYTHON", python)
        .env("AGENTGEN_SERVE", format!("{} serve", agentgen.display()))
        .env("AGENTGEN_PORT", crate::serve::free_port()?.to_string())
        .current_dir(&ws.root)
        .status_ok()
}

/// Copies a child's stdout to ours line by line, summing the (passed, failed) that `count`
/// finds in each line.
fn tee_and_count(
    stdout: Option<std::process::ChildStdout>,
    count: fn(&str) -> Option<(u64, u64)>,
) -> (u64, u64) {
    let Some(stdout) = stdout else { return (0, 0) };
    let mut total = (0, 0);
    let mut out = std::io::stdout();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        let _ = writeln!(out, "{line}");
        if let Some((p, f)) = count(&line) {
            total.0 += p;
            total.1 += f;
        }
    }
    total
}

/// Counts from a `cargo test` result line: `test result: ok. 12 passed; 0 failed; …`.
fn count_cargo_line(line: &str) -> Option<(u64, u64)> {
    let rest = line.trim().strip_prefix("test result: ")?;
    Some((number_before(rest, "passed")?, number_before(rest, "failed")?))
}

/// Counts from pytest's closing line: `==== 3 passed, 1 failed, 2 errors in 4.2s ====`.
fn count_pytest_line(line: &str) -> Option<(u64, u64)> {
    let line = line.trim().trim_matches('=').trim();
    if !line.contains(" in ") {
        return None;
    }
    let passed = number_before(line, "passed");
    let failed = number_before(line, "failed").unwrap_or(0)
        + number_before(line, "errors").or_else(|| number_before(line, "error")).unwrap_or(0);
    if passed.is_none() && failed == 0 {
        return None;
    }
    Some((passed.unwrap_or(0), failed))
}

/// The number written just before `word` (`"3 passed"` → 3).
fn number_before(text: &str, word: &str) -> Option<u64> {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .filter(|w| !w.is_empty())
        .collect();
    words.windows(2).find(|w| w[1] == word).and_then(|w| w[0].parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_result_lines() {
        assert_eq!(
            count_cargo_line("test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s"),
            Some((12, 0))
        );
        assert_eq!(
            count_cargo_line("test result: FAILED. 3 passed; 2 failed; 0 ignored"),
            Some((3, 2))
        );
        assert_eq!(count_cargo_line("running 12 tests"), None);
    }

    #[test]
    fn pytest_closing_lines() {
        assert_eq!(count_pytest_line("5 passed in 3.21s"), Some((5, 0)));
        assert_eq!(
            count_pytest_line("===== 1 failed, 4 passed, 1 skipped in 9.0s ====="),
            Some((4, 1))
        );
        assert_eq!(count_pytest_line("2 passed, 1 error in 1.0s"), Some((2, 1)));
        assert_eq!(count_pytest_line("test_x.py ..F"), None);
    }

    #[test]
    fn a_failed_step_without_counts_counts_as_one_failure() {
        let mut report = Report::default();
        assert!(report.run("fine", || Ok(("ok".into(), None))));
        assert!(!report.run("broken", || Err(Error::Other("boom".into()))));
        assert!(!report.run("tests", || Ok(("x".into(), Some((3, 1))))));
        let mut out = Vec::new();
        assert!(!report.print(&mut out));
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("FAIL  broken"), "{out}");
        assert!(out.trim_end().ends_with("tests: 4 passed, 2 failed"), "{out}");
    }
}
