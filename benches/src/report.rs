//! The results document (`results.json`) and its terminal tables.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::llama_bench::LlamaTest;
use crate::lookup::LookupResult;
use crate::machine::Machine;
use crate::stats::Stat;
use crate::versus::VersusSeries;

/// Everything one benchmark run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// Format version of this document.
    pub schema: u32,
    /// When it was written, seconds since the Unix epoch.
    pub generated_unix_s: u64,
    /// Whether `--quick` sizes were used.
    pub quick: bool,
    /// The machine.
    pub machine: Machine,
    /// What was run and how often.
    pub config: RunConfig,
    /// (a) One completion at several prompt lengths.
    pub completion: Vec<CompletionRow>,
    /// (b) The agent team (absent when not selected with `--only`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<TeamResult>,
    /// (c) The HTTP server under 1, 2, 4 and 8 concurrent clients.
    pub server: Vec<ServerRow>,
    /// (c, e) The same concurrent-client workload against each `--compare` server.
    #[serde(default)]
    pub server_compare: Vec<ServerSeries>,
    /// (h) `agentgen serve` against each `--compare` server, in alternating rounds.
    #[serde(default)]
    pub versus: Vec<VersusSeries>,
    /// (a, c, d, e) One streamed completion on every backend, side by side.
    pub backends: Vec<BackendRow>,
    /// (g) What HTTP adds over calling the engine in-process, measured in alternating pairs.
    #[serde(default)]
    pub http_overhead: Option<HttpOverhead>,
    /// (i) Lookup decoding on code edits and prose, with and without, in alternating runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup: Option<LookupResult>,
    /// Peak memory of the benchmark process against the engine's budget.
    #[serde(default)]
    pub memory: Option<MemoryUse>,
    /// (d) Groq, or why it was skipped.
    pub groq: Section<BackendRow>,
    /// (f) llama.cpp's llama-bench on the same GGUF and threads, or why it was skipped.
    pub llama_bench: Section<LlamaBenchResult>,
    /// (j) The team natively and with AutoGen-Python against each server, or why skipped.
    #[serde(default = "not_run")]
    pub autogen: Section<crate::autogen::AutogenResult>,
    /// Measured throughput by catalog id (read by the model catalog).
    pub models: BTreeMap<String, ModelThroughput>,
    /// PNG charts written beside this file.
    pub charts: Vec<String>,
}

/// A section that ran, or the reason it did not.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Section<T> {
    /// It ran.
    Done(T),
    /// It did not, and why.
    Skipped {
        /// The reason.
        skipped: String,
    },
}

fn not_run<T>() -> Section<T> {
    Section::skipped("not run")
}

impl<T> Section<T> {
    /// A skipped section.
    pub fn skipped(why: impl Into<String>) -> Self {
        Self::Skipped { skipped: why.into() }
    }
}

/// What was run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunConfig {
    /// The model's catalog id.
    pub model_id: String,
    /// The GGUF file name.
    pub model_file: String,
    /// Its size in bytes.
    pub model_bytes: u64,
    /// Inference threads.
    pub threads: usize,
    /// Measured runs per figure.
    pub runs: usize,
    /// Warm-up runs before them, not counted.
    pub warmup: usize,
    /// The longest prompt plus answer of one request, in tokens.
    pub context_size: u32,
    /// How the slots share the KV cache (`per-slot`, `shared`).
    #[serde(default)]
    pub kv_layout: String,
    /// The KV cache's size in tokens, all slots together.
    #[serde(default)]
    pub kv_cache_tokens: u64,
    /// The engine's parallel slots.
    pub slots: usize,
}

/// (a) One prompt length.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompletionRow {
    /// Prompt tokens evaluated (median over runs).
    pub prompt_tokens: u32,
    /// Tokens generated (median over runs).
    pub completion_tokens: u32,
    /// Time to first token.
    pub ttft_ms: Stat,
    /// Prompt processing speed (engine timings).
    pub prompt_tokens_per_s: Stat,
    /// Generation speed (engine timings).
    pub decode_tokens_per_s: Stat,
}

/// (b) The agent team.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TeamResult {
    /// Agents taking turns.
    pub agents: u32,
    /// Messages per conversation.
    pub messages: u32,
    /// Chat requests per conversation (median).
    pub requests: u32,
    /// Tool calls per conversation (median).
    pub tool_calls: u32,
    /// Wall time of one conversation.
    pub wall_s: Stat,
    /// Prompt tokens sent (median): what a cache-less engine evaluates.
    pub prompt_tokens: u64,
    /// Prompt tokens served from the prefix cache (median).
    pub cached_tokens: u64,
    /// Prompt tokens evaluated (median).
    pub evaluated_tokens: u64,
    /// evaluated / sent.
    pub evaluated_fraction: f64,
    /// The engine's own count of evaluated prompt tokens per conversation (median).
    pub engine_prompt_tokens_evaluated: Option<u64>,
    /// Tokens generated (median).
    pub completion_tokens: u64,
}

/// (c) One concurrency level.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerRow {
    /// Clients sending at once.
    pub clients: usize,
    /// Requests per run at this level.
    pub requests: usize,
    /// Generated tokens per second over all clients.
    pub aggregate_tokens_per_s: Stat,
    /// Median request latency, per run.
    pub latency_p50_ms: Stat,
    /// 95th-percentile request latency, per run.
    pub latency_p95_ms: Stat,
    /// Median time to first token, per run.
    pub ttft_p50_ms: Stat,
}

/// (c, e) The concurrent-client workload against another server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerSeries {
    /// `compare <url>`.
    pub name: String,
    /// Its base URL.
    pub endpoint: String,
    /// The model it served.
    pub model: String,
    /// Why it has no rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// One row per concurrency level.
    pub rows: Vec<ServerRow>,
}

/// (g) In-process against HTTP, request by request in alternating order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HttpOverhead {
    /// Pairs measured for the latency figures.
    pub pairs: usize,
    /// A one-token, non-streamed request whose prompt is cached, in-process.
    pub in_process_ms: Stat,
    /// The same request through `agentgen serve`.
    pub http_ms: Stat,
    /// HTTP minus in-process, pair by pair.
    pub overhead_ms: Stat,
    /// In-process: wall time minus the engine's own time (template, queue hand-off, answer).
    pub in_process_outside_engine_ms: Stat,
    /// Through `agentgen serve`: the same, plus JSON, HTTP and loopback both ways.
    pub http_outside_engine_ms: Stat,
    /// HTTP minus in-process time outside the engine, pair by pair: the overhead without the
    /// model's run-to-run jitter.
    pub overhead_outside_engine_ms: Stat,
    /// Tokens generated per streamed request in the throughput pairs.
    pub stream_tokens: u32,
    /// Streamed decode speed in-process, client side.
    pub stream_in_process_tokens_per_s: Stat,
    /// Streamed decode speed through `agentgen serve`, client side.
    pub stream_http_tokens_per_s: Stat,
    /// HTTP / in-process decode speed, pair by pair.
    pub stream_ratio: Stat,
}

/// Peak resident memory of the benchmark process (engine, server and clients together) and the
/// budget: GGUF size + KV cache + 200 MiB.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct MemoryUse {
    /// VmHWM of this process at the end of the run.
    pub peak_rss_bytes: u64,
    /// The GGUF file.
    pub model_bytes: u64,
    /// The f16 KV cache for the whole context, from the model's attention sizes.
    pub kv_cache_bytes: u64,
    /// model + KV + 200 MiB.
    pub budget_bytes: u64,
}

/// One backend in the side-by-side table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackendRow {
    /// What it is: `agentgen (in-process)`, `agentgen serve`, `groq`, `compare`…
    pub name: String,
    /// The model it ran.
    pub model: String,
    /// Its base URL, for HTTP backends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Why it has no figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Time to first token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<Stat>,
    /// Generation speed, client side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_tokens_per_s: Option<Stat>,
    /// Whole request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<Stat>,
    /// Tokens generated (median).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<u32>,
}

impl BackendRow {
    /// A row without figures.
    pub fn skipped(
        name: impl Into<String>,
        model: impl Into<String>,
        why: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            model: model.into(),
            endpoint: None,
            skipped: Some(why.into()),
            ttft_ms: None,
            decode_tokens_per_s: None,
            latency_ms: None,
            completion_tokens: None,
        }
    }
}

/// (f) llama-bench's figures and ours beside them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LlamaBenchResult {
    /// The llama-bench binary used.
    pub binary: String,
    /// Its tests.
    pub tests: Vec<LlamaTest>,
    /// Ours / theirs for each test, from alternating rounds.
    pub ratios: Vec<Ratio>,
    /// Prompt tokens our engine evaluated in the pp test (median; a few template tokens
    /// may come from its prefix cache).
    pub ours_prompt_tokens_evaluated: u64,
}

/// Ours against theirs for one test, over alternating rounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ratio {
    /// `pp512`, `tg128`…
    pub test: String,
    /// Our tokens/s.
    pub ours: Stat,
    /// llama-bench's tokens/s.
    pub theirs: Stat,
    /// Each round's ours / theirs.
    pub ratio: Stat,
}

/// The figures the model catalog reads.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ModelThroughput {
    /// Generated tokens per second (median).
    pub decode_tokens_per_s: f64,
    /// Prompt tokens per second (median, longest prompt measured).
    pub prompt_tokens_per_s: f64,
}

/// Renders rows as an aligned text table with a header rule.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let parts: Vec<String> =
            cells.zip(&widths).map(|(c, w)| format!("{c:<w$}", w = *w)).collect();
        let _ = writeln!(out, "  {}", parts.join("  ").trim_end());
    };
    line(&mut out, &mut header.iter().copied());
    let _ =
        writeln!(out, "  {}", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
    for row in rows {
        line(&mut out, &mut row.iter().map(String::as_str));
    }
    out
}

impl Results {
    /// The terminal report: one table per workload.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let c = &self.config;
        let _ = writeln!(out, "agentgen bench{}", if self.quick { " (quick)" } else { "" });
        let _ = writeln!(out, "machine: {}", self.machine.summary());
        let _ = writeln!(
            out,
            "model:   {} ({}, {:.0} MiB), {} threads, {} runs per figure after {} warm-up, median ±spread (max-min)/median\n",
            c.model_id,
            c.model_file,
            c.model_bytes as f64 / (1u64 << 20) as f64,
            c.threads,
            c.runs,
            c.warmup
        );

        if !self.completion.is_empty() {
            let _ = writeln!(out, "(a) one completion, in-process");
            let rows: Vec<Vec<String>> = self
                .completion
                .iter()
                .map(|r| {
                    vec![
                        r.prompt_tokens.to_string(),
                        r.completion_tokens.to_string(),
                        r.ttft_ms.cell(0),
                        r.prompt_tokens_per_s.cell(1),
                        r.decode_tokens_per_s.cell(1),
                    ]
                })
                .collect();
            out += &table(
                &["prompt tok", "gen tok", "TTFT ms", "prompt tok/s", "decode tok/s"],
                &rows,
            );
        }

        if let Some(t) = &self.team {
            let _ = writeln!(
                out,
                "\n(b) agent team: {} agents x {} messages, one with a tool",
                t.agents, t.messages
            );
            let engine = t.engine_prompt_tokens_evaluated.map_or("-".into(), |e| e.to_string());
            out += &table(
                &[
                    "wall s",
                    "requests",
                    "tool calls",
                    "prompt tok sent",
                    "from cache",
                    "evaluated",
                    "evaluated %",
                    "engine count",
                ],
                &[vec![
                    t.wall_s.cell(1),
                    t.requests.to_string(),
                    t.tool_calls.to_string(),
                    t.prompt_tokens.to_string(),
                    t.cached_tokens.to_string(),
                    t.evaluated_tokens.to_string(),
                    format!("{:.0}%", 100.0 * t.evaluated_fraction),
                    engine,
                ]],
            );
        }

        if !self.server.is_empty() {
            let _ = writeln!(out, "\n(c) agentgen serve over HTTP, concurrent streaming clients");
            out += &server_table(&self.server);
        }

        for series in &self.server_compare {
            let _ = writeln!(out, "\n(c, e) {} ({}), same clients", series.name, series.model);
            match &series.skipped {
                Some(why) => {
                    let _ = writeln!(out, "  skipped: {why}");
                }
                None => out += &server_table(&series.rows),
            }
        }

        for v in &self.versus {
            let _ = writeln!(
                out,
                "\n(h) agentgen serve against {} ({}), alternating rounds",
                v.endpoint, v.model
            );
            if let Some(why) = &v.skipped {
                let _ = writeln!(out, "  skipped: {why}");
            }
            let rows: Vec<Vec<String>> = v
                .rows
                .iter()
                .map(|r| {
                    vec![
                        r.clients.to_string(),
                        r.rounds.to_string(),
                        r.ours_tokens_per_s.cell(1),
                        r.theirs_tokens_per_s.cell(1),
                        format!("{:.3} ({:.2}..{:.2})", r.ratio.median, r.ratio.min, r.ratio.max),
                        r.ours_stream_decode_tokens_per_s.cell(1),
                        r.theirs_stream_decode_tokens_per_s.cell(1),
                    ]
                })
                .collect();
            out += &table(
                &[
                    "clients",
                    "rounds",
                    "ours tok/s",
                    "theirs tok/s",
                    "ours/theirs",
                    "ours stream decode",
                    "theirs stream decode",
                ],
                &rows,
            );
        }

        if !self.backends.is_empty() {
            let _ = writeln!(
                out,
                "\n(d, e) backends side by side: one streamed completion, same prompt"
            );
            let rows: Vec<Vec<String>> = self
                .backends
                .iter()
                .map(|r| match &r.skipped {
                    Some(why) => vec![r.name.clone(), r.model.clone(), format!("skipped: {why}")],
                    None => vec![
                        r.name.clone(),
                        r.model.clone(),
                        r.ttft_ms.map_or("-".into(), |s| s.cell(0)),
                        r.decode_tokens_per_s.map_or("-".into(), |s| s.cell(1)),
                        r.latency_ms.map_or("-".into(), |s| s.cell(0)),
                        r.completion_tokens.map_or("-".into(), |n| n.to_string()),
                    ],
                })
                .collect();
            out += &table(
                &["backend", "model", "TTFT ms", "decode tok/s", "latency ms", "gen tok"],
                &rows,
            );
        }

        let _ = writeln!(
            out,
            "\n(f) llama.cpp llama-bench, same GGUF and threads, alternating rounds with ours"
        );
        match &self.llama_bench {
            Section::Skipped { skipped } => {
                let _ = writeln!(out, "  skipped: {skipped}");
            }
            Section::Done(lb) => {
                let rows: Vec<Vec<String>> = lb
                    .ratios
                    .iter()
                    .map(|r| {
                        vec![
                            r.test.clone(),
                            r.ours.cell(1),
                            r.theirs.cell(1),
                            format!(
                                "{:.3} ({:.2}..{:.2})",
                                r.ratio.median, r.ratio.min, r.ratio.max
                            ),
                        ]
                    })
                    .collect();
                out += &table(
                    &["test", "ours tok/s", "llama-bench tok/s", "ours/theirs (min..max)"],
                    &rows,
                );
                let _ = writeln!(
                    out,
                    "  ours evaluated {} prompt tokens in the pp test; {} rounds",
                    lb.ours_prompt_tokens_evaluated,
                    lb.ratios.first().map_or(0, |r| r.ratio.n)
                );
            }
        }

        let _ = writeln!(
            out,
            "\n(j) the agent team natively and written with AutoGen (Python), alternating rounds"
        );
        match &self.autogen {
            Section::Skipped { skipped } => {
                let _ = writeln!(out, "  skipped: {skipped}");
            }
            Section::Done(j) => {
                let mut rows = vec![vec![
                    "agentgen, native".to_owned(),
                    j.native_wall_s.cell(1),
                    j.native_prompt_tokens.to_string(),
                    j.native_completion_tokens.to_string(),
                    "1".to_owned(),
                ]];
                rows.extend(j.rows.iter().map(|r| {
                    vec![
                        r.server.clone(),
                        r.wall_s.cell(1),
                        r.prompt_tokens.to_string(),
                        r.completion_tokens.to_string(),
                        format!(
                            "{:.3} ({:.2}..{:.2})",
                            r.native_ratio.median, r.native_ratio.min, r.native_ratio.max
                        ),
                    ]
                }));
                out += &table(
                    &["team", "wall s", "prompt tok", "completion tok", "native/this wall"],
                    &rows,
                );
                let _ = writeln!(out, "  {} agent messages per conversation", j.messages);
            }
        }

        if let Some(h) = &self.http_overhead {
            let _ = writeln!(
                out,
                "\n(g) HTTP against in-process, {} alternating pairs of one-token requests (cached prompt)",
                h.pairs
            );
            let overhead = |s: &Stat| {
                format!("{:.2} (mean {:.2}, {:.2}..{:.2})", s.median, s.mean, s.min, s.max)
            };
            out += &table(
                &["time", "in-process ms", "HTTP ms", "overhead ms"],
                &[
                    vec![
                        "wall".into(),
                        h.in_process_ms.cell(1),
                        h.http_ms.cell(1),
                        overhead(&h.overhead_ms),
                    ],
                    vec![
                        "outside the engine".into(),
                        format!("{:.2}", h.in_process_outside_engine_ms.median),
                        format!("{:.2}", h.http_outside_engine_ms.median),
                        overhead(&h.overhead_outside_engine_ms),
                    ],
                ],
            );
            let _ = writeln!(out, "  streamed, {} tokens, alternating:", h.stream_tokens);
            out += &table(
                &["in-process tok/s", "HTTP tok/s", "HTTP/in-process"],
                &[vec![
                    h.stream_in_process_tokens_per_s.cell(1),
                    h.stream_http_tokens_per_s.cell(1),
                    format!(
                        "{:.3} ({:.2}..{:.2})",
                        h.stream_ratio.median, h.stream_ratio.min, h.stream_ratio.max
                    ),
                ]],
            );
        }
        if let Some(l) = &self.lookup {
            out += &l.render();
        }
        if let Some(m) = &self.memory {
            let mib = |b: u64| format!("{:.0}", b as f64 / (1u64 << 20) as f64);
            let _ =
                writeln!(out, "\nmemory (MiB): peak RSS of this process against GGUF + KV + 200");
            out += &table(
                &["peak RSS", "GGUF", "KV cache", "budget", "within"],
                &[vec![
                    mib(m.peak_rss_bytes),
                    mib(m.model_bytes),
                    mib(m.kv_cache_bytes),
                    mib(m.budget_bytes),
                    (m.peak_rss_bytes <= m.budget_bytes).to_string(),
                ]],
            );
        }
        out
    }
}

/// The (c) table: one row per concurrency level.
fn server_table(rows: &[ServerRow]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.clients.to_string(),
                r.requests.to_string(),
                r.aggregate_tokens_per_s.cell(1),
                r.ttft_p50_ms.cell(0),
                r.latency_p50_ms.cell(0),
                r.latency_p95_ms.cell(0),
            ]
        })
        .collect();
    table(&["clients", "requests", "aggregate tok/s", "TTFT p50 ms", "p50 ms", "p95 ms"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let t = table(&["a", "long header"], &[vec!["wide cell".into(), "x".into()]]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "  a          long header");
        assert_eq!(lines[1], "  ---------  -----------");
        assert_eq!(lines[2], "  wide cell  x");
    }

    #[test]
    fn skipped_sections_serialise_with_a_reason() {
        let s: Section<Ratio> = Section::skipped("GROQ_API_KEY is not set");
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            serde_json::json!({"skipped": "GROQ_API_KEY is not set"})
        );
        let row = BackendRow::skipped("groq", "m", "no key");
        let v = serde_json::to_value(&row).unwrap();
        assert_eq!(v["skipped"], "no key");
        assert!(v.get("ttft_ms").is_none());
    }
}
