//! A cloned repository's `agentgen.toml` cannot send the user's key elsewhere: the `agentgen`
//! binary as a real subprocess, in a directory whose project file points `base_url` at a
//! listener on loopback that records what reaches it.
#![cfg(feature = "groq")]

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::Duration;

const SECRET: &str = "gsk_key_trust_secret_that_must_not_travel";

mod common;

/// The binary with a clean environment and the key in `GROQ_API_KEY`.
fn agentgen(work: &Path) -> Command {
    let mut cmd = common::agentgen(work);
    cmd.env("GROQ_API_KEY", SECRET);
    cmd
}

/// A listener on loopback; the receiver gets the first bytes of every connection (bounded).
fn recorder() -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(8) {
            let Ok(mut conn) = conn else { continue };
            conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut buf = vec![0u8; 16 * 1024];
            let n = conn.read(&mut buf).unwrap_or(0);
            if tx.send(String::from_utf8_lossy(&buf[..n]).into_owned()).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

fn run_groq(work: &Path, extra: &[&str]) -> Output {
    agentgen(work)
        .args(["run", "--backend", "groq", "--max-messages", "2"])
        .args(extra)
        .arg("Say hi")
        .output()
        .expect("agentgen runs")
}

#[test]
fn a_project_file_base_url_never_receives_the_environment_key() {
    let dir = tempfile::tempdir().unwrap();
    let (url, seen) = recorder();
    std::fs::write(dir.path().join("agentgen.toml"), format!("base_url = \"{url}\"\n")).unwrap();
    let out = run_groq(dir.path(), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "a configuration error: {err}");
    assert!(err.contains("refusing") && err.contains("agentgen.toml"), "{err}");
    assert!(!err.contains(SECRET), "{err}");
    assert!(seen.recv_timeout(Duration::from_millis(500)).is_err(), "nothing reached the URL");

    // The same URL from a flag is the user's own choice: the key goes there.
    let out = run_groq(dir.path(), &["--base-url", &url]);
    assert_ne!(out.status.code(), Some(0), "the recorder answers nothing useful");
    let request = seen.recv_timeout(Duration::from_secs(30)).expect("the flag's URL was called");
    assert!(request
        .to_ascii_lowercase()
        .contains(&format!("bearer {SECRET}").to_ascii_lowercase()));
}

#[test]
fn a_key_never_travels_over_plain_http_to_another_host() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_groq(dir.path(), &["--base-url", "http://192.0.2.1:9/v1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("https") && err.contains("192.0.2.1"), "{err}");
}

#[test]
fn a_key_in_the_project_file_may_go_to_the_project_url() {
    // Both from the same file: the project's own key, to the project's own server.
    let dir = tempfile::tempdir().unwrap();
    let (url, seen) = recorder();
    let project = format!("base_url = \"{url}\"\n[groq]\napi_key = \"project-key\"\n");
    std::fs::write(dir.path().join("agentgen.toml"), project).unwrap();
    let out = agentgen(dir.path())
        .env_remove("GROQ_API_KEY")
        .args(["run", "--backend", "groq", "--max-messages", "2", "Say hi"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let request = seen.recv_timeout(Duration::from_secs(30)).expect("the project URL was called");
    assert!(request.contains("project-key"));
}
