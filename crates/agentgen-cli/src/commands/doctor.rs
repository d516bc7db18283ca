//! `agentgen doctor`: what this machine and this binary can run.

use std::path::PathBuf;

use serde::Serialize;

use crate::cli::DoctorArgs;
use crate::error::CliResult;
use crate::machine::{self, gib, CpuInfo, RamInfo};

/// The report, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct Report {
    /// agentgen's version.
    pub version: &'static str,
    /// The CPU.
    pub cpu: CpuInfo,
    /// Memory; `null` when the OS does not say.
    pub ram: Option<RamInfo>,
    /// The model cache.
    pub model_cache: CacheReport,
    /// Backends compiled into this binary.
    pub backends: Backends,
    /// Whether `GROQ_API_KEY` is set (never its value).
    pub groq_api_key_set: bool,
    /// Things worth fixing.
    pub warnings: Vec<String>,
}

/// The model cache directory and what is in it.
#[derive(Debug, Serialize)]
pub struct CacheReport {
    /// The directory.
    pub dir: Option<PathBuf>,
    /// Model files found.
    pub files: Vec<CachedModel>,
    /// Whether the default model is there.
    pub default_model_present: bool,
}

/// One file in the cache.
#[derive(Debug, Serialize)]
pub struct CachedModel {
    /// File name.
    pub name: String,
    /// Size in bytes.
    pub size_bytes: u64,
}

/// Which Cargo features this binary was built with.
#[derive(Debug, Serialize)]
pub struct Backends {
    /// In-process CPU inference.
    pub local: bool,
    /// Groq and OpenAI-compatible APIs.
    pub groq: bool,
    /// `agentgen serve`.
    pub server: bool,
}

/// Builds the report.
pub fn report() -> Report {
    let cpu = machine::cpu_info();
    let ram = machine::ram_info();
    let model_cache = cache_report();
    let groq_api_key_set = std::env::var_os("GROQ_API_KEY").is_some_and(|v| !v.is_empty());
    let mut warnings = Vec::new();
    if cfg!(target_arch = "x86_64") && !cpu.features.iter().any(|f| f == "avx2") {
        warnings.push("no AVX2: local inference will be slow".to_owned());
    }
    if cfg!(feature = "local") && !model_cache.default_model_present {
        warnings.push("the default model is not in the cache; run `agentgen pull`".to_owned());
    }
    if let Some(ram) = ram {
        if ram.available_bytes < 1 << 30 {
            warnings.push(format!("only {} of RAM available", gib(ram.available_bytes)));
        }
    }
    Report {
        version: env!("CARGO_PKG_VERSION"),
        cpu,
        ram,
        model_cache,
        backends: Backends {
            local: cfg!(feature = "local"),
            groq: cfg!(feature = "groq"),
            server: cfg!(feature = "server"),
        },
        groq_api_key_set,
        warnings,
    }
}

fn cache_report() -> CacheReport {
    use agentgen_models::cache::{ModelCache, DEFAULT_MODEL_FILE};
    let cache = ModelCache::from_env();
    let files = match cache.list() {
        Ok(files) => files,
        Err(e) => {
            tracing::warn!("cannot list {}: {e}", cache.root.display());
            Vec::new()
        }
    };
    CacheReport {
        default_model_present: files.iter().any(|f| f.name == DEFAULT_MODEL_FILE),
        files: files
            .into_iter()
            .map(|f| CachedModel { name: f.name, size_bytes: f.size })
            .collect(),
        dir: Some(cache.root),
    }
}

/// Runs `agentgen doctor`.
pub fn run(args: &DoctorArgs) -> CliResult {
    let r = report();
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
        return Ok(());
    }
    let yes = |b: bool| if b { "yes" } else { "no" };
    outln!("agentgen {}", r.version);
    outln!("CPU:        {}", r.cpu.model.as_deref().unwrap_or("unknown"));
    outln!("Cores:      {} physical, {} logical", r.cpu.physical_cores, r.cpu.logical_cpus);
    outln!(
        "Features:   {}",
        if r.cpu.features.is_empty() { "none found".into() } else { r.cpu.features.join(" ") }
    );
    if !r.cpu.missing_features.is_empty() {
        outln!("Missing:    {}", r.cpu.missing_features.join(" "));
    }
    match r.ram {
        Some(ram) => outln!(
            "RAM:        {} total, {} available",
            gib(ram.total_bytes),
            gib(ram.available_bytes)
        ),
        None => outln!("RAM:        unknown"),
    }
    match &r.model_cache.dir {
        Some(dir) => outln!("Model cache: {}", dir.display()),
        None => outln!("Model cache: (this agentgen was built without the local backend)"),
    }
    if r.model_cache.dir.is_some() && r.model_cache.files.is_empty() {
        outln!("  (empty)");
    }
    for f in &r.model_cache.files {
        outln!("  {}  {}", f.name, gib(f.size_bytes));
    }
    outln!(
        "Backends:   local {}, groq/openai {}, server {}",
        yes(r.backends.local),
        yes(r.backends.groq),
        yes(r.backends.server)
    );
    outln!("GROQ_API_KEY: {}", if r.groq_api_key_set { "set" } else { "not set" });
    for w in &r.warnings {
        outln!("warning: {w}");
    }
    Ok(())
}
