//! `agentgen run TASK`: builds the team from a team file (or the built-in writer + executor +
//! reviewer), streams its events to stdout under each speaker's name, then prints a one-line summary.

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::Instant;

use agentgen_core::agent::{AgentError, ApprovalPolicy, CodeBlock, InputFn};
use agentgen_core::events::{drive_stream, StreamItem, Task};
use agentgen_core::journal::Journal;
use agentgen_core::team::Team;
use agentgen_core::CancellationToken;
use agentgen_mcp::McpServer;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::backends::{self, BackendPool};
use crate::cli::{BackendArgs, RunArgs};
use crate::commands::sessions;
use crate::config::Settings;
use crate::error::{CliError, CliResult};
use crate::output::Printer;
use crate::team::{agent_chains, build_team, AgentKind, Runtime, TeamKind, TeamSpec};
use crate::ui::{AgentInfo, Live, RunState};

/// Runs `agentgen run`.
pub async fn run(args: &RunArgs, settings: &Settings) -> CliResult {
    let (spec, team_text) = match &args.team {
        Some(path) => {
            let (spec, text) = crate::commands::team::load(path)?;
            (spec, Some(text))
        }
        None => (TeamSpec::builtin(), None),
    };
    let mut live = match args.ui {
        true => Some(Live::start(args.ui_port, &args.task).await?),
        false => None,
    };
    let result = run_with(args, settings, &spec, team_text, live.as_mut()).await;
    if let Some(live) = &live {
        match &result {
            // Ctrl-C: the person at the terminal wants out now.
            Err(CliError::Interrupted { .. }) if !live.stop_pressed() => {}
            Err(CliError::Interrupted { .. }) | Ok(()) => live.linger().await,
            Err(e) => live.ended(RunState::Failed, Some(e.to_string())),
        }
    }
    result
}

async fn run_with(
    args: &RunArgs,
    settings: &Settings,
    spec: &TeamSpec,
    team_text: Option<String>,
    mut live: Option<&mut Live>,
) -> CliResult {
    let prepared =
        prepare(spec, &args.backend, args.max_messages, args.yes, settings, live.as_deref())
            .await?;
    if let Some(live) = live.as_deref_mut() {
        live.describe(prepared.agents.clone());
    }
    let mut store_flag = None;
    let journal = match &args.session {
        Some(name) => {
            // The team file's text (AutoGen JSON: its TOML conversion) goes into the journal:
            // resume rebuilds the same team even if the file changed or went away.
            let team = team_text;
            let team_store = args.team.as_deref().and_then(|p| spec.session_store(p));
            let store = sessions::store_path(&args.store, team_store);
            store_flag = sessions::store_flag(&store);
            let meta = SessionMeta { team, max_messages: args.max_messages };
            let meta = serde_json::to_value(meta).map_err(|e| CliError::Failed(e.to_string()))?;
            let store = sessions::open_store(&store, spec.session.durability)?;
            Some(Journal::create(store, name, meta)?)
        }
        None => None,
    };
    let result = prepared.finish(args.task.as_str().into(), journal, args.json, live).await;
    result.map_err(|e| e.with_store(store_flag))
}

/// What a journaled run needs to build its team again on resume.
#[derive(Debug, Serialize, Deserialize)]
pub struct SessionMeta {
    /// The team file's text (`None`: the built-in team).
    pub team: Option<String>,
    /// `--max-messages`, if given.
    pub max_messages: Option<usize>,
}

/// Builds the team of a spec on the configured backends (every backend checked first); with a
/// live view, each agent's model calls are timed for it.
pub async fn prepare(
    spec: &TeamSpec,
    backend: &BackendArgs,
    max_messages: Option<usize>,
    yes: bool,
    settings: &Settings,
    live: Option<&Live>,
) -> CliResult<Prepared> {
    // Every agent's backend is checked (feature, key, model name) before any model loads.
    let choices = agent_chains(spec, settings)?;
    for choice in choices.iter().flatten() {
        backends::preflight(settings, choice)?;
    }
    let mut pool = BackendPool::new(backend.no_pull);
    let mut names = Vec::with_capacity(choices.len());
    slot_names(spec, &mut names);
    let mut slot_backends = Vec::with_capacity(choices.len());
    let mut agents = Vec::with_capacity(spec.agents.len() + 1);
    for (i, choice) in choices.iter().enumerate() {
        let backend = pool.get_chain(settings, choice).await?;
        let (name, kind) = names.get(i).cloned().unwrap_or_default();
        let mut info = AgentInfo::assistant(&name, backend.info());
        info.kind = kind;
        agents.push(info);
        slot_backends.push(match live {
            // The selector's calls pick speakers; they are not agent turns.
            Some(live) if kind != "selector" => live.meter(&name, backend),
            _ => backend,
        });
    }
    for a in spec.agents.iter().filter(|a| !a.has_model()) {
        agents.push(AgentInfo {
            name: a.name.get_ref().clone(),
            kind: match a.kind {
                AgentKind::UserProxy => "user_proxy",
                _ => "code_executor",
            },
            ..AgentInfo::default()
        });
    }
    let approval = if yes { ApprovalPolicy::RunWithoutAsking } else { ask_on_terminal() };
    let mcp = connect_mcp(spec).await?;
    let rt = Runtime { settings, approval, mcp: &mcp, input: stdin_input(), max_messages };
    let built = build_team(spec, slot_backends, &rt);
    match built {
        Ok(team) => Ok(Prepared { team, mcp, agents }),
        Err(e) => {
            shutdown_mcp(mcp).await;
            Err(e)
        }
    }
}

/// The agent name and kind of every model slot, in [`agent_chains`]' order: a nested team's
/// agents before the agent that holds them, the selector's model last.
fn slot_names(spec: &TeamSpec, out: &mut Vec<(String, &'static str)>) {
    for a in &spec.agents {
        if let Some(inner) = &a.inner {
            slot_names(inner, out);
        }
        if a.has_model() {
            let kind = match a.kind {
                AgentKind::SocietyOfMind => "society_of_mind",
                _ => "assistant",
            };
            out.push((a.name.get_ref().clone(), kind));
        }
    }
    if spec.team.kind == TeamKind::Selector {
        out.push(("(selector)".to_owned(), "selector"));
    }
}

/// A user proxy's turn: the latest message on stderr, one line from stdin as the answer.
fn stdin_input() -> InputFn {
    Arc::new(|prompt: String| {
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "── your turn (one line; end of input stops) ──\n{prompt}");
                let _ = write!(err, "> ");
                let _ = err.flush();
                let mut line = String::new();
                match std::io::stdin().lock().read_line(&mut line) {
                    Ok(0) => Err("no input: standard input ended".to_owned()),
                    Ok(_) => Ok(line.trim_end_matches(['\r', '\n']).to_owned()),
                    Err(e) => Err(format!("reading standard input: {e}")),
                }
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
        })
    })
}

/// A team ready to run, with the MCP servers its tools reach (stopped by [`Prepared::finish`]).
pub struct Prepared {
    /// The team.
    pub team: Box<dyn Team>,
    /// Started or reached MCP servers.
    pub mcp: Vec<McpServer>,
    /// Its agents, with their backends and models, for the live view.
    pub agents: Vec<AgentInfo>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared").field("mcp_servers", &self.mcp.len()).finish()
    }
}

impl Prepared {
    /// Runs the team ([`drive`]), then stops the MCP servers whether the run succeeded or not.
    pub async fn finish(
        mut self,
        task: Task,
        journal: Option<Arc<Journal>>,
        json: bool,
        live: Option<&mut Live>,
    ) -> CliResult {
        let result = drive(self.team.as_mut(), task, journal, json, live).await;
        shutdown_mcp(self.mcp).await;
        result
    }
}

async fn shutdown_mcp(servers: Vec<McpServer>) {
    for server in servers {
        server.shutdown().await;
    }
}

/// Starts (or reaches) every MCP server of the team file and lists its tools.
pub async fn connect_mcp(spec: &TeamSpec) -> CliResult<Vec<McpServer>> {
    let mut servers = Vec::with_capacity(spec.mcp_servers.len());
    for s in &spec.mcp_servers {
        let server = match McpServer::connect(s.config()).await {
            Ok(server) => server,
            Err(e) => {
                shutdown_mcp(servers).await;
                return Err(e.into());
            }
        };
        for r in server.rejected() {
            eprintln!(
                "MCP server `{}`: tool `{}` not offered: {}",
                server.name(),
                r.name,
                r.reason
            );
        }
        servers.push(server);
    }
    Ok(servers)
}

/// Runs the team on `task`, journaled when `journal` is given, streaming its events to
/// stdout (and to the live view, when given). Ctrl-C (or the view's stop button) cancels the
/// run: the event in progress is committed or dropped whole, and the command fails with
/// [`CliError::Interrupted`] (exit 130).
pub async fn drive(
    team: &mut dyn Team,
    task: Task,
    journal: Option<Arc<Journal>>,
    json: bool,
    mut live: Option<&mut Live>,
) -> CliResult {
    let session = journal.as_ref().map(|j| j.session().to_owned());
    let cancel = live.as_ref().map_or_else(CancellationToken::new, |l| l.cancel_token());
    let on_ctrl_c = cancel.clone();
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_ctrl_c.cancel();
        }
    });
    let started = Instant::now();
    let mut printer = Printer::new(std::io::stdout(), json);
    let mut stream = drive_stream(move |sink| {
        Box::pin(async move {
            let sink = match journal {
                Some(j) => sink.with_journal(j),
                None => sink,
            };
            team.run_with(task, cancel, &sink).await
        })
    });
    let mut outcome = Ok(());
    while let Some(item) = stream.next().await {
        if let Some(live) = live.as_deref_mut() {
            match &item {
                Ok(StreamItem::Event(event)) => live.event(event),
                Ok(StreamItem::Done(result)) => {
                    live.ended(RunState::Finished, result.stop_reason.clone())
                }
                Err(AgentError::Cancelled) => {
                    let by = if live.stop_pressed() { "the stop button" } else { "Ctrl-C" };
                    live.ended(RunState::Cancelled, Some(format!("cancelled by {by}")));
                }
                Err(e) => live.ended(RunState::Failed, Some(e.to_string())),
            }
        }
        let written = match item {
            Ok(StreamItem::Event(event)) => printer.event(&event),
            Ok(StreamItem::Done(result)) => printer.summary(&result, started.elapsed()),
            Err(AgentError::Cancelled) => {
                outcome = Err(CliError::Interrupted { session: session.clone(), store: None });
                break;
            }
            Err(e) => {
                outcome = Err(agent_error(e));
                break;
            }
        };
        written.map_err(|e| CliError::io("writing to stdout", e))?;
    }
    ctrl_c.abort();
    outcome
}

/// Shows each block on stderr and runs it only if the person at the terminal says yes; with no
/// terminal to ask on, runs nothing.
fn ask_on_terminal() -> ApprovalPolicy {
    ApprovalPolicy::ask(|block: CodeBlock| async move {
        tokio::task::spawn_blocking(move || confirm(&block)).await.unwrap_or(false)
    })
}

fn confirm(block: &CodeBlock) -> bool {
    use std::io::IsTerminal;
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    confirm_with(block, terminal, stdin.lock(), std::io::stderr().lock())
}

/// Shows `block` on `err` and reads the answer from `input` when it is a terminal.
fn confirm_with(
    block: &CodeBlock,
    terminal: bool,
    mut input: impl std::io::BufRead,
    mut err: impl std::io::Write,
) -> bool {
    let _ = writeln!(err, "── code block ({}) ──\n{}", block.language, block.code.trim_end());
    if !terminal {
        let _ = writeln!(err, "Not run: no terminal to ask on (pass --yes to run code blocks).");
        return false;
    }
    let _ = write!(err, "Run this block in the sandbox? [y/N] ");
    let _ = err.flush();
    let mut line = String::new();
    if input.read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

pub(crate) fn agent_error(e: AgentError) -> CliError {
    match e {
        AgentError::Backend(b) => CliError::Backend(b),
        AgentError::Config(m) => CliError::Config(m),
        AgentError::PromptTemplate(e) => CliError::Config(e.to_string()),
        AgentError::Journal(j) => CliError::Journal(j),
        other => CliError::Failed(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use agentgen_core::testing::{Reply, ScriptedBackend};
    use agentgen_core::ChatBackend;

    use super::*;
    use crate::config::{load, Overrides, Sources};

    fn settings() -> Settings {
        let dir = tempfile::tempdir().unwrap();
        let sources = Sources { work_dir: Some(dir.path().to_owned()), ..Sources::default() };
        load(&sources, &Overrides::default()).unwrap()
    }

    fn yes() -> ApprovalPolicy {
        ApprovalPolicy::RunWithoutAsking
    }

    fn no_input() -> InputFn {
        Arc::new(|_| Box::pin(async { Err("no input in tests".to_owned()) }))
    }

    fn build(
        spec: &TeamSpec,
        backends: Vec<Arc<dyn ChatBackend>>,
        max_messages: usize,
        approval: ApprovalPolicy,
    ) -> CliResult<Box<dyn Team>> {
        let settings = settings();
        let rt = Runtime {
            settings: &settings,
            approval,
            mcp: &[],
            input: no_input(),
            max_messages: Some(max_messages),
        };
        build_team(spec, backends, &rt)
    }

    fn spec(text: &str) -> TeamSpec {
        TeamSpec::parse(text, Path::new("t.toml")).unwrap()
    }

    async fn sources_of(team: &mut Box<dyn Team>, task: &str) -> Vec<String> {
        let result = team.run(task.into()).await.unwrap();
        result.messages.iter().map(|m| m.source.clone()).collect()
    }

    #[tokio::test]
    async fn the_builtin_team_runs_the_writers_code_and_stops_when_the_reviewer_approves() {
        let writer: Arc<dyn ChatBackend> = Arc::new(ScriptedBackend::with_texts([
            "```python\nassert 1 + 1 == 3\n```",
            "```python\nassert 1 + 1 == 2\nprint('ok')\n```",
        ]));
        let reviewer: Arc<dyn ChatBackend> =
            Arc::new(ScriptedBackend::with_texts(["fix the assert", "APPROVE"]));
        let mut team = build(&TeamSpec::builtin(), vec![writer, reviewer], 10, yes()).unwrap();
        let result = team.run("task".into()).await.unwrap();
        let sources: Vec<&str> = result.messages.iter().map(|m| m.source.as_str()).collect();
        assert_eq!(
            sources,
            ["user", "writer", "executor", "reviewer", "writer", "executor", "reviewer"]
        );
        // The executor ran both blocks in the sandbox: the first failed, the second passed.
        assert!(result.messages[2].content.starts_with("exit code: 1"), "{:?}", result.messages[2]);
        assert!(
            result.messages[5].content.starts_with("exit code: 0\nok"),
            "{:?}",
            result.messages[5]
        );
    }

    #[tokio::test]
    async fn a_swarm_team_file_hands_off_through_the_tool() {
        let spec = spec(
            "[team]\ntype = \"swarm\"\n[termination]\nmax_messages = 5\ntext_mention = \"DONE\"\n\
             [[agents]]\nname = \"triage\"\nsystem_message = \"route\"\nhandoffs = [\"solver\"]\n\
             [[agents]]\nname = \"solver\"\nsystem_message = \"solve\"\ntools = [\"add\"]\n",
        );
        let triage: Arc<dyn ChatBackend> = Arc::new(ScriptedBackend::with_replies([Reply::call(
            "h1",
            "transfer_to_solver",
            "{}",
        )]));
        let solver: Arc<dyn ChatBackend> = Arc::new(ScriptedBackend::with_replies([
            Reply::call("c1", "add", r#"{"a": 2, "b": 3}"#),
            Reply::text("5. DONE"),
        ]));
        let mut team = build(&spec, vec![triage, solver], 5, yes()).unwrap();
        let sources = sources_of(&mut team, "2+3?").await;
        assert_eq!(sources.first().map(String::as_str), Some("user"));
        assert_eq!(sources.last().map(String::as_str), Some("solver"), "{sources:?}");
        assert!(sources.contains(&"triage".to_owned()));
    }

    #[tokio::test]
    async fn a_selector_team_asks_its_model_who_speaks() {
        let spec = spec(
            "[team]\ntype = \"selector\"\n[termination]\nmax_messages = 2\n\
             [[agents]]\nname = \"alice\"\nsystem_message = \"a\"\n\
             [[agents]]\nname = \"bob\"\nsystem_message = \"b\"\n",
        );
        let alice: Arc<dyn ChatBackend> = Arc::new(ScriptedBackend::with_texts(["from alice"]));
        let bob: Arc<dyn ChatBackend> = Arc::new(ScriptedBackend::with_texts(["from bob"]));
        let selector = Arc::new(ScriptedBackend::with_texts(["bob"]));
        let mut team =
            build(&spec, vec![alice, bob, selector.clone() as Arc<dyn ChatBackend>], 2, yes())
                .unwrap();
        assert_eq!(sources_of(&mut team, "hi").await, ["user", "bob"]);
        assert_eq!(selector.request_count(), 1);
        assert!(build(&spec, vec![], 2, yes()).is_err(), "no selector model");
    }

    #[test]
    fn agents_keep_their_own_backend_and_model() {
        let spec = spec(
            "[team]\ntype = \"round_robin\"\n\
             [[agents]]\nname = \"a\"\nsystem_message = \"a\"\n\
             [[agents]]\nname = \"b\"\nsystem_message = \"b\"\nbackend = \"groq\"\nmodel = \"m\"\n\
             [[agents]]\nname = \"c\"\nsystem_message = \"c\"\nbackend = \"groq\"\n",
        );
        let mut s = settings();
        s.model = Some("local-model".into());
        let choices = crate::team::agent_choices(&spec, &s).unwrap();
        use crate::backends::BackendChoice;
        use crate::config::BackendKind::*;
        assert_eq!(
            choices[0],
            BackendChoice { kind: Local, model: Some("local-model".into()), base_url: None }
        );
        assert_eq!(
            choices[1],
            BackendChoice { kind: Groq, model: Some("m".into()), base_url: None }
        );
        assert_eq!(choices[2], BackendChoice { kind: Groq, model: None, base_url: None });
    }

    const CODER_AND_TERMINAL: &str =
        "[team]\ntype = \"round_robin\"\n[termination]\nmax_messages = 3\n\
         [[agents]]\nname = \"coder\"\nsystem_message = \"write code\"\n\
         [[agents]]\nname = \"terminal\"\nkind = \"code_executor\"\ntimeout_s = 10\n";

    fn coder() -> Arc<dyn ChatBackend> {
        Arc::new(ScriptedBackend::with_texts([
            "```sh\necho \"key=${GROQ_API_KEY:-none}\"\ntouch ran.txt\n```",
        ]))
    }

    async fn terminal_says(team: &mut Box<dyn Team>) -> String {
        let result = team.run("print something".into()).await.unwrap();
        let last = result.messages.last().unwrap();
        assert_eq!(last.source, "terminal");
        last.content.clone()
    }

    #[tokio::test]
    async fn a_code_executor_in_a_team_file_runs_blocks_sandboxed_with_yes() {
        let spec = spec(CODER_AND_TERMINAL);
        let mut team = build(&spec, vec![coder()], 3, yes()).unwrap();
        assert_eq!(terminal_says(&mut team).await, "exit code: 0\nkey=none\n");
    }

    #[tokio::test]
    async fn without_yes_a_refused_block_does_not_run() {
        let spec = spec(CODER_AND_TERMINAL);
        let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = asked.clone();
        let refuse = ApprovalPolicy::ask(move |_block: CodeBlock| {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { false }
        });
        let mut team = build(&spec, vec![coder()], 3, refuse).unwrap();
        assert_eq!(terminal_says(&mut team).await, "Code execution was not approved.");
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn the_prompt_shows_the_block_and_runs_it_only_on_yes() {
        let block = CodeBlock { language: "sh".into(), code: "echo hi\n".into() };
        let mut shown = Vec::new();
        assert!(confirm_with(&block, true, &b"y\n"[..], &mut shown));
        let shown = String::from_utf8(shown).unwrap();
        assert!(shown.contains("── code block (sh) ──\necho hi\n") && shown.ends_with("[y/N] "));
        assert!(confirm_with(&block, true, &b"YES\n"[..], Vec::new()));
        assert!(!confirm_with(&block, true, &b"\n"[..], Vec::new()), "the default is no");
        assert!(!confirm_with(&block, true, &b"nope\n"[..], Vec::new()));
        let mut shown = Vec::new();
        assert!(!confirm_with(&block, false, &b"y\n"[..], &mut shown), "no terminal: not run");
        assert!(String::from_utf8(shown).unwrap().contains("pass --yes"));
    }
}
