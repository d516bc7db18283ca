//! Prometheus metrics, kept in atomics and rendered as the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use agentgen_core::Usage;

/// Bucket bounds in seconds, shared by the latency histograms.
const BUCKETS: [f64; 14] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// A cumulative histogram of durations.
#[derive(Debug, Default)]
struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            if secs <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            let _ =
                writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", count.load(Ordering::Relaxed));
        }
        let total = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {total}");
    }
}

/// The server's counters, gauges and histograms.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    cached_tokens: AtomicU64,
    ttft: Histogram,
    latency: Histogram,
    queued: AtomicUsize,
    busy: AtomicUsize,
    cancelled: AtomicU64,
}

impl Metrics {
    /// Counts one answered request on a route with its status.
    pub fn record_request(&self, route: &str, status: u16) {
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry((route.to_owned(), status)).or_default() += 1;
    }

    /// Adds a completion's token counts.
    pub fn record_usage(&self, usage: &Usage) {
        self.prompt_tokens.fetch_add(usage.prompt_tokens.into(), Ordering::Relaxed);
        self.completion_tokens.fetch_add(usage.completion_tokens.into(), Ordering::Relaxed);
        self.cached_tokens.fetch_add(usage.cached_tokens.into(), Ordering::Relaxed);
    }

    /// Records the time to the first generated token.
    pub fn record_ttft(&self, d: Duration) {
        self.ttft.observe(d);
    }

    /// Records a whole generation's latency.
    pub fn record_latency(&self, d: Duration) {
        self.latency.observe(d);
    }

    /// Counts a generation cut short because its client went away.
    pub fn record_cancelled(&self) {
        self.cancelled.fetch_add(1, Ordering::Relaxed);
    }

    /// The gauge of requests waiting for a slot.
    pub(crate) fn queued(&self) -> &AtomicUsize {
        &self.queued
    }

    /// The gauge of slots generating now.
    pub(crate) fn busy(&self) -> &AtomicUsize {
        &self.busy
    }

    /// Requests waiting for a slot now.
    pub fn queue_depth(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Slots generating now.
    pub fn busy_slots(&self) -> usize {
        self.busy.load(Ordering::Relaxed)
    }

    /// Generations cancelled because the client went away.
    pub fn cancelled(&self) -> u64 {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition.
    pub fn render(&self, total_slots: usize) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP agentgen_requests_total HTTP requests answered, by route and status.\n",
        );
        out.push_str("# TYPE agentgen_requests_total counter\n");
        {
            let map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
            for ((route, status), n) in map.iter() {
                let _ = writeln!(
                    out,
                    "agentgen_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        let counters = [
            ("agentgen_prompt_tokens_total", "Prompt tokens processed.", &self.prompt_tokens),
            ("agentgen_completion_tokens_total", "Tokens generated.", &self.completion_tokens),
            (
                "agentgen_cached_tokens_total",
                "Prompt tokens served from the prompt cache.",
                &self.cached_tokens,
            ),
            (
                "agentgen_cancelled_total",
                "Generations cancelled because the client went away.",
                &self.cancelled,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        self.ttft.render(
            &mut out,
            "agentgen_time_to_first_token_seconds",
            "Time from request to first token.",
        );
        self.latency.render(
            &mut out,
            "agentgen_request_duration_seconds",
            "Time from request to last token.",
        );
        let gauges = [
            ("agentgen_queue_depth", "Requests waiting for a free slot.", self.queue_depth()),
            ("agentgen_busy_slots", "Slots generating now.", self.busy_slots()),
            ("agentgen_slots_total", "Slots that can generate at once.", total_slots),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative() {
        let m = Metrics::default();
        m.record_latency(Duration::from_millis(30));
        m.record_latency(Duration::from_secs(3));
        let text = m.render(1);
        assert!(text.contains("agentgen_request_duration_seconds_bucket{le=\"0.05\"} 1"), "{text}");
        assert!(text.contains("agentgen_request_duration_seconds_bucket{le=\"5\"} 2"), "{text}");
        assert!(text.contains("agentgen_request_duration_seconds_count 2"), "{text}");
    }

    #[test]
    fn requests_are_counted_by_route_and_status() {
        let m = Metrics::default();
        m.record_request("/v1/chat/completions", 200);
        m.record_request("/v1/chat/completions", 200);
        m.record_usage(&Usage::new(10, 5, 3));
        let text = m.render(2);
        assert!(text
            .contains("agentgen_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 2"));
        assert!(text.contains("agentgen_cached_tokens_total 3"));
        assert!(text.contains("agentgen_slots_total 2"));
    }
}
