//! `agentgen-codebench` (run through `cargo xtask bench`): the default team against one plain
//! model call on HumanEval problems with hidden tests (see `benches::code_tasks`). Prints a row
//! per problem as it goes, then the totals; writes `code_tasks.json` and `code_tasks.md`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use benches::code_tasks::{self, Attempt, Contender, RunSettings};
use clap::Parser;
use serde::Serialize;

/// Score the default team and one plain call on code tasks with hidden tests.
#[derive(Debug, Parser)]
#[command(name = "agentgen-codebench")]
struct Args {
    /// The `agentgen` binary to run (`cargo xtask bench` builds it and passes it).
    #[arg(long, value_name = "PATH")]
    agentgen: PathBuf,
    /// The GGUF to run (default: $AGENTGEN_TEST_MODEL, else the default model in the cache).
    #[arg(long, value_name = "PATH")]
    model: Option<PathBuf>,
    /// The index of the first problem (0 = HumanEval/0).
    #[arg(long, default_value_t = 0)]
    first: usize,
    /// How many problems from `--first` (HumanEval has 164).
    #[arg(long, default_value_t = 20)]
    tasks: usize,
    /// Three problems: checks the whole path in a few minutes.
    #[arg(long)]
    quick: bool,
    /// Most tokens per model call.
    #[arg(long, default_value_t = 512)]
    max_tokens: u32,
    /// Output folder (default: <workspace>/target/bench).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// One problem's row.
#[derive(Debug, Serialize)]
struct Row {
    task_id: String,
    one_call: Attempt,
    default_team: Attempt,
}

/// `code_tasks.json`.
#[derive(Debug, Serialize)]
struct Report {
    schema: u32,
    benchmark: &'static str,
    model: String,
    max_tokens: u32,
    temperature: f32,
    problems: usize,
    one_call_solved: usize,
    default_team_solved: usize,
    rows: Vec<Row>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agentgen-codebench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let model = match args.model {
        Some(p) => p,
        None => agentgen_models::cache::test_model_path()?,
    };
    let out = args.out.unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target").join("bench")
    });
    let work = code_tasks::work_dir(&out)?;
    // The runs start in their own folders: a relative path would no longer name the binary.
    let agentgen = std::fs::canonicalize(&args.agentgen)
        .map_err(|e| format!("{}: {e}", args.agentgen.display()))?;
    let settings = RunSettings {
        agentgen,
        model: model.clone(),
        max_tokens: args.max_tokens,
        work: work.path().to_owned(),
    };
    let take = if args.quick { 3 } else { args.tasks.max(1) };
    let all = code_tasks::problems()?;
    if args.first >= all.len() {
        return Err(format!("--first {}: there are {} problems", args.first, all.len()).into());
    }
    let problems: Vec<_> = all.into_iter().skip(args.first).take(take).collect();
    println!(
        "{:<14} {:>8} {:>7} {:>8} {:>8} {:>6} {:>7}",
        "problem", "one call", "s", "team", "messages", "runs", "s"
    );
    let mut rows = Vec::new();
    for (i, problem) in problems.iter().enumerate() {
        // Alternate who goes first, so a warm page cache favours neither.
        let run = |who| code_tasks::attempt(&settings, problem, who);
        let (one, team) = if i % 2 == 0 {
            let one = run(Contender::OneCall).await?;
            (one, run(Contender::DefaultTeam).await?)
        } else {
            let team = run(Contender::DefaultTeam).await?;
            (run(Contender::OneCall).await?, team)
        };
        println!(
            "{:<14} {:>8} {:>7.1} {:>8} {:>8} {:>6} {:>7.1}",
            problem.task_id,
            mark(&one),
            one.wall_s,
            mark(&team),
            team.messages,
            format!("{}/{}", team.passed_own_checks, team.executed),
            team.wall_s
        );
        rows.push(Row { task_id: problem.task_id.clone(), one_call: one, default_team: team });
    }
    let report = Report {
        schema: 1,
        benchmark: "HumanEval (hidden tests)",
        model: model.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        max_tokens: args.max_tokens,
        temperature: 0.0,
        problems: rows.len(),
        one_call_solved: rows.iter().filter(|r| r.one_call.solved).count(),
        default_team_solved: rows.iter().filter(|r| r.default_team.solved).count(),
        rows,
    };
    println!(
        "solved: one call {}/{}, default team {}/{}",
        report.one_call_solved, report.problems, report.default_team_solved, report.problems
    );
    std::fs::write(out.join("code_tasks.json"), serde_json::to_string_pretty(&report)?)?;
    std::fs::write(out.join("code_tasks.md"), markdown(&report))?;
    println!("wrote {}", out.join("code_tasks.json").display());
    Ok(())
}

fn mark(a: &Attempt) -> &'static str {
    if a.solved {
        "solved"
    } else {
        "failed"
    }
}

fn markdown(r: &Report) -> String {
    let mut s = format!(
        "# Code tasks: the default team against one call\n\n{} on {} ({} problems, temperature \
         0, at most {} tokens per call). Solved: **one call {}/{}**, **default team {}/{}**.\n\n\
         | problem | one call | s | team | messages | own checks passed/run | tokens | s |\n\
         |---|---|---|---|---|---|---|---|\n",
        r.benchmark,
        r.model,
        r.problems,
        r.max_tokens,
        r.one_call_solved,
        r.problems,
        r.default_team_solved,
        r.problems
    );
    for row in &r.rows {
        let (o, t) = (&row.one_call, &row.default_team);
        let _ = writeln!(
            s,
            "| {} | {} | {:.1} | {} | {} | {}/{} | {} | {:.1} |",
            row.task_id,
            mark(o),
            o.wall_s,
            mark(t),
            t.messages,
            t.passed_own_checks,
            t.executed,
            t.tokens,
            t.wall_s
        );
    }
    s
}
