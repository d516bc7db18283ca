//! The workloads: (a) one completion at several prompt lengths, (b) the agent team, (c) the HTTP
//! server under concurrent clients, and one streamed completion on any backend for the
//! side-by-side table (d, e). Each runs its warm-up first and leaves it out of the figures.

use std::sync::Arc;
use std::time::Instant;

use agentgen_core::{BackendError, ChatBackend, ChatRequest};
use agentgen_groq::{OpenAiBackend, OpenAiConfig};
use agentgen_server::{ServeConfig, ServeError, Server};
use tokio::sync::oneshot;

use crate::measure::{counting_request, stream_once, Sample};
use crate::report::{BackendRow, CompletionRow, HttpOverhead, ServerRow, TeamResult};
use crate::stats::{percentile_of, Stat};
use crate::team::{run_team, TeamRun};

/// Tokens the chat template, system prompt and instruction add around the filler text.
pub const PROMPT_OVERHEAD_TOKENS: usize = 72;

/// How much of everything to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Measured runs per figure.
    pub runs: usize,
    /// Warm-up runs per figure, not counted.
    pub warmup: usize,
    /// (a) prompt lengths, in tokens (approximate).
    pub prompt_lengths: Vec<usize>,
    /// (a) tokens generated per completion.
    pub gen_tokens: u32,
    /// (b) conversations measured (each is long: fewer than `runs` in quick mode).
    pub team_runs: usize,
    /// (b) messages per conversation.
    pub team_messages: usize,
    /// (b) most tokens per agent answer.
    pub team_max_tokens: u32,
    /// (c) concurrency levels.
    pub clients: Vec<usize>,
    /// (c) requests each client sends per run.
    pub requests_per_client: usize,
    /// (c, d, e) tokens generated per request.
    pub http_gen_tokens: u32,
    /// (c, d, e) prompt length per request.
    pub http_prompt_tokens: usize,
    /// (g) alternating in-process/HTTP pairs of one-token requests.
    pub overhead_pairs: usize,
    /// (g) tokens per streamed request in the in-process/HTTP throughput pairs.
    pub stream_tokens: u32,
    /// (h) concurrency levels of the head-to-head against `--compare` servers.
    pub versus_clients: Vec<usize>,
    /// (h) measured rounds per level (each round: both servers, alternating which goes first).
    pub versus_rounds: usize,
    /// (i) tokens generated per lookup-decoding run.
    pub lookup_tokens: u32,
}

impl Plan {
    /// The full plan, or the `--quick` one (a few minutes on two cores).
    pub fn new(quick: bool) -> Self {
        if quick {
            Self {
                runs: 2,
                warmup: 1,
                prompt_lengths: vec![64, 256],
                gen_tokens: 32,
                team_runs: 1,
                team_messages: 12,
                team_max_tokens: 24,
                clients: vec![1, 2, 4, 8],
                requests_per_client: 1,
                http_gen_tokens: 16,
                http_prompt_tokens: 48,
                overhead_pairs: 10,
                stream_tokens: 32,
                versus_clients: vec![1, 4],
                versus_rounds: 2,
                lookup_tokens: 96,
            }
        } else {
            Self {
                runs: 5,
                warmup: 1,
                prompt_lengths: vec![64, 128, 256, 512, 1024],
                gen_tokens: 128,
                team_runs: 3,
                team_messages: 12,
                team_max_tokens: 64,
                clients: vec![1, 2, 4, 8],
                requests_per_client: 2,
                http_gen_tokens: 64,
                http_prompt_tokens: 64,
                overhead_pairs: 40,
                stream_tokens: 128,
                versus_clients: vec![1, 4],
                versus_rounds: 6,
                lookup_tokens: 256,
            }
        }
    }
}

pub(crate) fn stat(samples: &[f64], what: &str) -> Result<Stat, BackendError> {
    Stat::of(samples).ok_or_else(|| BackendError::Internal(format!("{what}: no finite samples")))
}

fn median_u32(values: impl Iterator<Item = u32>) -> u32 {
    let v: Vec<f64> = values.map(f64::from).collect();
    percentile_of(&v, 50.0).round() as u32
}

/// (a) One prompt length: warm-up, then `runs` completions, each with a fresh prompt.
pub async fn completion_row(
    backend: &dyn ChatBackend,
    plan: &Plan,
    prompt_len: usize,
    mut tick: impl FnMut(),
) -> Result<CompletionRow, BackendError> {
    let mut samples: Vec<Sample> = Vec::new();
    for i in 0..plan.warmup + plan.runs {
        let filler = prompt_len.saturating_sub(PROMPT_OVERHEAD_TOKENS).max(1);
        let req =
            counting_request(&format!("a-{prompt_len}-{i}-{}", nonce()), filler, plan.gen_tokens);
        let s = stream_once(backend, req).await?;
        tick();
        if i >= plan.warmup {
            samples.push(s);
        }
    }
    let timings: Vec<_> = samples.iter().filter_map(|s| s.timings).collect();
    if timings.len() != samples.len() {
        return Err(BackendError::Internal("the local backend reported no timings".into()));
    }
    Ok(CompletionRow {
        prompt_tokens: median_u32(timings.iter().map(|t| t.prompt_n)),
        completion_tokens: median_u32(samples.iter().map(|s| s.completion_tokens)),
        ttft_ms: stat(&samples.iter().map(|s| s.ttft_ms).collect::<Vec<_>>(), "TTFT")?,
        prompt_tokens_per_s: stat(
            &timings.iter().map(|t| t.prompt_per_second).collect::<Vec<_>>(),
            "prompt tok/s",
        )?,
        decode_tokens_per_s: stat(
            &timings.iter().map(|t| t.predicted_per_second).collect::<Vec<_>>(),
            "decode tok/s",
        )?,
    })
}

/// (b) The team, `runs` times. `engine_evaluated` reads the engine's evaluated-token counter.
pub async fn team(
    backend: Arc<dyn ChatBackend>,
    plan: &Plan,
    engine_evaluated: Option<&dyn Fn() -> u64>,
    mut tick: impl FnMut(),
) -> Result<TeamResult, BackendError> {
    let mut runs: Vec<TeamRun> = Vec::new();
    let mut engine_counts = Vec::new();
    for i in 0..plan.team_runs {
        let before = engine_evaluated.map(|f| f());
        let run = run_team(
            backend.clone(),
            &format!("b-{i}-{}", nonce()),
            plan.team_messages,
            plan.team_max_tokens,
            &mut tick,
        )
        .await?;
        if let (Some(f), Some(b)) = (engine_evaluated, before) {
            engine_counts.push(f().saturating_sub(b));
        }
        runs.push(run);
    }
    let med = |f: &dyn Fn(&TeamRun) -> u64| -> u64 {
        let v: Vec<f64> = runs.iter().map(|r| f(r) as f64).collect();
        percentile_of(&v, 50.0).round() as u64
    };
    let prompt_tokens = med(&|r| r.prompt_tokens);
    let evaluated_tokens = med(&|r| r.evaluated_tokens());
    Ok(TeamResult {
        agents: 3,
        messages: plan.team_messages as u32,
        requests: med(&|r| u64::from(r.requests)) as u32,
        tool_calls: med(&|r| u64::from(r.tool_calls)) as u32,
        wall_s: stat(&runs.iter().map(|r| r.wall_s).collect::<Vec<_>>(), "team wall time")?,
        prompt_tokens,
        cached_tokens: med(&|r| r.cached_tokens),
        evaluated_tokens,
        evaluated_fraction: if prompt_tokens == 0 {
            0.0
        } else {
            evaluated_tokens as f64 / prompt_tokens as f64
        },
        engine_prompt_tokens_evaluated: (!engine_counts.is_empty()).then(|| {
            let v: Vec<f64> = engine_counts.iter().map(|c| *c as f64).collect();
            percentile_of(&v, 50.0).round() as u64
        }),
        completion_tokens: med(&|r| r.completion_tokens),
    })
}

/// The agentgen HTTP server running in this process on a loopback port.
#[derive(Debug)]
pub struct InProcessServer {
    /// `http://127.0.0.1:PORT/v1`.
    pub base_url: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl InProcessServer {
    /// Binds 127.0.0.1:0 and serves `backend` with room for `max_concurrent` generations.
    pub async fn start(
        backend: Arc<dyn ChatBackend>,
        max_concurrent: usize,
    ) -> Result<Self, ServeError> {
        let config = ServeConfig { max_concurrent, ..ServeConfig::new("127.0.0.1", 0) };
        let server = Server::bind(config, None).await?;
        let addr = server.local_addr()?;
        server.state().install_backend(backend)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Ok(Self { base_url: format!("http://{addr}/v1"), stop: Some(stop), task })
    }

    /// An OpenAI-compatible client of it, without retries.
    pub fn client(&self, model: &str) -> Result<OpenAiBackend, BackendError> {
        http_client(&self.base_url, model, None, 0)
    }

    /// Stops it and waits for it to finish.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result,
            Err(e) => Err(ServeError::Io(std::io::Error::other(e.to_string()))),
        }
    }
}

/// An OpenAI-compatible client with `retries` retries of transient failures (0: a failure
/// shows instead of being retried).
pub fn http_client(
    base_url: &str,
    model: &str,
    key: Option<String>,
    retries: u32,
) -> Result<OpenAiBackend, BackendError> {
    let mut config = OpenAiConfig::compatible(base_url, model).with_max_retries(retries);
    config.api_key = key;
    OpenAiBackend::new(config)
        .map_err(|e| BackendError::Internal(format!("client for {base_url}: {e}")))
}

/// What one round of concurrent clients did.
#[derive(Debug, Clone)]
pub struct Round {
    /// Every request of every client.
    pub samples: Vec<Sample>,
    /// From the first request sent to the last answer.
    pub wall_s: f64,
}

impl Round {
    /// Generated tokens per second over all clients.
    pub fn tokens_per_s(&self) -> f64 {
        let tokens: u32 = self.samples.iter().map(|s| s.completion_tokens).sum();
        if self.wall_s > 0.0 {
            f64::from(tokens) / self.wall_s
        } else {
            0.0
        }
    }
}

/// `clients` clients at once, each sending `requests_per_client` streamed requests one after
/// another. Prompts are tagged with `tag`, the client and the request: a new `tag` makes them
/// new to any prefix cache, and the same `tag` gives another server the very same prompts.
pub async fn client_round(
    client: &Arc<OpenAiBackend>,
    plan: &Plan,
    clients: usize,
    tag: &str,
) -> Result<Round, BackendError> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = client.clone();
        let (n, prompt, gen) =
            (plan.requests_per_client, plan.http_prompt_tokens, plan.http_gen_tokens);
        let tag = format!("{tag}-{c}");
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for k in 0..n {
                out.push(
                    stream_once(
                        client.as_ref(),
                        counting_request(&format!("{tag}-{k}"), prompt, gen),
                    )
                    .await?,
                );
            }
            Ok::<_, BackendError>(out)
        }));
    }
    let mut samples = Vec::new();
    for t in tasks {
        let done = t.await.map_err(|e| BackendError::Internal(format!("client task: {e}")))?;
        samples.extend(done?);
    }
    Ok(Round { samples, wall_s: start.elapsed().as_secs_f64() })
}

/// (c) One concurrency level: warm-up, then `runs` rounds of [`client_round`].
pub async fn server_level(
    client: Arc<OpenAiBackend>,
    plan: &Plan,
    clients: usize,
    mut tick: impl FnMut(),
) -> Result<ServerRow, BackendError> {
    let mut aggregate = Vec::new();
    let (mut p50, mut p95, mut ttft) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..plan.warmup + plan.runs {
        let tag = format!("c-{clients}-{round}-{}", nonce());
        let r = client_round(&client, plan, clients, &tag).await?;
        tick();
        if round < plan.warmup {
            continue;
        }
        aggregate.push(r.tokens_per_s());
        let lat: Vec<f64> = r.samples.iter().map(|s| s.latency_ms).collect();
        p50.push(percentile_of(&lat, 50.0));
        p95.push(percentile_of(&lat, 95.0));
        ttft.push(percentile_of(&r.samples.iter().map(|s| s.ttft_ms).collect::<Vec<_>>(), 50.0));
    }
    Ok(ServerRow {
        clients,
        requests: clients * plan.requests_per_client,
        aggregate_tokens_per_s: stat(&aggregate, "aggregate tok/s")?,
        latency_p50_ms: stat(&p50, "p50")?,
        latency_p95_ms: stat(&p95, "p95")?,
        ttft_p50_ms: stat(&ttft, "TTFT p50")?,
    })
}

/// (d, e) One streamed completion on a backend: warm-up, then `runs` measured ones.
pub async fn backend_row(
    name: &str,
    model: &str,
    endpoint: Option<String>,
    backend: &dyn ChatBackend,
    plan: &Plan,
    mut tick: impl FnMut(),
) -> Result<BackendRow, BackendError> {
    let mut samples = Vec::new();
    for i in 0..plan.warmup + plan.runs {
        let req = counting_request(
            &format!("d-{i}-{}", nonce()),
            plan.http_prompt_tokens,
            plan.http_gen_tokens,
        );
        let s = stream_once(backend, req).await?;
        tick();
        if i >= plan.warmup {
            samples.push(s);
        }
    }
    Ok(BackendRow {
        name: name.into(),
        model: model.into(),
        endpoint,
        skipped: None,
        ttft_ms: Some(stat(&samples.iter().map(|s| s.ttft_ms).collect::<Vec<_>>(), "TTFT")?),
        decode_tokens_per_s: Some(stat(
            &samples.iter().map(|s| s.decode_tokens_per_s).collect::<Vec<_>>(),
            "decode",
        )?),
        latency_ms: Some(stat(
            &samples.iter().map(|s| s.latency_ms).collect::<Vec<_>>(),
            "latency",
        )?),
        completion_tokens: Some(median_u32(samples.iter().map(|s| s.completion_tokens))),
    })
}

/// (g) The same requests in-process and through the server, in pairs whose order alternates so
/// that drift in the machine's speed falls on both sides. Latency: a one-token, non-streamed
/// request whose whole prompt is cached, which the local engine answers from the logits it kept
/// for that prompt without a model step, so the figure is the path around the engine.
/// Each request's time outside the engine (wall time minus the engine's own timings, from
/// accepting the job to its last token) takes the model's run-to-run jitter out of the
/// difference. Throughput: streamed completions of `stream_tokens` tokens, decode speed on the
/// client.
pub async fn http_overhead(
    in_process: &dyn ChatBackend,
    http: &dyn ChatBackend,
    plan: &Plan,
    mut tick: impl FnMut(),
) -> Result<HttpOverhead, BackendError> {
    let tag = format!("g-{}", nonce());
    let one_token = counting_request(&tag, plan.http_prompt_tokens, 1);
    let timed = |backend| one_token_ms(backend, one_token.clone());
    // Warm-up: both paths, and the prompt into the prefix cache.
    timed(in_process).await?;
    timed(http).await?;
    let (mut local, mut remote) = (Vec::new(), Vec::new());
    for i in 0..plan.overhead_pairs {
        let (l, h) = if i % 2 == 0 {
            let l = timed(in_process).await?;
            (l, timed(http).await?)
        } else {
            let h = timed(http).await?;
            (timed(in_process).await?, h)
        };
        local.push(l);
        remote.push(h);
    }
    tick();
    let wall = |v: &[OneToken]| v.iter().map(|t| t.wall_ms).collect::<Vec<_>>();
    let outside = |v: &[OneToken]| v.iter().map(OneToken::outside_ms).collect::<Vec<_>>();
    let diff = |f: &dyn Fn(&OneToken) -> f64| {
        local.iter().zip(&remote).map(|(l, h)| f(h) - f(l)).collect::<Vec<_>>()
    };

    // Both sides of a pair get the same prompt, so they generate the same tokens (greedy); the
    // second one finds the prompt cached, which changes its first token, not its decode speed.
    let (mut local_tps, mut http_tps, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..plan.warmup + plan.runs {
        let req =
            counting_request(&format!("{tag}-{i}"), plan.http_prompt_tokens, plan.stream_tokens);
        let (l, h) = if i % 2 == 0 {
            let l = stream_once(in_process, req.clone()).await?;
            (l, stream_once(http, req).await?)
        } else {
            let h = stream_once(http, req.clone()).await?;
            (stream_once(in_process, req).await?, h)
        };
        if i >= plan.warmup {
            local_tps.push(l.decode_tokens_per_s);
            http_tps.push(h.decode_tokens_per_s);
            if l.decode_tokens_per_s > 0.0 {
                ratios.push(h.decode_tokens_per_s / l.decode_tokens_per_s);
            }
        }
    }
    tick();
    let stream_in_process_tokens_per_s = stat(&local_tps, "in-process stream")?;
    let stream_http_tokens_per_s = stat(&http_tps, "HTTP stream")?;
    Ok(HttpOverhead {
        pairs: plan.overhead_pairs,
        in_process_ms: stat(&wall(&local), "in-process latency")?,
        http_ms: stat(&wall(&remote), "HTTP latency")?,
        overhead_ms: stat(&diff(&|t| t.wall_ms), "overhead")?,
        in_process_outside_engine_ms: stat(&outside(&local), "in-process outside the engine")?,
        http_outside_engine_ms: stat(&outside(&remote), "HTTP outside the engine")?,
        overhead_outside_engine_ms: stat(
            &diff(&OneToken::outside_ms),
            "overhead outside the engine",
        )?,
        stream_tokens: plan.stream_tokens,
        stream_ratio: stat(&ratios, "HTTP/in-process stream")?,
        stream_in_process_tokens_per_s,
        stream_http_tokens_per_s,
    })
}

/// One timed one-token request.
#[derive(Debug, Clone, Copy)]
struct OneToken {
    /// Client side, from the call to the answer.
    wall_ms: f64,
    /// The engine's own time: from accepting the job to its last token.
    engine_ms: f64,
}

impl OneToken {
    fn outside_ms(&self) -> f64 {
        self.wall_ms - self.engine_ms
    }
}

/// One non-streamed request that must generate something, timed on both sides.
async fn one_token_ms(
    backend: &dyn ChatBackend,
    req: ChatRequest,
) -> Result<OneToken, BackendError> {
    let start = Instant::now();
    let resp = backend.complete(req).await?;
    let wall_ms = start.elapsed().as_secs_f64() * 1e3;
    if resp.usage.completion_tokens == 0 {
        return Err(BackendError::Internal("a one-token request generated nothing".into()));
    }
    let t = resp.timings.ok_or_else(|| {
        BackendError::Internal(format!("{} reported no timings", backend.info().name))
    })?;
    Ok(OneToken { wall_ms, engine_ms: t.time_to_first_token_ms + t.predicted_ms })
}

/// A per-process tag so prompts never repeat across runs of the benchmark either.
pub fn nonce() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    format!("{:x}{:x}", t % 0xFFFF_FFFF, COUNTER.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_plan_is_smaller_than_full() {
        let (q, f) = (Plan::new(true), Plan::new(false));
        assert!(q.runs < f.runs && q.gen_tokens < f.gen_tokens);
        assert_eq!(q.clients, [1, 2, 4, 8]);
        assert!(f.prompt_lengths.contains(&512), "the full plan must give a pp512 figure");
        assert!(f.gen_tokens >= 128, "the full plan must give a tg128 figure");
    }

    #[test]
    fn nonces_differ() {
        assert_ne!(nonce(), nonce());
    }
}
