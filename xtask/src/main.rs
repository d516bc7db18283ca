//! xtask: the project's automation, run as `cargo xtask <command>`.
//!
//! - `demo`: checks the build tools (installing them with apt-get when run as root), builds the
//!   `agentgen` CLI, pulls the default local model and runs the default agent team on it.
//! - `test`: the same checks, fetches the test model, then runs every test: the Rust workspace,
//!   the Python clients (`openai`, AutoGen) against `agentgen serve`, the offline proof inside a
//!   network namespace, and the quick benchmark with checks on the files it writes.
//! - `bench`: the end-to-end benchmark (`benches` package, binary `agentgen-bench`).
//! - `check-features`: the CLI's `groq` and `local` feature sets built alone, trees checked.
//! - `fuzz`: every fuzz target for 10^6 cases (`cargo test` runs them at a small budget).
//! - `llama-tools`: builds llama.cpp's `llama-bench` against the llama.cpp the engine links, for
//!   the benchmark's ours/theirs ratios (`bench` then finds it).
//!
//! xtask has no native dependencies so it compiles before cmake and libclang are installed.

mod cmd;
mod features;
mod fuzz;
mod llama_tools;
mod outputs;
mod prereq;
mod serve;
mod testrun;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The default task `cargo xtask demo` gives the team.
const DEFAULT_TASK: &str =
    "Write a Python function is_palindrome(s) that ignores case and punctuation, with a docstring.";

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "agentgen project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build, pull the default local model and run the default agent team on it.
    Demo {
        /// The task for the team.
        #[arg(default_value = DEFAULT_TASK)]
        task: String,
    },
    /// Run every test: Rust workspace, Python clients, offline proof, quick benchmark.
    Test {
        /// Leave out the quick benchmark and the checks on its output.
        #[arg(long)]
        skip_bench: bool,
    },
    /// Benchmark the backends; arguments go to `agentgen-bench` (try `cargo xtask bench --help`).
    Bench {
        /// Arguments for the benchmark runner, e.g. `--quick`, `--compare URL`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Builds the CLI's feature sets alone (`groq` without llama.cpp or a C++ compiler, `local`
    /// without an HTTP client) and checks their dependency trees.
    CheckFeatures,
    /// Runs every fuzz target long: 10^6 cases each unless `--cases` says otherwise.
    Fuzz {
        /// Cases per target.
        #[arg(long, default_value_t = 1_000_000)]
        cases: u64,
        /// Only the targets whose name contains this.
        target: Option<String>,
    },
    /// Builds llama.cpp's `llama-bench` against the llama.cpp source the engine links (into
    /// `<target>/llama.cpp/build/bin`); `bench` then compares against it.
    LlamaTools,
    /// Checks the files a benchmark run wrote under DIR (results.json and the PNG charts).
    CheckBench {
        /// The output folder, default `<target>/bench`.
        dir: Option<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { task } => demo(&task),
        Command::Test { skip_bench } => testrun::run(skip_bench),
        Command::Bench { args } => bench(&args),
        Command::CheckBench { dir } => check_bench(dir),
        Command::LlamaTools => cmd::Workspace::locate().and_then(|ws| {
            prereq::ensure(&[prereq::Need::NativeBuild])?;
            let dir = llama_tools::build(&ws)?;
            println!("built {} in {}", llama_tools::TOOLS.join(" and "), dir.display());
            Ok(std::process::ExitCode::SUCCESS)
        }),
        Command::Fuzz { cases, target } => fuzz::run(cases, target.as_deref()).map(|report| {
            println!("{report}");
            ExitCode::SUCCESS
        }),
        Command::CheckFeatures => cmd::Workspace::locate().and_then(|ws| {
            println!("{}", features::check(&ws)?);
            Ok(ExitCode::SUCCESS)
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo xtask demo`.
fn demo(task: &str) -> Result<ExitCode, cmd::Error> {
    prereq::ensure(&[prereq::Need::NativeBuild])?;
    let ws = cmd::Workspace::locate()?;
    cmd::step("building the agentgen CLI");
    ws.cargo(["build", "-p", "agentgen-cli"]).status_ok()?;
    let agentgen = ws.agentgen_bin();
    cmd::step("pulling the default model");
    cmd::Cmd::new(&agentgen).arg("pull").status_ok()?;
    // The default team's executor runs the writer's code in the sandbox (no network, no keys,
    // writes only in its own folder), so the demo does not stop to ask before each block.
    cmd::step("running the default team");
    let status = cmd::Cmd::new(&agentgen).args(["run", "--yes", task]).status()?;
    Ok(cmd::exit_code(status))
}

/// `cargo xtask bench ARGS…`.
fn bench(args: &[String]) -> Result<ExitCode, cmd::Error> {
    prereq::ensure(&[prereq::Need::NativeBuild, prereq::Need::Charts])?;
    let ws = cmd::Workspace::locate()?;
    let mut args = args.to_vec();
    let venv_python = testrun::venv_python(&ws.root.join(".venv"));
    if !args.iter().any(|a| a == "--autogen-python") && venv_python.is_file() {
        // `cargo xtask test` made it, with AutoGen: (j) runs the team through it.
        args.extend(["--autogen-python".to_owned(), venv_python.display().to_string()]);
    }
    if !args.iter().any(|a| a == "--llama-bench") {
        if let Some(bin) = llama_tools::llama_bench(&ws) {
            args.extend(["--llama-bench".to_owned(), bin.display().to_string()]);
        }
    }
    let status = ws.bench_runner(&args).status()?;
    if !status.success() || args.iter().any(|a| a == "--help" || a == "-h") {
        return Ok(cmd::exit_code(status));
    }
    let quick = args.iter().any(|a| a == "--quick");
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map_or_else(|| ws.target_dir.join("bench"), std::path::PathBuf::from);
    cmd::step("hostile load: 64 clients against the server");
    let status = ws.load_runner(quick, &out).status()?;
    if !status.success() {
        return Ok(cmd::exit_code(status));
    }
    cmd::step("code tasks: the default team against one call (HumanEval, hidden tests)");
    ws.cargo(["build", "-p", "agentgen-cli"]).status_ok()?;
    let status = ws.codebench_runner(quick, &out).status()?;
    Ok(cmd::exit_code(status))
}

/// `cargo xtask check-bench [DIR]`.
fn check_bench(dir: Option<std::path::PathBuf>) -> Result<ExitCode, cmd::Error> {
    let dir = match dir {
        Some(d) => d,
        None => cmd::Workspace::locate()?.target_dir.join("bench"),
    };
    let report = outputs::check_dir(&dir)?;
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}
