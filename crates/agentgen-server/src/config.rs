//! How the server is configured ([`ServeConfig`]) and why it may refuse to start ([`ServeError`]).

use std::net::SocketAddr;
use std::time::Duration;

/// Server settings. [`Default`] binds 127.0.0.1:8080, no key, 4 concurrent generations,
/// 64 waiting, 4 MiB bodies, CORS off, not sealed, 10 s shutdown deadline.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    /// Host name or address to bind (default `127.0.0.1`).
    pub host: String,
    /// TCP port; 0 picks a free one.
    pub port: u16,
    /// API key clients must send (`Authorization: Bearer` or `X-Api-Key`). Required for a
    /// non-loopback bind.
    pub api_key: Option<String>,
    /// Refuse to start with a backend whose model runs elsewhere.
    pub local_only: bool,
    /// Seal the process when the backend is installed: from then on it cannot open or connect
    /// any socket ([`crate::seal`]). Checked at bind: where sealing is impossible the server
    /// refuses to start.
    pub sealed: bool,
    /// Requests that may wait for a free slot; beyond that, 503 with `Retry-After`.
    pub max_queue: usize,
    /// Generations that run at once (the engine's parallel slots).
    pub max_concurrent: usize,
    /// Largest request body accepted; beyond that, 413.
    pub body_limit_bytes: usize,
    /// Answer CORS preflights and add CORS headers (off by default).
    pub cors: bool,
    /// After a shutdown signal, how long in-flight requests may take to finish.
    pub shutdown_deadline: Duration,
    /// More model ids accepted as the served model (besides the backend's id and `default`).
    pub model_aliases: Vec<String>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            api_key: None,
            local_only: false,
            sealed: false,
            max_queue: 64,
            max_concurrent: 4,
            body_limit_bytes: 4 * 1024 * 1024,
            cors: false,
            shutdown_deadline: Duration::from_secs(10),
            model_aliases: Vec::new(),
        }
    }
}

impl ServeConfig {
    /// The default settings on this host and port.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self { host: host.into(), port, ..Self::default() }
    }
}

/// Why the server refused to start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// `--local-only` was asked for but the backend's model runs behind a network endpoint.
    #[error("--local-only refuses backend `{backend}`: its model runs at {endpoint}")]
    RemoteBackendRefused {
        /// The backend's name.
        backend: String,
        /// Where its model runs.
        endpoint: String,
    },
    /// A bind address other than loopback needs an API key.
    #[error(
        "binding {host} ({addr}) exposes the server beyond this machine; set an API key to do that"
    )]
    NonLoopbackWithoutKey {
        /// The host asked for.
        host: String,
        /// The first non-loopback address it resolved to.
        addr: SocketAddr,
    },
    /// The API key is empty.
    #[error("the API key is empty")]
    EmptyApiKey,
    /// A setting is out of range.
    #[error("invalid setting `{field}`: {message}")]
    InvalidConfig {
        /// Which setting.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The host did not resolve.
    #[error("cannot resolve `{host}`: {source}")]
    Resolve {
        /// The host asked for.
        host: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// The address could not be bound (in use, no permission…).
    #[error("cannot bind {host}:{port}: {source}")]
    Bind {
        /// The host asked for.
        host: String,
        /// The port asked for.
        port: u16,
        /// The OS error.
        source: std::io::Error,
    },
    /// `sealed` was asked for and the process cannot be sealed here.
    #[error(transparent)]
    Seal(#[from] crate::seal::SealError),
    /// A backend was installed twice.
    #[error("the server already has a backend")]
    BackendAlreadySet,
    /// The server failed while running.
    #[error("server I/O error: {0}")]
    Io(#[from] std::io::Error),
}
