//! benches: agentgen's benchmarks.
//!
//! - `benches/hot_paths.rs`: criterion benches of the hot pure-Rust paths (chat-template
//!   rendering, SSE parsing, tool-call parsing, JSON-schema grammar compilation, request JSON
//!   decoding), run with `cargo bench -p benches`.
//! - `benches/http_path.rs`: criterion benches of the HTTP path alone: a request to an
//!   instant backend in-process against the same through `agentgen serve` on loopback.
//! - The `agentgen-bench` binary, run by `cargo xtask bench`: end-to-end workloads on the real
//!   model — one completion at several prompt lengths, an agent team, the HTTP server under
//!   concurrent clients, Groq and any OpenAI-compatible URL side by side, and llama.cpp's
//!   `llama-bench` for the ours/theirs ratio, and `agentgen serve` head to head with other
//!   servers in alternating rounds, and lookup decoding on code edits and prose with and
//!   without drafts. It prints tables, writes `results.json` (whose
//!   `models` section feeds the model catalog) and PNG charts.
//! - The `agentgen-codebench` binary, also run by `cargo xtask bench`: the default team
//!   (writer, executor, reviewer) against one plain call on HumanEval problems, scored by their
//!   hidden tests in the sandbox.
//! - The `agentgen-load` binary, also run by `cargo xtask bench`: 64 hostile and normal
//!   clients at once against the server on the real model, and whether it recovers.

pub mod autogen;
pub mod charts;
pub mod code_tasks;
pub mod llama_bench;
pub mod load;
pub mod lookup;
pub mod machine;
pub mod measure;
pub mod report;
pub mod stats;
pub mod team;
pub mod versus;
pub mod workloads;
