//! `GET /v1/locality` and `verify_local` against a real model file on disk.

mod common;

use std::io::Write;
use std::sync::Arc;

use agentgen_server::verify::Outcome;
use agentgen_server::{
    verify_local, verify_local_with, ModelAttestationSource, ServeConfig, VerifyOptions,
};
use common::{Scripted, TestServer};
use serde_json::Value;

fn model_file() -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".gguf").tempfile().unwrap();
    f.write_all(b"GGUF").unwrap();
    f.write_all(&vec![7u8; 3 << 20]).unwrap();
    f.flush().unwrap();
    f
}

#[tokio::test]
async fn attestation_names_the_file_its_hash_and_this_process() {
    let file = model_file();
    let srv = TestServer::start(
        ServeConfig::default(),
        Arc::new(Scripted::local()),
        Some(ModelAttestationSource::file(file.path())),
    )
    .await;
    let att: Value = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{}/v1/locality", srv.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let expected = agentgen_server::hash_file(file.path()).unwrap();
    assert_eq!(att["locality"]["kind"], "local");
    assert_eq!(att["model_path"], file.path().display().to_string());
    assert_eq!(att["model_size"], (4 + (3 << 20)) as u64);
    assert_eq!(att["model_sha256"], expected.sha256);
    assert_eq!(att["pid"], std::process::id());
    assert_eq!(att["hostname"], agentgen_server::hostname());
    assert_eq!(att["bind_addresses"][0], srv.url.trim_start_matches("http://"));
    assert_eq!(att["remote_backend_configured"], false);
    srv.stop().await.unwrap();
}

#[tokio::test]
async fn verify_local_passes_then_fails_when_the_file_changes() {
    let file = model_file();
    let srv = TestServer::start(
        ServeConfig::default(),
        Arc::new(Scripted::local()),
        Some(ModelAttestationSource::file(file.path())),
    )
    .await;
    let report = verify_local(&format!("{}/v1", srv.url)).await;
    assert!(report.pass, "{:#?}", report);
    assert!(report.reasons.is_empty());
    for name in [
        "address",
        "attestation",
        "locality",
        "remote_backend",
        "hostname",
        "process",
        "model_file",
    ] {
        let c = report
            .checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} check"));
        assert_eq!(c.outcome, Outcome::Pass, "{c:?}");
    }
    let socket = report.checks.iter().find(|c| c.name == "socket").unwrap();
    assert_ne!(socket.outcome, Outcome::Fail, "{socket:?}");

    // Same size, different bytes: the hash catches it.
    let mut bytes = std::fs::read(file.path()).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(file.path(), &bytes).unwrap();
    let report = verify_local(&srv.url).await;
    assert!(!report.pass);
    assert!(
        report.reasons.iter().any(|r| r.starts_with("model_file") && r.contains("hashes to")),
        "{:?}",
        report.reasons
    );

    // A different size.
    std::fs::write(file.path(), b"GGUF").unwrap();
    let report = verify_local(&srv.url).await;
    assert!(report.reasons.iter().any(|r| r.contains("bytes on disk")), "{:?}", report.reasons);
    srv.stop().await.unwrap();
}

#[tokio::test]
async fn verify_local_uses_the_api_key_and_fails_without_it() {
    let file = model_file();
    let config = ServeConfig { api_key: Some("sk-v".into()), ..ServeConfig::default() };
    let srv = TestServer::start(
        config,
        Arc::new(Scripted::local()),
        Some(ModelAttestationSource::file(file.path())),
    )
    .await;
    let report = verify_local(&srv.url).await;
    assert!(!report.pass);
    assert!(report.reasons.iter().any(|r| r.contains("401")), "{:?}", report.reasons);
    let opts = VerifyOptions { api_key: Some("sk-v".into()), ..VerifyOptions::default() };
    assert!(verify_local_with(&srv.url, &opts).await.pass);
    srv.stop().await.unwrap();
}

#[tokio::test]
async fn verify_local_fails_without_a_model_file_or_a_server() {
    let srv = TestServer::local(Arc::new(Scripted::local())).await;
    let report = verify_local(&srv.url).await;
    assert!(!report.pass);
    assert!(
        report.reasons.iter().any(|r| r.contains("names no model file")),
        "{:?}",
        report.reasons
    );
    let url = srv.url.clone();
    srv.stop().await.unwrap();
    let report = verify_local(&url).await;
    assert!(!report.pass);
    assert!(report.reasons.iter().any(|r| r.starts_with("attestation")), "{:?}", report.reasons);
    let report = verify_local("not a url").await;
    assert!(!report.pass);
}
