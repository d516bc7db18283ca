//! [`GraphFlow`]: agents as nodes of a directed graph; after a node speaks, its outgoing
//! edges whose conditions hold activate their targets. A node with several incoming edges
//! waits for all of them (or any one, when built with `any` activation). The run ends when no
//! node is ready. Loops need a conditional edge out of them. Nodes that are ready together
//! (the branches of a fan-out, once all their parents are done) speak concurrently, each on the
//! messages from before them, and their messages are committed in the order they became ready;
//! a journaled run runs them one at a time.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{GroupChat, GroupView, SpeakerPolicy};
use crate::agent::{parse_state, AgentError, ChatAgent};
use crate::events::{AgentMessage, EventSink};

/// When an edge is followed.
#[derive(Clone)]
pub enum EdgeCondition {
    /// Always.
    Always,
    /// When the source's message contains this text.
    Contains(String),
    /// When this predicate holds for the source's message.
    Func(Arc<dyn Fn(&AgentMessage) -> bool + Send + Sync>),
}

impl fmt::Debug for EdgeCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Always => f.write_str("Always"),
            Self::Contains(t) => f.debug_tuple("Contains").field(t).finish(),
            Self::Func(_) => f.write_str("Func"),
        }
    }
}

impl EdgeCondition {
    fn holds(&self, m: &AgentMessage) -> bool {
        match self {
            Self::Always => true,
            Self::Contains(t) => m.content.contains(t.as_str()),
            Self::Func(f) => f(m),
        }
    }
}

#[derive(Debug, Clone)]
struct Edge {
    from: usize,
    to: usize,
    condition: EdgeCondition,
}

/// A checked graph over a team's agents (by index).
#[derive(Debug, Clone)]
pub struct DiGraph {
    names: Vec<String>,
    edges: Vec<Edge>,
    entry: Vec<usize>,
    any: Vec<bool>,
}

/// Builds a [`DiGraph`] and the [`GraphFlow`] that runs it.
#[derive(Debug, Default)]
pub struct DiGraphBuilder {
    agents: Vec<Box<dyn ChatAgent>>,
    edges: Vec<(String, String, EdgeCondition)>,
    entry: Option<String>,
    any: Vec<String>,
}

impl DiGraphBuilder {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an agent as a node.
    pub fn add_node(mut self, agent: impl ChatAgent + 'static) -> Self {
        self.agents.push(Box::new(agent));
        self
    }

    /// Adds a boxed agent as a node.
    pub fn add_boxed_node(mut self, agent: Box<dyn ChatAgent>) -> Self {
        self.agents.push(agent);
        self
    }

    /// An edge followed every time `from` speaks.
    pub fn add_edge(self, from: &str, to: &str) -> Self {
        self.add_conditional_edge(from, to, EdgeCondition::Always)
    }

    /// An edge followed when `condition` holds for `from`'s message.
    pub fn add_conditional_edge(mut self, from: &str, to: &str, condition: EdgeCondition) -> Self {
        self.edges.push((from.to_owned(), to.to_owned(), condition));
        self
    }

    /// Starts at this node (default: every node without incoming edges).
    pub fn set_entry_point(mut self, name: &str) -> Self {
        self.entry = Some(name.to_owned());
        self
    }

    /// Lets `name` run as soon as any one of its incoming edges fires (default: all).
    pub fn activation_any(mut self, name: &str) -> Self {
        self.any.push(name.to_owned());
        self
    }

    /// Checks the graph (known nodes, an entry point, every cycle leaves by a conditional
    /// edge) and builds the team.
    pub fn build(self) -> Result<GraphFlow, AgentError> {
        let names: Vec<String> = self.agents.iter().map(|a| a.name().to_owned()).collect();
        let index = |n: &str| {
            names.iter().position(|x| x == n).ok_or_else(|| AgentError::UnknownAgent(n.to_owned()))
        };
        let mut edges = Vec::new();
        for (from, to, condition) in self.edges {
            edges.push(Edge { from: index(&from)?, to: index(&to)?, condition });
        }
        let entry = match &self.entry {
            Some(e) => vec![index(e)?],
            None => (0..names.len()).filter(|&i| !edges.iter().any(|e| e.to == i)).collect(),
        };
        if entry.is_empty() && !names.is_empty() {
            return Err(AgentError::Config(
                "the graph has no entry point: every node has incoming edges".into(),
            ));
        }
        let mut any = vec![false; names.len()];
        for n in &self.any {
            any[index(n)?] = true;
        }
        let graph = DiGraph { names, edges, entry, any };
        graph.check_cycles()?;
        GroupChat::with_policy(self.agents, GraphPolicy::new(graph))
    }
}

impl DiGraph {
    fn in_degree(&self, node: usize) -> usize {
        self.edges.iter().filter(|e| e.to == node).count()
    }

    /// Every cycle made only of unconditional edges would loop forever: reject it.
    fn check_cycles(&self) -> Result<(), AgentError> {
        let n = self.names.len();
        let mut state = vec![0u8; n];
        fn visit(g: &DiGraph, i: usize, state: &mut [u8]) -> Option<usize> {
            state[i] = 1;
            for e in g
                .edges
                .iter()
                .filter(|e| e.from == i && matches!(e.condition, EdgeCondition::Always))
            {
                match state[e.to] {
                    1 => return Some(e.to),
                    0 => {
                        if let Some(c) = visit(g, e.to, state) {
                            return Some(c);
                        }
                    }
                    _ => {}
                }
            }
            state[i] = 2;
            None
        }
        for i in 0..n {
            if state[i] == 0 {
                if let Some(c) = visit(self, i, &mut state) {
                    return Err(AgentError::Config(format!(
                        "the graph has a cycle through `{}` with no conditional edge out of it",
                        self.names[c]
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Runs a [`DiGraph`]: a queue of ready nodes and, per node, how many incoming edges it still
/// waits for.
#[derive(Debug, Clone)]
pub struct GraphPolicy {
    graph: DiGraph,
    ready: VecDeque<usize>,
    remaining: Vec<usize>,
}

#[derive(Serialize, Deserialize)]
struct GraphState {
    ready: Vec<String>,
    remaining: Vec<usize>,
}

impl GraphPolicy {
    fn new(graph: DiGraph) -> Self {
        let mut p = Self { ready: VecDeque::new(), remaining: Vec::new(), graph };
        p.reset();
        p
    }

    /// The graph.
    pub fn graph(&self) -> &DiGraph {
        &self.graph
    }
}

#[async_trait]
impl SpeakerPolicy for GraphPolicy {
    fn kind(&self) -> &'static str {
        "graph"
    }

    async fn select(
        &mut self,
        _view: &GroupView<'_>,
        _cancel: &CancellationToken,
        _sink: &EventSink,
    ) -> Result<Option<usize>, AgentError> {
        let next = self.ready.front().copied();
        if next.is_none() {
            // Done: the next run starts from the entry point again.
            self.reset();
        }
        Ok(next)
    }

    fn observe(
        &mut self,
        _view: &GroupView<'_>,
        speaker: usize,
        message: &AgentMessage,
    ) -> Result<(), AgentError> {
        if self.ready.front() == Some(&speaker) {
            self.ready.pop_front();
        } else {
            self.ready.retain(|&i| i != speaker);
        }
        let fired: Vec<usize> = self
            .graph
            .edges
            .iter()
            .filter(|e| e.from == speaker && e.condition.holds(message))
            .map(|e| e.to)
            .collect();
        for to in fired {
            self.remaining[to] = self.remaining[to].saturating_sub(1);
            if (self.graph.any[to] || self.remaining[to] == 0) && !self.ready.contains(&to) {
                self.ready.push_back(to);
                self.remaining[to] = self.graph.in_degree(to);
            }
        }
        Ok(())
    }

    fn concurrent_with(&self, _view: &GroupView<'_>, first: usize) -> Vec<usize> {
        // Everything in the queue has all its parents done: the branches run together.
        self.ready.iter().copied().filter(|&i| i != first).collect()
    }

    fn done_reason(&self) -> String {
        "Digraph execution is complete".to_owned()
    }

    fn reset(&mut self) {
        self.ready = self.graph.entry.iter().copied().collect();
        self.remaining = (0..self.graph.names.len()).map(|i| self.graph.in_degree(i)).collect();
    }

    fn save_state(&self) -> Value {
        let ready = self.ready.iter().map(|&i| self.graph.names[i].clone()).collect();
        serde_json::to_value(GraphState { ready, remaining: self.remaining.clone() })
            .unwrap_or(Value::Null)
    }

    fn load_state(&mut self, state: &Value) -> Result<(), AgentError> {
        let s: GraphState = parse_state("graph", state.clone())?;
        if s.remaining.len() != self.graph.names.len() {
            return Err(AgentError::State("graph: saved for a different number of nodes".into()));
        }
        let ready = s
            .ready
            .iter()
            .map(|n| {
                self.graph
                    .names
                    .iter()
                    .position(|x| x == n)
                    .ok_or_else(|| AgentError::UnknownAgent(n.clone()))
            })
            .collect::<Result<VecDeque<_>, _>>()?;
        self.ready = ready;
        self.remaining = s.remaining;
        Ok(())
    }
}

/// A team that runs a directed graph of agents.
pub type GraphFlow = GroupChat<GraphPolicy>;
