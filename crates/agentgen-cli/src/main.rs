//! The `agentgen` binary: runs agent teams and chats on a local CPU model, Groq or any
//! OpenAI-compatible API; pulls and lists models; serves the local model over HTTP; checks the
//! machine. A thin layer over the library crates: it merges configuration (see [`config`]),
//! picks a backend, and prints results to stdout and logs to stderr.

#![forbid(unsafe_code)]

#[macro_use]
mod output;
mod backends;
mod cli;
mod commands;
mod config;
mod error;
mod key_trust;
mod machine;
mod team;
mod telemetry;
mod tools;
mod ui;

use std::io::Write;

use crate::cli::{Cli, Command, ConfigAction, TeamAction};
use crate::config::{Overrides, Sources};
use crate::error::{CliError, CliResult, EXIT_OK};
use clap::{CommandFactory, Parser};

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version exit 0 and print to stdout; real usage errors exit 2.
            let _ = e.print();
            std::process::exit(e.exit_code());
        }
    };
    // `[telemetry]` is read before the command runs; a configuration error is the command's
    // to report.
    let early = config::load(&Sources::from_process(cli.config.clone()), &Overrides::default());
    let early = early.as_ref().ok().map(|s| (&s.telemetry, s.origins.otlp_endpoint));
    telemetry::init(cli.verbose, cli.quiet, early);
    let code = match dispatch(cli) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            let _ = std::io::stdout().flush();
            eprintln!("error: {e}");
            e.exit_code()
        }
    };
    // Spans still in the exporter's batch are sent before the process ends.
    telemetry::shutdown();
    std::process::exit(code);
}

/// Merges the configuration layers with these command-line overrides.
fn settings(
    cli_config: Option<std::path::PathBuf>,
    flags: &Overrides,
) -> CliResult<config::Settings> {
    config::load(&Sources::from_process(cli_config), flags)
}

fn overrides(b: &cli::BackendArgs) -> Overrides {
    Overrides {
        backend: b.backend.clone(),
        model: b.model.clone(),
        base_url: b.base_url.clone(),
        temperature: b.temperature,
        max_tokens: b.max_tokens,
        seed: b.seed,
        ..Overrides::default()
    }
}

pub(crate) fn runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::io("starting the async runtime", e))
}

fn dispatch(cli: Cli) -> CliResult {
    match cli.command {
        Command::Run(args) => {
            if args.task.trim().is_empty() {
                return Err(CliError::Usage(
                    "the task is empty; say what the team should do, e.g. `agentgen run \"Write a \
                     haiku about Rust\"`"
                        .into(),
                ));
            }
            let mut flags = overrides(&args.backend);
            flags.max_messages = args.max_messages;
            let settings = settings(cli.config, &flags)?;
            runtime()?.block_on(commands::run::run(&args, &settings))
        }
        Command::Resume(args) => {
            let settings = settings(cli.config, &overrides(&args.backend))?;
            runtime()?.block_on(commands::sessions::resume(&args, &settings))
        }
        Command::Sessions(args) => commands::sessions::sessions(&args),
        Command::Chat(args) => {
            let settings = settings(cli.config, &overrides(&args.backend))?;
            runtime()?.block_on(commands::chat::run(&args, &settings))
        }
        Command::Serve(args) => {
            let mut flags = overrides(&args.backend);
            flags.host = args.host.clone();
            flags.port = args.port;
            flags.server_api_key = args.api_key.clone();
            flags.local_only = args.local_only;
            let settings = settings(cli.config, &flags)?;
            runtime()?.block_on(commands::serve::run(&args, &settings))
        }
        Command::Pull(args) => {
            let settings = settings(cli.config, &Overrides::default())?;
            commands::pull::run(&args, settings.pull.verify)
        }
        Command::Models(args) => commands::models_cmd(&args),
        Command::Doctor(args) => commands::doctor::run(&args),
        Command::VerifyLocal(args) => {
            let settings = settings(cli.config, &Overrides::default())?;
            runtime()?.block_on(commands::verify::run(&args, &settings))
        }
        Command::Team { action: TeamAction::Check { file } } => commands::team::check(&file),
        Command::Team { action: TeamAction::New { kind } } => commands::team::new(&kind),
        Command::Config { action: ConfigAction::Show { json } } => {
            let settings = settings(cli.config, &Overrides::default())?;
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&settings.to_masked_json()).unwrap_or_default()
                );
            } else {
                output::write_stdout(format_args!("{}", settings.to_masked_toml()));
            }
            Ok(())
        }
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "agentgen", &mut script);
            output::write_stdout(format_args!("{}", String::from_utf8_lossy(&script)));
            Ok(())
        }
    }
}
