//! Keeps the inference thread alive: when it panics, or ends while the backend is still in
//! use, the supervisor reports it through [`ChatBackend::health`](agentgen_core::ChatBackend::health)
//! and starts a new one (reloading the model) with backoff. Requests in flight when the thread
//! died get [`LocalError::EngineGone`](crate::LocalError::EngineGone) (their event channels
//! close as the thread unwinds); nothing waits on a dead thread.

use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use agentgen_core::BackendHealth;

use super::job::{Command, SharedStats};
use super::{worker, LocalConfig};

/// The first wait before a restart; it doubles after each failed or short-lived restart.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between restarts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A thread that ran this long before dying starts the backoff over.
const STABLE_AFTER: Duration = Duration::from_secs(300);

/// The live engine: where commands go, and whether it is up.
pub(super) struct EngineLink {
    commands: RwLock<Sender<Command>>,
    health: Mutex<BackendHealth>,
    restarts: std::sync::atomic::AtomicU64,
}

impl EngineLink {
    pub(super) fn new(commands: Sender<Command>) -> Self {
        Self {
            commands: RwLock::new(commands),
            health: Mutex::new(BackendHealth::Ready),
            restarts: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Sends a command to the current inference thread; `Err` when it is gone.
    pub(super) fn send(&self, cmd: Command) -> Result<(), Command> {
        let commands = self.commands.read().unwrap_or_else(PoisonError::into_inner);
        commands.send(cmd).map_err(|e| e.0)
    }

    pub(super) fn health(&self) -> BackendHealth {
        self.health.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Times the inference thread was restarted since load.
    pub(super) fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    fn set_health(&self, health: BackendHealth) {
        *self.health.lock().unwrap_or_else(PoisonError::into_inner) = health;
    }

    fn replace(&self, commands: Sender<Command>) {
        *self.commands.write().unwrap_or_else(PoisonError::into_inner) = commands;
        self.restarts.fetch_add(1, Ordering::Relaxed);
        self.set_health(BackendHealth::Ready);
    }
}

/// What the supervisor needs to start a new inference thread.
pub(super) struct Restart {
    pub(super) config: LocalConfig,
    pub(super) threads: usize,
    pub(super) stats: Arc<SharedStats>,
}

/// Watches `thread` on a thread of its own for as long as `link` is in use.
pub(super) fn watch(link: Weak<EngineLink>, thread: JoinHandle<()>, restart: Restart) {
    let spawned = std::thread::Builder::new()
        .name("agentgen-llama-supervisor".into())
        .spawn(move || supervise(&link, thread, &restart));
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the engine supervisor; a crash will not restart");
    }
}

fn supervise(link: &Weak<EngineLink>, mut thread: JoinHandle<()>, restart: &Restart) {
    let mut backoff = FIRST_BACKOFF;
    let mut started = Instant::now();
    loop {
        let outcome = thread.join();
        let Some(live) = link.upgrade() else {
            return; // Every backend handle is gone: the thread stopped because it was told to.
        };
        let reason = match outcome {
            Ok(()) => "the inference thread stopped".to_owned(),
            Err(payload) => format!("the inference thread panicked: {}", panic_text(&payload)),
        };
        tracing::error!(%reason, "local engine down; restarting it");
        // The dead thread's slots and queue went with it.
        restart.stats.busy_slots.store(0, Ordering::Relaxed);
        restart.stats.queue_depth.store(0, Ordering::Relaxed);
        if started.elapsed() >= STABLE_AFTER {
            backoff = FIRST_BACKOFF;
        }
        live.set_health(BackendHealth::Unavailable {
            reason: format!("{reason}; restarting"),
            retry_after: Some(backoff),
        });
        drop(live);
        loop {
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
            if link.strong_count() == 0 {
                return;
            }
            match worker::spawn(restart.config.clone(), restart.threads, restart.stats.clone()) {
                Ok((commands, _info, handle)) => {
                    let Some(live) = link.upgrade() else { return };
                    live.replace(commands);
                    tracing::info!(restarts = live.restarts(), "local engine restarted");
                    thread = handle;
                    started = Instant::now();
                    break;
                }
                Err(e) => {
                    let Some(live) = link.upgrade() else { return };
                    tracing::error!(error = %e, "reloading the model failed");
                    live.set_health(BackendHealth::Unavailable {
                        reason: format!("{reason}; reloading the model failed: {e}"),
                        retry_after: Some(backoff),
                    });
                }
            }
        }
    }
}

/// The message of a panic payload.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic".to_owned())
}
