//! The `agentgen` binary, run as a real subprocess: every subcommand, its error exits, and the
//! real-model paths (chat over stdin, a team run, serve + verify-local) on the test GGUF.

use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::agentgen;
#[cfg(feature = "server")]
use common::http;

const SECRET: &str = "gsk_test_secret_value_that_must_not_leak";

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("agentgen runs");
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

/// The real test model, or `None` when AGENTGEN_SKIP_MODEL_TESTS=1. Fails loudly otherwise.
#[cfg(feature = "local")]
fn test_model() -> Option<std::path::PathBuf> {
    agentgen_models::cache::model_for_tests()
}

#[test]
fn help_explains_the_tool_in_a_paragraph() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(agentgen(dir.path()).arg("--help"));
    let help = text(&out.stdout);
    assert!(help.contains("agentgen runs teams of LLM agents"), "{help}");
    for sub in [
        "run",
        "chat",
        "serve",
        "pull",
        "models",
        "doctor",
        "verify-local",
        "config",
        "completions",
    ] {
        assert!(help.contains(sub), "--help lacks `{sub}`:\n{help}");
    }
}

#[test]
fn an_unknown_backend_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = agentgen(dir.path()).args(["run", "--backend", "ollama", "Say hi"]).output().unwrap();
    assert_eq!(code(&out), 3, "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("unknown backend `ollama`"), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());

    // The same through the environment.
    let out = agentgen(dir.path()).env("AGENTGEN_BACKEND", "nope").args(["chat"]).output().unwrap();
    assert_eq!(code(&out), 3);
    assert!(text(&out.stderr).contains("unknown backend `nope`"), "{}", text(&out.stderr));
}

#[cfg(feature = "groq")]
#[test]
fn groq_without_an_api_key_says_which_variable_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let out = agentgen(dir.path()).args(["run", "--backend", "groq", "Say hi"]).output().unwrap();
    assert_eq!(code(&out), 3, "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("GROQ_API_KEY") && err.contains("groq"), "{err}");
}

/// Only in a build without the groq feature (`--no-default-features --features local`).
#[cfg(not(feature = "groq"))]
#[test]
fn a_backend_left_out_of_the_build_says_which_feature_to_enable() {
    let dir = tempfile::tempdir().unwrap();
    let out = agentgen(dir.path()).args(["run", "--backend", "groq", "Say hi"]).output().unwrap();
    assert_eq!(code(&out), 3);
    let err = text(&out.stderr);
    assert!(
        err.contains("built without the groq backend") && err.contains("--features groq"),
        "{err}"
    );
}

#[cfg(feature = "local")]
#[test]
fn pulling_an_unknown_model_names_it_and_lists_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = agentgen(dir.path()).args(["pull", "no-such-model-xyz"]).output().unwrap();
    assert_eq!(code(&out), 4, "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("unknown model `no-such-model-xyz`"), "{err}");
    assert!(err.contains("qwen2.5-coder-0.5b-instruct"), "{err}");

    let out = agentgen(dir.path())
        .args(["run", "--model", "no-such-model-xyz", "Say hi"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 4, "{}", text(&out.stderr));
}

#[test]
fn a_malformed_team_file_is_reported_with_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let team = dir.path().join("my-team.toml");
    std::fs::write(
        &team,
        "[team]\ntype = \"round_robin\"\n\n[[agents]]\nname = \"writer\"\nsystem_message = 42\n",
    )
    .unwrap();
    let out = agentgen(dir.path())
        .args(["run", "--team", team.to_str().unwrap(), "Say hi"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 3, "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("my-team.toml:6:"), "{err}");
    assert!(err.contains("field `agents.system_message`"), "{err}");

    std::fs::write(
        &team,
        "[team]\ntype = \"round_robin\"\n[[agents]]\nname = \"a\"\nsystem_message = \"x\"\ntools = [\"teleport\"]\n",
    )
    .unwrap();
    let out = agentgen(dir.path())
        .args(["run", "--team", team.to_str().unwrap(), "Say hi"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 3);
    let err = text(&out.stderr);
    assert!(err.contains("my-team.toml:6:") && err.contains("teleport"), "{err}");
}

#[test]
fn an_empty_task_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = agentgen(dir.path()).args(["run", "   "]).output().unwrap();
    assert_eq!(code(&out), 2, "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("task is empty"));
    let out = agentgen(dir.path()).args(["run"]).output().unwrap();
    assert_eq!(code(&out), 2, "a missing task is a usage error too");
}

#[cfg(feature = "local")]
#[test]
fn models_json_lists_every_seed_model() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(agentgen(dir.path()).args(["models", "--json"]));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    for seed in [
        "qwen2.5-coder-0.5b-instruct",
        "llama-2-7b-chat",
        "gpt2",
        "falcon-7b-instruct",
        "flan-t5-large",
        "gpt-j-6b",
        "alpaca-7b",
        "mistral-7b-instruct",
        "bert-base-uncased",
        "distilbert-base-uncased",
        "tinyllama-1.1b-chat",
        "llama-3.2-1b-instruct",
    ] {
        assert!(ids.contains(&seed), "`models --json` lacks {seed}: {ids:?}");
    }
    let bert = rows.iter().find(|r| r["id"] == "bert-base-uncased").unwrap();
    assert_eq!(bert["chat"], false);
}

#[cfg(feature = "local")]
#[test]
fn models_local_and_api_keeps_only_models_available_both_ways_and_shows_measured_speed() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("bench.json"),
        r#"{"models":{"llama-3.1-8b-instruct":{"decode_tokens_per_s":12.25,"prompt_tokens_per_s":80.0}}}"#,
    )
    .unwrap();
    let out = run_ok(agentgen(dir.path()).env("AGENTGEN_HOME", &home).args([
        "models",
        "--local-and-api",
        "--json",
    ]));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!rows.is_empty());
    for r in &rows {
        assert_eq!(r["api_available"], true, "{r}");
        assert_eq!(r["local_source"], true, "{r}");
    }
    let all = run_ok(agentgen(dir.path()).env("AGENTGEN_HOME", &home).args(["models", "--json"]));
    let all: Vec<Value> = serde_json::from_slice(&all.stdout).unwrap();
    assert!(rows.len() < all.len(), "the filter removed nothing");
    assert!(!rows.iter().any(|r| r["id"] == "bert-base-uncased"));

    let table = run_ok(
        agentgen(dir.path()).env("AGENTGEN_HOME", &home).args(["models", "--local-and-api"]),
    );
    let table = text(&table.stdout);
    assert!(table.starts_with("MODEL"), "{table}");
    let llama = table.lines().find(|l| l.starts_with("llama-3.1-8b-instruct ")).expect("row");
    assert!(llama.trim_end().ends_with("12.2") || llama.trim_end().ends_with("12.3"), "{llama}");
}

#[test]
fn doctor_json_reports_the_machine_and_never_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(agentgen(dir.path()).env("GROQ_API_KEY", SECRET).args(["doctor", "--json"]));
    let stdout = text(&out.stdout);
    assert!(!stdout.contains(SECRET) && !text(&out.stderr).contains(SECRET));
    let r: Value = serde_json::from_str(&stdout).unwrap();
    assert!(r["cpu"]["physical_cores"].as_u64().unwrap() >= 1, "{r}");
    assert!(r["cpu"]["features"].is_array());
    assert!(r["ram"]["total_bytes"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["groq_api_key_set"], true);
    assert_eq!(r["backends"]["local"], cfg!(feature = "local"));
    assert_eq!(r["backends"]["groq"], cfg!(feature = "groq"));
    let out = run_ok(agentgen(dir.path()).args(["doctor", "--json"]));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["groq_api_key_set"], false);
}

#[test]
fn config_show_merges_the_layers_and_masks_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let user_dir = dir.path().join("config-home").join("agentgen");
    std::fs::create_dir_all(&user_dir).unwrap();
    std::fs::write(
        user_dir.join("config.toml"),
        "model = \"from-user\"\n[run]\nmax_messages = 9\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("agentgen.toml"),
        "model = \"from-project\"\nbackend = \"groq\"\n",
    )
    .unwrap();
    let out = run_ok(
        agentgen(dir.path())
            .env("GROQ_API_KEY", SECRET)
            .env("AGENTGEN_BASE_URL", "http://127.0.0.1:9/v1")
            .args(["config", "show", "--json"]),
    );
    let stdout = text(&out.stdout);
    assert!(!stdout.contains(SECRET), "{stdout}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["model"], "from-project");
    assert_eq!(v["backend"], "groq");
    assert_eq!(v["run"]["max_messages"], 9);
    assert_eq!(v["base_url"], "http://127.0.0.1:9/v1");
    assert_eq!(v["groq"]["api_key"], "******** (set)");
    assert_eq!(v["files"].as_array().unwrap().len(), 2);

    let out = run_ok(agentgen(dir.path()).env("GROQ_API_KEY", SECRET).args(["config", "show"]));
    let toml_text = text(&out.stdout);
    assert!(
        !toml_text.contains(SECRET) && toml_text.contains("api_key = \"******** (set)\""),
        "{toml_text}"
    );
}

#[test]
fn completions_are_generated_for_bash() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(agentgen(dir.path()).args(["completions", "bash"]));
    let script = text(&out.stdout);
    assert!(script.contains("_agentgen") && script.contains("complete"), "{script}");
    assert!(script.contains("verify-local"));
    let out = agentgen(dir.path()).args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(code(&out), 2);
}

#[cfg(feature = "local")]
#[test]
fn chat_keeps_history_resets_saves_and_exits_over_piped_stdin() {
    use std::io::Write;
    use std::process::Stdio;

    let Some(model) = test_model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut child = agentgen(dir.path())
        .args([
            "chat",
            "--model",
            model.to_str().unwrap(),
            "--temperature",
            "0",
            "--max-tokens",
            "16",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Reply with one word: hello.\n/save one.json\n/reset\n/save none.json\n/exit\nnever read\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).trim().is_empty(), "no answer printed");
    assert!(text(&out.stderr).contains("[history cleared]"));
    let one: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("one.json")).unwrap())
            .unwrap();
    let msgs = one["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2, "{one}");
    assert_eq!(msgs[0]["content"], "Reply with one word: hello.");
    assert_eq!(msgs[1]["role"], "assistant");
    assert!(!msgs[1]["content"].as_str().unwrap().trim().is_empty());
    let none: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("none.json")).unwrap())
            .unwrap();
    assert_eq!(none["messages"].as_array().unwrap().len(), 0, "/reset kept history");
}

#[cfg(feature = "local")]
#[test]
fn run_streams_every_agent_on_the_real_model_and_summarises() {
    let Some(model) = test_model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(agentgen(dir.path()).args([
        "run",
        "--yes",
        "--model",
        model.to_str().unwrap(),
        "--max-messages",
        "4",
        "--max-tokens",
        "24",
        "--temperature",
        "0",
        "Write one sentence about the sea.",
    ]));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("── writer ──"), "{stdout}");
    assert!(stdout.contains("── executor ──"), "{stdout}");
    assert!(stdout.contains("── reviewer ──"), "{stdout}");
    let summary = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap();
    assert!(summary.starts_with("4 messages,") && summary.contains("tokens"), "{summary}");
}

/// A tiny OpenAI-compatible server: the writer drafts, the reviewer approves.
#[cfg(feature = "groq")]
mod fake_openai {
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use axum::{Json, Router};
    use serde_json::{json, Value};

    async fn chat(Json(body): Json<Value>) -> Response {
        let system = body["messages"][0]["content"].as_str().unwrap_or_default().to_owned();
        let answer = if system.contains("You are the reviewer") {
            "APPROVE"
        } else {
            "The sea is wide and deep."
        };
        let usage = json!({"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16});
        if body["stream"] == true {
            let mut sse = String::new();
            for (i, piece) in answer.split_inclusive(' ').enumerate() {
                let delta = if i == 0 {
                    json!({"role": "assistant", "content": piece})
                } else {
                    json!({"content": piece})
                };
                let chunk = json!({"id": "c1", "object": "chat.completion.chunk", "model": "fake",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": null}]});
                sse.push_str(&format!("data: {chunk}\n\n"));
            }
            let last = json!({"id": "c1", "object": "chat.completion.chunk", "model": "fake",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage});
            sse.push_str(&format!("data: {last}\n\ndata: [DONE]\n\n"));
            ([("content-type", "text/event-stream")], sse).into_response()
        } else {
            Json(json!({"id": "c1", "object": "chat.completion", "model": "fake",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
                "usage": usage}))
            .into_response()
        }
    }

    /// Serves on a free loopback port in a background thread; returns the base URL.
    pub fn start() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = Router::new().route("/v1/chat/completions", post(chat));
                axum::serve(listener, app).await.unwrap();
            });
        });
        format!("http://{addr}/v1")
    }
}

#[cfg(feature = "groq")]
#[test]
fn run_drives_an_openai_compatible_endpoint_on_loopback() {
    let base = fake_openai::start();
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(agentgen(dir.path()).args([
        "run",
        "--backend",
        "openai",
        "--base-url",
        &base,
        "--model",
        "fake",
        "Write about the sea.",
    ]));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("── writer ──\nThe sea is wide and deep."), "{stdout}");
    // The writer's answer has no code: the executor says so and the reviewer approves.
    assert!(stdout.contains("── executor ──\nNo code blocks found"), "{stdout}");
    assert!(stdout.contains("── reviewer ──\nAPPROVE"), "{stdout}");
    assert!(
        stdout.contains("4 messages, 32 tokens"),
        "text mention should stop after the reviewer: {stdout}"
    );

    let out = run_ok(agentgen(dir.path()).args([
        "run",
        "--json",
        "--backend",
        "openai",
        "--base-url",
        &base,
        "Write about the sea.",
    ]));
    let events: Vec<Value> =
        text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(events.iter().any(|e| e["event"] == "token_chunk" && e["source"] == "writer"));
    assert_eq!(events.last().unwrap()["event"], "summary");
}

/// Kills the server when the test ends, pass or fail.
#[cfg(feature = "server")]
struct KillOnDrop(std::process::Child);

#[cfg(feature = "server")]
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(feature = "server")]
#[test]
fn serve_answers_health_and_chat_and_verify_local_passes() {
    use std::io::BufRead;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let Some(model) = test_model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut child = agentgen(dir.path())
        .args(["serve", "--sealed", "--port", "0", "--model", model.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut server = KillOnDrop(child);
    let mut first = String::new();
    let mut reader = std::io::BufReader::new(stdout);
    reader.read_line(&mut first).unwrap();
    // Keep reading so the server's later status lines have somewhere to go.
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .trim_end_matches("/v1")
        .to_owned();
    let addr = url.trim_start_matches("http://").to_owned();

    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Ok((200, _)) = http(&addr, "GET", "/health", None) {
            break;
        }
        if let Some(status) = server.0.try_wait().unwrap() {
            panic!("serve exited early: {status}");
        }
        assert!(Instant::now() < deadline, "/health never answered 200");
        std::thread::sleep(Duration::from_millis(250));
    }

    let (status, body) = http(
        &addr,
        "POST",
        "/v1/chat/completions",
        Some(r#"{"model":"default","messages":[{"role":"user","content":"Say hi."}],"max_tokens":8,"temperature":0}"#),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"choices\"") && body.contains("\"assistant\""), "{body}");

    let out = run_ok(agentgen(dir.path()).args(["verify-local", &url]));
    assert!(text(&out.stdout).contains("PASS"), "{}", text(&out.stdout));
    drop(server);
}

#[cfg(feature = "local")]
#[test]
fn a_missing_model_with_no_pull_is_refused_with_the_pull_command() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("empty-home");
    let out = agentgen(dir.path())
        .env("AGENTGEN_HOME", &home)
        .args(["run", "--no-pull", "Say hi"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 4, "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("agentgen pull qwen2.5-coder-0.5b-instruct"), "{err}");
    assert!(
        !home.join("models").exists()
            || std::fs::read_dir(home.join("models")).unwrap().next().is_none()
    );
}
