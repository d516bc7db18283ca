//! The real GGUF behind the HTTP API: one whole and one streamed chat.

mod common;

use std::sync::Arc;

use agentgen_local::{LocalBackend, LocalConfig};
use agentgen_server::{verify_local_with, ModelAttestationSource, ServeConfig, VerifyOptions};
use common::{sse_data, TestServer};
use serde_json::{json, Value};

/// The test model, or `None` when model tests are skipped on purpose; panics otherwise.
fn model_path() -> Option<std::path::PathBuf> {
    agentgen_models::cache::model_for_tests()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_model_answers_whole_and_streamed_chats_over_http() {
    let Some(path) = model_path() else { return };
    let mut local = LocalConfig::new(&path);
    local.context_size = Some(2048);
    local.slots = 2;
    let backend = tokio::task::spawn_blocking(move || LocalBackend::load(local))
        .await
        .unwrap()
        .expect("load");
    let model_id = agentgen_core::ChatBackend::info(&backend).model.clone();
    let engine = backend.clone();
    let config = ServeConfig { max_concurrent: 2, ..ServeConfig::default() };
    let srv =
        TestServer::start(config, Arc::new(backend), Some(ModelAttestationSource::file(&path)))
            .await;
    let c = reqwest::Client::builder().no_proxy().build().unwrap();

    let body = json!({
        "model": model_id,
        "messages": [{"role": "user", "content": "What is the capital of France? Answer in one word."}],
        "max_tokens": 16,
        "temperature": 0,
    });
    let resp = c.post(srv.chat_url()).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let whole: Value = resp.json().await.unwrap();
    let text = whole["choices"][0]["message"]["content"].as_str().unwrap_or_default();
    assert!(text.contains("Paris"), "{whole}");
    assert!(whole["usage"]["prompt_tokens"].as_u64().unwrap() > 5, "{whole}");
    assert!(whole["usage"]["completion_tokens"].as_u64().unwrap() >= 1, "{whole}");

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let resp = c.post(srv.chat_url()).json(&streamed).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let data = sse_data(&resp.text().await.unwrap());
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> =
        data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let streamed_text: String =
        chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(streamed_text, text, "greedy stream and whole answer agree");
    assert!(chunks.last().unwrap()["usage"]["total_tokens"].as_u64().unwrap() > 0);

    // Debug builds hash the GGUF slowly: give the attestation time.
    let opts =
        VerifyOptions { timeout: std::time::Duration::from_secs(600), ..VerifyOptions::default() };
    let report = verify_local_with(&srv.url, &opts).await;
    // This test process loaded the model, so the kernel shows it mapping the GGUF it attests;
    // it is not sealed (sealing would seal the test runner), and it is its own client.
    for name in ["socket_owner", "executable", "model_file", "model_hash", "challenge"] {
        let c = report.check(name).unwrap_or_else(|| panic!("no {name}: {report:#?}"));
        assert!(c.passed(), "{c:?}");
    }
    assert!(!report.check("network_seal").unwrap().passed());
    assert_eq!(report.attestation.as_ref().map(|a| a.model_mapped), Some(true));

    // A client that leaves mid-stream stops the engine's generation and frees its slot.
    let finished_before = engine.stats().requests_finished;
    let long = json!({
        "model": model_id,
        "messages": [{"role": "user", "content": "Write a very long story about a lighthouse keeper."}],
        "max_tokens": 2000,
        "stream": true,
    });
    let mut resp = c.post(srv.chat_url()).json(&long).send().await.unwrap();
    let mut seen = String::new();
    while !seen.contains("\"content\":\"") || seen.matches("data:").count() < 3 {
        let bytes = resp.chunk().await.unwrap().expect("stream ended early");
        seen.push_str(&String::from_utf8_lossy(&bytes));
    }
    drop(resp);
    assert!(common::eventually(|| engine.stats().busy_slots == 0).await, "{:?}", engine.stats());
    assert_eq!(engine.stats().requests_finished, finished_before, "the generation ran to its end");
    assert!(common::eventually(|| srv.state.metrics().cancelled() == 1).await);
    srv.stop().await.unwrap();
}
