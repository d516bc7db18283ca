//! Builds the runtime team a [`TeamSpec`] describes: agents of every kind, their tools
//! (built-in, command and MCP), the team type and its termination condition.

use std::sync::Arc;

use agentgen_core::agent::{
    AgentTool, ApprovalPolicy, AssistantAgent, ChatAgent, CodeExecutorAgent, InputFn,
    SocietyOfMindAgent, UserProxyAgent,
};
use agentgen_core::memory::{ListMemory, MemoryContent};
use agentgen_core::model_context::ModelContext;
use agentgen_core::sandbox::SandboxPolicy;
use agentgen_core::team::{
    DiGraphBuilder, EdgeCondition, MagenticOneGroupChat, RoundRobinGroupChat, SelectorGroupChat,
    Swarm, Team,
};
use agentgen_core::termination::Termination;
use agentgen_core::tools::Tool;
use agentgen_core::{ChatBackend, ChatRequest, ToolChoice};
use agentgen_mcp::McpServer;

use super::command_tool::CommandTool;
use super::expr::Cond;
use super::spec::{Activation, AgentKind, AgentSpec, TeamKind, TeamSpec, ToolChoiceSpec};
use crate::backends::BackendChoice;
use crate::commands::run::agent_error;
use crate::config::Settings;
use crate::error::{CliError, CliResult};

/// What building a team needs besides the spec and its backends.
pub struct Runtime<'a> {
    /// The merged settings (sampling options, the default message cap).
    pub settings: &'a Settings,
    /// Whether code executors ask before each block.
    pub approval: ApprovalPolicy,
    /// Connected MCP servers.
    pub mcp: &'a [McpServer],
    /// Where user proxies get their answers.
    pub input: InputFn,
    /// `--max-messages`: replaces the top team's own `max_messages`.
    pub max_messages: Option<usize>,
}

impl std::fmt::Debug for Runtime<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("approval", &self.approval)
            .field("mcp_servers", &self.mcp.len())
            .field("max_messages", &self.max_messages)
            .finish_non_exhaustive()
    }
}

/// The backend of every model slot, in the order [`build_team`] consumes them: each
/// assistant, each society-of-mind agent after its inner team's slots, then (selector teams)
/// the selector's model; from the agent's own `backend`/`model`, else the configured ones.
#[cfg(test)]
pub fn agent_choices(spec: &TeamSpec, settings: &Settings) -> CliResult<Vec<BackendChoice>> {
    Ok(agent_chains(spec, settings)?.into_iter().filter_map(|c| c.into_iter().next()).collect())
}

/// Every model slot (see `agent_choices`), each with the agent's `fallback` backends after its own: the
/// chain a [`FallbackBackend`](agentgen_core::FallbackBackend) tries in order.
pub fn agent_chains(spec: &TeamSpec, settings: &Settings) -> CliResult<Vec<Vec<BackendChoice>>> {
    let mut out = Vec::new();
    slots(spec, settings, &mut out)?;
    Ok(out)
}

fn slots(spec: &TeamSpec, settings: &Settings, out: &mut Vec<Vec<BackendChoice>>) -> CliResult<()> {
    for a in &spec.agents {
        if let Some(inner) = &a.inner {
            slots(inner, settings, out)?;
        }
        if a.has_model() {
            let mut chain = vec![choice(a.backend.as_ref(), a.model.as_ref(), None, settings)?];
            for f in &a.fallback {
                let url = f.base_url.as_ref().map(|u| u.get_ref());
                chain.push(choice(Some(&f.backend), f.model.as_ref(), url, settings)?);
            }
            out.push(chain);
        }
    }
    if spec.team.kind == TeamKind::Selector {
        out.push(vec![BackendChoice::from_settings(settings)]);
    }
    if spec.team.kind == TeamKind::MagenticOne {
        let t = &spec.team;
        let orchestrator = t.orchestrator_model.as_ref().map(|m| m.get_ref());
        out.push(vec![choice(t.orchestrator_backend.as_ref(), orchestrator, None, settings)?]);
    }
    Ok(())
}

fn choice(
    backend: Option<&toml::Spanned<String>>,
    model: Option<&String>,
    base_url: Option<&String>,
    settings: &Settings,
) -> CliResult<BackendChoice> {
    let kind = match backend {
        Some(b) => b.get_ref().parse()?,
        None => settings.backend,
    };
    // The configured model belongs to the configured backend.
    let model = model
        .cloned()
        .or_else(|| (kind == settings.backend).then(|| settings.model.clone()).flatten());
    Ok(BackendChoice { kind, model, base_url: base_url.cloned() })
}

/// Builds the team a spec describes on `backends` (one per slot of [`agent_chains`], in
/// order).
pub fn build_team(
    spec: &TeamSpec,
    backends: Vec<Arc<dyn ChatBackend>>,
    rt: &Runtime<'_>,
) -> CliResult<Box<dyn Team>> {
    let mut backends = backends.into_iter();
    build(spec, &mut backends, rt, true)
}

type Backends = std::vec::IntoIter<Arc<dyn ChatBackend>>;

fn next_backend(backends: &mut Backends, who: &str) -> CliResult<Arc<dyn ChatBackend>> {
    backends.next().ok_or_else(|| CliError::Config(format!("no model backend for `{who}`")))
}

/// The condition the team runs under: the file's, with `--max-messages` in place of its own
/// `max_messages` (top team only), and the configured cap when neither bounds the messages.
fn termination(spec: &TeamSpec, rt: &Runtime<'_>, top: bool) -> Termination {
    let flag = rt.max_messages.filter(|_| top);
    let mut cond = spec.stop.clone();
    if flag.is_some() {
        cond = cond.and_then(Cond::without_max_messages);
    }
    let bounded = cond.as_ref().is_some_and(Cond::mentions_max_messages);
    let cap = match flag {
        Some(n) => Some(n),
        None if !bounded => Some(rt.settings.run.max_messages),
        None => None,
    };
    let cond = match (cond, cap) {
        (Some(c), Some(n)) => c.or(Cond::MaxMessages(n)),
        (Some(c), None) => c,
        (None, n) => Cond::MaxMessages(n.unwrap_or(rt.settings.run.max_messages)),
    };
    cond.to_termination()
}

fn build(
    spec: &TeamSpec,
    backends: &mut Backends,
    rt: &Runtime<'_>,
    top: bool,
) -> CliResult<Box<dyn Team>> {
    // Every agent takes its model slots in file order, members or not.
    let mut slots = Vec::with_capacity(spec.agents.len());
    for a in &spec.agents {
        slots.push(slot(a, backends, rt)?);
    }
    let mut agents: Vec<Box<dyn ChatAgent>> = Vec::new();
    for (i, a) in spec.agents.iter().enumerate() {
        if a.member {
            agents.push(build_agent(spec, i, &mut slots, rt)?);
        }
    }
    let termination = termination(spec, rt, top);
    let name = spec.team.name.clone().unwrap_or_else(|| spec.team.kind.to_string());
    Ok(match spec.team.kind {
        TeamKind::RoundRobin => Box::new(
            RoundRobinGroupChat::new(agents)
                .map_err(agent_error)?
                .with_name(name)
                .with_termination(termination),
        ),
        TeamKind::Selector => {
            let selector = next_backend(backends, "the selector")?;
            let mut team = SelectorGroupChat::new(agents, selector)
                .map_err(agent_error)?
                .with_allow_repeated_speaker(spec.team.allow_repeated_speaker)
                .with_name(name)
                .with_termination(termination);
            if let Some(prompt) = &spec.team.selector_prompt {
                team = team.with_selector_prompt(prompt.get_ref().clone());
            }
            if let Some(candidates) = &spec.team.candidates {
                let map = candidates.get_ref().clone();
                let all: Vec<String> = spec
                    .agents
                    .iter()
                    .filter(|a| a.member)
                    .map(|a| a.name.get_ref().clone())
                    .collect();
                let repeat = spec.team.allow_repeated_speaker;
                team = team.with_candidate_func(move |thread| {
                    let last = thread.last().map(|m| m.source.as_str());
                    match last.and_then(|l| map.get(l)) {
                        Some(list) => list.clone(),
                        None => {
                            let others: Vec<String> = all
                                .iter()
                                .filter(|n| repeat || Some(n.as_str()) != last)
                                .cloned()
                                .collect();
                            if others.is_empty() {
                                all.clone()
                            } else {
                                others
                            }
                        }
                    }
                });
            }
            Box::new(team)
        }
        TeamKind::MagenticOne => {
            let orchestrator = next_backend(backends, "the orchestrator")?;
            let t = &spec.team;
            let mut team = MagenticOneGroupChat::new(agents, orchestrator)
                .map_err(agent_error)?
                .with_name(name)
                .with_termination(termination);
            if let Some(n) = &t.max_turns {
                team = team.with_orchestrator_max_turns(*n.get_ref());
            }
            if let Some(n) = &t.max_stalls {
                team = team.with_max_stalls(*n.get_ref());
            }
            if let Some(first) = &t.first_speaker {
                team = team.with_first_speaker(first.get_ref().clone()).map_err(agent_error)?;
            }
            if let Some(prompt) = &t.final_answer_prompt {
                team =
                    team.with_final_answer_prompt(prompt.get_ref().clone()).map_err(agent_error)?;
            }
            Box::new(team)
        }
        TeamKind::Swarm => Box::new(
            Swarm::new(agents).map_err(agent_error)?.with_name(name).with_termination(termination),
        ),
        TeamKind::Graph => {
            let mut graph = DiGraphBuilder::new();
            for a in agents {
                graph = graph.add_boxed_node(a);
            }
            for e in &spec.edges {
                let condition = match &e.condition {
                    Some(text) => EdgeCondition::Contains(text.get_ref().clone()),
                    None => EdgeCondition::Always,
                };
                graph = graph.add_conditional_edge(e.from.get_ref(), e.to.get_ref(), condition);
            }
            if let Some(entry) = &spec.team.entry {
                graph = graph.set_entry_point(entry.get_ref());
            }
            for a in spec.agents.iter().filter(|a| a.member && a.activation == Activation::Any) {
                graph = graph.activation_any(a.name.get_ref());
            }
            Box::new(graph.build().map_err(agent_error)?.with_termination(termination))
        }
    })
}

fn request_defaults(settings: &Settings, tool_choice: ToolChoiceSpec) -> ChatRequest {
    ChatRequest {
        max_tokens: settings.run.max_tokens,
        seed: settings.run.seed,
        temperature: settings.run.temperature,
        tool_choice: match tool_choice {
            ToolChoiceSpec::Auto => None,
            ToolChoiceSpec::Required => Some(ToolChoice::Required),
            ToolChoiceSpec::None => Some(ToolChoice::None),
        },
        ..ChatRequest::default()
    }
}

/// What an agent got from the model slots: its backend, or (society of mind) itself, built
/// with its inner team.
enum Slot {
    None,
    Backend(Arc<dyn ChatBackend>),
    Built(Option<Box<dyn ChatAgent>>),
}

fn slot(a: &AgentSpec, backends: &mut Backends, rt: &Runtime<'_>) -> CliResult<Slot> {
    let name = a.name.get_ref().clone();
    Ok(match a.kind {
        AgentKind::Assistant => Slot::Backend(next_backend(backends, &name)?),
        AgentKind::SocietyOfMind => {
            let inner = a.inner.as_deref().ok_or_else(|| {
                CliError::Config(format!("society_of_mind agent `{name}` has no team"))
            })?;
            let team = build(inner, backends, rt, false)?;
            let backend = next_backend(backends, &name)?;
            let mut agent = SocietyOfMindAgent::new(name, team, backend)
                .with_request_defaults(request_defaults(rt.settings, ToolChoiceSpec::Auto));
            if let Some(d) = &a.description {
                agent = agent.with_description(d.clone());
            }
            if let Some(i) = &a.instruction {
                agent = agent.with_instruction(i.clone());
            }
            if let Some(p) = &a.response_prompt {
                agent = agent.with_response_prompt(p.clone());
            }
            Slot::Built(Some(Box::new(agent)))
        }
        AgentKind::CodeExecutor | AgentKind::UserProxy => Slot::None,
    })
}

/// Agent `i` of the team, built afresh (an agent called as a tool is built once per caller).
fn build_agent(
    spec: &TeamSpec,
    i: usize,
    slots: &mut [Slot],
    rt: &Runtime<'_>,
) -> CliResult<Box<dyn ChatAgent>> {
    let a = &spec.agents[i];
    let name = a.name.get_ref().clone();
    Ok(match a.kind {
        AgentKind::CodeExecutor => {
            let mut sandbox = SandboxPolicy::default();
            if a.allow_network {
                sandbox = sandbox.allow_network();
            }
            let mut agent = CodeExecutorAgent::new(name, rt.approval.clone()).with_sandbox(sandbox);
            if let Some(secs) = a.timeout_s {
                agent = agent.with_timeout(std::time::Duration::from_secs(secs));
            }
            agent = agent.with_doctests(a.doctests);
            if !a.sources.is_empty() {
                agent = agent.with_sources(a.sources.iter().map(|s| s.get_ref().clone()));
            }
            if let Some(d) = &a.description {
                agent = agent.with_description(d.clone());
            }
            Box::new(agent)
        }
        AgentKind::UserProxy => {
            let input = Arc::clone(&rt.input);
            let mut agent = UserProxyAgent::new(name, move |prompt| input(prompt));
            if let Some(d) = &a.description {
                agent = agent.with_description(d.clone());
            }
            Box::new(agent)
        }
        AgentKind::SocietyOfMind => match slots.get_mut(i) {
            Some(Slot::Built(built)) => built.take().ok_or_else(|| {
                CliError::Config(format!("society_of_mind agent `{name}` is used twice"))
            })?,
            _ => return Err(CliError::Config(format!("no inner team for `{name}`"))),
        },
        AgentKind::Assistant => {
            let backend = match slots.get(i) {
                Some(Slot::Backend(b)) => Arc::clone(b),
                _ => return Err(CliError::Config(format!("no model backend for `{name}`"))),
            };
            Box::new(assistant(spec, a, backend, slots, rt)?)
        }
    })
}

fn assistant(
    spec: &TeamSpec,
    a: &AgentSpec,
    backend: Arc<dyn ChatBackend>,
    slots: &mut [Slot],
    rt: &Runtime<'_>,
) -> CliResult<AssistantAgent> {
    let name = a.name.get_ref();
    let mut agent = AssistantAgent::new(name.clone(), backend)
        .with_system_message(a.system_message.clone().unwrap_or_default())
        .with_streaming(true)
        .with_request_defaults(request_defaults(rt.settings, a.tool_choice))
        .with_speaker_names(spec.team.speaker_names);
    if let Some(d) = &a.description {
        agent = agent.with_description(d.clone());
    }
    for tool in &a.tools {
        if let Some(target) = super::agent_tools::target(tool.get_ref()) {
            let i =
                spec.agents.iter().position(|a| a.name.get_ref() == target).ok_or_else(|| {
                    CliError::Config(format!("no agent `{target}` for tool `{}`", tool.get_ref()))
                })?;
            let inner = build_agent(spec, i, slots, rt)?;
            agent = agent
                .with_tool(AgentTool::new(inner))
                .map_err(|e| CliError::Config(e.to_string()))?;
            continue;
        }
        for tool in resolve_tool(tool.get_ref(), spec, rt.mcp)? {
            agent = agent.with_tool_arc(tool).map_err(|e| CliError::Config(e.to_string()))?;
        }
    }
    for target in &a.handoffs {
        agent = agent.with_handoff(target.get_ref().as_str());
    }
    if let Some(reflect) = a.reflect_on_tool_use {
        agent = agent.with_reflect_on_tool_use(reflect);
    }
    if let Some(n) = &a.max_tool_iterations {
        agent = agent.with_max_tool_iterations(*n.get_ref());
    }
    if let Some(policy) = &a.model_context {
        agent = agent.with_model_context(ModelContext::new(*policy.get_ref()));
    }
    if !a.memory.is_empty() {
        let items = a.memory.iter().map(|m| MemoryContent::text(m.clone())).collect();
        agent = agent.with_memory(Arc::new(ListMemory::with_items(items)));
    }
    if let Some(schema) = &a.output {
        let schema_name: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
            .take(56)
            .collect();
        agent = agent
            .with_output_schema(format!("{schema_name}_output"), schema.clone())
            .map_err(agent_error)?;
    }
    Ok(agent)
}

/// The tools a team file's `tools` entry names: a built-in tool, a `[[command_tools]]`
/// entry, or `server.*` / `server.tool` of a connected MCP server.
fn resolve_tool(entry: &str, spec: &TeamSpec, mcp: &[McpServer]) -> CliResult<Vec<Arc<dyn Tool>>> {
    if let Some((server, selector)) = entry.split_once('.') {
        let server = mcp.iter().find(|m| m.name() == server).ok_or_else(|| {
            CliError::Config(format!("no MCP server `{server}` for tool `{entry}`"))
        })?;
        return Ok(server.select(selector)?);
    }
    if let Some(tool) = spec.command_tools.iter().find(|c| c.name.get_ref() == entry) {
        return Ok(vec![Arc::new(CommandTool::new(tool))]);
    }
    crate::tools::builtin(entry)
        .map(|t| vec![t])
        .ok_or_else(|| CliError::Config(format!("unknown tool `{entry}`")))
}
