//! llama.cpp's own `llama-bench` on the same GGUF and thread count, for the ours/theirs ratio.

use std::path::{Path, PathBuf};
use std::process::Command;

use agentgen_core::{BackendError, ChatBackend};
use serde::{Deserialize, Serialize};

use crate::measure::{counting_request, sized_counting_request, stream_once};
use crate::report::{LlamaBenchResult, Ratio};
use crate::stats::Stat;

/// Why llama-bench gave no figures.
#[derive(Debug, thiserror::Error)]
pub enum LlamaBenchError {
    /// It could not be started.
    #[error("cannot start {path}: {source}")]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It exited with an error.
    #[error("{path} failed ({status}): {stderr}")]
    Failed {
        /// The binary.
        path: PathBuf,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The end of what it printed on stderr.
        stderr: String,
    },
    /// Its output was not the JSON expected from `-o json`.
    #[error("llama-bench output is not the expected JSON: {0}")]
    Parse(String),
    /// Our side of a round failed.
    #[error("our engine failed: {0}")]
    Ours(#[from] BackendError),
}

/// One llama-bench test, e.g. `pp512` or `tg128`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaTest {
    /// `pp<N>` for prompt processing of N tokens, `tg<N>` for generating N tokens.
    pub name: String,
    /// Tokens in the test.
    pub tokens: u64,
    /// Tokens per second over its repetitions.
    pub tokens_per_s: Stat,
}

/// The subset of one `llama-bench -o json` record we read.
#[derive(Debug, Deserialize)]
struct Record {
    n_prompt: u64,
    n_gen: u64,
    avg_ts: f64,
    #[serde(default)]
    samples_ts: Vec<f64>,
}

/// Finds `llama-bench` on `PATH`.
pub fn find_on_path() -> Option<PathBuf> {
    let name = format!("llama-bench{}", std::env::consts::EXE_SUFFIX);
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(&name))
        .find(|p| p.is_file())
}

/// Runs `llama-bench -m MODEL -t THREADS -p PROMPT -n GEN -r REPS -o json`.
pub fn run(
    bin: &Path,
    model: &Path,
    threads: usize,
    prompt_tokens: u32,
    gen_tokens: u32,
    reps: usize,
) -> Result<Vec<LlamaTest>, LlamaBenchError> {
    let out = Command::new(bin)
        .arg("-m")
        .arg(model)
        .args(["-t", &threads.to_string()])
        .args(["-p", &prompt_tokens.to_string()])
        .args(["-n", &gen_tokens.to_string()])
        .args(["-r", &reps.max(1).to_string()])
        .args(["-o", "json"])
        .output()
        .map_err(|source| LlamaBenchError::Spawn { path: bin.to_path_buf(), source })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(LlamaBenchError::Failed {
            path: bin.to_path_buf(),
            status: out.status,
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
        });
    }
    parse(&String::from_utf8_lossy(&out.stdout))
}

/// What (f) runs: llama-bench's `pp<prompt_tokens>` and `tg<gen_tokens>` against ours.
#[derive(Debug, Clone, Copy)]
pub struct HeadToHead<'a> {
    /// The llama-bench binary.
    pub bin: &'a Path,
    /// The GGUF both run.
    pub model: &'a Path,
    /// Threads, both sides.
    pub threads: usize,
    /// Prompt tokens of the pp test.
    pub prompt_tokens: usize,
    /// Generated tokens of the tg test.
    pub gen_tokens: u32,
    /// Rounds counted, after `warmup` rounds that are not.
    pub rounds: usize,
    /// Rounds not counted.
    pub warmup: usize,
}

/// (f) Ours and llama-bench in alternating rounds, so a machine that slows down or speeds up
/// moves both alike: each round runs our prompt test (one request whose prompt is exactly
/// `prompt_tokens` by the engine's own count, one token generated: the engine's prompt
/// timing), our decode test (a short prompt, `gen_tokens` generated: its decode timing), then
/// one llama-bench repetition of both. Run at least one warm-up round: it also learns how many
/// template tokens the prefix cache serves. Each figure is the median over the rounds with its
/// spread, and the ratio is the median of the rounds' ours/theirs.
pub async fn head_to_head(
    backend: &dyn ChatBackend,
    h: HeadToHead<'_>,
    tag: &str,
    mut tick: impl FnMut(),
) -> Result<LlamaBenchResult, LlamaBenchError> {
    let pp = format!("pp{}", h.prompt_tokens);
    let tg = format!("tg{}", h.gen_tokens);
    let (mut ours_pp, mut ours_tg, mut theirs_pp, mut theirs_tg) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut evaluated = Vec::new();
    // The template's first tokens come from the prefix cache: size the prompt so that the
    // tokens evaluated are `prompt_tokens`, learning how many are cached from the last round.
    let mut cached = 0;
    for round in 0..h.warmup + h.rounds {
        let size = h.prompt_tokens + cached;
        let prompt = sized_counting_request(backend, &format!("pp{round}-{tag}"), size, 1).await?;
        let prompt = stream_once(backend, prompt).await?;
        cached = prompt.cached_tokens as usize;
        let decode = counting_request(&format!("tg{round}-{tag}"), 8, h.gen_tokens);
        let decode = stream_once(backend, decode).await?;
        let theirs = run(h.bin, h.model, h.threads, h.prompt_tokens as u32, h.gen_tokens, 1)?;
        tick();
        if round < h.warmup {
            continue;
        }
        let (Some(p), Some(d)) = (prompt.timings, decode.timings) else {
            return Err(
                BackendError::Internal("the local backend reported no timings".into()).into()
            );
        };
        let of =
            |name: &str| {
                theirs.iter().find(|t| t.name == name).map(|t| t.tokens_per_s.median).ok_or_else(
                    || LlamaBenchError::Parse(format!("llama-bench gave no {name} figure")),
                )
            };
        theirs_pp.push(of(&pp)?);
        theirs_tg.push(of(&tg)?);
        ours_pp.push(p.prompt_per_second);
        ours_tg.push(d.predicted_per_second);
        evaluated.push(f64::from(p.prompt_n));
    }
    let stat = |v: &[f64], what: &str| {
        Stat::of(v).ok_or_else(|| LlamaBenchError::Parse(format!("no finite {what} figures")))
    };
    let ratio = |ours: &[f64], theirs: &[f64], test: &str| -> Result<Ratio, LlamaBenchError> {
        let per_round: Vec<f64> = ours.iter().zip(theirs).map(|(o, t)| o / t).collect();
        Ok(Ratio {
            test: test.to_owned(),
            ours: stat(ours, test)?,
            theirs: stat(theirs, test)?,
            ratio: stat(&per_round, test)?,
        })
    };
    let ratios = vec![ratio(&ours_pp, &theirs_pp, &pp)?, ratio(&ours_tg, &theirs_tg, &tg)?];
    let tests = vec![
        LlamaTest {
            name: pp,
            tokens: h.prompt_tokens as u64,
            tokens_per_s: stat(&theirs_pp, "pp")?,
        },
        LlamaTest {
            name: tg,
            tokens: u64::from(h.gen_tokens),
            tokens_per_s: stat(&theirs_tg, "tg")?,
        },
    ];
    Ok(LlamaBenchResult {
        binary: h.bin.display().to_string(),
        tests,
        ratios,
        ours_prompt_tokens_evaluated: stat(&evaluated, "evaluated")?.median.round() as u64,
    })
}

/// Parses `llama-bench -o json` output into its pp/tg tests.
pub fn parse(json: &str) -> Result<Vec<LlamaTest>, LlamaBenchError> {
    let records: Vec<Record> =
        serde_json::from_str(json.trim()).map_err(|e| LlamaBenchError::Parse(e.to_string()))?;
    let mut tests = Vec::new();
    for r in records {
        let (name, tokens) = match (r.n_prompt, r.n_gen) {
            (p, 0) if p > 0 => (format!("pp{p}"), p),
            (0, g) if g > 0 => (format!("tg{g}"), g),
            (p, g) => (format!("pp{p}+tg{g}"), p + g),
        };
        let samples = if r.samples_ts.is_empty() { vec![r.avg_ts] } else { r.samples_ts };
        let tokens_per_s = Stat::of(&samples)
            .ok_or_else(|| LlamaBenchError::Parse(format!("{name}: no finite samples")))?;
        tests.push(LlamaTest { name, tokens, tokens_per_s });
    }
    if tests.is_empty() {
        return Err(LlamaBenchError::Parse("no test records".into()));
    }
    Ok(tests)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trimmed from a real `llama-bench -o json` run (llama.cpp b4xxx and later).
    const SAMPLE: &str = r#"[
  {
    "build_commit": "abc1234", "build_number": 4567, "cpu_info": "x", "gpu_info": "",
    "model_filename": "m.gguf", "model_type": "qwen2 1B Q4_K - Medium", "n_threads": 2,
    "n_prompt": 512, "n_gen": 0, "test_time": "2026-11-29T10:00:00Z",
    "avg_ns": 1500000000, "stddev_ns": 1000000, "avg_ts": 341.2, "stddev_ts": 2.1,
    "samples_ns": [1490000000, 1510000000], "samples_ts": [343.6, 338.8]
  },
  {
    "build_commit": "abc1234", "build_number": 4567, "n_threads": 2,
    "n_prompt": 0, "n_gen": 128, "avg_ns": 2000000000, "stddev_ns": 1000000,
    "avg_ts": 62.0, "stddev_ts": 0.5
  }
]"#;

    #[test]
    fn parses_pp_and_tg() {
        let tests = parse(SAMPLE).unwrap();
        assert_eq!(tests.len(), 2);
        assert_eq!(tests[0].name, "pp512");
        assert_eq!(tests[0].tokens, 512);
        assert_eq!(tests[0].tokens_per_s.n, 2);
        assert!((tests[0].tokens_per_s.median - 341.2).abs() < 1e-9);
        assert_eq!(tests[1].name, "tg128");
        assert_eq!(tests[1].tokens_per_s.median, 62.0);
    }

    #[test]
    fn rejects_other_output() {
        assert!(matches!(parse("| model | size |"), Err(LlamaBenchError::Parse(_))));
        assert!(matches!(parse("[]"), Err(LlamaBenchError::Parse(_))));
    }

    #[test]
    fn a_missing_binary_is_a_spawn_error() {
        let err = run(Path::new("/nonexistent/llama-bench"), Path::new("m.gguf"), 1, 8, 8, 1)
            .unwrap_err();
        assert!(matches!(err, LlamaBenchError::Spawn { .. }), "{err}");
    }
}
