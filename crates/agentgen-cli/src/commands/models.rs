//! `agentgen models`: the catalog as a table or JSON, filtered by what fits and what runs both
//! locally and through an API, with measured tokens/s from bench results when present.

use std::path::PathBuf;

use agentgen_models::cache::ModelCache;
use agentgen_models::catalog::{
    load_measurements, Catalog, CatalogEntry, Measurements, DEFAULT_CTX,
};
use serde_json::{json, Value};

use crate::cli::ModelsArgs;
use crate::error::CliResult;
use crate::machine;

/// Where bench results are looked for, first found wins: `./target/bench/results.json`, then
/// `$AGENTGEN_HOME/bench.json`.
pub fn bench_files() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("target").join("bench").join("results.json")];
    if let Some(home) = std::env::var_os("AGENTGEN_HOME").filter(|h| !h.is_empty()) {
        files.push(PathBuf::from(home).join("bench.json"));
    }
    files
}

fn measurements() -> Measurements {
    for file in bench_files() {
        if !file.is_file() {
            continue;
        }
        match load_measurements(&file) {
            Ok(m) => {
                tracing::debug!("measured speeds from {}", file.display());
                return m;
            }
            Err(e) => tracing::warn!("ignoring bench results: {e}"),
        }
    }
    Measurements::default()
}

fn size_text(entry: &CatalogEntry) -> String {
    match entry.quant(None).and_then(|q| q.size_bytes()) {
        Some((bytes, exact)) => {
            format!("{}{:.2} GB", if exact { "" } else { "~" }, bytes as f64 / 1e9)
        }
        None => "-".into(),
    }
}

fn ram_text(entry: &CatalogEntry) -> String {
    match entry.quant(None).and_then(|q| entry.ram_needed(q, DEFAULT_CTX)) {
        Some(bytes) => format!("{:.1} GB", bytes as f64 / 1e9),
        None => "-".into(),
    }
}

fn apis(entry: &CatalogEntry) -> String {
    let list: Vec<String> = entry
        .api
        .iter()
        .map(|a| match a.status.as_str() {
            "available" => a.provider.clone(),
            other => format!("{}({other})", a.provider),
        })
        .collect();
    if list.is_empty() {
        "-".into()
    } else {
        list.join(",")
    }
}

/// Runs `agentgen models`.
pub fn run(args: &ModelsArgs) -> CliResult {
    let catalog = Catalog::builtin();
    let free = machine::ram_info().map(|r| r.available_bytes);
    let mut entries: Vec<&CatalogEntry> = catalog.models.iter().collect();
    if args.fits {
        match free {
            Some(free) => {
                let fit: Vec<&str> =
                    catalog.fits(free, DEFAULT_CTX).iter().map(|e| e.id.as_str()).collect();
                entries.retain(|e| fit.contains(&e.id.as_str()));
            }
            None => tracing::warn!("free RAM is unknown on this OS; --fits keeps every model"),
        }
    }
    if args.local_and_api {
        let both: Vec<&str> = catalog.local_and_api().iter().map(|e| e.id.as_str()).collect();
        entries.retain(|e| both.contains(&e.id.as_str()));
    }
    let measured = measurements();
    let cache = ModelCache::from_env();

    if args.json {
        let rows: Vec<Value> = entries
            .iter()
            .map(|e| {
                let mut v = serde_json::to_value(e).unwrap_or_default();
                let q = e.quant(None);
                let extra = json!({
                    "default_quant": q.map(|q| q.name.clone()),
                    "ram_needed_bytes": q.and_then(|q| e.ram_needed(q, DEFAULT_CTX)),
                    "ram_context_tokens": DEFAULT_CTX,
                    "cached": q.is_some_and(|q| cache.path_for(&q.file).is_file()),
                    "local_source": e.has_local_source(),
                    "api_available": e.api_available(),
                    "fits_free_ram": free.map(|f| e.best_fit(f, DEFAULT_CTX).is_some()),
                    "measured_tokens_per_s": measured.for_entry(e).map(|m| m.decode_tokens_per_s),
                });
                if let (Some(obj), Value::Object(extra)) = (v.as_object_mut(), extra) {
                    obj.extend(extra);
                }
                v
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
        return Ok(());
    }

    let header =
        ["MODEL", "PARAMS", "KIND", "TOOLS", "CPU", "SIZE", "RAM@4K", "LOCAL", "API", "TOK/S"];
    let rows: Vec<[String; 10]> = entries
        .iter()
        .map(|e| {
            let yn = |b: bool| if b { "yes" } else { "no" }.to_owned();
            let local = match e.quant(None) {
                Some(q) if cache.path_for(&q.file).is_file() => "cached".to_owned(),
                _ if e.has_local_source() => "pull".to_owned(),
                _ => "-".to_owned(),
            };
            [
                e.id.clone(),
                e.parameters.clone(),
                e.kind.as_str().to_owned(),
                yn(e.tools),
                yn(e.llama_cpp_cpu),
                size_text(e),
                ram_text(e),
                local,
                apis(e),
                measured
                    .for_entry(e)
                    .map_or("-".to_owned(), |m| format!("{:.1}", m.decode_tokens_per_s)),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_owned()
    };
    outln!("{}", line(header.to_vec()));
    for row in &rows {
        outln!("{}", line(row.iter().map(String::as_str).collect()));
    }
    if rows.is_empty() {
        outln!("(no model matches)");
    }
    outln!();
    outln!(
        "SIZE: default quantisation (~ = approximate); RAM@4K: RAM to run it with a 4096-token \
         context; LOCAL: cached, or `pull` to fetch it with `agentgen pull NAME`."
    );
    if let Some(free) = free {
        outln!("Free RAM now: {}.", machine::gib(free));
    }
    Ok(())
}
