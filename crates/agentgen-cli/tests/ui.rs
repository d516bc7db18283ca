//! The live view in a real browser: `agentgen run --ui` on the real test model (a round-robin
//! team: `counter` must call the built-in `word_count` tool, `writer` streams a poem), and
//! Debian's headless Chromium driven through chromedriver's WebDriver HTTP API. While the run
//! is still running the page shows an agent's message, a tool call with its result and a
//! message streaming in; the stop button then ends the run as cancelled. A screenshot is
//! saved as `target/ui-screenshot.png`.
//!
//! Skipped, with a message, when `chromium` or `chromedriver` is not installed (Debian:
//! `apt-get install chromium chromium-driver`); `AGENTGEN_CHROMIUM` and `AGENTGEN_CHROMEDRIVER`
//! name other binaries.
#![cfg(all(feature = "local", feature = "ui"))]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;

/// Kills the processes it holds when the test ends, however it ends.
struct Reaper(Vec<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `name` on `$PATH`, or the file `$var` names.
fn find(var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// The browser binary: Debian's real one rather than its shell wrapper when both are there.
fn chromium() -> Option<PathBuf> {
    if std::env::var_os("AGENTGEN_CHROMIUM").is_none() {
        let real = Path::new("/usr/lib/chromium/chromium");
        if real.is_file() {
            return Some(real.to_owned());
        }
    }
    find("AGENTGEN_CHROMIUM", &["chromium", "chromium-browser"])
}

/// The lines a child writes on `stream`, echoed to the test's stderr.
fn lines(stream: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            eprintln!("agentgen: {line}");
            let _ = tx.send(line);
        }
    });
    rx
}

/// The URL on the first line that starts with `prefix`.
fn url_after(rx: &mpsc::Receiver<String>, prefix: &str) -> String {
    loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("agentgen prints the URL");
        if let Some(rest) = line.strip_prefix(prefix) {
            return rest.split_whitespace().next().unwrap_or_default().to_owned();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A WebDriver session on chromedriver at `addr`.
struct Browser {
    addr: String,
    session: String,
}

impl Browser {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        webdriver(&self.addr, method, &path, body)
    }

    fn script(&self, script: &str) -> Value {
        self.call("POST", "/execute/sync", Some(json!({ "script": script, "args": [] })))
    }

    fn click(&self, css: &str) {
        let found =
            self.call("POST", "/element", Some(json!({"using": "css selector", "value": css})));
        let id = found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {found}"));
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }
}

/// One HTTP/1.1 request: the status and the body, read to its `Content-Length` (chromedriver
/// keeps the connection open whatever the request says).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut reader = BufReader::new(s);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            }
        }
    }
    let mut body = Vec::new();
    match length {
        Some(n) => {
            body.resize(n, 0);
            reader.read_exact(&mut body)?;
        }
        None => {
            reader.read_to_end(&mut body)?;
        }
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// One WebDriver command: its `value`, or a panic with chromedriver's answer.
fn webdriver(addr: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| b.to_string());
    let (status, text) = http(addr, method, path, body.as_deref())
        .unwrap_or_else(|e| panic!("chromedriver {method} {path}: {e}"));
    let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    assert_eq!(status, 200, "chromedriver {method} {path}: {text}");
    answer["value"].clone()
}

/// A raw request with any `Host` header: the status code.
fn status_with_host(addr: &str, host: &str, request_line: &str) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{request_line} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
    )
    .unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=').collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for group in digits.chunks(4) {
        let mut n = 0u32;
        for (i, c) in group.iter().enumerate() {
            n |= u32::from(value(*c)) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..group.len()]);
    }
    out
}

const TEAM: &str = r#"
[team]
type = "round_robin"

[termination]
max_messages = 12

[[agents]]
name = "counter"
system_message = "You count words. Call the word_count tool on the text you were given."
tools = ["word_count"]
tool_choice = "required"

[[agents]]
name = "writer"
system_message = "You are a poet. Each time, write a new poem of eight long lines about the sea."
"#;

/// What the page shows now.
const STATE: &str = r#"
const q = (sel) => document.querySelectorAll(sel).length;
return {
  status: document.getElementById('run-status').textContent,
  reason: document.getElementById('stop-reason').textContent,
  messages: q('#transcript li.message[data-source]:not([data-source="user"]):not(.streaming)'),
  tools: [...document.querySelectorAll('#transcript li.tool-call .result')]
    .filter((r) => r.textContent !== 'running…').length,
  streaming: q('#transcript li.message.streaming'),
  agents: q('#agents tbody tr'),
  turns: [...document.querySelectorAll('#turns tbody tr')]
    .map((tr) => [...tr.cells].map((c) => c.textContent)),
};
"#;

/// Polls the page until `done` holds; fails if the run ends first (unless `done` accepts it).
fn wait_for(
    browser: &Browser,
    what: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let state = browser.script(STATE);
        if done(&state) {
            return state;
        }
        let status = state["status"].as_str().unwrap_or("");
        assert!(
            !matches!(status, "finished" | "failed" | "cancelled"),
            "the run ended ({status}) before the page showed {what}: {state}"
        );
        assert!(start.elapsed() < limit, "the page did not show {what} in {limit:?}: {state}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_page_shows_a_run_live_and_its_stop_button_cancels_it() {
    let (Some(chromium), Some(driver)) =
        (chromium(), find("AGENTGEN_CHROMEDRIVER", &["chromedriver"]))
    else {
        eprintln!(
            "SKIPPED the browser test: chromium and chromedriver are not both installed \
             (apt-get install chromium chromium-driver)"
        );
        return;
    };
    let Some(model) = agentgen_models::cache::model_for_tests() else { return };
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let team = dir.path().join("team.toml");
    std::fs::write(&team, TEAM).unwrap();
    let store = dir.path().join("sessions.sqlite");

    let mut agentgen = common::agentgen(dir.path())
        .args(["run", "--ui", "--session", "live-view", "--store"])
        .arg(&store)
        .arg("--team")
        .arg(&team)
        .args(["--model"])
        .arg(&model)
        .args(["--temperature", "0", "--seed", "7", "--max-tokens", "64", "--no-pull"])
        .arg("Count the words in 'the sea is wide and deep and blue', then write about it.")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.path().join("stdout.txt")).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = agentgen.stderr.take().unwrap();
    let mut reaper = Reaper(vec![agentgen]);
    let rx = lines(stderr);

    let driver_addr = format!("127.0.0.1:{}", free_port());
    let port = driver_addr.rsplit(':').next().unwrap().to_owned();
    let chromedriver = Command::new(&driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    reaper.0.push(chromedriver);

    // The URL comes on stderr before the model loads.
    let url = url_after(&rx, "live view: ");
    assert!(url.starts_with("http://127.0.0.1:") && url.contains("?token="), "{url}");

    let ready = Instant::now();
    while !http(&driver_addr, "GET", "/status", None)
        .is_ok_and(|(s, body)| s == 200 && body.contains("\"ready\":true"))
    {
        assert!(ready.elapsed() < Duration::from_secs(20), "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let profile = dir.path().join("profile");
    let capabilities = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
        "binary": chromium,
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,1100", format!("--user-data-dir={}", profile.display())],
    }}}});
    let session = webdriver(&driver_addr, "POST", "/session", Some(capabilities));
    let browser = Browser {
        addr: driver_addr.clone(),
        session: session["sessionId"].as_str().expect("a session id").to_owned(),
    };
    browser.call("POST", "/url", Some(json!({ "url": url })));

    // Mid-run: an agent's message and a finished tool call, the run still running; then a
    // message streaming in.
    let seen = wait_for(&browser, "a message and a tool call", Duration::from_secs(90), |s| {
        s["status"] == "running"
            && s["messages"].as_u64() >= Some(1)
            && s["tools"].as_u64() >= Some(1)
    });
    eprintln!("mid-run at {:?}: {seen}", started.elapsed());
    assert_eq!(seen["agents"], 2, "both agents are listed with their model: {seen}");
    let streaming = wait_for(&browser, "tokens streaming in", Duration::from_secs(60), |s| {
        s["status"] == "running" && s["streaming"].as_u64() >= Some(1)
    });
    eprintln!("streaming at {:?}: {streaming}", started.elapsed());

    browser.click("#stop");
    let end = Instant::now();
    let cancelled = loop {
        let state = browser.script(STATE);
        if state["status"] == "cancelled" {
            break state;
        }
        assert!(end.elapsed() < Duration::from_secs(30), "not cancelled: {state}");
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("cancelled {:?} after the click: {cancelled}", end.elapsed());
    assert!(cancelled["reason"].as_str().unwrap().contains("stop button"), "{cancelled}");
    let turns = cancelled["turns"].as_array().unwrap();
    assert!(!turns.is_empty(), "the timeline has the finished turns: {cancelled}");
    let counter = turns.iter().find(|t| t[0] == "counter").expect("counter's turn is timed");
    let prompt: u64 = counter[6].as_str().unwrap().parse().unwrap();
    assert!(prompt > 0, "prompt tokens counted: {counter:?}");
    assert!(
        turns.iter().any(|t| t[5].as_str().unwrap().parse::<f64>().is_ok_and(|v| v > 0.0)),
        "a turn has its tokens/s: {turns:?}"
    );

    // Open the tool call (it is collapsed) for the screenshot.
    browser.click("#transcript li.tool-call summary");
    let shot = browser.call("GET", "/screenshot", None);
    let png = base64_decode(shot.as_str().expect("a base64 screenshot"));
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().to_owned();
    std::fs::write(target.join("ui-screenshot.png"), &png).unwrap();

    // The journaled run opens in the same view, replayed from its journal.
    let mut show = common::agentgen(dir.path())
        .args(["sessions", "show", "live-view", "--ui", "--store"])
        .arg(&store)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let show_rx = lines(show.stderr.take().unwrap());
    reaper.0.push(show);
    let session_url = url_after(&show_rx, "session view: ");
    browser.call("POST", "/url", Some(json!({ "url": session_url })));
    let opened = Instant::now();
    let replayed = loop {
        let state = browser.script(STATE);
        if state["status"] == "cancelled" && state["tools"].as_u64() >= Some(1) {
            break state;
        }
        assert!(opened.elapsed() < Duration::from_secs(20), "the session did not show: {state}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(replayed["messages"].as_u64() >= Some(1), "{replayed}");
    assert!(!replayed["turns"].as_array().unwrap().is_empty(), "{replayed}");
    assert_eq!(browser.script("return document.getElementById('stop').hidden"), true);
    browser.call("DELETE", "", None);

    // The view refuses what a foreign page or another user could send.
    let view = url.trim_start_matches("http://").split('/').next().unwrap().to_owned();
    assert_eq!(http(&view, "GET", "/api/events", None).unwrap().0, 401, "no token");
    let token = url.split("token=").nth(1).unwrap();
    let stop = format!("POST /api/stop?token={token}");
    assert_eq!(status_with_host(&view, "evil.example", &stop), 421, "a rebinding Host");
    assert_eq!(status_with_host(&view, &view, &stop), 202, "the run's own stop works");

    // The process keeps the page up after the run until Ctrl-C.
    assert!(reaper.0[0].try_wait().unwrap().is_none(), "agentgen still serves the page");
    eprintln!("browser test took {:?}", started.elapsed());
}
