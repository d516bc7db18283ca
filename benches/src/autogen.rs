//! (j) The agent-team workload three ways, in alternating rounds: on agentgen's own runtime
//! in-process, and as the same team written with AutoGen (Python, `benches/python/autogen_team.py`)
//! against `agentgen serve` and against each `--compare` server (llama-server on the same GGUF).
//! Wall time of each conversation and the prompt/completion tokens each side reports; the ratio
//! is native / AutoGen-on-that-server per round. The model is the same but the conversations
//! need not be: each server renders the chat template and parses tool calls its own way, so
//! the agents may say different things at temperature 0; compare the token counts too.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use agentgen_core::ChatBackend;
use serde::{Deserialize, Serialize};
use tokio::process::Command;

use crate::stats::Stat;
use crate::team::run_team;

/// The AutoGen team script, relative to the workspace root.
pub const SCRIPT: &str = "benches/python/autogen_team.py";

/// Why (j) gave no figures.
#[derive(Debug, thiserror::Error)]
pub enum AutogenError {
    /// The Python script could not be started.
    #[error("cannot start {python}: {source}")]
    Spawn {
        /// The interpreter.
        python: String,
        /// Why.
        source: std::io::Error,
    },
    /// It ran past its time limit.
    #[error("the AutoGen team against {0} ran past its time limit")]
    Timeout(String),
    /// It failed.
    #[error("the AutoGen team against {url} failed: {stderr}")]
    Failed {
        /// The server.
        url: String,
        /// The end of its stderr.
        stderr: String,
    },
    /// Its output was not the JSON line expected.
    #[error("the AutoGen team printed no result: {0}")]
    Parse(String),
    /// The native team failed.
    #[error("the native team failed: {0}")]
    Native(#[from] agentgen_core::BackendError),
    /// No finite figures.
    #[error("no finite figures for {0}")]
    NoFigures(String),
}

/// One run of the AutoGen script, as it prints it.
#[derive(Debug, Clone, Deserialize)]
struct ScriptRun {
    wall_s: f64,
    prompt_tokens: u64,
    completion_tokens: u64,
}

/// The AutoGen team against one server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AutogenRow {
    /// `agentgen serve` or the `--compare` URL.
    pub server: String,
    /// Wall time per conversation, seconds.
    pub wall_s: Stat,
    /// Prompt tokens per conversation (median), as the server reported them to AutoGen.
    pub prompt_tokens: u64,
    /// Completion tokens per conversation (median).
    pub completion_tokens: u64,
    /// Native wall time / this wall time, per round.
    pub native_ratio: Stat,
}

/// (j) as a whole.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AutogenResult {
    /// Agent messages per conversation (after the task).
    pub messages: usize,
    /// The native team's wall time per conversation, seconds.
    pub native_wall_s: Stat,
    /// The native team's prompt tokens per conversation (median).
    pub native_prompt_tokens: u64,
    /// The native team's completion tokens per conversation (median).
    pub native_completion_tokens: u64,
    /// One row per server.
    pub rows: Vec<AutogenRow>,
}

/// Where and how (j) runs.
#[derive(Debug)]
pub struct Versus<'a> {
    /// The Python interpreter with autogen-agentchat and autogen-ext[openai].
    pub python: &'a Path,
    /// The script.
    pub script: &'a Path,
    /// (label, base URL, model id) of each server.
    pub servers: Vec<(String, String, String)>,
    /// Agent messages per conversation.
    pub messages: usize,
    /// Most tokens per model answer.
    pub max_tokens: u32,
    /// Rounds counted, after `warmup` rounds that are not.
    pub rounds: usize,
    /// Rounds not counted.
    pub warmup: usize,
}

/// Runs the script once against `url`; bounded to 20 minutes.
async fn autogen_once(
    v: &Versus<'_>,
    url: &str,
    model: &str,
    tag: &str,
) -> Result<ScriptRun, AutogenError> {
    let mut cmd = Command::new(v.python);
    cmd.arg(v.script)
        .args(["--base-url", url, "--model", model, "--tag", tag])
        .args(["--messages", &v.messages.to_string()])
        .args(["--max-tokens", &v.max_tokens.to_string()])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let child = cmd.output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(1200), child)
        .await
        .map_err(|_| AutogenError::Timeout(url.to_owned()))?
        .map_err(|source| AutogenError::Spawn { python: v.python.display().to_string(), source })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(AutogenError::Failed {
            url: url.to_owned(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
        });
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_default();
    serde_json::from_str(line).map_err(|e| AutogenError::Parse(format!("{e}: {line:.200}")))
}

fn stat(v: &[f64], what: &str) -> Result<Stat, AutogenError> {
    Stat::of(v).ok_or_else(|| AutogenError::NoFigures(what.to_owned()))
}

fn median(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// Runs (j): each round the native team, then the AutoGen team against each server in turn.
pub async fn versus(
    native: Arc<dyn ChatBackend>,
    v: &Versus<'_>,
    tag: &str,
    mut tick: impl FnMut(),
) -> Result<AutogenResult, AutogenError> {
    let mut native_wall = Vec::new();
    let mut native_prompt = Vec::new();
    let mut native_completion = Vec::new();
    let mut runs: Vec<Vec<ScriptRun>> = vec![Vec::new(); v.servers.len()];
    for round in 0..v.warmup + v.rounds {
        let mut noop = || {};
        let n = run_team(
            native.clone(),
            &format!("{tag}-n{round}"),
            v.messages,
            v.max_tokens,
            &mut noop,
        )
        .await?;
        let mut theirs = Vec::new();
        for (i, (_, url, model)) in v.servers.iter().enumerate() {
            theirs.push((i, autogen_once(v, url, model, &format!("{tag}-a{i}-{round}")).await?));
        }
        tick();
        if round < v.warmup {
            continue;
        }
        native_wall.push(n.wall_s);
        native_prompt.push(n.prompt_tokens);
        native_completion.push(n.completion_tokens);
        for (i, run) in theirs {
            runs[i].push(run);
        }
    }
    let mut rows = Vec::new();
    for ((label, _, _), runs) in v.servers.iter().zip(&runs) {
        let wall: Vec<f64> = runs.iter().map(|r| r.wall_s).collect();
        let ratio: Vec<f64> = native_wall.iter().zip(&wall).map(|(n, a)| n / a).collect();
        rows.push(AutogenRow {
            server: label.clone(),
            wall_s: stat(&wall, label)?,
            prompt_tokens: median(&runs.iter().map(|r| r.prompt_tokens).collect::<Vec<_>>()),
            completion_tokens: median(
                &runs.iter().map(|r| r.completion_tokens).collect::<Vec<_>>(),
            ),
            native_ratio: stat(&ratio, label)?,
        });
    }
    Ok(AutogenResult {
        messages: v.messages,
        native_wall_s: stat(&native_wall, "native")?,
        native_prompt_tokens: median(&native_prompt),
        native_completion_tokens: median(&native_completion),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_lines_parse() {
        let line = r#"{"wall_s": 12.5, "prompt_tokens": 6493, "completion_tokens": 472, "sources": ["user"], "stop_reason": "x"}"#;
        let run: ScriptRun = serde_json::from_str(line).unwrap();
        assert_eq!(run.prompt_tokens, 6493);
        assert_eq!(median(&[5, 1, 3]), 3);
    }
}
