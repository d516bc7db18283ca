//! [`verify_local`]: checks from outside that a server's model runs on this machine, believing
//! nothing the server says about itself that the kernel can tell instead.
//!
//! 1. `address`: the URL's host is resolved **once**; every address must be loopback or one of
//!    this machine's; nothing is sent otherwise (no key, no request).
//! 2. `connection`: one TCP connection to that one address; every request goes over it, no
//!    redirects are followed.
//! 3. `attestation`, `locality`, `remote_backend`, `hostname`: what `GET /v1/locality` claims.
//! 4. `socket_owner`: the process holding the server end of *this* connection, from the
//!    kernel (`/proc/net/tcp{,6}` 4-tuple → socket inode → `/proc/*/fd`); the reported pid is
//!    only compared with it. Every later check inspects that process, not the reported one.
//! 5. `executable`: its `/proc/PID/exe` and that file's sha256.
//! 6. `model_file`, `model_hash`: it maps the GGUF (`/proc/PID/maps`, matched by device and
//!    inode to the file the verifier opens; regular files only, size-capped), and the file,
//!    streamed through SHA-256, matches the attested hash.
//! 7. `network_seal`: the kernel shows the process sealed: a seccomp filter (`/proc/PID/status`)
//!    or a network namespace of its own with only `lo` (`/proc/PID/ns/net`, `/proc/PID/net/dev`).
//! 8. `no_outbound`: it holds no socket connected off this machine; checked before and after
//!    `challenge`, a fresh random prompt answered with greedy decoding on the same connection,
//!    and `socket_owner` is checked again after it.
//! 9. `recompute` (optional): the verifier computes the challenge's greedy answer itself from the
//!    verified GGUF and compares.
//!
//! Anything that cannot be read is a failure, never a skip.

use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::attest::{hostname, Attestation};
use crate::verify_conn::{resolve, Conn, Target};
use crate::verify_kernel::{self as kernel, Inspected};

/// The answer to the challenge, as [`Recompute`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeAnswer {
    /// The text generated.
    pub text: String,
    /// How many tokens it took.
    pub completion_tokens: u32,
}

/// What [`Recompute`] is asked to compute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecomputeJob {
    /// The GGUF the verifier checked (mapped by the server, hash matched).
    pub model_path: PathBuf,
    /// The challenge prompt (one user message).
    pub prompt: String,
    /// Most tokens to generate; decoding is greedy (temperature 0).
    pub max_tokens: u32,
}

/// The future a [`Recompute`] returns.
pub type RecomputeFuture = Pin<Box<dyn Future<Output = Result<ChallengeAnswer, String>> + Send>>;

/// Computes the challenge's greedy answer in the verifier's own process (e.g. with
/// `agentgen-local`), for the `recompute` check.
#[derive(Clone)]
pub struct Recompute(Arc<dyn Fn(RecomputeJob) -> RecomputeFuture + Send + Sync>);

impl Recompute {
    /// Wraps a function.
    pub fn new(f: impl Fn(RecomputeJob) -> RecomputeFuture + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }
}

impl std::fmt::Debug for Recompute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recompute(..)")
    }
}

/// Options for [`verify_local_with`].
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// API key, when the server wants one. Sent only once the address is known to be local.
    pub api_key: Option<String>,
    /// Time allowed for each HTTP request (the challenge runs the model).
    pub timeout: Duration,
    /// Largest model file hashed; a larger one fails `model_file`.
    pub max_model_bytes: u64,
    /// Tokens the challenge asks for.
    pub challenge_tokens: u32,
    /// Recompute the challenge's answer from the verified GGUF and compare.
    pub recompute: Option<Recompute>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            api_key: None,
            timeout: Duration::from_secs(120),
            max_model_bytes: 256 << 30,
            challenge_tokens: 16,
            recompute: None,
        }
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
}

/// One check and its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Short name: `address`, `connection`, `attestation`, `locality`, `remote_backend`,
    /// `hostname`, `socket_owner`, `executable`, `model_file`, `model_hash`, `network_seal`,
    /// `no_outbound`, `challenge`, `socket_owner_after`, `no_outbound_after`, `recompute`.
    pub name: &'static str,
    /// How it came out.
    pub outcome: Outcome,
    /// The evidence: what was seen, and where.
    pub detail: String,
}

impl Check {
    pub(crate) fn new(name: &'static str, ok: bool, detail: impl Into<String>) -> Self {
        Self {
            name,
            outcome: if ok { Outcome::Pass } else { Outcome::Fail },
            detail: detail.into(),
        }
    }

    pub(crate) fn fail(name: &'static str, detail: impl Into<String>) -> Self {
        Self::new(name, false, detail)
    }

    /// Whether it passed.
    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Pass
    }
}

/// The verdict of [`verify_local`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    /// Whether every check passed.
    pub pass: bool,
    /// Why it failed: `name: detail` of each failed check.
    pub reasons: Vec<String>,
    /// Every check run, in order.
    pub checks: Vec<Check>,
    /// The attestation read, when the server gave one.
    pub attestation: Option<Attestation>,
    /// The process the kernel says serves the connection, when found.
    pub server_pid: Option<u32>,
    /// How long the whole verification took, in milliseconds.
    pub elapsed_ms: u64,
}

impl VerifyReport {
    fn new(
        checks: Vec<Check>,
        attestation: Option<Attestation>,
        server_pid: Option<u32>,
        started: Instant,
    ) -> Self {
        let reasons: Vec<String> = checks
            .iter()
            .filter(|c| !c.passed())
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        Self {
            pass: reasons.is_empty() && !checks.is_empty(),
            reasons,
            checks,
            attestation,
            server_pid,
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The check of this name, if it ran.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}

/// Verifies the server at `url` (its base, with or without `/v1`) runs its model here.
pub async fn verify_local(url: &str) -> VerifyReport {
    verify_local_with(url, &VerifyOptions::default()).await
}

/// [`verify_local`] with options.
pub async fn verify_local_with(url: &str, opts: &VerifyOptions) -> VerifyReport {
    let started = Instant::now();
    let mut checks = Vec::new();
    let target = match resolve(url).await {
        Ok(t) => t,
        Err(e) => {
            checks.push(Check::fail("address", e));
            return VerifyReport::new(checks, None, None, started);
        }
    };
    let address = address_check(&target);
    let address_ok = address.passed();
    checks.push(address);
    if !address_ok {
        return VerifyReport::new(checks, None, None, started);
    }
    let mut conn = match Conn::open(&target, opts.api_key.clone(), opts.timeout).await {
        Ok(c) => {
            checks.push(Check::new(
                "connection",
                true,
                format!("connected {} -> {} (one connection for every request)", c.local, c.peer),
            ));
            c
        }
        Err(e) => {
            checks.push(Check::fail("connection", e));
            return VerifyReport::new(checks, None, None, started);
        }
    };

    let attestation = match fetch_attestation(&mut conn).await {
        Ok(a) => {
            checks.push(Check::new("attestation", true, "GET /v1/locality answered"));
            Some(a)
        }
        Err(e) => {
            checks.push(Check::fail("attestation", e));
            None
        }
    };
    if let Some(a) = &attestation {
        checks.extend(claim_checks(a));
    }

    // From here on, the kernel: which process holds the server end of this connection.
    let (local, peer) = (conn.local, conn.peer);
    let reported = attestation.as_ref().map(|a| a.pid);
    let (owner_check, owner) = blocking(move || kernel::socket_owner(local, peer, reported)).await;
    checks.push(owner_check);
    let Some(pid) = owner else {
        return VerifyReport::new(checks, attestation, None, started);
    };
    let claim = attestation.clone();
    let max = opts.max_model_bytes;
    let inspected: Inspected = blocking(move || kernel::inspect(pid, claim.as_ref(), max)).await;
    let model_path = inspected.model_path.clone();
    checks.extend(inspected.checks);

    let challenge = challenge(&mut conn, attestation.as_ref(), opts.challenge_tokens).await;
    checks.push(challenge.check.clone());
    let (owner_after, _) = blocking(move || kernel::socket_owner(local, peer, Some(pid))).await;
    checks.push(Check { name: "socket_owner_after", ..owner_after });
    let after = blocking(move || kernel::no_outbound(pid)).await;
    checks.push(Check { name: "no_outbound_after", ..after });

    if let Some(recompute) = &opts.recompute {
        checks
            .push(recompute_check(recompute, model_path, &challenge, opts.challenge_tokens).await);
    }
    VerifyReport::new(checks, attestation, Some(pid), started)
}

/// Runs blocking `/proc` work and hashing off the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

fn address_check(target: &Target) -> Check {
    let own: Vec<IpAddr> = if_addrs::get_if_addrs()
        .map(|v| v.into_iter().map(|i| i.ip()).collect())
        .unwrap_or_default();
    let foreign: Vec<String> = target
        .resolved
        .iter()
        .filter(|ip| !ip.is_loopback() && !own.contains(ip))
        .map(ToString::to_string)
        .collect();
    let list = target.resolved.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    if foreign.is_empty() {
        Check::new(
            "address",
            true,
            format!("resolved once to {list}, all on this machine; using {}", target.addr),
        )
    } else {
        Check::fail(
            "address",
            format!("resolves to {} not on this machine; nothing was sent", foreign.join(", ")),
        )
    }
}

async fn fetch_attestation(conn: &mut Conn) -> Result<Attestation, String> {
    let reply = conn.request("GET", "/v1/locality", None).await?;
    let text = String::from_utf8_lossy(&reply.body);
    if reply.status != 200 {
        return Err(format!("GET /v1/locality answered {}: {}", reply.status, text.trim()));
    }
    serde_json::from_str(&text)
        .map_err(|e| format!("GET /v1/locality answered no attestation: {e}"))
}

fn claim_checks(a: &Attestation) -> Vec<Check> {
    let here = hostname();
    vec![
        Check::new(
            "locality",
            a.locality.is_local(),
            format!("backend `{}` reports {:?}", a.backend, a.locality),
        ),
        Check::new(
            "remote_backend",
            !a.remote_backend_configured,
            if a.remote_backend_configured {
                "a remote backend is configured"
            } else {
                "no remote backend configured"
            },
        ),
        Check::new(
            "hostname",
            a.hostname == here,
            format!("server says `{}`, this machine is `{here}`", a.hostname),
        ),
    ]
}

/// The challenge sent and what came back.
#[derive(Debug, Clone)]
struct Challenge {
    check: Check,
    prompt: String,
    answer: Option<ChallengeAnswer>,
}

async fn challenge(conn: &mut Conn, attestation: Option<&Attestation>, tokens: u32) -> Challenge {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let nonce = &nonce[..12];
    let prompt = format!("Repeat this code exactly, then stop: {nonce}");
    let model = attestation.map(|a| a.model.clone()).unwrap_or_else(|| "default".into());
    let body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0,
        "max_tokens": tokens,
        "stream": false,
    });
    let started = Instant::now();
    let result =
        conn.request("POST", "/v1/chat/completions", Some(body.to_string().into_bytes())).await;
    let fail = |detail: String| Challenge {
        check: Check::fail("challenge", detail),
        prompt: prompt.clone(),
        answer: None,
    };
    let reply = match result {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let text = String::from_utf8_lossy(&reply.body);
    if reply.status != 200 {
        return fail(format!("the nonce prompt was answered {}: {}", reply.status, text.trim()));
    }
    let v: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return fail(format!("the answer is not JSON: {e}")),
    };
    let content = v["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_owned();
    let completion_tokens =
        v["usage"]["completion_tokens"].as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
    if content.is_empty() || completion_tokens == 0 {
        return fail(format!("the nonce prompt got an empty answer: {text}"));
    }
    Challenge {
        check: Check::new(
            "challenge",
            true,
            format!(
                "nonce {nonce} answered greedily in {} ms, {completion_tokens} tokens: {:?}",
                started.elapsed().as_millis(),
                content
            ),
        ),
        prompt,
        answer: Some(ChallengeAnswer { text: content, completion_tokens }),
    }
}

async fn recompute_check(
    recompute: &Recompute,
    model_path: Option<PathBuf>,
    challenge: &Challenge,
    max_tokens: u32,
) -> Check {
    let Some(model_path) = model_path else {
        return Check::fail("recompute", "no verified model file to recompute the answer with");
    };
    let Some(served) = &challenge.answer else {
        return Check::fail("recompute", "the server gave no answer to compare");
    };
    let job = RecomputeJob {
        model_path: model_path.clone(),
        prompt: challenge.prompt.clone(),
        max_tokens,
    };
    let started = Instant::now();
    let mine = match (recompute.0)(job).await {
        Ok(a) => a,
        Err(e) => {
            return Check::fail(
                "recompute",
                format!("cannot compute the answer from {}: {e}", model_path.display()),
            )
        }
    };
    let ms = started.elapsed().as_millis();
    if mine == *served {
        Check::new(
            "recompute",
            true,
            format!(
                "{} computed here gives the same {} tokens ({ms} ms): this model produced the answer",
                model_path.display(),
                mine.completion_tokens
            ),
        )
    } else {
        Check::fail(
            "recompute",
            format!(
                "{} computed here gives {:?} ({} tokens), the server answered {:?} ({} tokens)",
                model_path.display(),
                mine.text,
                mine.completion_tokens,
                served.text,
                served.completion_tokens
            ),
        )
    }
}
