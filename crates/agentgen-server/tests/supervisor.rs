//! A crashed inference thread on the real model: `/health` turns 503 with the reason, the
//! stream in flight ends with an error instead of hanging, the engine restarts (reloading the
//! model) and the server answers again.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentgen_local::{LocalBackend, LocalConfig};
use agentgen_server::ServeConfig;
use common::TestServer;
use futures::StreamExt;
use serde_json::{json, Value};

/// The test model on a small engine (2 slots, 1024 tokens) behind a server on 127.0.0.1; the
/// engine handle is kept for fault injection. `None` when model tests are skipped.
async fn serve_test_model() -> Option<(LocalBackend, TestServer)> {
    let path = agentgen_models::cache::model_for_tests()?;
    let mut local = LocalConfig::new(&path);
    local.context_size = Some(1024);
    local.slots = 2;
    let backend = tokio::task::spawn_blocking(move || LocalBackend::load(local))
        .await
        .unwrap()
        .expect("load");
    let srv = TestServer::start(ServeConfig::default(), Arc::new(backend.clone()), None).await;
    Some((backend, srv))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_engine_is_reported_and_restarted() {
    let Some((engine, srv)) = serve_test_model().await else { return };
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let health = || async { c.get(format!("{}/health", srv.url)).send().await.unwrap() };
    assert_eq!(health().await.status(), 200);

    // A long stream is running when the engine dies.
    let long = json!({"messages": [{"role": "user", "content": "Count from 1 to 300, one number per line."}],
                      "max_tokens": 600, "temperature": 0, "stream": true});
    let resp = c.post(srv.chat_url()).json(&long).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let first = body.next().await.expect("a first chunk").unwrap();
    assert!(!first.is_empty());
    engine.inject_engine_panic().unwrap();
    let rest = tokio::time::timeout(Duration::from_secs(20), async {
        let mut text = String::new();
        while let Some(Ok(bytes)) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
        text
    })
    .await
    .expect("the stream in flight ended instead of hanging");
    assert!(rest.contains("\"error\""), "the stream did not end with an error: {rest}");
    assert!(!rest.contains("[DONE]"));

    // While it restarts (a backoff of 1 s, then a model load), /health says why; then the
    // engine is back.
    let started = Instant::now();
    let mut reason = None;
    while engine.engine_restarts() == 0 || health().await.status() != 200 {
        assert!(started.elapsed() < Duration::from_secs(60), "the engine did not come back");
        let resp = health().await;
        if resp.status() == 503 {
            reason = Some(resp.text().await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reason = reason.expect("/health never reported the dead engine");
    assert!(reason.contains("panicked") && reason.contains("restarting"), "{reason}");
    assert_eq!(engine.engine_restarts(), 1);
    let short = json!({"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8, "temperature": 0});
    let resp = c.post(srv.chat_url()).json(&short).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert!(v["choices"][0]["message"]["content"].as_str().is_some_and(|t| !t.is_empty()));
    srv.stop().await.unwrap();
}

/// A panic inside the output constraint (llguidance) used to abort the process: it ran as a
/// llama.cpp sampler callback, an `extern "C"` function. Now it fails that one request with a
/// clear error; the engine keeps running (no restart) and the next constrained request works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_output_constraint_fails_only_its_request() {
    let Some((engine, srv)) = serve_test_model().await else { return };
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}},
                        "required": ["n"], "additionalProperties": false});
    let constrained = json!({
        "messages": [{"role": "user", "content": "Give a number as JSON."}],
        "max_tokens": 24, "temperature": 0,
        "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}
    });

    engine.inject_constraint_panic();
    let resp = c.post(srv.chat_url()).json(&constrained).send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 500, "{text}");
    assert!(text.contains("output constraint panicked"), "{text}");

    let health = c.get(format!("{}/health", srv.url)).send().await.unwrap();
    assert_eq!(health.status(), 200, "the engine must not be down");
    assert_eq!(engine.engine_restarts(), 0, "the engine must not have restarted");
    let resp = c.post(srv.chat_url()).json(&constrained).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    let content = v["choices"][0]["message"]["content"].as_str().unwrap_or_default();
    let parsed: Value = serde_json::from_str(content).expect("the answer keeps the schema");
    assert!(parsed["n"].is_i64(), "{content}");
    srv.stop().await.unwrap();
}
