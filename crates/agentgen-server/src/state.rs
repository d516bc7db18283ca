//! Shared server state: the backend (filled in once loaded), the slot queue, metrics and the
//! attestation of the model file.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentgen_core::ChatBackend;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::attest::{hash_model, ModelAttestationSource, ModelDigest};
use crate::config::{ServeConfig, ServeError};
use crate::error::ApiError;
use crate::guard::AllowedHosts;
use crate::metrics::Metrics;

/// Request bodies parsed at once (JSON, schema compilation) off the async workers.
const PARSE_CONCURRENCY: usize = 4;

/// Where the backend stands.
#[derive(Clone)]
pub(crate) enum Load {
    /// The model is still loading.
    Loading,
    /// Serving.
    Ready(Arc<dyn ChatBackend>),
    /// Loading failed; the server answers 503 with this message.
    Failed(String),
}

/// The digest of the attested model file: `None` until the model is loaded and hashed.
pub(crate) type DigestState = Option<Result<ModelDigest, String>>;

/// State shared by every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("ready", &self.backend().is_some()).finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) load: RwLock<Load>,
    pub(crate) api_key: Option<String>,
    pub(crate) local_only: bool,
    pub(crate) model_aliases: Vec<String>,
    pub(crate) body_limit: usize,
    pub(crate) cors_origins: Vec<String>,
    pub(crate) allowed_hosts: RwLock<AllowedHosts>,
    pub(crate) queue_timeout: Duration,
    pub(crate) request_limits: crate::wire::RequestLimits,
    /// Bounds the request bodies parsed and checked at once on blocking threads.
    pub(crate) parsing: Semaphore,
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) total_slots: usize,
    pub(crate) max_queue: usize,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) started: u64,
    pub(crate) attestation: Option<Attested>,
    pub(crate) bind_addresses: OnceLock<Vec<String>>,
    pub(crate) sealed: bool,
    pub(crate) seal: OnceLock<crate::seal::SealInfo>,
}

/// The attested model file and its digest, filled in once the backend is installed.
pub(crate) struct Attested {
    pub(crate) source: ModelAttestationSource,
    pub(crate) tx: watch::Sender<DigestState>,
    pub(crate) rx: watch::Receiver<DigestState>,
}

impl AppState {
    /// A server state that answers 503 "loading" until [`install_backend`](Self::install_backend).
    ///
    /// With an attestation source, the model file is hashed once the backend is installed
    /// (the model is loaded then), on a blocking thread.
    pub fn loading(config: &ServeConfig, attestation: Option<ModelAttestationSource>) -> Self {
        let attestation = attestation.map(|source| {
            let (tx, rx) = watch::channel(None);
            Attested { source, tx, rx }
        });
        let max_concurrent = config.max_concurrent.max(1);
        Self {
            inner: Arc::new(Inner {
                load: RwLock::new(Load::Loading),
                api_key: config.api_key.clone(),
                local_only: config.local_only,
                model_aliases: config.model_aliases.clone(),
                body_limit: config.body_limit_bytes,
                cors_origins: config.cors_origins.clone(),
                allowed_hosts: RwLock::new(AllowedHosts::new(config, configured_addr(config))),
                queue_timeout: config.queue_timeout,
                request_limits: config.request_limits,
                parsing: Semaphore::new(PARSE_CONCURRENCY),
                slots: Arc::new(Semaphore::new(max_concurrent)),
                total_slots: max_concurrent,
                max_queue: config.max_queue,
                metrics: Arc::new(Metrics::default()),
                started: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
                attestation,
                bind_addresses: OnceLock::new(),
                sealed: config.sealed,
                seal: OnceLock::new(),
            }),
        }
    }

    /// A ready server state. Fails as [`install_backend`](Self::install_backend) does.
    pub fn new(
        config: &ServeConfig,
        backend: Arc<dyn ChatBackend>,
        attestation: Option<ModelAttestationSource>,
    ) -> Result<Self, ServeError> {
        let state = Self::loading(config, attestation);
        state.install_backend(backend)?;
        Ok(state)
    }

    /// Starts serving with this backend. Refuses a remote one under `local_only`, and a second one.
    ///
    /// Under [`ServeConfig::sealed`] it first seals the process ([`crate::seal`]): nothing is
    /// served before the seal holds, and a failure to seal is returned, never ignored. Then the
    /// attested model file (now loaded) is hashed.
    pub fn install_backend(&self, backend: Arc<dyn ChatBackend>) -> Result<(), ServeError> {
        check_local_only(self.inner.local_only, &backend.info().name, &backend.info().locality)?;
        let mut load = self.inner.load.write().unwrap_or_else(|p| p.into_inner());
        if matches!(*load, Load::Ready(_)) {
            return Err(ServeError::BackendAlreadySet);
        }
        if self.inner.sealed && self.inner.seal.get().is_none() {
            let info = crate::seal::seal()?;
            let _ = self.inner.seal.set(info);
        }
        if let Some(attested) = &self.inner.attestation {
            let path = attested.source.model_path.clone();
            let tx = attested.tx.clone();
            let hash = move || {
                let digest = hash_model(&path);
                if let Err(e) = &digest {
                    tracing::warn!("{e}");
                }
                let _ = tx.send(Some(digest));
            };
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => drop(rt.spawn_blocking(hash)),
                Err(_) => drop(std::thread::spawn(hash)),
            }
        }
        tracing::info!(backend = %backend.info().name, model = %backend.info().model, "backend ready");
        *load = Load::Ready(backend);
        Ok(())
    }

    /// How the process is sealed, once it is.
    pub fn seal(&self) -> Option<&crate::seal::SealInfo> {
        self.inner.seal.get()
    }

    /// Marks loading as failed: the server keeps answering 503 with this message.
    pub fn fail_loading(&self, message: impl Into<String>) {
        let mut load = self.inner.load.write().unwrap_or_else(|p| p.into_inner());
        if !matches!(*load, Load::Ready(_)) {
            *load = Load::Failed(message.into());
        }
    }

    /// The backend, once loaded.
    pub fn backend(&self) -> Option<Arc<dyn ChatBackend>> {
        match &*self.inner.load.read().unwrap_or_else(|p| p.into_inner()) {
            Load::Ready(b) => Some(b.clone()),
            _ => None,
        }
    }

    /// The backend, or the 503 to answer while there is none.
    pub(crate) fn ready_backend(&self) -> Result<Arc<dyn ChatBackend>, ApiError> {
        match &*self.inner.load.read().unwrap_or_else(|p| p.into_inner()) {
            Load::Ready(b) => match b.health() {
                agentgen_core::BackendHealth::Ready => Ok(b.clone()),
                agentgen_core::BackendHealth::Unavailable { reason, retry_after } => {
                    Err(ApiError::unavailable(
                        reason,
                        "backend_unavailable",
                        retry_after.unwrap_or(Duration::from_secs(5)),
                    ))
                }
            },
            Load::Loading => {
                Err(ApiError::unavailable("Loading model", "model_loading", Duration::from_secs(5)))
            }
            Load::Failed(m) => Err(ApiError::unavailable(
                format!("The model failed to load: {m}"),
                "model_load_failed",
                Duration::from_secs(60),
            )),
        }
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Sets the `Host` names accepted, once the bound address is known.
    pub(crate) fn set_allowed_hosts(&self, hosts: AllowedHosts) {
        *self.inner.allowed_hosts.write().unwrap_or_else(|p| p.into_inner()) = hosts;
    }

    /// The `Host` names accepted.
    pub(crate) fn allowed_hosts(&self) -> AllowedHosts {
        self.inner.allowed_hosts.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records the addresses the server listens on (reported by `/v1/locality`).
    pub fn set_bind_addresses(&self, addrs: Vec<String>) {
        let _ = self.inner.bind_addresses.set(addrs);
    }

    /// Waits for a generation slot: at once if one is free, else in the queue; when the queue
    /// is full, a 503 with `Retry-After`.
    pub(crate) async fn acquire_slot(&self) -> Result<SlotGuard, ApiError> {
        let permit = match self.inner.slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let queued = self.inner.metrics.queued();
                let max = self.inner.max_queue;
                if queued
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                        (q < max).then_some(q + 1)
                    })
                    .is_err()
                {
                    return Err(ApiError::unavailable(
                        format!(
                            "The server is busy: {} generations running and {max} waiting.",
                            self.inner.total_slots
                        ),
                        "queue_full",
                        Duration::from_secs(1),
                    ));
                }
                let _waiting = QueueGuard(self.inner.metrics.clone());
                let wait = self.inner.queue_timeout;
                match tokio::time::timeout(wait, self.inner.slots.clone().acquire_owned()).await {
                    Ok(Ok(permit)) => permit,
                    Ok(Err(_)) => {
                        return Err(ApiError::unavailable(
                            "The server is shutting down",
                            "shutting_down",
                            Duration::from_secs(5),
                        ))
                    }
                    Err(_) => {
                        return Err(ApiError::unavailable(
                            format!("No generation slot came free within {wait:?}."),
                            "queue_timeout",
                            Duration::from_secs(5),
                        ))
                    }
                }
            }
        };
        self.inner.metrics.busy().fetch_add(1, Ordering::AcqRel);
        Ok(SlotGuard { _permit: permit, metrics: self.inner.metrics.clone() })
    }
}

/// The address the config names, before binding (the `Host` check's first guess).
fn configured_addr(config: &ServeConfig) -> std::net::SocketAddr {
    let ip = config
        .host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    std::net::SocketAddr::new(ip, config.port)
}

/// The `local_only` rule, the one place it is written: under `local_only` a backend whose
/// model runs behind a network endpoint is [`ServeError::RemoteBackendRefused`].
pub fn check_local_only(
    local_only: bool,
    backend: &str,
    locality: &agentgen_core::Locality,
) -> Result<(), ServeError> {
    match locality {
        agentgen_core::Locality::Remote { endpoint } if local_only => {
            Err(ServeError::RemoteBackendRefused {
                backend: backend.to_owned(),
                endpoint: endpoint.clone(),
            })
        }
        _ => Ok(()),
    }
}

/// Decrements the queue gauge when a waiting request gets its slot or gives up.
struct QueueGuard(Arc<Metrics>);

impl Drop for QueueGuard {
    fn drop(&mut self) {
        self.0.queued().fetch_sub(1, Ordering::AcqRel);
    }
}

/// A held generation slot; dropping it frees the slot.
pub(crate) struct SlotGuard {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.metrics.busy().fetch_sub(1, Ordering::AcqRel);
    }
}
