//! How the server is configured ([`ServeConfig`]) and why it may refuse to start ([`ServeError`]).

use std::net::SocketAddr;
use std::time::Duration;

/// Server settings. [`Default`] binds 127.0.0.1:8080, no key, 4 concurrent generations,
/// 64 waiting, 4 MiB bodies, CORS off, not sealed, 10 s shutdown deadline, and the connection
/// limits of [`DEFAULT_LIMITS`](ServeConfig::DEFAULT_HEADER_TIMEOUT) (the README's table).
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
    /// Browser origins (`https://app.example:8443`) allowed to call the API cross-origin; `*`
    /// allows any. Empty (the default): a request carrying an `Origin` other than the server's
    /// own is refused with 403, so no web page can drive a server on this machine.
    pub cors_origins: Vec<String>,
    /// Host names accepted in the `Host` header besides the bound address, `localhost`,
    /// `127.0.0.1` and `::1` (refusing other names defeats DNS rebinding).
    pub allowed_hosts: Vec<String>,
    /// A request head must arrive within this (slowloris defence). Default 10 s.
    pub header_timeout: Duration,
    /// A request body must arrive within this of its head, else 408. Default 30 s.
    pub body_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after this. Default 60 s.
    pub idle_timeout: Duration,
    /// A request waits at most this long for a generation slot, then 503. Default 120 s.
    pub queue_timeout: Duration,
    /// A response write that makes no progress for this long (the client stopped reading)
    /// closes the connection and cancels the generation, freeing its slot. Default 30 s.
    pub write_stall_timeout: Duration,
    /// Open connections at most; beyond that a new one gets 503 and is closed. Default 256.
    pub max_connections: usize,
    /// Tools, schema size and depth one request may carry.
    pub request_limits: crate::wire::RequestLimits,
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
            cors_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            header_timeout: Self::DEFAULT_HEADER_TIMEOUT,
            body_timeout: Self::DEFAULT_BODY_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            queue_timeout: Self::DEFAULT_QUEUE_TIMEOUT,
            write_stall_timeout: Self::DEFAULT_WRITE_STALL_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            request_limits: crate::wire::RequestLimits::default(),
            shutdown_deadline: Duration::from_secs(10),
            model_aliases: Vec::new(),
        }
    }
}

impl ServeConfig {
    /// Default [`header_timeout`](Self::header_timeout).
    pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default [`body_timeout`](Self::body_timeout).
    pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default [`idle_timeout`](Self::idle_timeout).
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// Default [`queue_timeout`](Self::queue_timeout).
    pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(120);
    /// Default [`write_stall_timeout`](Self::write_stall_timeout).
    pub const DEFAULT_WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default [`max_connections`](Self::max_connections).
    pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

    /// Refuses settings that would disable a defence or stop the server from serving.
    pub fn validate(&self) -> Result<(), ServeError> {
        let positive = [
            ("max_concurrent", self.max_concurrent),
            ("body_limit_bytes", self.body_limit_bytes),
            ("max_connections", self.max_connections),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ServeError::InvalidConfig { field, message: "must be at least 1".into() });
        }
        let timeouts = [
            ("header_timeout", self.header_timeout),
            ("body_timeout", self.body_timeout),
            ("idle_timeout", self.idle_timeout),
            ("queue_timeout", self.queue_timeout),
            ("write_stall_timeout", self.write_stall_timeout),
        ];
        // A day is far beyond any sane setting and keeps `Instant + timeout` from overflowing.
        let day = Duration::from_secs(86_400);
        if let Some((field, _)) = timeouts.iter().find(|(_, t)| t.is_zero() || *t > day) {
            return Err(ServeError::InvalidConfig {
                field,
                message: "must be between 1 ms and 24 h".into(),
            });
        }
        if let Some(origin) = self.cors_origins.iter().find(|o| !crate::guard::valid_origin(o)) {
            return Err(ServeError::InvalidConfig {
                field: "cors_origins",
                message: format!("`{origin}` is not `*` or scheme://host[:port]"),
            });
        }
        Ok(())
    }

    pub(crate) fn conn_limits(&self) -> crate::conn::ConnLimits {
        crate::conn::ConnLimits {
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            idle_timeout: self.idle_timeout,
            write_stall_timeout: self.write_stall_timeout,
            max_connections: self.max_connections,
        }
    }

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
