//! Hostile clients against a real server on 127.0.0.1: each attack is cut within its limit,
//! or answered with a clear 4xx/503, while a normal client keeps streaming answers.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentgen_server::ServeConfig;
use common::{eventually, sse_data, Scripted, TestServer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Short limits so each attack ends within a second or two.
fn config() -> ServeConfig {
    ServeConfig {
        header_timeout: Duration::from_millis(800),
        body_timeout: Duration::from_millis(800),
        idle_timeout: Duration::from_millis(800),
        write_stall_timeout: Duration::from_millis(800),
        queue_timeout: Duration::from_millis(800),
        max_connections: 48,
        max_concurrent: 2,
        max_queue: 4,
        ..ServeConfig::default()
    }
}

/// A client that streams one answer after another and counts the complete ones, until told
/// to stop; any broken answer is counted as a failure.
struct NormalClient {
    done: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl NormalClient {
    fn start(url: String) -> Self {
        let done = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (d, f, s) = (done.clone(), failed.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let c = reqwest::Client::builder().no_proxy().build().unwrap();
            let body =
                json!({"messages": [{"role": "user", "content": "hello there"}], "stream": true});
            while !s.load(Ordering::SeqCst) {
                let ok = match c.post(&url).json(&body).send().await {
                    Ok(r) if r.status() == 200 => r
                        .text()
                        .await
                        .is_ok_and(|t| sse_data(&t).last().is_some_and(|l| l == "[DONE]")),
                    _ => false,
                };
                if ok { &d } else { &f }.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Self { done, failed, stop, task }
    }

    /// Answers completed so far.
    fn done(&self) -> usize {
        self.done.load(Ordering::SeqCst)
    }

    /// Waits for `n` more complete answers (at most 10 s).
    async fn keeps_streaming(&self, n: usize) -> bool {
        let target = self.done() + n;
        eventually(|| self.done.load(Ordering::SeqCst) >= target).await
    }

    async fn finish(self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
        self.failed.load(Ordering::SeqCst)
    }
}

/// Whether the server closes `conn` within `limit` (a read gives EOF or an error).
async fn closed_within(conn: &mut TcpStream, limit: Duration) -> (bool, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, conn.read(&mut buf)).await {
            Err(_) => return (false, got),
            Ok(Ok(0)) | Ok(Err(_)) => return (true, got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

fn addr(srv: &TestServer) -> String {
    srv.url.trim_start_matches("http://").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_headers_are_closed_and_excess_connections_refused() {
    let srv = TestServer::start(config(), Arc::new(Scripted::local()), None).await;
    let normal = NormalClient::start(srv.chat_url());
    assert!(normal.keeps_streaming(3).await);

    // 60 connections that send half a request head and stall: 48 is the limit.
    let mut conns = Vec::new();
    for _ in 0..60 {
        let mut c = TcpStream::connect(addr(&srv)).await.unwrap();
        c.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .await
            .unwrap();
        conns.push(c);
    }
    let started = Instant::now();
    let mut refused = 0;
    for c in &mut conns {
        let (closed, got) = closed_within(c, Duration::from_secs(5)).await;
        assert!(closed, "a stalled connection stayed open {:?}", started.elapsed());
        let text = String::from_utf8_lossy(&got);
        if text.starts_with("HTTP/1.1 503") {
            assert!(text.contains("too_many_connections"), "{text}");
            refused += 1;
        }
    }
    // Every stalled head is cut by the 0.8 s header timeout (plus scheduling slack).
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
    assert!(refused >= 10, "only {refused} of 60 over the limit of 48 were refused");
    assert!(normal.keeps_streaming(3).await, "the normal client stopped getting answers");
    assert_eq!(normal.finish().await, 0);
    srv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_gets_408_and_an_idle_connection_is_closed() {
    let srv = TestServer::start(config(), Arc::new(Scripted::local()), None).await;
    let normal = NormalClient::start(srv.chat_url());

    let mut c = TcpStream::connect(addr(&srv)).await.unwrap();
    c.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"messages\":",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let (closed, got) = closed_within(&mut c, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(closed || !got.is_empty());
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("body_timeout"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());

    // A keep-alive connection that goes quiet after one answer is closed.
    let mut c = TcpStream::connect(addr(&srv)).await.unwrap();
    c.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    let started = Instant::now();
    let (closed, got) = closed_within(&mut c, Duration::from_secs(5)).await;
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    assert!(closed, "the idle connection stayed open");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());

    assert!(normal.keeps_streaming(3).await);
    assert_eq!(normal.finish().await, 0);
    srv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_a_stream_loses_its_slot() {
    let backend = Arc::new(Scripted::local());
    let probe = backend.probe.clone();
    // The normal client may wait while the floods hold both slots; not past the write stall.
    let config = ServeConfig { queue_timeout: Duration::from_secs(10), ..config() };
    let srv = TestServer::start(config, backend, None).await;
    let normal = NormalClient::start(srv.chat_url());

    // Two streams that flood 1 KiB chunks to clients that never read, with small receive
    // windows: without a write-stall limit they would hold both slots forever.
    let body = r#"{"messages":[{"role":"user","content":"flood"}],"stream":true}"#;
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut c = socket.connect(srv.url[7..].parse().unwrap()).await.unwrap();
        let req = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        c.write_all(req.as_bytes()).await.unwrap();
        stalled.push(c);
    }
    let started = Instant::now();
    // Both floods are cancelled: their streams dropped, their slots free again.
    assert!(
        eventually(|| probe.dropped.load(Ordering::SeqCst) >= 2).await,
        "stalled streams were not cancelled"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(eventually(|| srv.state.metrics().busy_slots() == 0 || normal.done() > 0).await);
    assert!(normal.keeps_streaming(5).await, "the normal client did not get its slot back");
    assert!(srv.state.metrics().cancelled() >= 2);
    drop(stalled);
    assert_eq!(normal.finish().await, 0);
    srv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waits_for_a_slot_no_longer_than_the_queue_timeout() {
    let config = ServeConfig { max_concurrent: 1, ..config() };
    let backend = Arc::new(Scripted::local());
    let gate = backend.gate.clone();
    let srv = TestServer::start(config, backend, None).await;
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let body = |t: &str| json!({"messages": [{"role": "user", "content": t}]});
    let holder = tokio::spawn(c.post(srv.chat_url()).json(&body("wait")).send());
    assert!(eventually(|| srv.state.metrics().busy_slots() == 1).await);
    let started = Instant::now();
    let resp = c.post(srv.chat_url()).json(&body("hello")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let text = resp.text().await.unwrap();
    assert!(text.contains("queue_timeout"), "{text}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(700) && waited < Duration::from_secs(3), "{waited:?}");
    gate.add_permits(1);
    assert_eq!(holder.await.unwrap().unwrap().status(), 200);
    srv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_pages_cannot_reach_the_api() {
    let srv = TestServer::start(config(), Arc::new(Scripted::local()), None).await;
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let hello = r#"{"messages":[{"role":"user","content":"hello"}]}"#;

    // DNS rebinding: the page's own name in Host.
    let resp = c.get(format!("{}/v1/locality", srv.url)).header("host", "evil.example").send();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), 421);
    assert!(resp.text().await.unwrap().contains("host_not_allowed"));

    // A cross-site "simple request": text/plain needs no preflight in a browser.
    let resp = c
        .post(srv.chat_url())
        .header("content-type", "text/plain")
        .body(hello)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    assert!(resp.text().await.unwrap().contains("unsupported_media_type"));

    // Any foreign Origin, and fetch metadata saying cross-site.
    for (name, value) in [("origin", "http://evil.example"), ("sec-fetch-site", "cross-site")] {
        let resp = c
            .post(srv.chat_url())
            .header("content-type", "application/json")
            .header(name, value)
            .body(hello)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{name}: {value}");
        assert!(resp.text().await.unwrap().contains("cross_origin_refused"));
    }

    // The server's own origin, localhost by name, and plain clients are served.
    let own = srv.url.clone();
    let port = own.rsplit(':').next().unwrap();
    for (host, origin) in
        [(None, None), (Some(format!("localhost:{port}")), None), (None, Some(own.clone()))]
    {
        let mut req = c.post(srv.chat_url()).header("content-type", "application/json");
        if let Some(h) = &host {
            req = req.header("host", h);
        }
        if let Some(o) = &origin {
            req = req.header("origin", o);
        }
        let resp = req.body(hello).send().await.unwrap();
        assert_eq!(resp.status(), 200, "host {host:?} origin {origin:?}");
    }
    srv.stop().await.unwrap();
}
