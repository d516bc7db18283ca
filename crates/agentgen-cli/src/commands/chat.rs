//! `agentgen chat`: a conversation with the model over stdin, keeping the history.
//! Commands: `/reset` forgets the history, `/save FILE` writes it as JSON, `/exit` ends.
//! Works the same with piped stdin, which is how it is tested.

use std::io::{IsTerminal, Write};
use std::path::Path;

use agentgen_core::{ChatBackend, ChatMessage, ChatRequest, StreamAccumulator};
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::backends::{self, BackendChoice};
use crate::cli::ChatArgs;
use crate::config::Settings;
use crate::error::{CliError, CliResult};

const HELP: &str = "commands: /reset (forget the conversation), /save FILE (write it as JSON), \
/exit (quit), /help";

/// Runs `agentgen chat`.
pub async fn run(args: &ChatArgs, settings: &Settings) -> CliResult {
    let choice = BackendChoice::from_settings(settings);
    backends::preflight(settings, &choice)?;
    let backend = backends::build(settings, &choice, args.backend.no_pull).await?;
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!("agentgen chat — {} model {}. {HELP}", backend.info().name, backend.info().model);
    }
    let system: Vec<ChatMessage> = args.system.iter().map(ChatMessage::system).collect();
    let mut history = system.clone();
    let mut failures = 0usize;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        if interactive {
            eprint!("> ");
            let _ = std::io::stderr().flush();
        }
        let Some(line) = lines.next_line().await.map_err(|e| CliError::io("reading stdin", e))?
        else {
            break;
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(command) = line.strip_prefix('/') {
            let (name, rest) = command.split_once(char::is_whitespace).unwrap_or((command, ""));
            match name {
                "exit" | "quit" => break,
                "reset" => {
                    history.clone_from(&system);
                    eprintln!("[history cleared]");
                }
                "save" => match save(rest.trim(), &history) {
                    Ok(()) => eprintln!("[saved {} messages to {}]", history.len(), rest.trim()),
                    Err(e) => {
                        failures += 1;
                        eprintln!("error: {e}");
                    }
                },
                "help" => eprintln!("{HELP}"),
                other => eprintln!("unknown command /{other}; {HELP}"),
            }
            continue;
        }
        history.push(ChatMessage::user(line));
        match answer(backend.as_ref(), &history, settings).await {
            Ok(text) => history.push(ChatMessage::assistant(text)),
            Err(e) => {
                history.pop();
                failures += 1;
                eprintln!("error: {e}");
            }
        }
    }
    if failures > 0 && !interactive {
        return Err(CliError::Failed(format!("{failures} chat turn(s) failed")));
    }
    Ok(())
}

/// Streams one answer to stdout and returns its text.
async fn answer(
    backend: &dyn ChatBackend,
    history: &[ChatMessage],
    settings: &Settings,
) -> CliResult<String> {
    let mut req = ChatRequest::new(history.to_vec());
    req.temperature = settings.run.temperature;
    req.max_tokens = settings.run.max_tokens;
    req.seed = settings.run.seed;
    let mut stream = backend.stream(req).await?;
    let mut acc = StreamAccumulator::new();
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if let Some(text) = &chunk.content {
            let _ = write!(out, "{text}");
            let _ = out.flush();
        }
        acc.push(&chunk);
    }
    let _ = writeln!(out);
    let _ = out.flush();
    let response = acc.finish()?;
    Ok(response.text().unwrap_or_default().to_owned())
}

/// Writes the conversation as `{"messages": [...]}` in the OpenAI wire shape.
fn save(file: &str, history: &[ChatMessage]) -> CliResult {
    if file.is_empty() {
        return Err(CliError::Usage("/save needs a file name: /save FILE".into()));
    }
    let body = serde_json::to_string_pretty(&serde_json::json!({ "messages": history }))
        .map_err(|e| CliError::Failed(e.to_string()))?;
    std::fs::write(Path::new(file), body + "\n")
        .map_err(|e| CliError::io(format!("writing {file}"), e))
}
