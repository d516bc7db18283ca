//! `cargo xtask fuzz`: every fuzz target for many cases (10^6 by default), one after another,
//! with the cases run and the time each took. The targets are bolero tests (`tests/fuzz_*.rs`);
//! `cargo test` runs them at a small budget, this runs them long. A failing case is printed by
//! bolero with its input, and the run stops with an error.

use std::time::Instant;

use crate::cmd::{self, Error, Workspace};

/// The fuzz targets: test file, test name. (Built with `--workspace`, as `cargo test
/// --workspace` builds them, so the two share one build.)
pub const TARGETS: &[(&str, &str)] = &[
    ("fuzz_request", "fuzz_request_parser"),
    ("fuzz_sse", "fuzz_sse_reader"),
    ("fuzz_format", "fuzz_chat_template_grammar_and_tool_calls"),
    ("fuzz_format", "fuzz_gguf_metadata_reader"),
];

/// Runs each target for `cases` cases.
pub fn run(cases: u64, only: Option<&str>) -> Result<String, Error> {
    let ws = Workspace::locate()?;
    let mut report =
        String::from("target                                       cases      seconds\n");
    for (test, name) in TARGETS.iter().filter(|t| only.is_none_or(|o| t.1.contains(o))) {
        cmd::step(&format!("fuzzing {name} ({cases} cases)"));
        let started = Instant::now();
        ws.cargo(["test", "--workspace", "--test", test, "--", "--exact", name, "--nocapture"])
            .env("BOLERO_RANDOM_ITERATIONS", cases.to_string())
            .status_ok()?;
        let secs = started.elapsed().as_secs_f64();
        report.push_str(&format!("{name:<44} {cases:>10} {secs:>10.1}\n"));
    }
    Ok(report)
}
