//! (i) Lookup decoding: code-edit turns (rename, docstrings, a bug fix in a 70–80 line file),
//! where the answer copies much of the prompt, and plain prose, where it does not. Each is
//! generated greedily with and without lookup drafts on the same engine, in alternating runs
//! (which goes first alternates too): decode speed, the speed-up of each pair, the share of
//! drafted tokens accepted, and whether every run wrote the same text.

use std::fmt::Write as _;

use agentgen_core::{BackendError, ChatMessage, ChatRequest};
use agentgen_local::{GenerateOptions, Generation, LocalBackend};
use serde::{Deserialize, Serialize};

use crate::report::table;
use crate::stats::Stat;
use crate::workloads::{stat, Plan};

const PYTHON: &str = include_str!("../../crates/agentgen-local/tests/fixtures/inventory.py");
const RUST: &str = include_str!("../../crates/agentgen-local/tests/fixtures/ledger.rs");

/// One workload with and without lookup decoding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LookupRow {
    /// What was asked.
    pub workload: String,
    /// Tokens generated per run (the same with and without: the text is).
    pub completion_tokens: u32,
    /// Decode speed without drafts.
    pub plain_tokens_per_s: Stat,
    /// Decode speed with lookup drafts.
    pub lookup_tokens_per_s: Stat,
    /// With / without, per alternating pair.
    pub speedup: Stat,
    /// Tokens drafted over the lookup runs.
    pub drafted: u64,
    /// Drafted tokens accepted over the lookup runs.
    pub accepted: u64,
    /// `accepted / drafted` (0 when nothing was drafted).
    pub acceptance: f64,
    /// Every run, with or without drafts, wrote the same text.
    pub identical: bool,
}

/// (i) All workloads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LookupResult {
    /// Tokens asked for per run.
    pub max_tokens: u32,
    /// One row per workload.
    pub rows: Vec<LookupRow>,
    /// Whether the engine measured its batching exact at load
    /// (`LocalBackend::exact_batching`): only then is "same text" guaranteed.
    #[serde(default)]
    pub exact_batching: bool,
}

/// One workload: its name, the instruction, and the file it edits (language, text), if any.
struct Workload {
    name: &'static str,
    instruction: &'static str,
    file: Option<(&'static str, &'static str)>,
}

const WORKLOADS: [Workload; 5] = [
    Workload {
        name: "code edit: rename (Python)",
        instruction: "Rename the method `total_value` to `stock_value`.",
        file: Some(("python", PYTHON)),
    },
    Workload {
        name: "code edit: docstrings (Python)",
        instruction: "Add a one-line docstring to every method of `Inventory`.",
        file: Some(("python", PYTHON)),
    },
    Workload {
        name: "code edit: fix a bug (Rust)",
        instruction: "Fix the bug in `transfer`: it refuses transfers it should allow.",
        file: Some(("rust", RUST)),
    },
    Workload {
        name: "prose",
        instruction: "Write an essay of about 600 words on the history of lighthouses.",
        file: None,
    },
    // A control whose answer has little to copy from (the essay above repeats itself on the
    // 0.5B model): lookup should cost nothing here.
    Workload {
        name: "prose: a letter (little repetition)",
        instruction: "Write a friendly letter inviting your neighbour Ana to a garden party next \
                      Saturday at four: say what food there will be, that children and dogs are \
                      welcome, and where to park.",
        file: None,
    },
];

fn request(instruction: &str, file: Option<(&str, &str)>) -> ChatRequest {
    let (system, user) = match file {
        Some((lang, code)) => (
            "You are a careful programmer. Answer with the whole edited file.",
            format!("{instruction}\n\n```{lang}\n{code}```"),
        ),
        None => ("You are a helpful assistant.", instruction.to_owned()),
    };
    ChatRequest::new(vec![ChatMessage::system(system), ChatMessage::user(user)])
}

/// Runs every workload `plan.warmup + plan.runs` times each way.
pub async fn run(
    local: &LocalBackend,
    plan: &Plan,
    mut tick: impl FnMut(),
) -> Result<LookupResult, BackendError> {
    let max_tokens = plan.lookup_tokens;
    let mut rows = Vec::new();
    for Workload { name, instruction, file } in WORKLOADS {
        let prompt = local.chat_format().render(&request(instruction, file))?;
        let mut plain: Vec<Generation> = Vec::new();
        let mut fast: Vec<Generation> = Vec::new();
        for i in 0..plan.warmup + plan.runs {
            let mut pair = Vec::new();
            for lookup in if i % 2 == 0 { [false, true] } else { [true, false] } {
                let options = GenerateOptions {
                    temperature: 0.0,
                    max_tokens: Some(max_tokens),
                    lookup,
                    ..GenerateOptions::default()
                };
                pair.push((lookup, local.generate(prompt.clone(), options, None).await?));
                tick();
            }
            if i >= plan.warmup {
                for (lookup, g) in pair {
                    if lookup {
                        fast.push(g)
                    } else {
                        plain.push(g)
                    }
                }
            }
        }
        rows.push(row(name, &plain, &fast)?);
    }
    Ok(LookupResult { max_tokens, rows, exact_batching: local.exact_batching() })
}

fn row(name: &str, plain: &[Generation], fast: &[Generation]) -> Result<LookupRow, BackendError> {
    let speed = |g: &[Generation]| g.iter().map(|g| g.timings.predicted_per_second).collect();
    let (p, f): (Vec<f64>, Vec<f64>) = (speed(plain), speed(fast));
    let ratios: Vec<f64> = p.iter().zip(&f).map(|(p, f)| f / p).collect();
    let drafted: u64 = fast.iter().map(|g| u64::from(g.timings.draft_n)).sum();
    let accepted: u64 = fast.iter().map(|g| u64::from(g.timings.draft_n_accepted)).sum();
    let first = plain.first().map(|g| g.text.as_str()).unwrap_or_default();
    Ok(LookupRow {
        workload: name.to_owned(),
        completion_tokens: plain.first().map_or(0, |g| g.usage.completion_tokens),
        plain_tokens_per_s: stat(&p, "plain decode tok/s")?,
        lookup_tokens_per_s: stat(&f, "lookup decode tok/s")?,
        speedup: stat(&ratios, "lookup speed-up")?,
        drafted,
        accepted,
        acceptance: if drafted == 0 { 0.0 } else { accepted as f64 / drafted as f64 },
        identical: plain.iter().chain(fast).all(|g| g.text == first),
    })
}

impl LookupResult {
    /// The report's table.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n(i) lookup decoding, greedy, up to {} tokens, alternating runs with and without \
             (engine batching measured exact: {})",
            self.max_tokens,
            if self.exact_batching { "yes" } else { "no" }
        );
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.workload.clone(),
                    r.completion_tokens.to_string(),
                    r.plain_tokens_per_s.cell(1),
                    r.lookup_tokens_per_s.cell(1),
                    format!("{:.2}x ±{:.0}%", r.speedup.median, r.speedup.spread_pct()),
                    format!("{:.0}% of {}", 100.0 * r.acceptance, r.drafted),
                    if r.identical { "yes" } else { "NO" }.to_owned(),
                ]
            })
            .collect();
        out += &table(
            &[
                "workload",
                "gen tok",
                "plain tok/s",
                "lookup tok/s",
                "speed-up",
                "accepted",
                "same text",
            ],
            &rows,
        );
        out
    }
}
