//! The live view's event log: every [`UiEvent`] as JSON, kept for pages that join late and
//! fanned out to the pages connected now. Both are bounded: the history by event count and
//! bytes (streamed tokens of a finished message are dropped first, as the message repeats
//! them; then the oldest events), the fan-out by a channel whose slow readers are cut off
//! (the page reconnects and gets the history again).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use agentgen_core::AgentEvent;
use tokio::sync::broadcast;

use super::event::UiEvent;

/// How much the hub keeps and buffers.
#[derive(Debug, Clone, Copy)]
pub struct HubLimits {
    /// Most events in the history.
    pub max_events: usize,
    /// Most bytes (of JSON) in the history.
    pub max_bytes: usize,
    /// An event larger than this is replaced by an [`UiEvent::Omitted`] notice.
    pub max_event_bytes: usize,
    /// Events buffered for each connected page before it counts as too slow.
    pub channel: usize,
}

impl Default for HubLimits {
    fn default() -> Self {
        Self { max_events: 4096, max_bytes: 4 << 20, max_event_bytes: 256 << 10, channel: 1024 }
    }
}

/// One event as sent: its sequence number and its JSON.
#[derive(Debug)]
pub struct Published {
    /// 1, 2, … in publishing order.
    pub seq: u64,
    /// The event as JSON.
    pub json: String,
    class: Class,
}

/// What compaction needs to know of an event.
#[derive(Debug, Clone, PartialEq)]
enum Class {
    /// The run's description: only the latest is kept.
    Info,
    /// Streamed text of this agent: dropped once its message is published.
    Chunk(String),
    /// The whole message of this agent.
    Message(String),
    Other,
}

/// What a page joining now gets: the history so far, then every later event.
#[derive(Debug)]
pub struct Subscription {
    /// Events kept so far, oldest first.
    pub history: Vec<Arc<Published>>,
    /// Events dropped from the history to keep it in bounds.
    pub dropped: u64,
    /// Everything published after `history`.
    pub live: broadcast::Receiver<Arc<Published>>,
}

/// The log and its fan-out. Publishing and subscribing take the same lock, so a subscriber
/// sees every event exactly once: in its history or on its channel.
#[derive(Debug)]
pub struct Hub {
    limits: HubLimits,
    state: Mutex<State>,
    tx: broadcast::Sender<Arc<Published>>,
}

#[derive(Debug, Default)]
struct State {
    history: VecDeque<Arc<Published>>,
    bytes: usize,
    dropped: u64,
    next_seq: u64,
}

impl Hub {
    /// An empty hub.
    pub fn new(limits: HubLimits) -> Self {
        let (tx, _) = broadcast::channel(limits.channel.max(1));
        Self { limits, state: Mutex::new(State::default()), tx }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds an event to the history and sends it to every connected page.
    pub fn publish(&self, event: &UiEvent) {
        let mut json = serde_json::to_string(event).unwrap_or_else(|e| {
            serde_json::json!({"kind": "omitted", "t_ms": 0, "bytes": 0, "error": e.to_string()})
                .to_string()
        });
        let mut class = classify(event);
        if json.len() > self.limits.max_event_bytes {
            let t_ms = match event {
                UiEvent::Event { t_ms, .. } => *t_ms,
                _ => 0,
            };
            json = serde_json::to_string(&UiEvent::Omitted { t_ms, bytes: json.len() })
                .unwrap_or_default();
            class = Class::Other;
        }
        let mut state = self.lock();
        state.next_seq += 1;
        let published = Arc::new(Published { seq: state.next_seq, json, class });
        match &published.class {
            Class::Info => state.remove(|p| p.class == Class::Info),
            Class::Message(source) => {
                state.remove(|p| matches!(&p.class, Class::Chunk(s) if s == source))
            }
            _ => {}
        }
        state.bytes += published.json.len();
        state.history.push_back(Arc::clone(&published));
        while state.history.len() > self.limits.max_events.max(1)
            || (state.bytes > self.limits.max_bytes && state.history.len() > 1)
        {
            // The oldest event that is not the run's description (which pages need first).
            let Some(i) = state.history.iter().position(|p| p.class != Class::Info) else {
                break;
            };
            if i + 1 == state.history.len() {
                break;
            }
            if let Some(gone) = state.history.remove(i) {
                state.bytes -= gone.json.len();
                state.dropped += 1;
            }
        }
        // No receiver is not an error: no page is open.
        let _ = self.tx.send(published);
    }

    /// The history so far and a channel for what follows.
    pub fn subscribe(&self) -> Subscription {
        let state = self.lock();
        Subscription {
            history: state.history.iter().cloned().collect(),
            dropped: state.dropped,
            live: self.tx.subscribe(),
        }
    }
}

impl State {
    fn remove(&mut self, gone: impl Fn(&Published) -> bool) {
        let before = self.bytes;
        let mut freed = 0;
        self.history.retain(|p| {
            let keep = !gone(p);
            if !keep {
                freed += p.json.len();
            }
            keep
        });
        self.bytes = before - freed;
    }
}

fn classify(event: &UiEvent) -> Class {
    match event {
        UiEvent::Info(_) => Class::Info,
        UiEvent::Event { event: AgentEvent::TokenChunk { source, .. }, .. } => {
            Class::Chunk(source.clone())
        }
        UiEvent::Event { event: AgentEvent::Message(m), .. } => Class::Message(m.source.clone()),
        _ => Class::Other,
    }
}

#[cfg(test)]
mod tests {
    use agentgen_core::AgentMessage;

    use super::*;
    use crate::ui::event::{RunInfo, RunState};

    fn chunk(source: &str, text: &str) -> UiEvent {
        UiEvent::Event {
            t_ms: 1,
            event: AgentEvent::TokenChunk { source: source.into(), text: text.into() },
        }
    }

    fn message(source: &str, text: &str) -> UiEvent {
        UiEvent::Event { t_ms: 2, event: AgentEvent::Message(AgentMessage::text(source, text)) }
    }

    fn info(title: &str) -> UiEvent {
        UiEvent::Info(RunInfo { mode: "run", title: title.into(), ..RunInfo::default() })
    }

    fn texts(sub: &Subscription) -> Vec<String> {
        sub.history.iter().map(|p| p.json.clone()).collect()
    }

    #[test]
    fn a_late_page_gets_the_history_then_the_live_events_once_each() {
        let hub = Hub::new(HubLimits::default());
        hub.publish(&info("t"));
        hub.publish(&message("user", "go"));
        let mut sub = hub.subscribe();
        assert_eq!(sub.history.len(), 2);
        assert_eq!(sub.history.iter().map(|p| p.seq).collect::<Vec<_>>(), [1, 2]);
        hub.publish(&chunk("w", "he"));
        let next = sub.live.try_recv().unwrap();
        assert_eq!(next.seq, 3);
        assert!(next.json.contains(r#""event":"token_chunk""#), "{}", next.json);
        assert!(sub.live.try_recv().is_err(), "nothing else is pending");
    }

    #[test]
    fn a_finished_message_replaces_its_streamed_tokens_in_the_history() {
        let hub = Hub::new(HubLimits::default());
        hub.publish(&chunk("w", "he"));
        hub.publish(&chunk("r", "x"));
        hub.publish(&chunk("w", "llo"));
        hub.publish(&message("w", "hello"));
        let sub = hub.subscribe();
        let kept = texts(&sub);
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert!(kept[0].contains(r#""source":"r""#), "the other agent's tokens stay");
        assert!(kept[1].contains(r#""content":"hello""#));
        assert_eq!(sub.dropped, 0, "superseded tokens are not counted as lost");
    }

    #[test]
    fn only_the_latest_description_is_kept_and_it_survives_eviction() {
        let limits = HubLimits { max_events: 3, ..HubLimits::default() };
        let hub = Hub::new(limits);
        hub.publish(&info("first"));
        hub.publish(&info("second"));
        for i in 0..5 {
            hub.publish(&message(&format!("a{i}"), "m"));
        }
        let sub = hub.subscribe();
        let kept = texts(&sub);
        assert_eq!(kept.len(), 3, "{kept:?}");
        assert!(kept[0].contains("second") && !kept.iter().any(|k| k.contains("first")));
        assert!(kept[1].contains(r#""source":"a3""#) && kept[2].contains(r#""source":"a4""#));
        assert_eq!(sub.dropped, 3);
    }

    #[test]
    fn the_history_stays_within_its_byte_budget() {
        let limits = HubLimits { max_bytes: 1000, ..HubLimits::default() };
        let hub = Hub::new(limits);
        for _ in 0..100 {
            hub.publish(&message("w", &"x".repeat(100)));
        }
        let sub = hub.subscribe();
        let bytes: usize = sub.history.iter().map(|p| p.json.len()).sum();
        assert!(bytes <= 1000, "{bytes}");
        assert!(!sub.history.is_empty());
        assert_eq!(sub.dropped as usize + sub.history.len(), 100);
        assert_eq!(sub.history.last().unwrap().seq, 100, "the newest is kept");
    }

    #[test]
    fn an_oversized_event_is_replaced_by_a_notice() {
        let limits = HubLimits { max_event_bytes: 200, ..HubLimits::default() };
        let hub = Hub::new(limits);
        let big = message("w", &"y".repeat(500));
        let size = serde_json::to_string(&big).unwrap().len();
        hub.publish(&big);
        hub.publish(&UiEvent::Status { state: RunState::Running, reason: None });
        let kept = texts(&hub.subscribe());
        assert_eq!(kept[0], format!(r#"{{"kind":"omitted","t_ms":2,"bytes":{size}}}"#));
        assert_eq!(kept[1], r#"{"kind":"status","state":"running"}"#);
    }

    #[test]
    fn a_slow_page_is_told_it_lagged_instead_of_blocking_the_run() {
        let limits = HubLimits { channel: 4, ..HubLimits::default() };
        let hub = Hub::new(limits);
        let mut sub = hub.subscribe();
        for i in 0..10 {
            hub.publish(&message("w", &i.to_string()));
        }
        assert!(matches!(sub.live.try_recv(), Err(broadcast::error::TryRecvError::Lagged(6))));
        assert_eq!(hub.subscribe().history.len(), 10, "the history is whole for a reconnect");
    }
}
