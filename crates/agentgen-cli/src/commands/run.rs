//! `agentgen run TASK`: builds the team from a team file (or the built-in writer + reviewer),
//! streams its events to stdout under each speaker's name, then prints a one-line summary.

use std::sync::Arc;
use std::time::Instant;

use agentgen_core::agent::{
    AgentError, ApprovalPolicy, AssistantAgent, ChatAgent, CodeBlock, CodeExecutorAgent,
};
use agentgen_core::events::{drive_stream, StreamItem, Task};
use agentgen_core::journal::Journal;
use agentgen_core::sandbox::SandboxPolicy;
use agentgen_core::team::{RoundRobinGroupChat, SelectorGroupChat, Swarm, Team};
use agentgen_core::termination::Termination;
use agentgen_core::tools::Tool;
use agentgen_core::{CancellationToken, ChatBackend, ToolChoice};
use agentgen_mcp::McpServer;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::backends::{self, BackendChoice, BackendPool};
use crate::cli::{BackendArgs, RunArgs};
use crate::commands::sessions;
use crate::config::Settings;
use crate::error::{CliError, CliResult};
use crate::output::Printer;
use crate::team::{AgentKind, TeamKind, TeamSpec, ToolChoiceSpec};

/// Runs `agentgen run`.
pub async fn run(args: &RunArgs, settings: &Settings) -> CliResult {
    let spec = match &args.team {
        Some(path) => TeamSpec::from_file(path)?,
        None => TeamSpec::builtin(),
    };
    let prepared = prepare(&spec, &args.backend, args.max_messages, args.yes, settings).await?;
    let mut store_flag = None;
    let journal = match &args.session {
        Some(name) => {
            // The team file's text goes into the journal: resume rebuilds the same team even if
            // the file changed or went away.
            let team = match &args.team {
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .map_err(|e| CliError::io("reading the team file", e))?,
                ),
                None => None,
            };
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
    let result = prepared.finish(args.task.as_str().into(), journal, args.json).await;
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

/// Builds the team of a spec on the configured backends (every backend checked first).
pub async fn prepare(
    spec: &TeamSpec,
    backend: &BackendArgs,
    max_messages: Option<usize>,
    yes: bool,
    settings: &Settings,
) -> CliResult<Prepared> {
    // Every agent's backend is checked (feature, key, model name) before any model loads.
    let choices = agent_choices(spec, settings)?;
    for choice in &choices {
        backends::preflight(settings, choice)?;
    }
    let mut pool = BackendPool::new(backend.no_pull);
    let mut agent_backends = Vec::with_capacity(choices.len());
    for choice in &choices {
        agent_backends.push(pool.get(settings, choice).await?);
    }
    let selector = match spec.team.kind {
        TeamKind::Selector => {
            Some(pool.get(settings, &BackendChoice::from_settings(settings)).await?)
        }
        _ => None,
    };
    let max_messages = max_messages
        .or_else(|| spec.termination.max_messages.as_ref().map(|m| *m.get_ref()))
        .unwrap_or(settings.run.max_messages);
    let approval = if yes { ApprovalPolicy::RunWithoutAsking } else { ask_on_terminal() };
    let mcp = connect_mcp(spec).await?;
    match build_team(spec, agent_backends, selector, max_messages, settings, approval, &mcp) {
        Ok(team) => Ok(Prepared { team, mcp }),
        Err(e) => {
            shutdown_mcp(mcp).await;
            Err(e)
        }
    }
}

/// A team ready to run, with the MCP servers its tools reach (stopped by [`Prepared::finish`]).
pub struct Prepared {
    /// The team.
    pub team: Box<dyn Team>,
    /// Started or reached MCP servers.
    pub mcp: Vec<McpServer>,
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
    ) -> CliResult {
        let result = drive(self.team.as_mut(), task, journal, json).await;
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
/// stdout. Ctrl-C cancels the run: the event in progress is committed or dropped whole, and
/// the command fails with [`CliError::Interrupted`] (exit 130).
pub async fn drive(
    team: &mut dyn Team,
    task: Task,
    journal: Option<Arc<Journal>>,
    json: bool,
) -> CliResult {
    let session = journal.as_ref().map(|j| j.session().to_owned());
    let cancel = CancellationToken::new();
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

/// The backend each assistant runs on (code executors need none): its own `backend`/`model`
/// from the team file, else the configured ones.
pub fn agent_choices(spec: &TeamSpec, settings: &Settings) -> CliResult<Vec<BackendChoice>> {
    spec.agents
        .iter()
        .filter(|a| a.kind == AgentKind::Assistant)
        .map(|a| {
            let kind = match &a.backend {
                Some(b) => b.get_ref().parse()?,
                None => settings.backend,
            };
            // The configured model belongs to the configured backend.
            let model = a
                .model
                .clone()
                .or_else(|| (kind == settings.backend).then(|| settings.model.clone()).flatten());
            Ok(BackendChoice { kind, model })
        })
        .collect()
}

/// Builds the team a spec describes, one backend per assistant (in order), plus the selector's
/// model for selector teams; code executors approve blocks as `approval` says.
pub fn build_team(
    spec: &TeamSpec,
    agent_backends: Vec<Arc<dyn ChatBackend>>,
    selector: Option<Arc<dyn ChatBackend>>,
    max_messages: usize,
    settings: &Settings,
    approval: ApprovalPolicy,
    mcp: &[McpServer],
) -> CliResult<Box<dyn Team>> {
    let mut agents: Vec<Box<dyn ChatAgent>> = Vec::new();
    let mut backends = agent_backends.into_iter();
    for a in &spec.agents {
        if a.kind == AgentKind::CodeExecutor {
            let mut sandbox = SandboxPolicy::default();
            if a.allow_network {
                sandbox = sandbox.allow_network();
            }
            let mut agent = CodeExecutorAgent::new(a.name.get_ref().clone(), approval.clone())
                .with_sandbox(sandbox);
            if let Some(secs) = a.timeout_s {
                agent = agent.with_timeout(std::time::Duration::from_secs(secs));
            }
            if let Some(d) = &a.description {
                agent = agent.with_description(d.clone());
            }
            agents.push(Box::new(agent));
            continue;
        }
        let backend = backends.next().ok_or_else(|| {
            CliError::Config(format!("no model backend for agent `{}`", a.name.get_ref()))
        })?;
        let mut agent = AssistantAgent::new(a.name.get_ref().clone(), backend)
            .with_system_message(a.system_message.clone().unwrap_or_default())
            .with_streaming(true);
        if let Some(d) = &a.description {
            agent = agent.with_description(d.clone());
        }
        agent = agent.with_request_defaults(agentgen_core::ChatRequest {
            max_tokens: settings.run.max_tokens,
            seed: settings.run.seed,
            temperature: settings.run.temperature,
            tool_choice: match a.tool_choice {
                ToolChoiceSpec::Auto => None,
                ToolChoiceSpec::Required => Some(ToolChoice::Required),
                ToolChoiceSpec::None => Some(ToolChoice::None),
            },
            ..agentgen_core::ChatRequest::default()
        });
        agent = agent.with_speaker_names(spec.team.speaker_names);
        for tool in &a.tools {
            for tool in resolve_tool(tool.get_ref(), mcp)? {
                agent = agent.with_tool_arc(tool).map_err(|e| CliError::Config(e.to_string()))?;
            }
        }

        for target in &a.handoffs {
            agent = agent.with_handoff(target.get_ref().as_str());
        }
        agents.push(Box::new(agent));
    }

    let mut termination = Termination::max_messages(max_messages);
    if let Some(text) = &spec.termination.text_mention {
        termination = termination | Termination::text_mention(text.get_ref().clone());
    }
    let name = spec.team.name.clone().unwrap_or_else(|| spec.team.kind.to_string());
    Ok(match spec.team.kind {
        TeamKind::RoundRobin => Box::new(
            RoundRobinGroupChat::new(agents)
                .map_err(agent_error)?
                .with_name(name)
                .with_termination(termination),
        ),
        TeamKind::Selector => {
            let selector = selector.ok_or_else(|| {
                CliError::Config("a selector team needs a model to select speakers".into())
            })?;
            Box::new(
                SelectorGroupChat::new(agents, selector)
                    .map_err(agent_error)?
                    .with_allow_repeated_speaker(spec.team.allow_repeated_speaker)
                    .with_name(name)
                    .with_termination(termination),
            )
        }
        TeamKind::Swarm => Box::new(
            Swarm::new(agents).map_err(agent_error)?.with_name(name).with_termination(termination),
        ),
    })
}

/// The tools a team file's `tools` entry names: a built-in tool, or `server.*` /
/// `server.tool` of a connected MCP server.
fn resolve_tool(entry: &str, mcp: &[McpServer]) -> CliResult<Vec<Arc<dyn Tool>>> {
    match entry.split_once('.') {
        Some((server, selector)) => {
            let server = mcp.iter().find(|m| m.name() == server).ok_or_else(|| {
                CliError::Config(format!("no MCP server `{server}` for tool `{entry}`"))
            })?;
            Ok(server.select(selector)?)
        }
        None => crate::tools::builtin(entry)
            .map(|t| vec![t])
            .ok_or_else(|| CliError::Config(format!("unknown tool `{entry}`"))),
    }
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
        AgentError::Journal(j) => CliError::Journal(j),
        other => CliError::Failed(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use agentgen_core::testing::{Reply, ScriptedBackend};

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

    fn spec(text: &str) -> TeamSpec {
        TeamSpec::parse(text, Path::new("t.toml")).unwrap()
    }

    async fn sources_of(team: &mut Box<dyn Team>, task: &str) -> Vec<String> {
        let result = team.run(task.into()).await.unwrap();
        result.messages.iter().map(|m| m.source.clone()).collect()
    }

    #[tokio::test]
    async fn the_builtin_team_stops_when_the_reviewer_approves() {
        let writer: Arc<dyn ChatBackend> =
            Arc::new(ScriptedBackend::with_texts(["draft", "draft 2"]));
        let reviewer: Arc<dyn ChatBackend> =
            Arc::new(ScriptedBackend::with_texts(["shorter please", "APPROVE"]));
        let mut team = build_team(
            &TeamSpec::builtin(),
            vec![writer, reviewer],
            None,
            10,
            &settings(),
            yes(),
            &[],
        )
        .unwrap();
        assert_eq!(
            sources_of(&mut team, "task").await,
            ["user", "writer", "reviewer", "writer", "reviewer"]
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
        let mut team =
            build_team(&spec, vec![triage, solver], None, 5, &settings(), yes(), &[]).unwrap();
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
            build_team(&spec, vec![alice, bob], Some(selector.clone()), 2, &settings(), yes(), &[])
                .unwrap();
        assert_eq!(sources_of(&mut team, "hi").await, ["user", "bob"]);
        assert_eq!(selector.request_count(), 1);
        assert!(
            build_team(&spec, vec![], None, 2, &settings(), yes(), &[]).is_err(),
            "no selector model"
        );
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
        let choices = agent_choices(&spec, &s).unwrap();
        use crate::config::BackendKind::*;
        assert_eq!(choices[0], BackendChoice { kind: Local, model: Some("local-model".into()) });
        assert_eq!(choices[1], BackendChoice { kind: Groq, model: Some("m".into()) });
        assert_eq!(choices[2], BackendChoice { kind: Groq, model: None });
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
        let mut team = build_team(&spec, vec![coder()], None, 3, &settings(), yes(), &[]).unwrap();
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
        let mut team = build_team(&spec, vec![coder()], None, 3, &settings(), refuse, &[]).unwrap();
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
