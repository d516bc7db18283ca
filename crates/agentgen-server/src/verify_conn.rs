//! The verifier's one HTTP/1.1 connection: resolved once, to one address, every request on the
//! same TCP connection (so the kernel's record of it identifies the server process for the
//! whole verification), no redirects followed, no proxy, bodies size-capped.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Largest response body read.
const MAX_BODY: usize = 4 << 20;

/// Where the URL points, resolved once.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The `Host` header to send.
    pub host_header: String,
    /// The path prefix before `/v1/…` (the URL's path without a trailing `/v1`).
    pub base_path: String,
    /// Every address the host resolved to.
    pub resolved: Vec<IpAddr>,
    /// The one address connected to.
    pub addr: SocketAddr,
}

/// Parses the URL and resolves its host once. Only `http`: the server serves plain HTTP on
/// this machine and TLS would add nothing the kernel checks do not.
pub(crate) async fn resolve(url: &str) -> Result<Target, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if parsed.scheme() != "http" {
        return Err(format!(
            "`{url}`: only http:// is verified (a local server needs no TLS on loopback)"
        ));
    }
    let host = parsed.host_str().ok_or_else(|| format!("`{url}` has no host"))?;
    if parsed.username() != "" || parsed.password().is_some() {
        return Err(format!("`{url}` carries credentials; pass the API key separately"));
    }
    let port = parsed.port_or_known_default().unwrap_or(80);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let resolved: Vec<IpAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| format!("cannot resolve `{bare}`: {e}"))?
        .map(|s| s.ip())
        .collect();
    let first = *resolved.first().ok_or_else(|| format!("`{bare}` resolves to no address"))?;
    let path = parsed.path().trim_end_matches('/');
    let base_path = path.strip_suffix("/v1").unwrap_or(path).to_owned();
    let host_header = match parsed.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    Ok(Target { host_header, base_path, resolved, addr: SocketAddr::new(first, port) })
}

/// A response: status and body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Bytes,
}

/// One open HTTP/1.1 connection.
#[derive(Debug)]
pub(crate) struct Conn {
    sender: SendRequest<Full<Bytes>>,
    /// This side's address.
    pub local: SocketAddr,
    /// The server side's address.
    pub peer: SocketAddr,
    host_header: String,
    base_path: String,
    api_key: Option<String>,
    timeout: Duration,
}

impl Conn {
    /// Connects to `target.addr` and nothing else.
    pub async fn open(
        target: &Target,
        api_key: Option<String>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(target.addr))
            .await
            .map_err(|_| format!("connecting to {} timed out", target.addr))?
            .map_err(|e| format!("cannot connect to {}: {e}", target.addr))?;
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().map_err(|e| format!("local address: {e}"))?;
        let peer = stream.peer_addr().map_err(|e| format!("peer address: {e}"))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake with {peer}: {e}"))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("verifier connection closed: {e}");
            }
        });
        Ok(Self {
            sender,
            local,
            peer,
            host_header: target.host_header.clone(),
            base_path: target.base_path.clone(),
            api_key,
            timeout,
        })
    }

    /// Sends one request on this connection (`path` starts with `/v1/`).
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, String> {
        let uri = format!("{}{path}", self.base_path);
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(&uri)
            .header(hyper::header::HOST, &self.host_header)
            .header(hyper::header::ACCEPT, "application/json");
        if let Some(key) = &self.api_key {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {key}"));
        }
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| format!("{method} {uri}: {e}"))?;
        let what = format!("{method} {uri}");
        let timeout = self.timeout;
        let sender = &mut self.sender;
        let exchange = async {
            sender.ready().await.map_err(|e| format!("{what}: the connection closed: {e}"))?;
            let resp = sender.send_request(req).await.map_err(|e| format!("{what}: {e}"))?;
            let status = resp.status().as_u16();
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| format!("{what}: reading the body: {e}"))?
                .to_bytes();
            Ok::<_, String>(Reply { status, body })
        };
        let reply = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| format!("{what} timed out after {timeout:?}"))??;
        if (300..400).contains(&reply.status) {
            return Err(format!(
                "{what} answered a redirect ({}); redirects are not followed",
                reply.status
            ));
        }
        Ok(reply)
    }
}
