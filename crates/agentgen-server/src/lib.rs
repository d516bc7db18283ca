//! agentgen-server: serves any agentgen [`ChatBackend`] over an OpenAI/Groq-compatible HTTP API
//! (axum), with locality attestation (`GET /v1/locality`) and [`verify_local`] to check it.
//!
//! Routes: `POST /v1/chat/completions` (whole or SSE-streamed), `GET /v1/models`,
//! `GET /v1/models/{id}`, `GET /health`, `GET /metrics` (Prometheus) and `GET /v1/locality`.
//! Every error is OpenAI's error JSON. The server binds 127.0.0.1 by default, needs an API key
//! for any other address, bounds its queue (503 + `Retry-After` when full), cancels a
//! generation when its client disconnects, and shuts down gracefully. Each API request runs in
//! a `tracing` span that joins the caller's W3C `traceparent`, with the model call (GenAI
//! attributes, see `agentgen_core::telemetry`) under it. Sealed
//! ([`ServeConfig::sealed`], [`seal`]), it cannot reach the network once its model is loaded.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use agentgen_core::ChatBackend;
use tokio::net::TcpListener;

mod attest;
mod chat;
mod config;
mod conn;
mod error;
mod guard;
pub mod metrics;
mod procfs;
mod routes;
pub mod seal;
mod state;
mod trace;
pub mod verify;
mod verify_conn;
mod verify_kernel;
pub mod wire;

pub use attest::{
    hash_file, hash_reader, hostname, Attestation, FileDigest, ModelAttestationSource,
};
pub use config::{ServeConfig, ServeError};
pub use error::ApiError;
pub use routes::router;
pub use seal::{SealError, SealInfo, SealMechanism};
pub use state::{check_local_only, AppState};
pub use verify::{
    verify_local, verify_local_with, ChallengeAnswer, Check, Recompute, RecomputeJob,
    VerifyOptions, VerifyReport,
};

/// A bound, not yet running server. Lets a caller learn the address and install the backend
/// later (the server answers 503 "loading" until then).
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: AppState,
    config: ServeConfig,
}

impl Server {
    /// Checks the settings and binds the address. A non-loopback address without an API key
    /// is refused, and so is `sealed` where this system cannot seal a process.
    pub async fn bind(
        config: ServeConfig,
        attestation: Option<ModelAttestationSource>,
    ) -> Result<Self, ServeError> {
        if config.api_key.as_deref().is_some_and(|k| k.trim().is_empty()) {
            return Err(ServeError::EmptyApiKey);
        }
        config.validate()?;
        if config.sealed {
            seal::probe()?;
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((config.host.as_str(), config.port))
            .await
            .map_err(|source| ServeError::Resolve { host: config.host.clone(), source })?
            .collect();
        if config.api_key.is_none() {
            if let Some(addr) = addrs.iter().find(|a| !a.ip().is_loopback()) {
                return Err(ServeError::NonLoopbackWithoutKey {
                    host: config.host.clone(),
                    addr: *addr,
                });
            }
        }
        let listener = TcpListener::bind(addrs.as_slice()).await.map_err(|source| {
            ServeError::Bind { host: config.host.clone(), port: config.port, source }
        })?;
        let state = AppState::loading(&config, attestation);
        let local = listener.local_addr()?;
        state.set_bind_addresses(vec![local.to_string()]);
        state.set_allowed_hosts(guard::AllowedHosts::new(&config, local));
        tracing::info!(addr = %local, "listening");
        Ok(Self { listener, state, config })
    }

    /// The address bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, ServeError> {
        Ok(self.listener.local_addr()?)
    }

    /// The shared state; call [`AppState::install_backend`] on it once the model is loaded.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops accepting and gives in-flight requests
    /// up to the configured deadline to finish. Connections are held to the configured
    /// limits ([`ServeConfig::header_timeout`] and the rest).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let app = router(self.state.clone());
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections; finishing in-flight requests");
        };
        conn::serve(
            self.listener,
            app,
            self.config.conn_limits(),
            signal,
            self.config.shutdown_deadline,
        )
        .await
        .map_err(ServeError::Io)
    }
}

/// Serves `backend` until `shutdown` completes. Refuses to start under `local_only` with a
/// remote backend, or on a non-loopback address without an API key.
pub async fn serve(
    config: ServeConfig,
    backend: Arc<dyn ChatBackend>,
    attestation: Option<ModelAttestationSource>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let server = Server::bind(config, attestation).await?;
    server.state().install_backend(backend)?;
    server.run(shutdown).await
}

/// Completes on Ctrl-C or (on Unix) SIGTERM: pass it to [`serve`] as the shutdown future.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
