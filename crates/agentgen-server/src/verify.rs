//! [`verify_local`]: checks from the client's side that a server's model runs on this machine.
//!
//! It resolves the URL's host (every address must be loopback or one of this machine's
//! interfaces), reads `GET /v1/locality`, checks the locality, the host name, that the process
//! exists here and (on Linux) owns the listening socket, and re-hashes the attested GGUF on disk.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::attest::{hash_file, hostname, Attestation};

/// Options for [`verify_local_with`].
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// API key, when the server wants one.
    pub api_key: Option<String>,
    /// Time allowed for the HTTP request. A server that has just started answers once it has
    /// hashed its model file, which takes seconds for a large GGUF.
    pub timeout: Duration,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self { api_key: None, timeout: Duration::from_secs(120) }
    }
}

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Passed.
    Pass,
    /// Failed: the server is not shown to be local.
    Fail,
    /// Could not be run here (another OS, no permission); does not fail the report.
    Skip,
}

/// One check and its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Short name: `address`, `attestation`, `locality`, `remote_backend`, `hostname`,
    /// `process`, `socket`, `model_file`.
    pub name: &'static str,
    /// How it came out.
    pub outcome: Outcome,
    /// What was seen.
    pub detail: String,
}

/// The verdict of [`verify_local`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    /// Whether every check passed (skipped ones aside).
    pub pass: bool,
    /// Why it failed: the detail of each failed check.
    pub reasons: Vec<String>,
    /// Every check run.
    pub checks: Vec<Check>,
    /// The attestation read, when the server gave one.
    pub attestation: Option<Attestation>,
}

impl VerifyReport {
    fn from_checks(checks: Vec<Check>, attestation: Option<Attestation>) -> Self {
        let reasons: Vec<String> = checks
            .iter()
            .filter(|c| c.outcome == Outcome::Fail)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        Self { pass: reasons.is_empty(), reasons, checks, attestation }
    }
}

/// Verifies the server at `url` (its base, with or without `/v1`) runs its model here.
pub async fn verify_local(url: &str) -> VerifyReport {
    verify_local_with(url, &VerifyOptions::default()).await
}

fn check(name: &'static str, ok: bool, detail: impl Into<String>) -> Check {
    Check { name, outcome: if ok { Outcome::Pass } else { Outcome::Fail }, detail: detail.into() }
}

/// [`verify_local`] with an API key and a timeout.
pub async fn verify_local_with(url: &str, opts: &VerifyOptions) -> VerifyReport {
    let mut checks = Vec::new();
    let parsed = match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
        Ok(u) => {
            checks.push(check(
                "address",
                false,
                format!("`{u}` is not an http(s) URL with a host"),
            ));
            return VerifyReport::from_checks(checks, None);
        }
        Err(e) => {
            checks.push(check("address", false, format!("`{url}` is not a URL: {e}")));
            return VerifyReport::from_checks(checks, None);
        }
    };
    let port = parsed.port_or_known_default().unwrap_or(80);
    checks.push(address_check(&parsed, port).await);

    let base = parsed.as_str().trim_end_matches('/');
    let base = base.strip_suffix("/v1").unwrap_or(base);
    let attestation = match fetch(&format!("{base}/v1/locality"), opts).await {
        Ok(a) => {
            checks.push(check("attestation", true, "GET /v1/locality answered"));
            a
        }
        Err(e) => {
            checks.push(check("attestation", false, e));
            return VerifyReport::from_checks(checks, None);
        }
    };
    checks.push(check(
        "locality",
        attestation.locality.is_local(),
        format!("backend `{}` reports {:?}", attestation.backend, attestation.locality),
    ));
    checks.push(check(
        "remote_backend",
        !attestation.remote_backend_configured,
        if attestation.remote_backend_configured {
            "a remote backend is configured"
        } else {
            "no remote backend configured"
        },
    ));
    let here = hostname();
    checks.push(check(
        "hostname",
        attestation.hostname == here,
        format!("server says `{}`, this machine is `{here}`", attestation.hostname),
    ));
    checks.push(process_check(attestation.pid));
    checks.push(socket_check(attestation.pid, port));
    checks.push(model_check(&attestation).await);
    VerifyReport::from_checks(checks, Some(attestation))
}

async fn address_check(url: &url::Url, port: u16) -> Check {
    let host =
        url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
    let addrs: Vec<IpAddr> = match tokio::net::lookup_host((host.as_str(), port)).await {
        Ok(a) => a.map(|s| s.ip()).collect(),
        Err(e) => return check("address", false, format!("cannot resolve `{host}`: {e}")),
    };
    if addrs.is_empty() {
        return check("address", false, format!("`{host}` resolves to no address"));
    }
    let own: HashSet<IpAddr> = if_addrs::get_if_addrs()
        .map(|v| v.into_iter().map(|i| i.ip()).collect())
        .unwrap_or_default();
    let foreign: Vec<String> = addrs
        .iter()
        .filter(|ip| !ip.is_loopback() && !own.contains(ip))
        .map(ToString::to_string)
        .collect();
    let list = addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    if foreign.is_empty() {
        check("address", true, format!("`{host}` resolves to {list}, all on this machine"))
    } else {
        check(
            "address",
            false,
            format!("`{host}` resolves to {} not on this machine", foreign.join(", ")),
        )
    }
}

async fn fetch(url: &str, opts: &VerifyOptions) -> Result<Attestation, String> {
    // No proxy: a proxy would answer for another machine.
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(opts.timeout)
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let mut req = client.get(url);
    if let Some(key) = &opts.api_key {
        req = req.bearer_auth(key);
    }
    let resp = req.send().await.map_err(|e| {
        if e.is_timeout() {
            format!(
                "GET {url} timed out after {:?} (is the server still hashing its model?)",
                opts.timeout
            )
        } else {
            format!("GET {url} failed: {e}")
        }
    })?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| format!("GET {url}: cannot read the body: {e}"))?;
    if !status.is_success() {
        return Err(format!("GET {url} answered {status}: {text}"));
    }
    serde_json::from_str(&text).map_err(|e| format!("GET {url} answered no attestation: {e}"))
}

fn process_check(pid: u32) -> Check {
    if !Path::new("/proc/self").exists() {
        return Check {
            name: "process",
            outcome: Outcome::Skip,
            detail: "no /proc on this system".into(),
        };
    }
    let exists = Path::new(&format!("/proc/{pid}")).exists();
    check(
        "process",
        exists,
        if exists {
            format!("process {pid} runs on this machine")
        } else {
            format!("no process {pid} on this machine")
        },
    )
}

/// Inodes of sockets listening on `port`, from `/proc/net/tcp{,6}`.
fn listening_inodes(port: u16) -> HashSet<u64> {
    let mut inodes = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 || cols[3] != "0A" {
                continue;
            }
            let local_port =
                cols[1].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) {
                if let Ok(inode) = cols[9].parse() {
                    inodes.insert(inode);
                }
            }
        }
    }
    inodes
}

fn socket_check(pid: u32, port: u16) -> Check {
    let skip = |detail: String| Check { name: "socket", outcome: Outcome::Skip, detail };
    if !Path::new("/proc/net/tcp").exists() {
        return skip("no /proc/net/tcp on this system".into());
    }
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return check("socket", false, format!("nothing on this machine listens on port {port}"));
    }
    let dir = match std::fs::read_dir(format!("/proc/{pid}/fd")) {
        Ok(d) => d,
        Err(e) => return skip(format!("cannot inspect process {pid}'s sockets: {e}")),
    };
    let owns = dir.flatten().any(|entry| {
        std::fs::read_link(entry.path())
            .ok()
            .and_then(|t| {
                let t = t.to_string_lossy().into_owned();
                t.strip_prefix("socket:[")
                    .and_then(|s| s.strip_suffix(']'))
                    .and_then(|s| s.parse::<u64>().ok())
            })
            .is_some_and(|inode| inodes.contains(&inode))
    });
    check(
        "socket",
        owns,
        if owns {
            format!("process {pid} owns the socket listening on port {port}")
        } else {
            format!("port {port} is served by a process other than {pid}")
        },
    )
}

async fn model_check(a: &Attestation) -> Check {
    let Some(path) = a.model_path.clone() else {
        return check("model_file", false, "the server names no model file");
    };
    let (Some(size), Some(sha)) = (a.model_size, a.model_sha256.clone()) else {
        let why = a.model_hash_error.clone().unwrap_or_else(|| "no size or sha256 attested".into());
        return check("model_file", false, format!("{path}: {why}"));
    };
    let p = path.clone();
    let digest = match tokio::task::spawn_blocking(move || hash_file(Path::new(&p))).await {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => {
            return check("model_file", false, format!("cannot read {path} on this machine: {e}"))
        }
        Err(e) => return check("model_file", false, format!("hashing {path} failed: {e}")),
    };
    if digest.size != size {
        return check(
            "model_file",
            false,
            format!("{path} is {} bytes on disk, the server attests {size}", digest.size),
        );
    }
    if !digest.sha256.eq_ignore_ascii_case(&sha) {
        return check(
            "model_file",
            false,
            format!("{path} hashes to {} on disk, the server attests {sha}", digest.sha256),
        );
    }
    check("model_file", true, format!("{path}: {size} bytes, sha256 {sha} matches"))
}
