//! `agentgen-bench` (run through `cargo xtask bench`): agentgen's backends side by side on this
//! machine. Prints tables (a progress bar while it runs), writes `results.json` and PNG charts.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use agentgen_core::ChatBackend;
use agentgen_groq::{OpenAiBackend, OpenAiConfig, GROQ_API_KEY_VAR};
use agentgen_local::engine::{KvLayout, LocalBackend, LocalConfig};

/// The draft limit workload (i) runs lookup decoding with.
const LOOKUP_MAX_DRAFT_ON: usize = 16;
use agentgen_models::catalog::Catalog;
use benches::llama_bench;
use benches::machine::Machine;
use benches::report::{
    BackendRow, MemoryUse, ModelThroughput, Results, RunConfig, Section, ServerSeries,
};
use benches::versus::{self, VersusSeries};
use benches::workloads::{self, InProcessServer, Plan};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

/// Benchmark agentgen's backends on this machine.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask bench")]
struct Args {
    /// Small sizes and two runs per figure: a few minutes on two cores.
    #[arg(long)]
    quick: bool,
    /// The GGUF to run (default: $AGENTGEN_TEST_MODEL, else the default model in the cache).
    #[arg(long, value_name = "PATH")]
    model: Option<PathBuf>,
    /// Inference threads (default: the physical cores), also given to llama-bench.
    #[arg(long)]
    threads: Option<usize>,
    /// The engine's parallel slots, also the server's concurrent generations.
    #[arg(long, default_value_t = 4)]
    slots: usize,
    /// How the slots share the KV cache: per-slot (a stream each) or shared (one pool).
    #[arg(long, value_name = "LAYOUT", default_value = "per-slot")]
    kv_layout: KvLayout,
    /// Measured runs per figure (default: 2 with --quick, else 5).
    #[arg(long)]
    runs: Option<usize>,
    /// Messages per agent-team conversation (default 12).
    #[arg(long, value_name = "N")]
    team_messages: Option<usize>,
    /// Another OpenAI-compatible base URL to compare (llama-server, Ollama, vLLM…), e.g.
    /// http://127.0.0.1:8081/v1. Repeatable.
    #[arg(long, value_name = "URL")]
    compare: Vec<String>,
    /// The model id to ask --compare servers for (default: the first one they list).
    #[arg(long, value_name = "ID")]
    compare_model: Option<String>,
    /// Bearer key for --compare servers.
    #[arg(long, value_name = "KEY", env = "AGENTGEN_COMPARE_API_KEY", hide_env_values = true)]
    compare_key: Option<String>,
    /// Groq model for the Groq column (runs only when GROQ_API_KEY is set).
    #[arg(long, default_value = "openai/gpt-oss-20b")]
    groq_model: String,
    /// llama.cpp's llama-bench binary (default: llama-bench on PATH, else skipped).
    #[arg(long, value_name = "PATH")]
    llama_bench: Option<PathBuf>,
    /// Output folder (default: <workspace>/target/bench).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Run only these workloads, e.g. `--only g,h` (letters as in the report: a completion,
    /// b team, c server, d backends side by side, e compare servers side by side, f llama-bench,
    /// g HTTP overhead, h head to head with --compare servers, i lookup decoding, j the team
    /// natively against AutoGen-Python on serve and on --compare servers). Default: all.
    #[arg(long, value_name = "LETTERS", value_delimiter = ',', value_parser = parse_section)]
    only: Vec<char>,
    /// Python with autogen-agentchat and autogen-ext[openai], for (j) (default: skipped).
    #[arg(long, value_name = "PATH", env = "AGENTGEN_AUTOGEN_PYTHON")]
    autogen_python: Option<PathBuf>,
}

fn parse_section(s: &str) -> Result<char, String> {
    match s.trim() {
        one if one.len() == 1 && "abcdefghij".contains(one) => {
            Ok(one.chars().next().unwrap_or('a'))
        }
        other => Err(format!("unknown workload `{other}` (expected one of a b c d e f g h i j)")),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agentgen-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Progress bar plus a plain log line per phase when stderr is not a terminal.
struct Progress(ProgressBar);

impl Progress {
    fn new(total: u64) -> Self {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self(bar)
    }
    fn phase(&self, msg: &str) {
        if self.0.is_hidden() {
            eprintln!("agentgen-bench: {msg}");
        }
        self.0.set_message(msg.to_owned());
    }
    fn note(&self, msg: String) {
        if self.0.is_hidden() {
            eprintln!("agentgen-bench:   {msg}");
        } else {
            self.0.println(msg);
        }
    }
    fn tick(&self) {
        self.0.inc(1);
    }
}

async fn run(args: Args) -> Result<(), BoxError> {
    let mut plan = Plan::new(args.quick);
    if let Some(runs) = args.runs {
        plan.runs = runs.max(1);
        plan.team_runs = plan.team_runs.min(plan.runs);
    }
    if let Some(n) = args.team_messages {
        plan.team_messages = n.max(1);
    }
    let machine = Machine::detect();
    let threads = args.threads.or(machine.physical_cores).unwrap_or(machine.logical_cpus).max(1);
    let model_path = match args.model {
        Some(p) => p,
        None => agentgen_models::cache::test_model_path()?,
    };
    let model_file =
        model_path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let model_id = catalog_id(&model_file);
    let out_dir = args.out.clone().unwrap_or_else(default_out_dir);
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let llama_bench_bin = args.llama_bench.clone().or_else(llama_bench::find_on_path);
    let groq_key = std::env::var(GROQ_API_KEY_VAR).ok().filter(|k| !k.trim().is_empty());
    let only = args.only.clone();
    let runs = move |letter: char| only.is_empty() || only.contains(&letter);
    const NOT_SELECTED: &str = "not selected (--only)";

    let per = (plan.warmup + plan.runs) as u64;
    let compares_n = args.compare.len() as u64;
    let when = |letter: char, n: u64| if runs(letter) { n } else { 0 };
    let total = when('a', plan.prompt_lengths.len() as u64 * per)
        + when('b', (plan.team_runs * plan.team_messages) as u64)
        + when('c', (1 + compares_n) * plan.clients.len() as u64 * per)
        + when('h', compares_n * plan.versus_clients.len() as u64)
            * (plan.warmup + plan.versus_rounds) as u64
        + when('d', (2 + u64::from(groq_key.is_some())) * per)
        + when('e', compares_n * per)
        + when('g', 2)
        + when('i', 8 * per)
        + when('f', u64::from(llama_bench_bin.is_some()) * per)
        + when(
            'j',
            u64::from(args.autogen_python.is_some()) * (plan.warmup + plan.team_runs) as u64,
        );
    eprintln!("agentgen-bench: {} on {}", model_file, machine.summary());
    let progress = Progress::new(total);

    progress.phase("loading the model");
    let mut config = LocalConfig::new(&model_path);
    config.threads = Some(threads);
    config.slots = args.slots.max(1);
    config.kv_layout = args.kv_layout;
    let local = Arc::new(LocalBackend::load(config)?);
    let context_size = local.context_size();
    let kv_cache_tokens = local.kv_cache_tokens();

    let mut completion = Vec::new();
    for len in plan.prompt_lengths.iter().filter(|_| runs('a')) {
        progress.phase(&format!("(a) one completion, prompt of {len} tokens"));
        let row =
            workloads::completion_row(local.as_ref(), &plan, *len, || progress.tick()).await?;
        progress.note(format!(
            "prompt {} tok: TTFT {} ms, prompt {} tok/s, decode {} tok/s",
            row.prompt_tokens,
            row.ttft_ms.cell(0),
            row.prompt_tokens_per_s.cell(1),
            row.decode_tokens_per_s.cell(1)
        ));
        completion.push(row);
    }

    let mut team = None;
    if runs('b') {
        progress.phase(&format!("(b) agent team: 3 agents x {} messages", plan.team_messages));
        let stats_source = local.clone();
        let evaluated = move || stats_source.stats().prompt_tokens_evaluated;
        let t = workloads::team(local.clone(), &plan, Some(&evaluated), || progress.tick()).await?;
        progress.note(format!(
            "team: {} s, {} prompt tokens sent, {} from cache, {} evaluated",
            t.wall_s.cell(1),
            t.prompt_tokens,
            t.cached_tokens,
            t.evaluated_tokens
        ));
        team = Some(t);
    }

    let served_model = local.info().model.clone();
    let server = InProcessServer::start(local.clone(), args.slots.max(1)).await?;
    let client = Arc::new(server.client(&served_model)?);
    let mut server_rows = Vec::new();
    for clients in plan.clients.iter().filter(|_| runs('c')) {
        progress.phase(&format!("(c) agentgen serve, {clients} concurrent clients"));
        let row =
            workloads::server_level(client.clone(), &plan, *clients, || progress.tick()).await?;
        progress.note(format!(
            "{} clients: {} tok/s aggregate, p50 {} ms, p95 {} ms",
            row.clients,
            row.aggregate_tokens_per_s.cell(1),
            row.latency_p50_ms.cell(0),
            row.latency_p95_ms.cell(0)
        ));
        server_rows.push(row);
    }

    // Each `--compare` server is asked for its model once, then used by (c) and (e).
    let mut compares = Vec::new();
    for url in &args.compare {
        let client = compare_client(url, args.compare_model.as_deref(), args.compare_key.clone())
            .await
            .map_err(|e| e.to_string());
        compares.push((url.clone(), client));
    }
    let mut server_compare = Vec::new();
    for (url, client) in compares.iter().filter(|_| runs('c')) {
        progress.phase(&format!("(c, e) concurrent clients against {url}"));
        server_compare.push(compare_series(url, client, &plan, &progress).await);
    }

    let mut versus = Vec::new();
    for (url, theirs) in compares.iter().filter(|_| runs('h')) {
        progress.phase(&format!("(h) agentgen serve against {url}, alternating rounds"));
        versus.push(versus_series(&client, url, theirs, &plan, &progress).await);
    }

    let mut backends = Vec::new();
    if runs('d') {
        progress.phase("(d) agentgen in-process and over HTTP");
        backends.push(
            workloads::backend_row(
                "agentgen (in-process)",
                &served_model,
                None,
                local.as_ref(),
                &plan,
                || progress.tick(),
            )
            .await?,
        );
        backends.push(
            workloads::backend_row(
                "agentgen serve (HTTP)",
                &served_model,
                Some(server.base_url.clone()),
                client.as_ref(),
                &plan,
                || progress.tick(),
            )
            .await?,
        );
    }
    let mut http_overhead = None;
    if runs('g') {
        progress.phase("(g) HTTP overhead over in-process");
        let h =
            workloads::http_overhead(local.as_ref(), client.as_ref(), &plan, || progress.tick())
                .await?;
        progress.note(format!(
            "HTTP overhead {:.2} ms per request (median of {} pairs), {:.2} ms outside the engine; \
             streamed HTTP/in-process {:.3} (median of pairs)",
            h.overhead_ms.median,
            h.pairs,
            h.overhead_outside_engine_ms.median,
            h.stream_ratio.median
        ));
        http_overhead = Some(h);
    }
    let autogen = match &args.autogen_python {
        _ if !runs('j') => Section::skipped(NOT_SELECTED),
        None => Section::skipped(
            "no --autogen-python (a Python with autogen-agentchat and autogen-ext[openai])",
        ),
        Some(python) => {
            progress.phase("(j) the team natively and with AutoGen-Python, alternating rounds");
            let script =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("python").join("autogen_team.py");
            let mut servers = vec![(
                "AutoGen + agentgen serve".to_owned(),
                server.base_url.clone(),
                served_model.clone(),
            )];
            for (url, c) in &compares {
                if let Ok((_, model)) = c {
                    servers.push((format!("AutoGen + {url}"), url.clone(), model.clone()));
                }
            }
            let v = benches::autogen::Versus {
                python,
                script: &script,
                servers,
                messages: plan.team_messages,
                max_tokens: plan.team_max_tokens,
                rounds: plan.team_runs,
                warmup: plan.warmup,
            };
            let tag = format!("j-{}", workloads::nonce());
            match benches::autogen::versus(local.clone(), &v, &tag, || progress.tick()).await {
                Ok(r) => Section::Done(r),
                Err(e) => Section::skipped(format!("failed: {e}")),
            }
        }
    };
    server.stop().await?;

    let groq = match groq_key {
        _ if !runs('d') => Section::skipped(NOT_SELECTED),
        None => Section::skipped(format!("{GROQ_API_KEY_VAR} is not set")),
        Some(key) => {
            progress.phase("(d) Groq");
            let row = match OpenAiBackend::new(
                OpenAiConfig::groq(&args.groq_model).with_api_key(key).with_max_retries(0),
            ) {
                Ok(groq) => workloads::backend_row(
                    "groq",
                    &args.groq_model,
                    Some(groq.config().base_url.clone()),
                    &groq,
                    &plan,
                    || progress.tick(),
                )
                .await
                .unwrap_or_else(|e| failed_row("groq", &args.groq_model, &e)),
                Err(e) => failed_row("groq", &args.groq_model, &e),
            };
            let section = match &row.skipped {
                Some(why) => Section::skipped(why.clone()),
                None => Section::Done(row.clone()),
            };
            backends.push(row);
            section
        }
    };
    if runs('d') && groq_is_skipped(&groq) && !backends.iter().any(|b| b.name == "groq") {
        backends.push(BackendRow::skipped(
            "groq",
            &args.groq_model,
            format!("{GROQ_API_KEY_VAR} is not set"),
        ));
    }

    for (url, client) in compares.iter().filter(|_| runs('e')) {
        progress.phase(&format!("(e) compare {url}"));
        backends.push(compare_row(url, client, &plan, &progress).await);
    }

    let llama = match &llama_bench_bin {
        _ if !runs('f') => Section::skipped(NOT_SELECTED),
        None => Section::skipped("llama-bench not found on PATH; give it with --llama-bench PATH"),
        Some(bin) => {
            progress.phase("(f) llama.cpp llama-bench, alternating rounds with ours");
            let h = llama_bench::HeadToHead {
                bin,
                model: &model_path,
                threads,
                prompt_tokens: nearest(&plan.prompt_lengths, 512),
                gen_tokens: plan.gen_tokens,
                rounds: plan.runs,
                warmup: plan.warmup,
            };
            let tag = format!("f-{}", workloads::nonce());
            match llama_bench::head_to_head(local.as_ref(), h, &tag, || progress.tick()).await {
                Ok(result) => Section::Done(result),
                Err(e) => Section::skipped(format!("llama-bench failed: {e}")),
            }
        }
    };
    drop((client, local));
    let mut lookup = None;
    if runs('i') {
        progress.phase("(i) lookup decoding: code edits and prose, with and without");
        // Lookup is off by default where batching is not exact; this engine turns it on,
        // requests then opt in or out.
        // It runs last, after the first engine is gone, so the peak RSS is one engine's.
        let mut config = LocalConfig::new(&model_path);
        config.threads = Some(threads);
        config.slots = args.slots.max(1);
        config.kv_layout = args.kv_layout;
        config.lookup_max_draft = Some(LOOKUP_MAX_DRAFT_ON);
        let engine = LocalBackend::load(config)?;
        let l = benches::lookup::run(&engine, &plan, || progress.tick()).await?;
        drop(engine);
        for r in &l.rows {
            progress.note(format!(
                "{}: {} -> {} tok/s ({:.2}x), {:.0}% of {} drafted accepted, same text: {}",
                r.workload,
                r.plain_tokens_per_s.cell(1),
                r.lookup_tokens_per_s.cell(1),
                r.speedup.median,
                100.0 * r.acceptance,
                r.drafted,
                r.identical
            ));
        }
        lookup = Some(l);
    }

    progress.0.finish_and_clear();

    let mut models = std::collections::BTreeMap::new();
    if let (Some(shortest), Some(longest)) = (completion.first(), completion.last()) {
        models.insert(
            model_id.clone(),
            ModelThroughput {
                decode_tokens_per_s: shortest.decode_tokens_per_s.median,
                prompt_tokens_per_s: longest.prompt_tokens_per_s.median,
            },
        );
    }
    let mut results = Results {
        schema: 1,
        generated_unix_s: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        quick: args.quick,
        machine,
        config: RunConfig {
            model_id,
            model_file,
            model_bytes: std::fs::metadata(&model_path).map_or(0, |m| m.len()),
            threads,
            runs: plan.runs,
            warmup: plan.warmup,
            context_size,
            kv_layout: args.kv_layout.as_str().to_owned(),
            kv_cache_tokens,
            slots: args.slots.max(1),
        },
        completion,
        team,
        server: server_rows,
        server_compare,
        versus,
        backends,
        http_overhead,
        lookup,
        memory: memory_use(&model_path, kv_cache_tokens),
        groq,
        llama_bench: llama,
        autogen,
        models,
        charts: Vec::new(),
    };
    results.charts = benches::charts::write_all(&results, &out_dir)?;
    let json_path = out_dir.join("results.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&results)?)
        .map_err(|e| format!("cannot write {}: {e}", json_path.display()))?;
    println!("{}", results.render());
    println!(
        "wrote {} and {} charts in {}",
        json_path.display(),
        results.charts.len(),
        out_dir.display()
    );
    Ok(())
}

fn groq_is_skipped(s: &Section<BackendRow>) -> bool {
    matches!(s, Section::Skipped { .. })
}

fn failed_row(name: &str, model: &str, e: &dyn std::fmt::Display) -> BackendRow {
    eprintln!("agentgen-bench: {name} failed: {e}");
    BackendRow::skipped(name, model, format!("failed: {e}"))
}

/// A `--compare` server's client and model, or why there is none.
type CompareClient = Result<(Arc<OpenAiBackend>, String), String>;

/// A client of a `--compare` URL and the model to ask it for: `--compare-model`, else the first
/// one it lists.
async fn compare_client(
    url: &str,
    model: Option<&str>,
    key: Option<String>,
) -> Result<(Arc<OpenAiBackend>, String), agentgen_core::BackendError> {
    let model = match model {
        Some(m) => m.to_owned(),
        None => {
            let list =
                workloads::http_client(url, "default", key.clone(), 0)?.list_models().await?;
            list.first().map_or_else(|| "default".to_owned(), |m| m.id.clone())
        }
    };
    // One retry: servers such as llama-server close idle keep-alive connections, and a request
    // sent on one that is closing fails before it reaches the server.
    Ok((Arc::new(workloads::http_client(url, &model, key, 1)?), model))
}

/// (e) One `--compare` URL in the side-by-side table.
async fn compare_row(
    url: &str,
    client: &CompareClient,
    plan: &Plan,
    progress: &Progress,
) -> BackendRow {
    let name = format!("compare {url}");
    match client {
        Ok((client, model)) => workloads::backend_row(
            &name,
            model,
            Some(url.to_owned()),
            client.as_ref(),
            plan,
            || progress.tick(),
        )
        .await
        .unwrap_or_else(|e| failed_row(&name, model, &e)),
        Err(e) => failed_row(&name, "?", e),
    }
}

/// Runs `level` at each concurrency level in turn. Returns the rows, and why it stopped early
/// when a level failed (the failure is also printed).
async fn each_level<R, F, Fut>(
    what: &str,
    levels: &[usize],
    mut level: F,
) -> (Vec<R>, Option<String>)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<R, agentgen_core::BackendError>>,
{
    let mut rows = Vec::new();
    for &clients in levels {
        match level(clients).await {
            Ok(row) => rows.push(row),
            Err(e) => {
                eprintln!("agentgen-bench: {what} failed: {e}");
                return (rows, Some(format!("failed at {clients} clients: {e}")));
            }
        }
    }
    (rows, None)
}

/// (c, e) The concurrent-client workload against one `--compare` URL.
async fn compare_series(
    url: &str,
    client: &CompareClient,
    plan: &Plan,
    progress: &Progress,
) -> ServerSeries {
    let name = format!("compare {url}");
    let mut series = ServerSeries {
        name: name.clone(),
        endpoint: url.to_owned(),
        model: "?".to_owned(),
        skipped: None,
        rows: Vec::new(),
    };
    let client = match client {
        Ok((client, model)) => {
            series.model = model.clone();
            client.clone()
        }
        Err(e) => {
            eprintln!("agentgen-bench: {name} failed: {e}");
            series.skipped = Some(format!("failed: {e}"));
            return series;
        }
    };
    (series.rows, series.skipped) = each_level(&name, &plan.clients, |clients| {
        let client = client.clone();
        let name = &name;
        async move {
            let row = workloads::server_level(client, plan, clients, || progress.tick()).await?;
            progress.note(format!(
                "{name}, {clients} clients: {} tok/s aggregate, p95 {} ms",
                row.aggregate_tokens_per_s.cell(1),
                row.latency_p95_ms.cell(0)
            ));
            Ok(row)
        }
    })
    .await;
    series
}

/// (h) `agentgen serve` against one `--compare` URL at each level of `plan.versus_clients`.
async fn versus_series(
    ours: &Arc<OpenAiBackend>,
    url: &str,
    theirs: &CompareClient,
    plan: &Plan,
    progress: &Progress,
) -> VersusSeries {
    let mut series = VersusSeries {
        endpoint: url.to_owned(),
        model: "?".to_owned(),
        skipped: None,
        rows: Vec::new(),
    };
    let theirs = match theirs {
        Ok((client, model)) => {
            series.model = model.clone();
            client
        }
        Err(e) => {
            series.skipped = Some(format!("failed: {e}"));
            return series;
        }
    };
    let what = format!("(h) against {url}");
    (series.rows, series.skipped) = each_level(&what, &plan.versus_clients, |clients| async move {
        let row = versus::level(ours, theirs, plan, clients, || progress.tick()).await?;
        progress.note(format!(
            "(h) {clients} clients: agentgen serve {} tok/s, {url} {} tok/s, ours/theirs {:.3}",
            row.ours_tokens_per_s.cell(1),
            row.theirs_tokens_per_s.cell(1),
            row.ratio.median
        ));
        Ok(row)
    })
    .await;
    series
}

/// Peak RSS of this process (Linux `VmHWM`) against GGUF + KV cache + 200 MiB.
fn memory_use(model: &Path, kv_cache_tokens: u64) -> Option<MemoryUse> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let model_bytes = std::fs::metadata(model).ok()?.len();
    let per_token = agentgen_local::format::read_gguf_metadata(model).ok()?.kv_bytes_per_token()?;
    let kv_cache_bytes = per_token * kv_cache_tokens;
    Some(MemoryUse {
        peak_rss_bytes: kib * 1024,
        model_bytes,
        kv_cache_bytes,
        budget_bytes: model_bytes + kv_cache_bytes + (200 << 20),
    })
}

fn nearest(values: &[usize], target: usize) -> usize {
    values.iter().copied().min_by_key(|v| v.abs_diff(target)).unwrap_or(target)
}

/// The catalog id of a GGUF file name, or the name without `.gguf`.
fn catalog_id(file: &str) -> String {
    Catalog::builtin()
        .models
        .iter()
        .find(|m| m.quantisations.iter().any(|q| q.file == file))
        .map(|m| m.id.clone())
        .unwrap_or_else(|| file.trim_end_matches(".gguf").to_owned())
}

/// `$CARGO_TARGET_DIR/bench`, else the workspace's `target/bench`.
fn default_out_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("bench"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target").join("bench"),
    }
}
