//! `GET /v1/locality` and `verify_local` against an in-process server and a model file on disk.
//! (The real sealed `agentgen serve` passing every check is in agentgen-cli's tests/sealed.rs.)

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
    // Hashed once the backend was installed; this process does not map the file.
    assert_eq!(att["model_mapped"], false);
    assert_eq!(att["seal"], Value::Null);
    srv.stop().await.unwrap();
}

#[tokio::test]
async fn the_kernel_finds_this_process_and_sees_it_neither_maps_the_file_nor_is_sealed() {
    let file = model_file();
    let srv = TestServer::start(
        ServeConfig::default(),
        Arc::new(Scripted::local()),
        Some(ModelAttestationSource::file(file.path())),
    )
    .await;
    let report = verify_local(&format!("{}/v1", srv.url)).await;
    assert!(!report.pass, "{report:#?}");
    for name in [
        "address",
        "connection",
        "attestation",
        "locality",
        "remote_backend",
        "hostname",
        "socket_owner",
        "executable",
        "challenge",
        "socket_owner_after",
    ] {
        let c = report.check(name).unwrap_or_else(|| panic!("no {name} check"));
        assert_eq!(c.outcome, Outcome::Pass, "{c:?}");
    }
    assert_eq!(report.server_pid, Some(std::process::id()));
    // The test process attests a file it does not map, is not sealed, and (being the verifier
    // too) holds an outgoing connection.
    let failed: Vec<&str> =
        report.checks.iter().filter(|c| c.outcome == Outcome::Fail).map(|c| c.name).collect();
    assert_eq!(
        failed,
        ["model_file", "model_hash", "network_seal", "no_outbound", "no_outbound_after"],
        "{report:#?}"
    );
    assert!(report.check("model_file").unwrap().detail.contains("does not map this file"));
    assert!(report.check("no_outbound").unwrap().detail.contains("an outgoing connection"));
    assert!(report.check("challenge").unwrap().detail.contains("echo: Repeat this code"));
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
    assert!(
        report.reasons.iter().any(|r| r.starts_with("attestation") && r.contains("401")),
        "{:?}",
        report.reasons
    );
    assert!(
        report.reasons.iter().any(|r| r.starts_with("challenge") && r.contains("401")),
        "{:?}",
        report.reasons
    );
    let opts = VerifyOptions { api_key: Some("sk-v".into()), ..VerifyOptions::default() };
    let report = verify_local_with(&srv.url, &opts).await;
    assert_eq!(report.check("attestation").unwrap().outcome, Outcome::Pass, "{report:#?}");
    assert_eq!(report.check("challenge").unwrap().outcome, Outcome::Pass, "{report:#?}");
    srv.stop().await.unwrap();
}

#[tokio::test]
async fn verify_local_fails_without_a_model_file_or_a_server() {
    let srv = TestServer::local(Arc::new(Scripted::local())).await;
    let report = verify_local(&srv.url).await;
    assert!(!report.pass);
    assert!(
        report
            .reasons
            .iter()
            .any(|r| r.starts_with("model_file") && r.contains("names no model file")),
        "{:?}",
        report.reasons
    );
    let url = srv.url.clone();
    srv.stop().await.unwrap();
    let report = verify_local(&url).await;
    assert!(!report.pass);
    assert!(report.reasons.iter().any(|r| r.starts_with("connection")), "{:?}", report.reasons);
    let report = verify_local("not a url").await;
    assert!(!report.pass);
}
