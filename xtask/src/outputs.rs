//! Checks on what the benchmarks write: `agentgen-bench`'s `results.json` has every workload's
//! fields with finite numbers and each chart it lists is a real PNG; `agentgen-codebench`'s
//! `code_tasks.json` has every run finished and scored. Contents only, never speed or scores.

use std::path::Path;

use serde_json::Value;

use crate::cmd::Error;

/// The PNG file signature.
const PNG_MAGIC: &[u8; 8] = b"\x89PNG\r\n\x1a\n";

/// Checks `dir/results.json` and the charts it names; returns a short summary.
pub fn check_dir(dir: &Path) -> Result<String, Error> {
    let path = dir.join("results.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::Other(format!("cannot read {}: {e}", path.display())))?;
    let json: Value = serde_json::from_str(&text)
        .map_err(|e| Error::Other(format!("{} is not JSON: {e}", path.display())))?;
    let problems = check_results(&json);
    if !problems.is_empty() {
        return Err(Error::Other(format!("{}:\n  {}", path.display(), problems.join("\n  "))));
    }
    let charts = json["charts"].as_array().map(Vec::as_slice).unwrap_or_default();
    for chart in charts {
        let name = chart.as_str().unwrap_or_default();
        check_png(&dir.join(name))?;
    }
    Ok(format!(
        "bench output OK: {} ({} bytes), {} PNG charts in {}",
        path.display(),
        text.len(),
        charts.len(),
        dir.display()
    ))
}

/// Every problem found in a results document (empty when it is complete).
pub fn check_results(json: &Value) -> Vec<String> {
    let mut c = Checker::default();
    c.num(&json["machine"]["logical_cpus"], "machine.logical_cpus");
    c.num(&json["machine"]["ram_bytes"], "machine.ram_bytes");
    c.num(&json["config"]["threads"], "config.threads");
    c.num(&json["config"]["runs"], "config.runs");

    let completion = json["completion"].as_array().map(Vec::as_slice).unwrap_or_default();
    if completion.is_empty() {
        c.problems.push("completion: no rows".into());
    }
    for (i, row) in completion.iter().enumerate() {
        c.num(&row["prompt_tokens"], &format!("completion[{i}].prompt_tokens"));
        for field in ["ttft_ms", "prompt_tokens_per_s", "decode_tokens_per_s"] {
            c.stat(&row[field], &format!("completion[{i}].{field}"));
        }
    }

    let team = &json["team"];
    for field in ["agents", "messages", "prompt_tokens", "cached_tokens", "evaluated_tokens"] {
        c.num(&team[field], &format!("team.{field}"));
    }
    c.stat(&team["wall_s"], "team.wall_s");

    let server = json["server"].as_array().map(Vec::as_slice).unwrap_or_default();
    let clients: Vec<u64> = server.iter().filter_map(|r| r["clients"].as_u64()).collect();
    if clients != [1, 2, 4, 8] {
        c.problems
            .push(format!("server: expected rows for 1, 2, 4 and 8 clients, found {clients:?}"));
    }
    for (i, row) in server.iter().enumerate() {
        for field in ["aggregate_tokens_per_s", "latency_p50_ms", "latency_p95_ms"] {
            c.stat(&row[field], &format!("server[{i}].{field}"));
        }
    }

    // (h) runs only against `--compare` servers; each row it has must be complete.
    let versus = json["versus"].as_array().map(Vec::as_slice).unwrap_or_default();
    for (i, series) in versus.iter().enumerate() {
        let rows = series["rows"].as_array().map(Vec::as_slice).unwrap_or_default();
        if rows.is_empty() && !series["skipped"].is_string() {
            c.problems.push(format!("versus[{i}]: no rows and no `skipped` reason"));
        }
        for (j, row) in rows.iter().enumerate() {
            for field in ["ours_tokens_per_s", "theirs_tokens_per_s", "ratio"] {
                c.stat(&row[field], &format!("versus[{i}].rows[{j}].{field}"));
            }
        }
    }

    let backends = json["backends"].as_array().map(Vec::as_slice).unwrap_or_default();
    if backends.is_empty() {
        c.problems.push("backends: no rows".into());
    }
    for (i, row) in backends.iter().enumerate() {
        if row["name"].as_str().is_none() {
            c.problems.push(format!("backends[{i}].name missing"));
        }
        if row["skipped"].is_string() {
            continue;
        }
        for field in ["ttft_ms", "decode_tokens_per_s", "latency_ms"] {
            c.stat(&row[field], &format!("backends[{i}].{field}"));
        }
    }
    for section in ["groq", "llama_bench", "autogen"] {
        let v = &json[section];
        if !(v["skipped"].is_string()
            || v.is_object() && !v.as_object().is_some_and(|o| o.is_empty()))
        {
            c.problems.push(format!("{section}: expected results or a `skipped` reason"));
        }
    }

    let overhead = &json["http_overhead"];
    for field in [
        "in_process_ms",
        "http_ms",
        "overhead_ms",
        "in_process_outside_engine_ms",
        "http_outside_engine_ms",
        "overhead_outside_engine_ms",
        "stream_http_tokens_per_s",
        "stream_ratio",
    ] {
        c.stat(&overhead[field], &format!("http_overhead.{field}"));
    }
    for field in ["peak_rss_bytes", "model_bytes", "kv_cache_bytes", "budget_bytes"] {
        c.num(&json["memory"][field], &format!("memory.{field}"));
    }

    match json["models"].as_object() {
        Some(models) if !models.is_empty() => {
            for (id, m) in models {
                c.num(&m["decode_tokens_per_s"], &format!("models.{id}.decode_tokens_per_s"));
                c.num(&m["prompt_tokens_per_s"], &format!("models.{id}.prompt_tokens_per_s"));
            }
        }
        _ => c.problems.push("models: expected at least one measured model".into()),
    }

    if json["charts"]
        .as_array()
        .is_none_or(|list| list.is_empty() || list.iter().any(|n| !n.is_string()))
    {
        c.problems.push("charts: expected a list of file names".into());
    }
    c.problems
}

/// Collects the problems found.
#[derive(Debug, Default)]
struct Checker {
    problems: Vec<String>,
}

impl Checker {
    /// A finite number.
    fn num(&mut self, v: &Value, at: &str) {
        if !v.as_f64().is_some_and(f64::is_finite) {
            self.problems.push(format!("{at}: expected a finite number, found {v}"));
        }
    }

    /// A `{median, min, max, n}` summary with finite numbers and `n > 0`.
    fn stat(&mut self, v: &Value, at: &str) {
        for field in ["median", "min", "max", "n"] {
            self.num(&v[field], &format!("{at}.{field}"));
        }
        if v["n"].as_u64() == Some(0) {
            self.problems.push(format!("{at}.n: zero samples"));
        }
    }
}

/// Checks `dir/code_tasks.json` of `agentgen-codebench`: `problems` rows, every run finished
/// (a stop reason, no failure), the team's executor ran code, every answer was scored. Says
/// nothing of how many were solved: that is the model's doing.
pub fn check_code_tasks(dir: &Path, problems: usize) -> Result<String, Error> {
    let path = dir.join("code_tasks.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::Other(format!("cannot read {}: {e}", path.display())))?;
    let json: Value = serde_json::from_str(&text)
        .map_err(|e| Error::Other(format!("{} is not JSON: {e}", path.display())))?;
    let bad = code_task_problems(&json, problems);
    if !bad.is_empty() {
        return Err(Error::Other(format!("{}:\n  {}", path.display(), bad.join("\n  "))));
    }
    Ok(format!(
        "solved: one call {}/{problems}, default team {}/{problems}",
        json["one_call_solved"], json["default_team_solved"]
    ))
}

/// Every problem found in a `code_tasks.json` document (empty when it is complete).
fn code_task_problems(json: &Value, problems: usize) -> Vec<String> {
    let mut bad = Vec::new();
    let rows = json["rows"].as_array().map(Vec::as_slice).unwrap_or_default();
    if rows.len() != problems || json["problems"] != problems {
        bad.push(format!("expected {problems} problems, found {} rows", rows.len()));
    }
    let mut executed = 0;
    for row in rows {
        let id = row["task_id"].as_str().unwrap_or("?");
        for who in ["one_call", "default_team"] {
            let a = &row[who];
            let stop = a["stop"].as_str().unwrap_or_default();
            let finished = !stop.is_empty()
                && !stop.starts_with("timed out")
                && !stop.starts_with("exit status")
                && !stop.starts_with("the run failed");
            if !finished {
                bad.push(format!("{id} {who}: the run did not finish: {stop:?}"));
            }
            if a["messages"].as_u64().unwrap_or(0) < 2 {
                bad.push(format!("{id} {who}: no answer"));
            }
            if a["verdict"].as_str().unwrap_or_default().is_empty() {
                bad.push(format!("{id} {who}: the answer was not scored"));
            }
        }
        executed += row["default_team"]["executed"].as_u64().unwrap_or(0);
    }
    if executed == 0 {
        bad.push("the default team's executor never ran the writer's code".into());
    }
    bad
}

/// Checks a file is a PNG with a non-empty image header.
pub fn check_png(path: &Path) -> Result<(), Error> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::Other(format!("cannot read {}: {e}", path.display())))?;
    if bytes.len() < 24 || &bytes[..8] != PNG_MAGIC || &bytes[12..16] != b"IHDR" {
        return Err(Error::Other(format!("{} is not a PNG", path.display())));
    }
    let width = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
    let height = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    if width == 0 || height == 0 {
        return Err(Error::Other(format!(
            "{} has an empty image ({width}x{height})",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn code_task_checks_find_unfinished_and_unscored_runs() {
        let ok = json!({"stop": "Text 'APPROVE' mentioned", "messages": 4, "verdict": "passed",
                        "executed": 1});
        let good = json!({"problems": 1, "rows": [{"task_id": "HumanEval/0", "one_call": ok,
                                                   "default_team": ok}]});
        assert!(code_task_problems(&good, 1).is_empty());
        let mut bad = good.clone();
        bad["rows"][0]["default_team"]["stop"] = json!("timed out after 900 s");
        bad["rows"][0]["default_team"]["executed"] = json!(0);
        bad["rows"][0]["one_call"]["verdict"] = json!("");
        let found = code_task_problems(&bad, 1);
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(code_task_problems(&good, 3).len(), 1);
    }

    fn stat() -> Value {
        json!({"median": 10.0, "min": 9.0, "max": 11.0, "mean": 10.0, "stddev": 0.5, "n": 3})
    }

    fn complete() -> Value {
        let server: Vec<Value> = [1, 2, 4, 8]
            .iter()
            .map(|c| json!({"clients": c, "aggregate_tokens_per_s": stat(), "latency_p50_ms": stat(), "latency_p95_ms": stat()}))
            .collect();
        json!({
            "machine": {"cpu": "x", "logical_cpus": 2, "ram_bytes": 1e9},
            "config": {"threads": 2, "runs": 3},
            "completion": [{"prompt_tokens": 64, "ttft_ms": stat(), "prompt_tokens_per_s": stat(), "decode_tokens_per_s": stat()}],
            "team": {"agents": 3, "messages": 12, "prompt_tokens": 900, "cached_tokens": 600, "evaluated_tokens": 300, "wall_s": stat()},
            "server": server,
            "backends": [{"name": "agentgen", "ttft_ms": stat(), "decode_tokens_per_s": stat(), "latency_ms": stat()},
                         {"name": "groq", "skipped": "GROQ_API_KEY is not set"}],
            "groq": {"skipped": "GROQ_API_KEY is not set"},
            "llama_bench": {"skipped": "llama-bench not found"},
            "autogen": {"skipped": "no --autogen-python"},
            "http_overhead": {"in_process_ms": stat(), "http_ms": stat(), "overhead_ms": stat(),
                              "in_process_outside_engine_ms": stat(), "http_outside_engine_ms": stat(),
                              "overhead_outside_engine_ms": stat(),
                              "stream_http_tokens_per_s": stat(), "stream_ratio": stat()},
            "memory": {"peak_rss_bytes": 7e8, "model_bytes": 4.9e8, "kv_cache_bytes": 1e8, "budget_bytes": 8e8},
            "models": {"m": {"decode_tokens_per_s": 50.0, "prompt_tokens_per_s": 300.0}},
            "charts": ["completion.png"]
        })
    }

    #[test]
    fn a_complete_document_passes() {
        assert_eq!(check_results(&complete()), Vec::<String>::new());
    }

    #[test]
    fn missing_and_wrong_fields_are_named() {
        let mut doc = complete();
        doc["team"].as_object_mut().unwrap().remove("cached_tokens");
        doc["server"].as_array_mut().unwrap().pop();
        doc["completion"][0]["ttft_ms"]["median"] = json!("fast");
        doc["models"] = json!({});
        doc["versus"] = json!([{"endpoint": "http://127.0.0.1:1/v1", "rows": []}]);
        let problems = check_results(&doc).join("\n");
        assert!(problems.contains("team.cached_tokens"), "{problems}");
        assert!(problems.contains("versus[0]: no rows"), "{problems}");
        assert!(problems.contains("1, 2, 4 and 8 clients"), "{problems}");
        assert!(problems.contains("completion[0].ttft_ms.median"), "{problems}");
        assert!(problems.contains("models:"), "{problems}");
    }

    #[test]
    fn png_checks() {
        let dir = std::env::temp_dir().join(format!("xtask-png-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.png");
        let mut bytes = PNG_MAGIC.to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 13]);
        bytes.extend_from_slice(b"IHDR");
        bytes.extend_from_slice(&640u32.to_be_bytes());
        bytes.extend_from_slice(&480u32.to_be_bytes());
        std::fs::write(&good, &bytes).unwrap();
        check_png(&good).unwrap();
        let bad = dir.join("bad.png");
        std::fs::write(&bad, b"GIF89a not a png at all....").unwrap();
        assert!(check_png(&bad).is_err());
        assert!(check_png(&dir.join("absent.png")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
