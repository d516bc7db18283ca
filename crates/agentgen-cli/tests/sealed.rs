//! Sealed serving, end to end with real processes on loopback and the real test model:
//! `agentgen serve --sealed` passes every `verify-local` check including `--recompute`; a
//! loopback TCP proxy in front of it fails; an unsealed `serve` is reported unsealed; and a
//! sealed server whose backend tries to connect out is refused by the kernel.
#![cfg(all(feature = "server", target_os = "linux"))]

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{agentgen, http};

fn test_model() -> Option<PathBuf> {
    agentgen_models::cache::model_for_tests()
}

/// A running `agentgen serve`, killed when dropped.
struct Served {
    child: Child,
    url: String,
    addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `agentgen serve ARGS --port 0` and waits until `/health` answers 200.
fn serve(work: &Path, args: &[&str]) -> Served {
    let mut child = agentgen(work)
        .arg("serve")
        .args(args)
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            eprintln!("serve: {line}");
        }
    });
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .trim_end_matches("/v1")
        .to_owned();
    let addr = url.trim_start_matches("http://").to_owned();
    let mut served = Served { child, url, addr };
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Ok((200, _)) = http(&served.addr, "GET", "/health", None) {
            return served;
        }
        if let Some(status) = served.child.try_wait().unwrap() {
            panic!("serve exited early: {status}");
        }
        assert!(Instant::now() < deadline, "/health never answered 200");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `agentgen verify-local URL --json [extra]`: exit code and report.
fn verify(work: &Path, url: &str, extra: &[&str]) -> (i32, Value) {
    let out = agentgen(work).args(["verify-local", url, "--json"]).args(extra).output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), report)
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {report:#}"))
}

fn status_field(pid: u32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field).map(|v| v.trim().to_owned()))
        .unwrap_or_default()
}

/// Forwards every connection on a loopback port to `target`, from this test process.
fn proxy(target: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let upstream = TcpStream::connect(&target).unwrap();
            let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            let (mut c, mut u) = (client, upstream);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c, &mut u);
                let _ = u.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut u2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    format!("http://{addr}/v1")
}

#[test]
fn a_sealed_server_passes_every_check_with_recompute_and_a_proxy_in_front_fails() {
    let Some(model) = test_model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let srv = serve(dir.path(), &["--sealed", "--no-pull", "--model", model.to_str().unwrap()]);
    let pid = srv.child.id();
    assert_eq!(status_field(pid, "Seccomp:"), "2");
    assert_eq!(status_field(pid, "NoNewPrivs:"), "1");
    let (status, body) = http(&srv.addr, "GET", "/v1/locality", None).unwrap();
    assert_eq!(status, 200, "{body}");
    let att: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(att["seal"]["mechanism"], "seccomp");
    assert_eq!(att["model_mapped"], true);
    assert_eq!(att["pid"], pid);

    let started = Instant::now();
    let (code, report) = verify(dir.path(), &srv.url, &["--recompute"]);
    eprintln!("full verification with --recompute: {:?}", started.elapsed());
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["pass"], true);
    for c in report["checks"].as_array().unwrap() {
        assert_eq!(c["outcome"], "pass", "{c:#}");
        eprintln!("{:<18} {}", c["name"].as_str().unwrap(), c["detail"].as_str().unwrap());
    }
    let names: Vec<&str> =
        report["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    for name in [
        "socket_owner",
        "executable",
        "model_file",
        "model_hash",
        "network_seal",
        "no_outbound",
        "challenge",
        "no_outbound_after",
        "recompute",
    ] {
        assert!(names.contains(&name), "{name} missing: {names:?}");
    }
    assert_eq!(report["server_pid"], pid);
    assert!(check(&report, "network_seal")["detail"].as_str().unwrap().contains("seccomp"));

    // A TCP proxy on loopback in front of the same sealed server: the kernel shows the test
    // process, not the server, holding the connection.
    let via = proxy(srv.addr.clone());
    let (code, report) = verify(dir.path(), &via, &[]);
    assert_eq!(code, 5, "{report:#}");
    let owner = check(&report, "socket_owner");
    assert_eq!(owner["outcome"], "fail");
    let detail = owner["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("held by process {}", std::process::id()))
            && detail.contains(&format!("reports pid {pid}")),
        "{detail}"
    );
    assert_eq!(check(&report, "network_seal")["outcome"], "fail");
}

#[test]
fn an_unsealed_server_is_reported_unsealed() {
    let Some(model) = test_model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let srv = serve(dir.path(), &["--no-pull", "--model", model.to_str().unwrap()]);
    assert_eq!(status_field(srv.child.id(), "Seccomp:"), "0");
    let (code, report) = verify(dir.path(), &srv.url, &[]);
    assert_eq!(code, 5, "{report:#}");
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["outcome"] == "fail")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["network_seal"], "{report:#}");
    let seal = check(&report, "network_seal")["detail"].as_str().unwrap().to_owned();
    assert!(seal.starts_with("not sealed") && seal.contains("Seccomp: 0"), "{seal}");
}

#[test]
fn a_sealed_server_cannot_connect_out_and_says_why() {
    // A backend pointed at a port on this machine: a sealed server must not even reach that.
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    upstream.set_nonblocking(true).unwrap();
    let base = format!("http://{}/v1", upstream.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let srv = serve(
        dir.path(),
        &["--sealed", "--backend", "openai", "--base-url", &base, "--model", "elsewhere"],
    );
    assert_eq!(status_field(srv.child.id(), "Seccomp:"), "2");
    let (status, body) = http(
        &srv.addr,
        "POST",
        "/v1/chat/completions",
        Some(r#"{"model":"elsewhere","messages":[{"role":"user","content":"hi"}],"max_tokens":4}"#),
    )
    .unwrap();
    assert!(status >= 500, "{status} {body}");
    assert!(body.contains("Operation not permitted"), "{body}");
    match upstream.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the sealed server reached the upstream: {other:?}"),
    }
    let (code, report) = verify(dir.path(), &srv.url, &[]);
    assert_eq!(code, 5);
    assert_eq!(check(&report, "remote_backend")["outcome"], "fail");
}

#[test]
fn local_only_seals_and_the_python_clients_work_against_it() {
    let Some(model) = test_model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let srv = serve(dir.path(), &["--local-only", "--no-pull", "--model", model.to_str().unwrap()]);
    assert_eq!(status_field(srv.child.id(), "Seccomp:"), "2", "--local-only implies --sealed");
    let (_, body) = http(&srv.addr, "GET", "/v1/locality", None).unwrap();
    assert!(body.contains(r#""mechanism":"seccomp""#), "{body}");
    // The real clients need a Python with `openai` and `autogen-agentchat`
    // (agentgen-server/tests/python/requirements.txt): point AGENTGEN_PYTHON at it.
    let Ok(python) = std::env::var("AGENTGEN_PYTHON") else {
        eprintln!("AGENTGEN_PYTHON is not set: not running the Python clients");
        return;
    };
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../agentgen-server/tests/python");
    for script in ["test_openai_client.py", "test_autogen.py"] {
        let out = Command::new(&python)
            .arg(scripts.join(script))
            .env("AGENTGEN_URL", &srv.url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "{script}: {}",
            String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or("")
        );
    }
    assert_eq!(status_field(srv.child.id(), "Seccomp:"), "2");
}
