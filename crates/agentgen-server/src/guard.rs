//! Browser defences: which `Host` names, `Origin`s and content types a request may carry.
//!
//! A server on 127.0.0.1 is reachable from every web page the user opens. Three checks keep
//! pages out: the `Host` must name this server (a DNS-rebinding page's host names its own
//! domain), an `Origin` or `Sec-Fetch-Site: cross-site` other than the server's own is refused
//! unless CORS allows it, and a `POST` must be `application/json` (a cross-site form or
//! `text/plain` fetch is a "simple request" that browsers send without asking first).

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::ServeConfig;
use crate::error::ApiError;
use crate::state::AppState;

/// The names a `Host` header may give.
#[derive(Debug, Clone)]
pub(crate) struct AllowedHosts {
    names: HashSet<String>,
    /// Bound to every interface: any address of this machine is a valid `Host`.
    any_local_address: bool,
    port: u16,
}

impl AllowedHosts {
    /// The bound address, `localhost`, the loopback addresses, the configured host and the
    /// configured extra names; with an unspecified bind (`0.0.0.0`), every local address.
    pub(crate) fn new(config: &ServeConfig, local: SocketAddr) -> Self {
        let mut names: HashSet<String> =
            ["localhost", "127.0.0.1", "::1"].iter().map(|s| (*s).to_owned()).collect();
        names.insert(normalize(&config.host));
        names.insert(local.ip().to_string());
        names.extend(config.allowed_hosts.iter().map(|h| normalize(h)));
        let any_local_address = local.ip().is_unspecified();
        if any_local_address {
            names.insert(normalize(&crate::attest::hostname()));
        }
        Self { names, any_local_address, port: local.port() }
    }

    /// Whether a `Host` header value (`name[:port]`, `[v6]:port`) names this server.
    pub(crate) fn allows(&self, host_header: &str) -> bool {
        let name = normalize(host_name(host_header));
        if name.is_empty() {
            return false;
        }
        if self.names.contains(&name) {
            return true;
        }
        self.any_local_address
            && name.parse::<IpAddr>().is_ok_and(|ip| {
                if_addrs::get_if_addrs()
                    .map(|addrs| addrs.iter().any(|a| a.ip() == ip))
                    .unwrap_or(false)
            })
    }

    /// Whether an `Origin` (`http://host:port`) is this server itself.
    fn is_own_origin(&self, origin: &str) -> bool {
        let Ok(url) = url::Url::parse(origin) else { return false };
        url.scheme() == "http"
            && url.port_or_known_default() == Some(self.port)
            && url.host_str().is_some_and(|h| self.allows(h))
    }
}

/// Lower case, without brackets or a trailing dot.
fn normalize(host: &str) -> String {
    host.trim().trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_lowercase()
}

/// The name part of a `Host` header value.
fn host_name(value: &str) -> &str {
    let value = value.trim();
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match value.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => value,
    }
}

/// Whether a configured CORS origin is `*` or `scheme://host[:port]` with nothing after it.
pub(crate) fn valid_origin(origin: &str) -> bool {
    origin == "*"
        || url::Url::parse(origin).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.path() == "/"
                && u.query().is_none()
                && !origin.ends_with('/')
        })
}

/// The middleware: `Host`, then `Origin`/`Sec-Fetch-Site`, then `Content-Type` on `POST`.
pub(crate) async fn check_request(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    match refusal(&state, req.method(), req.headers()) {
        Some(error) => error.into_response(),
        None => next.run(req).await,
    }
}

fn refusal(state: &AppState, method: &Method, headers: &HeaderMap) -> Option<ApiError> {
    let hosts = state.allowed_hosts();
    if let Some(host) = headers.get(header::HOST) {
        let ok = host.to_str().is_ok_and(|h| hosts.allows(h));
        if !ok {
            return Some(
                ApiError::new(
                    StatusCode::MISDIRECTED_REQUEST,
                    "invalid_request_error",
                    "The Host header does not name this server (add the name to the server's \
                     allowed hosts to accept it).",
                )
                .with_code("host_not_allowed"),
            );
        }
    }
    let cors = &state.inner.cors_origins;
    let origin = headers.get(header::ORIGIN).map(|o| o.to_str().unwrap_or("null"));
    let allowed_by_cors = |o: &str| cors.iter().any(|c| c == "*" || c.eq_ignore_ascii_case(o));
    let cross_site = match origin {
        Some(o) => !hosts.is_own_origin(o) && !allowed_by_cors(o),
        None => {
            headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes() == b"cross-site")
                && !cors.iter().any(|c| c == "*")
        }
    };
    if cross_site {
        return Some(
            ApiError::new(
                StatusCode::FORBIDDEN,
                "invalid_request_error",
                "Cross-origin requests are refused unless the server allows the origin (CORS).",
            )
            .with_code("cross_origin_refused"),
        );
    }
    if method == Method::POST && !is_json(headers) {
        return Some(
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request_error",
                "Request bodies must be sent as `Content-Type: application/json`.",
            )
            .with_code("unsupported_media_type"),
        );
    }
    None
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(bind: &str) -> AllowedHosts {
        let config =
            ServeConfig { allowed_hosts: vec!["Box.Lan".into()], ..ServeConfig::default() };
        AllowedHosts::new(&config, bind.parse().unwrap())
    }

    #[test]
    fn host_names_the_bind_address_localhost_or_a_configured_name() {
        let h = hosts("127.0.0.1:8080");
        for ok in
            ["127.0.0.1:8080", "localhost", "LOCALHOST:1", "[::1]:8080", "box.lan.", "box.lan"]
        {
            assert!(h.allows(ok), "{ok}");
        }
        for bad in ["evil.example", "evil.example:8080", "127.0.0.1.evil.example", "", "[", "::"] {
            assert!(!h.allows(bad), "{bad}");
        }
    }

    #[test]
    fn own_origin_needs_the_same_port_and_scheme() {
        let h = hosts("127.0.0.1:8080");
        assert!(h.is_own_origin("http://127.0.0.1:8080"));
        assert!(h.is_own_origin("http://localhost:8080"));
        assert!(!h.is_own_origin("http://localhost:9999"));
        assert!(!h.is_own_origin("https://localhost:8080"));
        assert!(!h.is_own_origin("http://evil.example:8080"));
        assert!(!h.is_own_origin("null"));
    }

    #[test]
    fn configured_origins_must_be_bare_origins() {
        assert!(valid_origin("*"));
        assert!(valid_origin("https://app.example:8443"));
        assert!(!valid_origin("https://app.example/path"));
        assert!(!valid_origin("https://app.example/"));
        assert!(!valid_origin("ftp://app.example"));
        assert!(!valid_origin("app.example"));
    }
}
