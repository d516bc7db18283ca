//! `tools = ["agent:NAME"]`: another agent of the team, callable as a tool. Checks the names
//! (the agent exists, is not the caller, can be called as a tool, no agent reaches itself
//! through such tools), that every `member = false` agent is used as one, and that a
//! society-of-mind agent (built once, with its inner team) is used once.

use super::spec::{AgentKind, TeamSpec, AGENT_TOOL_PREFIX};
use super::validate::At;
use super::TeamFileError;

/// The agent a `tools` entry names, if it is an `agent:NAME` entry.
pub(super) fn target(entry: &str) -> Option<&str> {
    entry.strip_prefix(AGENT_TOOL_PREFIX)
}

/// Whether agents of this kind can be wrapped as a tool: built afresh for each use, or (society
/// of mind) once, for its one use.
fn callable(kind: AgentKind) -> bool {
    matches!(kind, AgentKind::Assistant | AgentKind::CodeExecutor | AgentKind::SocietyOfMind)
}

/// How many times the team builds agent `j`: once as a member, plus once per tool entry naming
/// it, times the uses of the agent with that entry (edges must have no cycle).
fn uses(j: usize, spec: &TeamSpec, edges: &[Vec<(usize, usize)>], memo: &mut [Option<u64>]) -> u64 {
    if let Some(n) = memo[j] {
        return n;
    }
    let mut n = u64::from(spec.agents[j].member);
    for (i, callees) in edges.iter().enumerate() {
        for _ in callees.iter().filter(|e| e.0 == j) {
            n = n.saturating_add(uses(i, spec, edges, memo));
        }
    }
    memo[j] = Some(n);
    n
}

/// The agent-tool checks of one team (its agents' own fields are checked already).
pub(super) fn check(spec: &TeamSpec, at: &At<'_>) -> Result<(), TeamFileError> {
    let index = |name: &str| spec.agents.iter().position(|a| a.name.get_ref() == name);
    // Edges caller -> callee, with the entry that makes them (for the error's location).
    let mut edges: Vec<Vec<(usize, usize)>> = vec![Vec::new(); spec.agents.len()];
    for (i, agent) in spec.agents.iter().enumerate() {
        for (t, tool) in agent.tools.iter().enumerate() {
            let Some(name) = target(tool.get_ref()) else { continue };
            let field = Some(format!("agents[{i}].tools"));
            let Some(j) = index(name) else {
                return Err(at.err(tool.span(), field, format!("no agent is named `{name}`")));
            };
            if i == j {
                return Err(at.err(tool.span(), field, "an agent cannot be its own tool"));
            }
            let kind = spec.agents[j].kind;
            if !callable(kind) {
                return Err(at.err(
                    tool.span(),
                    field,
                    format!(
                        "`{name}` is a {kind} agent; only assistant, code_executor and \
                         society_of_mind agents can be called as tools"
                    ),
                ));
            }
            let valid = name.len() <= 64
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid {
                return Err(at.err(
                    tool.span(),
                    field,
                    format!(
                        "`{name}` cannot be a tool name (1-64 letters, digits, `_` or `-`): \
                         rename the agent"
                    ),
                ));
            }
            edges[i].push((j, t));
        }
    }
    if let Some((i, t)) = cycle(&edges) {
        let tool = &spec.agents[i].tools[t];
        return Err(at.err(
            tool.span(),
            Some(format!("agents[{i}].tools")),
            "agent tools call each other in a loop",
        ));
    }
    let mut memo = vec![None; spec.agents.len()];
    for (j, agent) in spec.agents.iter().enumerate() {
        if agent.kind != AgentKind::SocietyOfMind {
            continue;
        }
        let n = uses(j, spec, &edges, &mut memo);
        if n > 1 {
            return Err(at.err(
                agent.name.span(),
                Some(format!("agents[{j}]")),
                format!(
                    "`{}` is a society_of_mind agent: it is built once, with its inner team, but \
                     the team would use it {n} times (as a member and as a tool, or through \
                     several callers); give each use an agent of its own, or set member = false",
                    agent.name.get_ref()
                ),
            ));
        }
    }
    for (j, agent) in spec.agents.iter().enumerate() {
        if !agent.member && !edges.iter().flatten().any(|e| e.0 == j) {
            return Err(at.err(
                agent.name.span(),
                Some(format!("agents[{j}].member")),
                format!(
                    "`{}` is not a member and no agent has it as a tool (`tools = [\"agent:{}\"]`)",
                    agent.name.get_ref(),
                    agent.name.get_ref()
                ),
            ));
        }
    }
    if !spec.agents.iter().any(|a| a.member) {
        return Err(at.err(0..0, Some("agents".into()), "every agent has member = false"));
    }
    Ok(())
}

/// The (caller, entry) of an edge that closes a cycle, if any.
fn cycle(edges: &[Vec<(usize, usize)>]) -> Option<(usize, usize)> {
    fn visit(i: usize, edges: &[Vec<(usize, usize)>], state: &mut [u8]) -> Option<(usize, usize)> {
        state[i] = 1;
        for &(j, t) in &edges[i] {
            match state[j] {
                1 => return Some((i, t)),
                0 => {
                    if let Some(found) = visit(j, edges, state) {
                        return Some(found);
                    }
                }
                _ => {}
            }
        }
        state[i] = 2;
        None
    }
    let mut state = vec![0u8; edges.len()];
    (0..edges.len()).find_map(|i| if state[i] == 0 { visit(i, edges, &mut state) } else { None })
}
