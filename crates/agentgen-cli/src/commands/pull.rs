//! `agentgen pull [NAME]`: puts a catalog model's GGUF into the local cache, with a progress
//! bar; a second pull of an intact file does nothing.

use crate::cli::PullArgs;
use crate::error::{CliError, CliResult};

/// Runs `agentgen pull`.
pub fn run(args: &PullArgs) -> CliResult {
    let path = pull_model_quant(args.name.as_deref(), args.quant.as_deref())?;
    outln!("{}", path.display());
    Ok(())
}

/// Pulls the default quantisation of catalog model `name`; used by `run` for a missing model.
#[cfg(feature = "local")]
pub fn pull_model(name: &str) -> CliResult<std::path::PathBuf> {
    pull_model_quant(Some(name), None)
}

/// Pulls `quant` (default: the catalog's first) of `name` (default: the default model).
#[cfg(feature = "local")]
fn pull_model_quant(name: Option<&str>, quant: Option<&str>) -> CliResult<std::path::PathBuf> {
    use agentgen_local::cache::ModelCache;
    use agentgen_local::pull::{pull, PullOptions, PullOutcome};

    let entry = crate::backends::local::catalog_entry(name)?;
    let q = entry.quant(quant).ok_or_else(|| {
        let available: Vec<&str> = entry.quantisations.iter().map(|q| q.name.as_str()).collect();
        match quant {
            Some(q) => CliError::Usage(format!(
                "model `{}` has no quantisation `{q}`; available: {}",
                entry.id,
                if available.is_empty() { "none".to_owned() } else { available.join(", ") }
            )),
            None => CliError::Config(format!(
                "model `{}` has no GGUF file to pull: {}",
                entry.id, entry.verdict
            )),
        }
    })?;
    if q.sources.is_empty() {
        return Err(CliError::Config(format!(
            "model `{}` ({}) lists no download source; see `agentgen models`",
            entry.id, q.name
        )));
    }
    let cache = ModelCache::from_env();
    eprintln!("pulling {} {} into {}", entry.id, q.name, cache.root.display());
    let report = pull(entry, q, &cache, &PullOptions::default())
        .map_err(|e| CliError::Failed(format!("pull failed: {e}")))?;
    match &report.outcome {
        PullOutcome::AlreadyPresent => eprintln!("already in the cache (verified)"),
        PullOutcome::Downloaded { source, replaced } => {
            if let Some(problem) = replaced {
                eprintln!("replaced a bad cached file ({problem:?})");
            }
            eprintln!("downloaded from {source} and verified");
        }
    }
    Ok(report.path)
}

#[cfg(not(feature = "local"))]
fn pull_model_quant(_name: Option<&str>, _quant: Option<&str>) -> CliResult<std::path::PathBuf> {
    Err(CliError::FeatureMissing { feature: "local", what: "feature, which `pull` needs" })
}
