//! The live web view (`agentgen run --ui`, `agentgen sessions show NAME --ui`): a page on
//! 127.0.0.1 that shows a run as it happens — each agent's messages, tokens as they stream,
//! tool calls with arguments and results, handoffs and speaker choices, the stop reason, a
//! timeline of turns with tokens, speed, time to first token and cached prompt tokens, the
//! backend and model of each agent — and a stop button that cancels the run. A journaled
//! session opens in the same page, replayed from its journal.
//!
//! The page, its script and its style sheet are compiled into the binary: no CDN, no network.

// Without the `ui` feature the view cannot start, and its parts go unused.
#![cfg_attr(not(feature = "ui"), allow(dead_code))]

mod event;
mod hub;
mod meter;
mod replay;
#[cfg(feature = "ui")]
mod server;
mod timeline;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use agentgen_core::journal::Entry;
use agentgen_core::{AgentEvent, CancellationToken, ChatBackend};

pub use event::{AgentInfo, RunInfo, RunState, UiEvent};
use hub::{Hub, HubLimits};
use meter::{CallLog, Metered};
use timeline::Timeline;

#[cfg(not(feature = "ui"))]
use crate::error::CliError;
use crate::error::CliResult;

/// A run's live view: the page server and what it shows.
#[derive(Debug)]
pub struct Live {
    hub: Arc<Hub>,
    info: RunInfo,
    started: Instant,
    timeline: Timeline,
    calls: Arc<CallLog>,
    cancel: CancellationToken,
    pressed: Arc<AtomicBool>,
    url: String,
    #[cfg(feature = "ui")]
    _server: server::ViewServer,
}

impl Live {
    /// Starts the view of a run on `task` on 127.0.0.1:`port` (0: a free port) and prints its
    /// address on stderr; the run shows as starting until [`Live::describe`].
    pub async fn start(port: u16, task: &str) -> CliResult<Self> {
        let hub = Arc::new(Hub::new(HubLimits::default()));
        let info =
            RunInfo { mode: "run", title: task.to_owned(), agents: Vec::new(), stoppable: true };
        hub.publish(&UiEvent::Info(info.clone()));
        hub.publish(&UiEvent::Status { state: RunState::Starting, reason: None });
        let cancel = CancellationToken::new();
        let pressed = Arc::new(AtomicBool::new(false));
        #[cfg(feature = "ui")]
        {
            let stop = server::Stop { cancel: cancel.clone(), pressed: Arc::clone(&pressed) };
            let server = server::ViewServer::start(Arc::clone(&hub), port, Some(stop)).await?;
            let url = server.url().to_owned();
            eprintln!("live view: {url}");
            let started = Instant::now();
            Ok(Self {
                hub,
                info,
                started,
                timeline: Timeline::new(),
                calls: Arc::new(CallLog::new(started)),
                cancel,
                pressed,
                url,
                _server: server,
            })
        }
        #[cfg(not(feature = "ui"))]
        {
            let _ = (port, cancel, pressed, info);
            Err(no_ui())
        }
    }

    /// The team is built: shows its agents and marks the run as running.
    pub fn describe(&mut self, agents: Vec<AgentInfo>) {
        self.info.agents = agents;
        self.hub.publish(&UiEvent::Info(self.info.clone()));
        self.hub.publish(&UiEvent::Status { state: RunState::Running, reason: None });
    }

    /// `backend`, timed for the turn timeline as `agent`'s.
    pub fn meter(&self, agent: &str, backend: Arc<dyn ChatBackend>) -> Arc<dyn ChatBackend> {
        Arc::new(Metered::new(backend, agent, Arc::clone(&self.calls)))
    }

    /// The cancellation the stop button triggers.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Shows an event of the run (and, when it ends a turn, the turn's timing).
    pub fn event(&mut self, event: &AgentEvent) {
        let t_ms = self.started.elapsed().as_millis() as u64;
        if matches!(event, AgentEvent::Message(_)) {
            for call in self.calls.take() {
                self.timeline.model_call(call);
            }
        }
        let turn = self.timeline.observe(t_ms, event);
        self.hub.publish(&UiEvent::Event { t_ms, event: event.clone() });
        if let Some(turn) = turn {
            self.hub.publish(&UiEvent::Turn(turn));
        }
    }

    /// The run ended (or could not start).
    pub fn ended(&self, state: RunState, reason: Option<String>) {
        self.hub.publish(&UiEvent::Status { state, reason });
    }

    /// Whether the page's stop button (rather than Ctrl-C) cancelled the run.
    pub fn stop_pressed(&self) -> bool {
        self.pressed.load(Ordering::SeqCst)
    }

    /// Keeps the page served until Ctrl-C.
    pub async fn linger(&self) {
        eprintln!("the run has ended; the live view stays at {} until Ctrl-C", self.url);
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Serves a journaled session's records in the view until Ctrl-C.
pub async fn show_session(
    name: &str,
    entries: &[Entry],
    agents: &[(String, bool)],
    port: u16,
) -> CliResult {
    let hub = Arc::new(Hub::new(HubLimits::default()));
    let info = RunInfo {
        mode: "session",
        title: format!("session {name}"),
        agents: replay::agents(agents, entries),
        stoppable: false,
    };
    hub.publish(&UiEvent::Info(info));
    for event in replay::replay(entries) {
        hub.publish(&event);
    }
    #[cfg(feature = "ui")]
    {
        let server = server::ViewServer::start(hub, port, None).await?;
        eprintln!("session view: {} (Ctrl-C to exit)", server.url());
        let _ = tokio::signal::ctrl_c().await;
        Ok(())
    }
    #[cfg(not(feature = "ui"))]
    {
        let _ = port;
        Err(no_ui())
    }
}

#[cfg(not(feature = "ui"))]
fn no_ui() -> CliError {
    CliError::FeatureMissing { feature: "ui", what: "feature, which the live view (--ui) needs" }
}
