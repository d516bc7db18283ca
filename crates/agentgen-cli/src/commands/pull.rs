//! `agentgen pull [NAME]`: puts a catalog model's GGUF into the local cache, with a progress
//! bar; a second pull of an intact file does nothing. Needs no llama.cpp (agentgen-models).

use std::path::PathBuf;

use agentgen_models::pull::{verification, PullError, PullOutcome};
use agentgen_models::{catalog_entry, quantisation, ModelCache, PullOptions};

use crate::cli::PullArgs;
use crate::error::{CliError, CliResult};

/// Runs `agentgen pull`; `verify` (`--verify` or `[pull] verify`) refuses files the catalog
/// has no sha256 for.
pub fn run(args: &PullArgs, verify: bool) -> CliResult {
    let path = pull_model(args.name.as_deref(), args.quant.as_deref(), verify || args.verify)?;
    outln!("{}", path.display());
    Ok(())
}

/// Pulls `quant` (default: the catalog's first) of `name` (default: the default model) into
/// the cache, reporting progress and what the file was checked against on stderr.
pub fn pull_model(name: Option<&str>, quant: Option<&str>, verify: bool) -> CliResult<PathBuf> {
    let entry = catalog_entry(name).map_err(pull_error)?;
    let q = quantisation(entry, quant).map_err(pull_error)?;
    if q.sources.is_empty() {
        return Err(CliError::Config(format!(
            "model `{}` ({}) lists no download source; see `agentgen models`",
            entry.id, q.name
        )));
    }
    let cache = ModelCache::from_env();
    eprintln!("pulling {} {} into {}", entry.id, q.name, cache.root.display());
    let opts = PullOptions { require_sha256: verify, ..PullOptions::default() };
    let report = agentgen_models::pull(entry, q, &cache, &opts).map_err(pull_error)?;
    let checked = verification(q);
    match &report.outcome {
        PullOutcome::AlreadyPresent => eprintln!("already in the cache ({checked})"),
        PullOutcome::Downloaded { source, replaced } => {
            if let Some(problem) = replaced {
                eprintln!("replaced a bad cached file ({problem:?})");
            }
            eprintln!("downloaded from {source} ({checked})");
        }
    }
    Ok(report.path)
}

fn pull_error(e: PullError) -> CliError {
    match e {
        PullError::UnknownModel { name, known } => CliError::UnknownModel { name, known },
        PullError::NoQuantisation { .. } => CliError::Usage(e.to_string()),
        PullError::Unverified { .. } => CliError::Config(e.to_string()),
        other => CliError::Failed(format!("pull failed: {other}")),
    }
}
