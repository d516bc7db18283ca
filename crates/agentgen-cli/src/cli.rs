//! The command-line grammar: every subcommand and flag, as clap derive types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Secret;

/// The paragraph `agentgen --help` opens with.
const ABOUT: &str = "Run teams of LLM agents on a CPU model in this process, on Groq, or on any \
OpenAI-compatible API.";

const LONG_ABOUT: &str = "agentgen runs teams of LLM agents — a writer and a reviewer taking turns, \
a selector that picks the next speaker, a swarm that hands off — written once and run unchanged on \
a small GGUF model inside this process on the CPU (`--backend local`, the default), on Groq's API \
(`--backend groq`, key in GROQ_API_KEY) or on any OpenAI-compatible endpoint (`--backend openai \
--base-url URL`). It also pulls models into a local cache, lists which models run locally and \
through an API, serves the local model behind an OpenAI-compatible HTTP API with proof that it runs \
on this machine, and checks what this machine can run.\n\n\
Configuration is layered: built-in defaults < the user config file (config dir/agentgen/config.toml) \
< ./agentgen.toml < AGENTGEN_* and GROQ_API_KEY environment variables < flags. \
`agentgen config show` prints the merged result.";

const AFTER_HELP: &str = "Examples:
  agentgen pull                          fetch the default local model
  agentgen run \"Write a haiku about rust\" the default writer + executor + reviewer team, on the CPU
  agentgen run --team team.toml --backend groq \"Plan a trip\"
  agentgen chat                          talk to the model; /reset, /save FILE, /exit
  agentgen serve --port 8080             an OpenAI-compatible API on 127.0.0.1:8080
  agentgen models --local-and-api        models you can run both locally and through an API

Exit codes: 0 success, 1 runtime failure, 2 usage error, 3 configuration error (unknown backend,
missing API key, malformed team or config file, feature not built in), 4 unknown or missing model,
5 verify-local found the server not local.";

/// The `agentgen` command line.
#[derive(Debug, Parser)]
#[command(name = "agentgen", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Read this config file instead of the user config file.
    #[arg(long, global = true, value_name = "FILE", env = "AGENTGEN_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an agent team on a task and stream its conversation.
    Run(RunArgs),
    /// Resume a journaled run (`run --session NAME`) that was stopped or killed.
    Resume(ResumeArgs),
    /// List, show or remove journaled runs.
    Sessions(SessionsArgs),
    /// Chat with the model interactively (/reset, /save FILE, /exit).
    Chat(ChatArgs),
    /// Serve the model behind an OpenAI-compatible HTTP API.
    Serve(ServeArgs),
    /// Download a model into the local cache (the default model when no name is given).
    Pull(PullArgs),
    /// List the model catalog: which models run locally, through an API, or both.
    Models(ModelsArgs),
    /// Check this machine: CPU features, cores, RAM, model cache, built-in backends, API key.
    Doctor(DoctorArgs),
    /// Check that an agentgen server at URL runs on this machine with the model it claims.
    VerifyLocal(VerifyArgs),
    /// Check a team file, or print a starter one.
    Team {
        /// What to do.
        #[command(subcommand)]
        action: TeamAction,
    },
    /// Inspect the merged configuration.
    Config {
        /// What to do with it.
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Flags that choose and shape the backend, shared by `run`, `chat` and `serve`.
#[derive(Debug, Clone, Default, Args)]
pub struct BackendArgs {
    /// Where the model runs: local, groq or openai.
    #[arg(long, value_name = "NAME")]
    pub backend: Option<String>,
    /// Model: a catalog name or GGUF path for local, a model id for groq/openai.
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Base URL of an OpenAI-compatible API (with --backend openai or groq).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Sampling temperature.
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Most tokens per model answer.
    #[arg(long)]
    pub max_tokens: Option<u32>,
    /// Seed for reproducible sampling.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Refuse to download a missing local model instead of pulling it first.
    #[arg(long)]
    pub no_pull: bool,
}

/// `agentgen run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The task for the team.
    pub task: String,
    /// A team file (TOML); without it the built-in writer + executor + reviewer team runs.
    #[arg(long, value_name = "FILE")]
    pub team: Option<PathBuf>,
    /// Stop after this many messages (overrides the team file).
    #[arg(long, value_name = "N")]
    pub max_messages: Option<usize>,
    /// Print events as JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
    /// Run code executors' blocks (sandboxed) without asking first.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Journal the run under this name so `agentgen resume NAME` can finish it after a stop
    /// or a crash.
    #[arg(long, value_name = "NAME")]
    pub session: Option<String>,
    /// Also show the run live in a web page on 127.0.0.1 (its URL is printed on stderr), with
    /// a stop button; the page stays up after the run until Ctrl-C.
    #[arg(long)]
    pub ui: bool,
    /// The live view's port (0, the default, picks a free one).
    #[arg(long, value_name = "PORT", default_value_t = 0, requires = "ui")]
    pub ui_port: u16,
    /// The session store.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Backend selection.
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// Where journaled runs are kept.
#[derive(Debug, Args, Clone, Default)]
pub struct StoreArgs {
    /// The session store (default: sessions.sqlite next to the model cache, in $AGENTGEN_HOME
    /// when set).
    #[arg(long, value_name = "FILE", env = "AGENTGEN_SESSIONS", global = true)]
    pub store: Option<PathBuf>,
}

/// `agentgen resume`.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The session to resume.
    pub name: String,
    /// Print events as JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
    /// Run code executors' blocks (sandboxed) without asking first.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// The session store.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Backend selection (as for the original run).
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// `agentgen sessions`.
#[derive(Debug, Args)]
pub struct SessionsArgs {
    /// What to do (default: list).
    #[command(subcommand)]
    pub action: Option<SessionsAction>,
    /// The session store.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `agentgen sessions` actions.
#[derive(Debug, Subcommand)]
pub enum SessionsAction {
    /// Every session: records, last activity, state.
    List,
    /// A session's transcript with timings.
    Show {
        /// The session.
        name: String,
        /// Open it in the live view's web page on 127.0.0.1 instead (until Ctrl-C).
        #[arg(long)]
        ui: bool,
        /// The web page's port (0, the default, picks a free one).
        #[arg(long, value_name = "PORT", default_value_t = 0, requires = "ui")]
        ui_port: u16,
    },
    /// Deletes a session.
    Rm {
        /// The session.
        name: String,
    },
}

/// `agentgen chat`.
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// A system message for the conversation.
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,
    /// Backend selection.
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// `agentgen serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to bind (default 127.0.0.1; anything else needs --api-key).
    #[arg(long)]
    pub host: Option<String>,
    /// Port to bind (0 picks a free one).
    #[arg(long)]
    pub port: Option<u16>,
    /// Require this key as `Authorization: Bearer` or `X-Api-Key`.
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<Secret>,
    /// Refuse to start with a remote backend; implies --sealed.
    #[arg(long)]
    pub local_only: bool,
    /// Once the model is loaded, make this process unable to open or connect any socket
    /// (a seccomp filter); refuse to start where that is impossible.
    #[arg(long)]
    pub sealed: bool,
    /// Let web pages from this origin (`https://app.example:8443`, or `*` for any) call the
    /// API; repeatable. Without it, cross-origin browser requests are refused.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,
    /// Accept this name in the `Host` header besides the bound address and localhost;
    /// repeatable (a name that resolves to this machine, e.g. behind a reverse proxy).
    #[arg(long = "allow-host", value_name = "NAME")]
    pub allowed_hosts: Vec<String>,
    /// Backend selection.
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// `agentgen pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// A catalog model name; the default model when omitted.
    pub name: Option<String>,
    /// A quantisation other than the catalog's default (e.g. Q8_0).
    #[arg(long, value_name = "QUANT")]
    pub quant: Option<String>,
    /// Refuse a file the catalog has no sha256 for (also `[pull] verify = true`).
    #[arg(long)]
    pub verify: bool,
}

/// `agentgen models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// Only models whose smallest quantisation fits this machine's free RAM.
    #[arg(long)]
    pub fits: bool,
    /// Only models that run both locally and through an API.
    #[arg(long)]
    pub local_and_api: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `agentgen doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `agentgen verify-local`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The server's base URL, e.g. http://127.0.0.1:8080
    pub url: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also compute the challenge's greedy answer here from the verified GGUF and compare.
    #[arg(long)]
    pub recompute: bool,
    /// Seconds allowed for each request to the server.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub timeout: u64,
}

/// `agentgen team …`.
#[derive(Debug, Subcommand)]
pub enum TeamAction {
    /// Check a team file (`-`: standard input) and print its agents, tools, termination and
    /// graph; a broken file fails with its file:line:col.
    Check {
        /// The team file (TOML, or AutoGen component JSON ending in .json).
        file: PathBuf,
    },
    /// Print a commented starter team file that passes `team check`.
    New {
        /// The team type: round_robin, selector, swarm or graph.
        #[arg(long, default_value = "round_robin", value_name = "TYPE")]
        kind: String,
    },
}

/// `agentgen config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Print the merged configuration (secrets masked) and the files it came from.
    Show {
        /// Print JSON instead of TOML.
        #[arg(long)]
        json: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_backend_flags() {
        let cli = Cli::try_parse_from([
            "agentgen",
            "run",
            "--backend",
            "groq",
            "--model",
            "m",
            "--max-messages",
            "3",
            "task",
        ])
        .unwrap();
        let Command::Run(run) = cli.command else { panic!("not run") };
        assert_eq!(run.backend.backend.as_deref(), Some("groq"));
        assert_eq!(run.max_messages, Some(3));
        assert_eq!(run.task, "task");
        assert!(!run.yes, "code blocks are asked about unless --yes");
        let cli = Cli::try_parse_from(["agentgen", "run", "-y", "task"]).unwrap();
        let Command::Run(run) = cli.command else { panic!("not run") };
        assert!(run.yes);
    }
}
