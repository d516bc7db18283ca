//! The bounded queue, client disconnects and graceful shutdown, over real HTTP.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use agentgen_server::ServeConfig;
use common::{eventually, user, Scripted, TestServer};
use serde_json::{json, Value};

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after() {
    let backend = Arc::new(Scripted::local());
    let config = ServeConfig { max_concurrent: 1, max_queue: 1, ..ServeConfig::default() };
    let srv = TestServer::start(config, backend.clone(), None).await;
    let (url, c) = (srv.chat_url(), client());

    let running = tokio::spawn(c.post(&url).json(&user("wait 1")).send());
    assert!(eventually(|| backend.probe.started.load(Ordering::SeqCst) == 1).await);
    let queued = tokio::spawn(c.post(&url).json(&user("wait 2")).send());
    let metrics = srv.state.metrics().clone();
    assert!(
        eventually(|| metrics.queue_depth() == 1).await,
        "second request should wait in the queue"
    );

    let resp = c.post(&url).json(&user("third")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "queue_full");
    assert_eq!(body["error"]["type"], "unavailable_error");

    backend.gate.add_permits(2);
    let first = running.await.unwrap().unwrap();
    assert_eq!(first.status(), 200);
    let second = queued.await.unwrap().unwrap();
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["choices"][0]["message"]["content"], "echo: wait 2");
    assert_eq!(metrics.queue_depth(), 0);
    assert!(eventually(|| metrics.busy_slots() == 0).await);
    srv.stop().await.unwrap();
}

#[tokio::test]
async fn a_disconnected_stream_cancels_its_generation_and_frees_the_slot() {
    let backend = Arc::new(Scripted::local());
    let config = ServeConfig { max_concurrent: 1, ..ServeConfig::default() };
    let srv = TestServer::start(config, backend.clone(), None).await;
    let c = client();
    let mut req = user("wait forever");
    req["stream"] = json!(true);
    let mut resp = c.post(srv.chat_url()).json(&req).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut seen = String::new();
    while !seen.contains("partial") {
        let bytes = resp.chunk().await.unwrap().expect("stream ended early");
        seen.push_str(&String::from_utf8_lossy(&bytes));
    }
    assert_eq!(backend.probe.dropped.load(Ordering::SeqCst), 0);
    drop(resp);
    assert!(
        eventually(|| backend.probe.dropped.load(Ordering::SeqCst) == 1).await,
        "the backend stream was not dropped after the client left"
    );
    let metrics = srv.state.metrics().clone();
    assert!(eventually(|| metrics.busy_slots() == 0).await);
    assert_eq!(metrics.cancelled(), 1);
    // The one slot is free again.
    let resp = c.post(srv.chat_url()).json(&user("next")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    srv.stop().await.unwrap();
}

#[tokio::test]
async fn a_disconnected_whole_request_cancels_its_generation() {
    let backend = Arc::new(Scripted::local());
    let srv = TestServer::local(backend.clone()).await;
    let c = client();
    let pending = tokio::spawn(c.post(srv.chat_url()).json(&user("wait here")).send());
    assert!(eventually(|| backend.probe.started.load(Ordering::SeqCst) == 1).await);
    pending.abort();
    assert!(
        eventually(|| backend.probe.dropped.load(Ordering::SeqCst) == 1).await,
        "the backend future was not dropped after the client left"
    );
    let metrics = srv.state.metrics().clone();
    assert!(eventually(|| metrics.busy_slots() == 0).await);
    srv.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let backend = Arc::new(Scripted::local());
    let srv = TestServer::local(backend.clone()).await;
    let c = client();
    let url = srv.chat_url();
    let in_flight = tokio::spawn(c.post(&url).json(&user("wait for shutdown")).send());
    assert!(eventually(|| backend.probe.started.load(Ordering::SeqCst) == 1).await);
    let stopping = tokio::spawn(srv.stop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!stopping.is_finished(), "the server must wait for the in-flight request");
    backend.gate.add_permits(1);
    let resp = in_flight.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    stopping.await.unwrap().unwrap();
    assert!(
        c.post(&url).json(&user("late")).send().await.is_err(),
        "no new connections after shutdown"
    );
}

#[tokio::test]
async fn shutdown_deadline_cuts_requests_that_do_not_finish() {
    let backend = Arc::new(Scripted::local());
    let config =
        ServeConfig { shutdown_deadline: Duration::from_millis(200), ..ServeConfig::default() };
    let srv = TestServer::start(config, backend.clone(), None).await;
    let c = client();
    let _in_flight = tokio::spawn(c.post(srv.chat_url()).json(&user("wait never released")).send());
    assert!(eventually(|| backend.probe.started.load(Ordering::SeqCst) == 1).await);
    // Returns although the request never finishes.
    srv.stop().await.unwrap();
}
