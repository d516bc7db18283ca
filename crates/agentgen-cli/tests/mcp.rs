//! Team files with MCP servers, on the real local model: the `agentgen` binary starts a Python
//! MCP server (the official `mcp` package, from the workspace's `.venv`) over stdio, reaches
//! one over streamable HTTP on 127.0.0.1, and the model's tool calls go through them.
#![cfg(feature = "local")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The virtualenv's Python with `mcp`; fails with the fix when missing.
fn python() -> String {
    let py = root().join(".venv/bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import mcp.server.mcpserver"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "this test needs Python's `mcp` package in {}: run `cargo xtask test` once, or \
         `python3 -m venv .venv && .venv/bin/pip install -r crates/agentgen-server/tests/python/requirements.txt`",
        py.display()
    );
    py.to_string_lossy().into_owned()
}

fn script() -> String {
    root().join("crates/agentgen-mcp/tests/python/geo_server.py").to_string_lossy().into_owned()
}

/// Runs `agentgen run --team` with this team file on the test model; returns stdout.
fn run_team(dir: &Path, model: &Path, team: &str, task: &str) -> String {
    let file = dir.join("team.toml");
    std::fs::write(&file, team).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_agentgen"))
        .current_dir(dir)
        .env("XDG_CONFIG_HOME", dir.join("config-home"))
        .args(["run", "--team", file.to_str().unwrap(), "--model", model.to_str().unwrap()])
        .args(["--max-tokens", "48", "--temperature", "0", task])
        .output()
        .expect("agentgen runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\n{stdout}\n{stderr}", out.status);
    stdout
}

fn team(server: &str, tool: &str) -> String {
    format!(
        "[team]\ntype = \"round_robin\"\n[termination]\nmax_messages = 2\n\
         [[mcp_servers]]\nname = \"geo\"\n{server}\ntimeout_s = 20\n\
         [[agents]]\nname = \"assistant\"\n\
         system_message = \"You answer questions about countries with your tools.\"\n\
         tools = [\"{tool}\"]\ntool_choice = \"required\"\n"
    )
}

#[test]
fn the_model_calls_mcp_tools_over_stdio_and_http_and_a_crash_ends_the_run_cleanly() {
    let Some(model) = agentgen_models::cache::model_for_tests() else { return };
    let dir = tempfile::tempdir().unwrap();
    let python = python();

    // stdio: the server is started from the team file; its answer is in the run's output.
    let stdio = format!("command = [{:?}, {:?}, \"stdio\"]", python, script());
    let out = run_team(dir.path(), &model, &team(&stdio, "geo.*"), "What is the capital of Japan?");
    assert!(out.contains("geo__capital_of"), "{out}");
    assert!(out.contains("Tokyo"), "{out}");

    // streamable HTTP, and a server that dies mid-call: an error result, a clean exit.
    let mut server = Command::new(&python)
        .args([script(), "http".into()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port = line.trim().strip_prefix("PORT ").expect("PORT line").to_owned();
    let http = format!("url = \"http://127.0.0.1:{port}/mcp\"");
    let out = run_team(dir.path(), &model, &team(&http, "geo.crash"), "Crash the server.");
    assert!(out.contains("geo__crash"), "{out}");
    assert!(out.contains("Error: tool `geo__crash` failed"), "{out}");
    let _ = server.kill();
    let _ = server.wait();
}
