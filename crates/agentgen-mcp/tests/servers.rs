//! Real MCP servers, written in Python with the official `mcp` package, started by the tests:
//! one over stdio and one over streamable HTTP on 127.0.0.1. They need the workspace's `.venv`
//! (made by `cargo xtask test` from crates/agentgen-server/tests/python/requirements.txt) and
//! fail, not skip, without it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentgen_core::agent::AssistantAgent;
use agentgen_core::events::MessageKind;
use agentgen_core::message::ToolCall;
use agentgen_core::team::{RoundRobinGroupChat, Team};
use agentgen_core::termination::Termination;
use agentgen_core::testing::{Reply, ScriptedBackend};
use agentgen_core::tools::ToolSet;
use agentgen_mcp::{Limits, McpServer, McpServerConfig};
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The virtualenv's Python, with `mcp` installed. Panics with the fix when it is missing.
fn python() -> String {
    let py = root().join(".venv/bin/python");
    let ok = std::process::Command::new(&py)
        .args(["-c", "import mcp.server.mcpserver"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "these tests need Python's `mcp` package in the workspace virtualenv {}: run `cargo xtask test` once, or \
         `python3 -m venv .venv && .venv/bin/pip install -r crates/agentgen-server/tests/python/requirements.txt`",
        py.display()
    );
    py.to_string_lossy().into_owned()
}

fn script() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python/geo_server.py")
        .to_string_lossy()
        .into_owned()
}

fn stdio_config(limits: Limits) -> McpServerConfig {
    let mut c = McpServerConfig::stdio("geo", vec![python(), script(), "stdio".into()]);
    c.limits = limits;
    c
}

/// A streamable-HTTP server child (killed on drop) and its URL.
async fn http_server() -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(python())
        .args([script(), "http".into()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the HTTP MCP server");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the server printed its port in 30 s")
        .expect("read")
        .expect("a line");
    let port: u16 = line.strip_prefix("PORT ").expect("PORT line").parse().expect("port");
    (child, format!("http://127.0.0.1:{port}/mcp"))
}

fn set_of(server: &McpServer) -> ToolSet {
    let mut set = ToolSet::new();
    for t in server.tools() {
        set.register(t).expect("MCP tools register");
    }
    set
}

async fn call(set: &ToolSet, name: &str, args: &str) -> agentgen_core::events::ToolResult {
    set.execute(&ToolCall::new("c1", name, args), &CancellationToken::new()).await
}

/// Lists, checks schemas, calls; returns the mean latency of 20 calls.
async fn lists_and_calls(server: &McpServer) -> Duration {
    let set = set_of(server);
    let names = set.names();
    for n in ["geo__capital_of", "geo__wait_seconds", "geo__crash", "geo__fail"] {
        assert!(names.contains(&n.to_owned()), "{names:?}");
    }
    let spec = set.specs().into_iter().find(|s| s.name() == "geo__capital_of").unwrap();
    let schema = serde_json::to_value(&spec).unwrap();
    let params = &schema["function"]["parameters"];
    assert_eq!(params["properties"]["country"]["type"], "string", "{schema}");
    assert_eq!(params["required"], serde_json::json!(["country"]), "{schema}");
    assert!(schema["function"]["description"].as_str().unwrap().contains("capital"));

    let r = call(&set, "geo__capital_of", r#"{"country": "Japan"}"#).await;
    assert_eq!((r.content.as_str(), r.is_error), ("Tokyo", false));
    let bad = call(&set, "geo__capital_of", r#"{"land": "Japan"}"#).await;
    assert!(bad.is_error && bad.content.contains("country"), "{}", bad.content);
    let failed = call(&set, "geo__fail", r#"{"reason": "no such place"}"#).await;
    // The Python SDK reports a raised exception without its text.
    assert!(failed.is_error && failed.content.contains("geo__fail"), "{}", failed.content);

    let start = Instant::now();
    for _ in 0..20 {
        let r = call(&set, "geo__capital_of", r#"{"country": "Peru"}"#).await;
        assert_eq!(r.content, "Lima");
    }
    start.elapsed() / 20
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_server_tools_have_schemas_and_answer() {
    let server = McpServer::connect(stdio_config(Limits::default())).await.unwrap();
    assert!(server.rejected().is_empty(), "{:?}", server.rejected());
    let mean = lists_and_calls(&server).await;
    eprintln!("MCP call over stdio: mean {mean:?} over 20 calls");
    assert_eq!(server.select("*").unwrap().len(), 4);
    assert_eq!(server.select("capital_of").unwrap()[0].name(), "geo__capital_of");
    assert!(server.select("nope").is_err());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_server_tools_have_schemas_and_answer() {
    let (_child, url) = http_server().await;
    let server = McpServer::connect(McpServerConfig::http("geo", url)).await.unwrap();
    let mean = lists_and_calls(&server).await;
    eprintln!("MCP call over streamable HTTP: mean {mean:?} over 20 calls");
    server.shutdown().await;
}

fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

async fn wait_gone(pid: u32) {
    let start = Instant::now();
    while !process_gone(pid) {
        assert!(start.elapsed() < Duration::from_secs(10), "process {pid} still runs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts a 30 s call, kills the server half a second in; the result and when the kill was.
async fn call_and_kill(
    set: &Arc<ToolSet>,
    kill: impl std::future::Future<Output = ()>,
) -> (agentgen_core::events::ToolResult, Instant) {
    let pending = tokio::spawn({
        let set = Arc::clone(set);
        async move { call(&set, "geo__wait_seconds", r#"{"seconds": 30}"#).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    kill.await;
    (pending.await.unwrap(), started)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_crashed_or_hung_stdio_server_gives_error_results() {
    let limits = Limits { call_timeout: Duration::from_secs(3), ..Limits::default() };
    // Killed mid-call.
    let server = McpServer::connect(stdio_config(limits)).await.unwrap();
    let pid = server.pid().expect("a stdio server has a pid");
    let set = Arc::new(set_of(&server));
    let (r, started) = call_and_kill(&set, async {
        let killed = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
        assert!(killed.unwrap().success());
    })
    .await;
    assert!(r.is_error && r.content.starts_with("Error: tool `geo__wait_seconds` failed"), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    let after = call(&set, "geo__capital_of", r#"{"country": "Kenya"}"#).await;
    assert!(after.is_error, "{after:?}");
    drop(server);

    // Crashed mid-call.
    let server = McpServer::connect(stdio_config(limits)).await.unwrap();
    let r = call(&set_of(&server), "geo__crash", "{}").await;
    assert!(r.is_error, "{r:?}");
    drop(server);

    // Hangs: the call's deadline answers.
    let limits = Limits { call_timeout: Duration::from_secs(1), ..Limits::default() };
    let server = McpServer::connect(stdio_config(limits)).await.unwrap();
    let started = Instant::now();
    let r = call(&set_of(&server), "geo__wait_seconds", r#"{"seconds": 20}"#).await;
    assert!(r.is_error && r.content.contains("did not answer within 1s"), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    let pid = server.pid().unwrap();
    drop(server);
    wait_gone(pid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_http_server_gives_an_error_result() {
    let (mut child, url) = http_server().await;
    let mut config = McpServerConfig::http("geo", url);
    config.limits.call_timeout = Duration::from_secs(5);
    let server = McpServer::connect(config).await.unwrap();
    let set = Arc::new(set_of(&server));
    let (r, started) = call_and_kill(&set, async { child.kill().await.unwrap() }).await;
    assert!(r.is_error, "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(6), "{:?}", started.elapsed());
    let after = call(&set, "geo__capital_of", r#"{"country": "Kenya"}"#).await;
    assert!(after.is_error, "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_run_ends_cleanly_when_the_server_dies_and_the_server_stops_with_it() {
    let server = McpServer::connect(stdio_config(Limits::default())).await.unwrap();
    let pid = server.pid().unwrap();
    let backend = Arc::new(ScriptedBackend::with_replies([
        Reply::call("a", "geo__capital_of", r#"{"country": "France"}"#),
        Reply::call("b", "geo__capital_of", r#"{"country": "Peru"}"#),
    ]));
    let mut agent = AssistantAgent::new("assistant", backend.clone());
    for t in server.select("*").unwrap() {
        agent = agent.with_tool_arc(t).unwrap();
    }
    let mut team = RoundRobinGroupChat::new(vec![Box::new(agent)])
        .unwrap()
        .with_termination(Termination::source_match(&["assistant"]));
    let first = team.run("Capital of France?".into()).await.unwrap();
    let summary = first.messages.last().unwrap();
    assert!(matches!(summary.kind, MessageKind::ToolCallSummary), "{summary:?}");
    assert_eq!(summary.content, "Paris");

    std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    wait_gone(pid).await;
    let second = tokio::time::timeout(Duration::from_secs(10), team.run("And Peru?".into()))
        .await
        .expect("the run ends")
        .expect("the run succeeds with an error result");
    let summary = second.messages.last().unwrap();
    assert!(summary.content.starts_with("Error: tool `geo__capital_of` failed"), "{summary:?}");
    drop(team);

    let server = McpServer::connect(stdio_config(Limits::default())).await.unwrap();
    let pid = server.pid().unwrap();
    assert!(!process_gone(pid));
    drop(server);
    wait_gone(pid).await;
}
