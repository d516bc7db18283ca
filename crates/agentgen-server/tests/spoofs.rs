//! Spoofs the verifier must catch, each a real process on loopback: a fake attestation server
//! (a small Python `http.server`, tests/fakes/fake_locality.py) that reports its own pid, pid 1,
//! `/dev/zero` as its model, maps the model file without being sealed, claims a seal it does not
//! have, or redirects; and addresses off this machine, refused before anything is sent.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agentgen_server::verify::Outcome;
use agentgen_server::{verify_local_with, VerifyOptions, VerifyReport};
use serde_json::{json, Value};

/// A GGUF-looking file of 8 MiB and its attestation body.
fn model_and_body() -> (tempfile::NamedTempFile, Value) {
    let mut f = tempfile::Builder::new().suffix(".gguf").tempfile().unwrap();
    f.write_all(b"GGUF").unwrap();
    f.write_all(&vec![3u8; 8 << 20]).unwrap();
    f.flush().unwrap();
    let digest = agentgen_server::hash_file(f.path()).unwrap();
    let body = json!({
        "locality": {"kind": "local"},
        "backend": "local",
        "model": "fake-model",
        "model_path": f.path().display().to_string(),
        "model_size": digest.size,
        "model_sha256": digest.sha256,
        "model_mapped": true,
        "seal": null,
        "pid": 0,
        "hostname": agentgen_server::hostname(),
        "bind_addresses": ["127.0.0.1:8080"],
        "remote_backend_configured": false,
    });
    (f, body)
}

/// The fake, killed when dropped.
struct Fake {
    child: Child,
    url: String,
    _body: tempfile::NamedTempFile,
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fake(body: &Value, mode: &str) -> Fake {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(body.to_string().as_bytes()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fakes/fake_locality.py");
    let python = std::env::var("AGENTGEN_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = Command::new(python)
        .arg(script)
        .arg(file.path())
        .arg(mode)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs the fake server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port: u16 =
        line.trim().parse().unwrap_or_else(|_| panic!("no port from the fake: {line:?}"));
    Fake { child, url: format!("http://127.0.0.1:{port}/v1"), _body: file }
}

async fn verify(url: &str) -> VerifyReport {
    let opts = VerifyOptions { timeout: Duration::from_secs(30), ..VerifyOptions::default() };
    verify_local_with(url, &opts).await
}

fn outcome<'a>(report: &'a VerifyReport, name: &str) -> &'a agentgen_server::Check {
    report.check(name).unwrap_or_else(|| panic!("no {name} check in {report:#?}"))
}

#[tokio::test]
async fn a_fake_reporting_its_own_pid_fails_the_model_and_seal_checks() {
    let (_model, body) = model_and_body();
    let f = fake(&body, "own_pid");
    let report = verify(&f.url).await;
    assert!(!report.pass, "{report:#?}");
    // The kernel agrees the fake holds the connection, and that is all it agrees with.
    let owner = outcome(&report, "socket_owner");
    assert_eq!(owner.outcome, Outcome::Pass, "{owner:?}");
    assert_eq!(report.server_pid, Some(f.child.id()));
    let model = outcome(&report, "model_file");
    assert_eq!(model.outcome, Outcome::Fail);
    assert!(model.detail.contains("does not map this file"), "{model:?}");
    let seal = outcome(&report, "network_seal");
    assert_eq!(seal.outcome, Outcome::Fail);
    assert!(seal.detail.contains("not sealed"), "{seal:?}");
    assert_eq!(outcome(&report, "executable").outcome, Outcome::Pass);
    assert!(outcome(&report, "executable").detail.contains("python"), "{report:#?}");
}

#[tokio::test]
async fn a_fake_that_maps_the_model_still_fails_the_seal() {
    let (_model, body) = model_and_body();
    let f = fake(&body, "map");
    let report = verify(&f.url).await;
    assert!(!report.pass);
    assert_eq!(outcome(&report, "model_file").outcome, Outcome::Pass, "{report:#?}");
    assert_eq!(outcome(&report, "model_hash").outcome, Outcome::Pass, "{report:#?}");
    let seal = outcome(&report, "network_seal");
    assert_eq!(seal.outcome, Outcome::Fail);
    assert!(seal.detail.contains("not sealed") && seal.detail.contains("Seccomp: 0"), "{seal:?}");
    assert_eq!(report.reasons.len(), 1, "{:?}", report.reasons);
}

#[tokio::test]
async fn a_fake_claiming_a_seal_is_contradicted_by_the_kernel() {
    let (_model, mut body) = model_and_body();
    body["seal"] =
        json!({"mechanism": "seccomp", "refused_syscalls": ["socket"], "install_micros": 1});
    let f = fake(&body, "map");
    let report = verify(&f.url).await;
    let seal = outcome(&report, "network_seal");
    assert_eq!(seal.outcome, Outcome::Fail);
    assert!(seal.detail.contains("claims a seccomp seal the kernel does not show"), "{seal:?}");
}

#[tokio::test]
async fn a_fake_reporting_pid_1_is_named_by_the_kernel() {
    let (_model, body) = model_and_body();
    let f = fake(&body, "pid1");
    let report = verify(&f.url).await;
    assert!(!report.pass);
    let owner = outcome(&report, "socket_owner");
    assert_eq!(owner.outcome, Outcome::Fail);
    let pid = f.child.id();
    assert!(
        owner.detail.contains(&format!("held by process {pid}"))
            && owner.detail.contains("reports pid 1"),
        "{owner:?}"
    );
}

#[tokio::test]
async fn a_fake_naming_dev_zero_fails_at_once_without_hashing() {
    let (_model, mut body) = model_and_body();
    body["model_path"] = json!("/dev/zero");
    body["model_size"] = json!(1u64 << 40);
    let f = fake(&body, "own_pid");
    let started = Instant::now();
    let report = verify(&f.url).await;
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    let model = outcome(&report, "model_file");
    assert_eq!(model.outcome, Outcome::Fail);
    assert!(model.detail.contains("/dev/zero: is a character device"), "{model:?}");
    assert_eq!(outcome(&report, "model_hash").outcome, Outcome::Fail);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (_model, body) = model_and_body();
    let f = fake(&body, "redirect");
    let report = verify(&f.url).await;
    let att = outcome(&report, "attestation");
    assert_eq!(att.outcome, Outcome::Fail);
    assert!(att.detail.contains("redirects are not followed"), "{att:?}");
    let challenge = outcome(&report, "challenge");
    assert!(challenge.detail.contains("redirects are not followed"), "{challenge:?}");
}

#[tokio::test]
async fn an_address_off_this_machine_is_refused_before_anything_is_sent() {
    // 192.0.2.0/24 is reserved for documentation: never an address of this machine.
    let report = verify("http://192.0.2.7:8080/v1").await;
    assert!(!report.pass);
    assert_eq!(report.checks.len(), 1, "{report:#?}");
    let address = outcome(&report, "address");
    assert!(address.detail.contains("192.0.2.7") && address.detail.contains("nothing was sent"));
    for url in ["https://127.0.0.1:1/v1", "not a url", "http://user:pw@127.0.0.1:1/"] {
        let report = verify(url).await;
        assert_eq!(report.checks.len(), 1, "{url}: {report:#?}");
        assert_eq!(report.checks[0].name, "address");
        assert!(!report.pass);
    }
}
