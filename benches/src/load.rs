//! The hostile load run: many concurrent clients against `agentgen serve` on the real model for
//! a fixed time, with a mix of normal, streamed, disconnecting, slow-reading and malformed
//! requests. It reports what happened to every request and checks that the server recovers:
//! busy slots and queue depth back to 0, memory within bounds, and a normal request still
//! answered. `agentgen-load` runs it (10 s in CI's quick bench, 60 s in the full bench).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;
use serde_json::json;
use tokio::sync::Mutex;

/// What the clients do, by client index modulo 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// A whole answer.
    Normal,
    /// A streamed answer, read at once.
    Streamed,
    /// A stream dropped after its first chunk.
    Disconnecting,
    /// A stream read one chunk every 200 ms.
    SlowReading,
    /// Bad JSON, a wrong field type or a `text/plain` body.
    Malformed,
}

impl ClientKind {
    fn of(i: usize) -> Self {
        match i % 8 {
            0..=2 => Self::Normal,
            3 | 4 => Self::Streamed,
            5 => Self::Disconnecting,
            6 => Self::SlowReading,
            _ => Self::Malformed,
        }
    }
}

/// The figures of one load run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadReport {
    /// Concurrent clients.
    pub clients: usize,
    /// Seconds the clients kept sending.
    pub duration_s: f64,
    /// Answers received in full (normal, streamed and slow-read).
    pub completed: u64,
    /// Streams the clients dropped on purpose.
    pub disconnected: u64,
    /// Generations the server counted as cancelled (client gone).
    pub cancelled: u64,
    /// 503 answers (queue full, queue timeout).
    pub rejected_503: u64,
    /// Malformed requests answered with a 4xx, as they should be.
    pub malformed_refused: u64,
    /// Every other outcome, by HTTP status (or `transport` for a broken connection).
    pub errors: BTreeMap<String, u64>,
    /// Latency of completed answers, median and 95th percentile, ms.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// Busy slots after the run settled (must be 0).
    pub busy_slots_after: u64,
    /// Queue depth after the run settled (must be 0).
    pub queue_depth_after: u64,
    /// This process's resident memory before and after, MiB (the server runs in it).
    pub rss_before_mib: f64,
    /// After.
    pub rss_after_mib: f64,
    /// Whether a normal request was answered after the run.
    pub answers_after: bool,
}

impl LoadReport {
    /// What is wrong with the server after the run, if anything.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.busy_slots_after != 0 || self.queue_depth_after != 0 {
            out.push(format!(
                "slots or queue did not drain: {} busy, {} queued",
                self.busy_slots_after, self.queue_depth_after
            ));
        }
        if !self.answers_after {
            out.push("the server no longer answers a normal request".into());
        }
        if let Some((status, n)) = self.errors.iter().find(|(s, _)| s.starts_with('5')) {
            out.push(format!("{n} answers with status {status}"));
        }
        if self.completed == 0 {
            out.push("no request completed".into());
        }
        // The KV cache and model are allocated before the run; what grows is bounded caches
        // (prompt logits, grammars, buffers): far below this.
        if self.rss_after_mib > self.rss_before_mib + 512.0 {
            out.push(format!(
                "resident memory grew from {:.0} to {:.0} MiB",
                self.rss_before_mib, self.rss_after_mib
            ));
        }
        out
    }

    /// A table for the terminal.
    pub fn render(&self) -> String {
        let errors = if self.errors.is_empty() {
            "none".to_owned()
        } else {
            self.errors.iter().map(|(s, n)| format!("{s}: {n}")).collect::<Vec<_>>().join(", ")
        };
        format!(
            "hostile load: {} clients for {:.0} s\n\
             completed {} | disconnected {} (server cancelled {}) | rejected 503 {} | \
             malformed refused {} | other errors: {errors}\n\
             latency p50 {:.0} ms, p95 {:.0} ms | after: {} busy slots, {} queued, \
             RSS {:.0} → {:.0} MiB, answers: {}",
            self.clients,
            self.duration_s,
            self.completed,
            self.disconnected,
            self.cancelled,
            self.rejected_503,
            self.malformed_refused,
            self.p50_ms,
            self.p95_ms,
            self.busy_slots_after,
            self.queue_depth_after,
            self.rss_before_mib,
            self.rss_after_mib,
            if self.answers_after { "yes" } else { "NO" },
        )
    }
}

#[derive(Default)]
struct Tally {
    completed: u64,
    disconnected: u64,
    rejected_503: u64,
    malformed_refused: u64,
    errors: BTreeMap<String, u64>,
    latencies_ms: Vec<f64>,
}

impl Tally {
    fn error(&mut self, what: impl Into<String>) {
        *self.errors.entry(what.into()).or_default() += 1;
    }
}

/// Runs `clients` clients against the server at `base` (`http://127.0.0.1:PORT`) for
/// `duration`, then waits for the server to settle and measures it.
pub async fn run(base: &str, clients: usize, duration: Duration) -> LoadReport {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("an HTTP client builds");
    let rss_before = rss_mib();
    let cancelled_before = metric(&http, base, "agentgen_cancelled_total").await;
    let tally = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..clients {
        let (http, tally, base) = (http.clone(), tally.clone(), base.to_owned());
        tasks.push(tokio::spawn(async move {
            let kind = ClientKind::of(i);
            let mut n = 0u64;
            while started.elapsed() < duration {
                one_request(&http, &base, kind, i as u64 * 1000 + n, &tally).await;
                n += 1;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let duration_s = started.elapsed().as_secs_f64();
    // Let cancelled generations wind down and queues drain.
    let settle = Instant::now();
    let (mut busy, mut queued) = (u64::MAX, u64::MAX);
    while settle.elapsed() < Duration::from_secs(30) {
        busy = metric(&http, base, "agentgen_busy_slots").await;
        queued = metric(&http, base, "agentgen_queue_depth").await;
        if busy == 0 && queued == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let answers_after = http
        .post(format!("{base}/v1/chat/completions"))
        .json(&body("after the storm", false))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200);
    let cancelled = metric(&http, base, "agentgen_cancelled_total").await - cancelled_before;
    let mut t = std::mem::take(&mut *tally.lock().await);
    t.latencies_ms.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        let v = &t.latencies_ms;
        if v.is_empty() {
            0.0
        } else {
            v[((v.len() - 1) as f64 * p).round() as usize]
        }
    };
    LoadReport {
        clients,
        duration_s,
        completed: t.completed,
        disconnected: t.disconnected,
        cancelled,
        rejected_503: t.rejected_503,
        malformed_refused: t.malformed_refused,
        p50_ms: pct(0.5),
        p95_ms: pct(0.95),
        errors: t.errors,
        busy_slots_after: busy,
        queue_depth_after: queued,
        rss_before_mib: rss_before,
        rss_after_mib: rss_mib(),
        answers_after,
    }
}

fn body(tag: &str, stream: bool) -> serde_json::Value {
    json!({
        "messages": [{"role": "user", "content": format!("In one short sentence, what is a {tag}?")}],
        "max_tokens": 12,
        "temperature": 0.7,
        "stream": stream,
    })
}

const TOPICS: &[&str] = &["river", "compiler", "violin", "glacier", "protocol", "lantern"];

async fn one_request(
    http: &reqwest::Client,
    base: &str,
    kind: ClientKind,
    n: u64,
    tally: &Mutex<Tally>,
) {
    let url = format!("{base}/v1/chat/completions");
    let topic = TOPICS[(n as usize) % TOPICS.len()];
    let started = Instant::now();
    let req = match kind {
        ClientKind::Malformed => match n % 3 {
            0 => {
                http.post(&url).header("content-type", "application/json").body("{\"messages\": [")
            }
            1 => http.post(&url).json(&json!({"messages": "not a list", "max_tokens": -3})),
            _ => http
                .post(&url)
                .header("content-type", "text/plain")
                .body(body(topic, false).to_string()),
        },
        ClientKind::Normal => http.post(&url).json(&body(topic, false)),
        _ => http.post(&url).json(&body(topic, true)),
    };
    let resp = match req.send().await {
        Ok(r) => r,
        Err(_) => return tally.lock().await.error("transport"),
    };
    let status = resp.status().as_u16();
    if kind == ClientKind::Malformed {
        {
            let mut t = tally.lock().await;
            if (400..500).contains(&status) {
                t.malformed_refused += 1;
            } else {
                t.error(format!("{status} (malformed)"));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        return;
    }
    if status == 503 {
        tally.lock().await.rejected_503 += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
        return;
    }
    if status != 200 {
        return tally.lock().await.error(status.to_string());
    }
    let complete = match kind {
        ClientKind::Normal => resp.bytes().await.is_ok(),
        ClientKind::Disconnecting => {
            let mut s = resp.bytes_stream();
            let _ = s.next().await;
            tally.lock().await.disconnected += 1;
            return;
        }
        ClientKind::SlowReading => {
            let mut s = resp.bytes_stream();
            let mut text = Vec::new();
            while let Some(Ok(chunk)) = s.next().await {
                text.extend_from_slice(&chunk);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            String::from_utf8_lossy(&text).contains("[DONE]")
        }
        _ => resp.text().await.is_ok_and(|t| t.contains("[DONE]")),
    };
    let mut t = tally.lock().await;
    if complete {
        t.completed += 1;
        t.latencies_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    } else {
        t.error("broken answer");
    }
}

/// A counter or gauge from `/metrics` (0 when it cannot be read).
async fn metric(http: &reqwest::Client, base: &str, name: &str) -> u64 {
    let Ok(resp) = http.get(format!("{base}/metrics")).send().await else { return 0 };
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// This process's resident memory in MiB (0 where `/proc` is missing).
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
