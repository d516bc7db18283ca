//! Connection setup: how many connections may be open, and what a client must do within how
//! long. Every limit here is enforced below the handlers, on the connection itself:
//!
//! - **headers**: the whole request head within [`ConnLimits::header_timeout`] (hyper's timer),
//!   so a client sending half a header (slowloris) is closed;
//! - **body**: the whole body within [`ConnLimits::body_timeout`] of the head, else 408;
//! - **idle**: a keep-alive connection with no request in flight is closed after
//!   [`ConnLimits::idle_timeout`] without a byte;
//! - **write stall**: a write that makes no progress for [`ConnLimits::write_stall_timeout`]
//!   (a client that stopped reading) fails the connection; its response is dropped, which
//!   cancels its generation and frees its slot;
//! - **count**: beyond [`ConnLimits::max_connections`] open connections, a new one gets a 503
//!   and is closed at once.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::Router;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tower::ServiceExt;

/// The kernel send buffer asked for each connection. Small enough that a client that stops
/// reading is noticed after a few dozen KiB (Linux doubles the figure) instead of megabytes
/// of autotuned buffer; at loopback and LAN round trips it still moves tens of MB/s.
const SEND_BUFFER_BYTES: usize = 16 * 1024;

/// Largest request head (request line and headers) accepted; beyond it, 431.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The connection-level limits (from [`crate::ServeConfig`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    pub(crate) header_timeout: Duration,
    pub(crate) body_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) write_stall_timeout: Duration,
    pub(crate) max_connections: usize,
}

/// Accepts connections and serves `app` on each until `shutdown` completes; then stops
/// accepting and waits up to `deadline` for open connections to finish.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    deadline: Duration,
) -> io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let open = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors or a connection reset before accept: back off
                    // a moment instead of spinning, and keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = limits.max_connections, "too many connections; refused");
            tokio::spawn(refuse(tcp, limits.max_connections));
            continue;
        };
        if let Err(e) = tcp.set_nodelay(true) {
            // Streamed answers are many small writes; with Nagle's algorithm each one after the
            // first waits for the client's delayed ACK (up to 40 ms on Linux).
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        if let Err(e) = socket2::SockRef::from(&tcp).set_send_buffer_size(SEND_BUFFER_BYTES) {
            tracing::debug!(error = %e, "cannot set the send buffer size");
        }
        let inflight = Arc::new(AtomicUsize::new(0));
        let io = TokioIo::new(GuardedIo::new(tcp, limits, inflight.clone()));
        let service = service(app.clone(), inflight, limits.body_timeout);
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .max_header_size(MAX_HEADER_BYTES);
        let conn = graceful.watch(builder.serve_connection(io, service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(deadline) => {
            tracing::warn!(?deadline, "shutdown deadline passed; dropping unfinished requests");
        }
    }
    Ok(())
}

/// The per-connection hyper service: counts the request as in flight until its response body
/// is done or dropped, and puts a deadline on reading its body.
fn service(
    app: Router,
    inflight: Arc<AtomicUsize>,
    body_timeout: Duration,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Future<Output = Result<axum::response::Response, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let app = app.clone();
        let guard = InFlight::enter(&inflight);
        async move {
            let req: Request = req.map(|body| Body::new(DeadlineBody::new(body, body_timeout)));
            let resp = match app.oneshot(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            };
            // The guard lives as long as the response body: a stream counts as in flight
            // until its last byte is handed to the connection.
            Ok(resp.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _in_flight = &guard;
                    frame
                }))
            }))
        }
    })
}

/// Writes a short 503 (the API's usual error JSON) to a connection over the limit and closes it.
async fn refuse(mut tcp: TcpStream, max: usize) {
    let error = crate::error::ApiError::unavailable(
        format!("The server has {max} connections open, its limit."),
        "too_many_connections",
        Duration::from_secs(1),
    );
    let body = error.body().to_string();
    let resp = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let write = async {
        tcp.write_all(resp.as_bytes()).await?;
        tcp.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// Counts one request in flight on its connection while alive.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        Self(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The request body took longer than the body timeout to arrive.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub(crate) struct BodyTimeout(pub(crate) Duration);

/// A request body that fails with [`BodyTimeout`] once its deadline passes.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    limit: Duration,
}

impl DeadlineBody {
    fn new(inner: Incoming, limit: Duration) -> Self {
        Self { inner, deadline: Box::pin(tokio::time::sleep(limit)), limit }
    }
}

impl hyper::body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(self.limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A TCP stream that fails a read after `idle_timeout` without a byte while no request is in
/// flight, and a write that makes no progress for `write_stall_timeout`.
struct GuardedIo {
    tcp: TcpStream,
    idle_timeout: Duration,
    write_stall_timeout: Duration,
    inflight: Arc<AtomicUsize>,
    idle: Option<Pin<Box<Sleep>>>,
    stall: Option<Pin<Box<Sleep>>>,
}

impl GuardedIo {
    fn new(tcp: TcpStream, limits: ConnLimits, inflight: Arc<AtomicUsize>) -> Self {
        Self {
            tcp,
            idle_timeout: limits.idle_timeout,
            write_stall_timeout: limits.write_stall_timeout,
            inflight,
            idle: None,
            stall: None,
        }
    }

    /// A write's outcome under the stall limit: progress resets the timer; `Pending` starts it,
    /// and fails the write once it has run out.
    fn after_write(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if polled.is_ready() {
            self.stall = None;
            return polled;
        }
        let limit = self.write_stall_timeout;
        let timer = self.stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        tracing::info!(?limit, "client stopped reading; closing its connection");
        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading")))
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.tcp).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.idle = None;
                Poll::Ready(r)
            }
            Poll::Pending if this.inflight.load(Ordering::Acquire) == 0 => {
                let limit = this.idle_timeout;
                let timer = this.idle.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if timer.as_mut().poll(cx).is_ready() {
                    tracing::debug!(?limit, "idle connection closed");
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the connection was idle too long",
                    )));
                }
                Poll::Pending
            }
            Poll::Pending => {
                this.idle = None;
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.tcp).poll_write(cx, buf);
        self.after_write(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        self.after_write(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
