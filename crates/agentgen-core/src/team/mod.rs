//! Teams: agents that take turns on one conversation. Every team is a [`GroupChat`] with a
//! [`SpeakerPolicy`] that picks who speaks next: [`RoundRobinGroupChat`],
//! [`SelectorGroupChat`], [`Swarm`] and [`GraphFlow`].

mod graph;
mod magentic_one;
pub mod prompt_template;
mod round_robin;
mod selector;
mod swarm;

pub use graph::{DiGraph, DiGraphBuilder, EdgeCondition, GraphFlow, GraphPolicy};
pub use magentic_one::{
    parse_progress_ledger, LedgerError, MagenticOneGroupChat, MagenticOnePolicy, ProgressLedger,
    FINAL_ANSWER_PLACEHOLDERS, ORCHESTRATOR_NAME,
};
pub use prompt_template::PromptTemplateError;
pub use round_robin::{RoundRobinGroupChat, RoundRobinPolicy};
pub use selector::{CandidateFn, SelectorFn, SelectorGroupChat, SelectorPolicy};
pub use swarm::{Swarm, SwarmPolicy};

use std::collections::HashMap;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::agent::{parse_state, to_state, AgentError, ChatAgent};
use crate::events::{
    drive_stream, AgentEvent, AgentMessage, EventSink, StreamItem, Task, TaskResult,
};
use crate::journal::Selection;
use crate::response::Usage;
use crate::telemetry;
use crate::termination::{Termination, TerminationCondition};

/// A group of agents that works on a task until a termination condition (or its own logic)
/// stops it.
#[async_trait]
pub trait Team: Send + Sync {
    /// Runs until the team stops, reporting events to `sink` as they happen. On
    /// [`AgentError::Cancelled`] (or any error) the team is left as it was before the failed
    /// turn, so `run(Task::Continue)` picks up from there.
    async fn run_with(
        &mut self,
        task: Task,
        cancel: CancellationToken,
        sink: &EventSink,
    ) -> Result<TaskResult, AgentError>;

    /// Runs until the team stops.
    async fn run(&mut self, task: Task) -> Result<TaskResult, AgentError> {
        self.run_with(task, CancellationToken::new(), &EventSink::none()).await
    }

    /// Runs as a stream: every event in order, then [`StreamItem::Done`] with the result.
    fn run_stream(
        &mut self,
        task: Task,
        cancel: CancellationToken,
    ) -> BoxStream<'_, Result<StreamItem<TaskResult>, AgentError>> {
        drive_stream(move |sink| Box::pin(async move { self.run_with(task, cancel, &sink).await }))
    }

    /// Forgets the conversation and resets every agent and the termination condition.
    async fn reset(&mut self);

    /// The whole team's state as JSON: thread, whose turn, termination counters, each agent.
    async fn save_state(&self) -> Result<Value, AgentError>;

    /// Restores a state saved by [`save_state`](Self::save_state) into a team built the same
    /// way.
    async fn load_state(&mut self, state: Value) -> Result<(), AgentError>;
}

/// What a policy sees when it picks the next speaker.
#[derive(Debug)]
pub struct GroupView<'a> {
    /// The agents' names, in team order.
    pub names: &'a [String],
    /// The agents' descriptions, in team order.
    pub descriptions: &'a [String],
    /// The whole conversation so far.
    pub thread: &'a [AgentMessage],
    /// Who spoke last, if anyone has.
    pub last_speaker: Option<usize>,
}

impl GroupView<'_> {
    /// The index of the agent called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
}

/// Picks who speaks next in a [`GroupChat`].
#[async_trait]
pub trait SpeakerPolicy: Send + Sync + std::fmt::Debug {
    /// The team type this policy makes (`round_robin`, `selector`…), for traces.
    fn kind(&self) -> &'static str {
        "group_chat"
    }

    /// Checks the policy against the team's agents when the team is built.
    fn validate(&self, _agents: &[Box<dyn ChatAgent>]) -> Result<(), AgentError> {
        Ok(())
    }

    /// The next speaker's index, or `None` when the team is done (then
    /// [`done_reason`](Self::done_reason) is the stop reason). Must not change the policy's
    /// state: [`observe`](Self::observe) does, once the turn succeeded.
    async fn select(
        &mut self,
        view: &GroupView<'_>,
        cancel: &CancellationToken,
        sink: &EventSink,
    ) -> Result<Option<usize>, AgentError>;

    /// Records that `speaker` said `message`.
    fn observe(
        &mut self,
        view: &GroupView<'_>,
        speaker: usize,
        message: &AgentMessage,
    ) -> Result<(), AgentError>;

    /// Records the task's messages.
    fn observe_task(
        &mut self,
        _view: &GroupView<'_>,
        _messages: &[AgentMessage],
    ) -> Result<(), AgentError> {
        Ok(())
    }

    /// Speakers that may speak at the same time as `first` (the one [`select`](Self::select)
    /// just picked), in order: a graph's branches whose parents are all done. The team runs
    /// them concurrently, each on the messages from before the batch, then commits their
    /// messages in this order ([`observe`](Self::observe) once per speaker). Default: none.
    fn concurrent_with(&self, _view: &GroupView<'_>, _first: usize) -> Vec<usize> {
        Vec::new()
    }

    /// Messages the policy itself says (an orchestrator's plan and instructions), taken after
    /// each [`select`](Self::select): the team posts them to the thread before the chosen
    /// speaker speaks (or before it stops). Default: none.
    fn take_posts(&mut self) -> Vec<AgentMessage> {
        Vec::new()
    }

    /// Whether the agents should start over (an orchestrator re-planned), taken after each
    /// [`select`](Self::select), before its posts. Default: no.
    fn take_reset_agents(&mut self) -> bool {
        false
    }

    /// The policy's state right after a [`select`](Self::select) that changed it (a new plan,
    /// counts), as if its turn had committed. A journaled run keeps it with the choice, so a
    /// resumed run restores it with [`load_selection`](Self::load_selection) instead of asking
    /// again. Default: `None` (selecting changes nothing).
    fn selection_state(&self) -> Option<Value> {
        None
    }

    /// Restores what [`selection_state`](Self::selection_state) gave.
    fn load_selection(&mut self, state: &Value) -> Result<(), AgentError> {
        self.load_state(state)
    }

    /// Tokens the policy's own model calls used since this was last taken (a selector's or an
    /// orchestrator's), taken after each [`select`](Self::select) into the run's usage.
    /// Default: none.
    fn take_usage(&mut self) -> Usage {
        Usage::default()
    }

    /// Why the run stops when [`select`](Self::select) returns `None`.
    fn done_reason(&self) -> String {
        "No next speaker".to_owned()
    }

    /// Starts over.
    fn reset(&mut self);

    /// The policy's state as JSON.
    fn save_state(&self) -> Value;

    /// Restores what [`save_state`](Self::save_state) gave.
    fn load_state(&mut self, state: &Value) -> Result<(), AgentError>;
}

/// What a speaker policy decided for the next turn.
#[derive(Debug)]
enum Decision {
    /// This agent speaks.
    Speak(usize),
    /// The run stops, for this reason.
    Stop(String),
}

/// The engine of every team: the shared thread, each agent's unseen messages, the turn loop,
/// termination and state.
#[derive(Debug)]
pub struct GroupChat<P: SpeakerPolicy> {
    name: Option<String>,
    agents: Vec<Box<dyn ChatAgent>>,
    names: Vec<String>,
    descriptions: Vec<String>,
    policy: P,
    termination: Option<Termination>,
    max_turns: Option<usize>,
    thread: Vec<AgentMessage>,
    pending: Vec<Vec<AgentMessage>>,
    last_speaker: Option<usize>,
    turns: usize,
}

impl std::fmt::Debug for dyn ChatAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChatAgent({})", self.name())
    }
}

#[derive(Serialize, Deserialize)]
struct GroupState {
    #[serde(rename = "type")]
    kind: String,
    thread: Vec<AgentMessage>,
    pending: HashMap<String, Vec<AgentMessage>>,
    last_speaker: Option<String>,
    turns: usize,
    policy: Value,
    termination: Value,
    agents: HashMap<String, Value>,
}

impl<P: SpeakerPolicy> GroupChat<P> {
    /// A team of `agents` (unique names, at least one) with this speaker policy.
    pub fn with_policy(agents: Vec<Box<dyn ChatAgent>>, policy: P) -> Result<Self, AgentError> {
        if agents.is_empty() {
            return Err(AgentError::Config("a team needs at least one agent".into()));
        }
        let names: Vec<String> = agents.iter().map(|a| a.name().to_owned()).collect();
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(AgentError::Config(format!("two agents are named `{n}`")));
            }
        }
        policy.validate(&agents)?;
        Ok(Self {
            name: None,
            descriptions: agents.iter().map(|a| a.description().to_owned()).collect(),
            pending: vec![Vec::new(); agents.len()],
            agents,
            names,
            policy,
            termination: None,
            max_turns: None,
            thread: Vec::new(),
            last_speaker: None,
            turns: 0,
        })
    }

    /// Names the team (in traces: the `invoke_agent {name}` span of each run); the default is
    /// the policy's kind (`round_robin`, `selector`…).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The team's name ([`with_name`](Self::with_name)).
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_else(|| self.policy.kind())
    }

    /// Stops the run when `termination` fires.
    pub fn with_termination(mut self, termination: Termination) -> Self {
        self.termination = Some(termination);
        self
    }

    /// Stops each run after `n` agent turns.
    pub fn with_max_turns(mut self, n: usize) -> Self {
        self.max_turns = Some(n);
        self
    }

    /// The whole conversation so far.
    pub fn thread(&self) -> &[AgentMessage] {
        &self.thread
    }

    /// The agents' names, in team order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The speaker policy.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    fn broadcast(&mut self, message: &AgentMessage, except: Option<usize>) {
        self.thread.push(message.clone());
        for (i, p) in self.pending.iter_mut().enumerate() {
            if Some(i) != except {
                p.push(message.clone());
            }
        }
    }

    fn check_termination(&mut self, events: &[AgentEvent]) -> Option<String> {
        let reason = self.termination.as_mut()?.check(events)?;
        if let Some(t) = self.termination.as_mut() {
            t.reset();
        }
        Some(reason)
    }

    /// `first` and the speakers the policy lets speak with it: known, distinct, and no more
    /// than the turns this run has left.
    fn batch_with(&self, first: usize, base_turns: usize) -> Vec<usize> {
        let view = GroupView {
            names: &self.names,
            descriptions: &self.descriptions,
            thread: &self.thread,
            last_speaker: self.last_speaker,
        };
        let left = self
            .max_turns
            .map_or(usize::MAX, |max| max.saturating_sub(self.turns.saturating_sub(base_turns)));
        let mut batch = vec![first];
        for i in self.policy.concurrent_with(&view, first) {
            if batch.len() >= left {
                break;
            }
            if i < self.agents.len() && !batch.contains(&i) {
                batch.push(i);
            }
        }
        batch
    }

    /// Several turns at once: every speaker of `batch` answers concurrently on what it had
    /// not seen before the batch; then their messages are committed in batch order. A
    /// speaker that failed keeps its unseen messages (the policy still has it ready), the
    /// others' messages stay committed, and the first error is returned.
    async fn concurrent_turns(
        &mut self,
        batch: &[usize],
        cancel: &CancellationToken,
        sink: &EventSink,
        out: &mut Vec<AgentMessage>,
        usage: &mut Usage,
    ) -> Result<Option<String>, AgentError> {
        let unseen: Vec<Vec<AgentMessage>> =
            batch.iter().map(|&i| std::mem::take(&mut self.pending[i])).collect();
        let results = {
            let mut slots: Vec<Option<&mut Box<dyn ChatAgent>>> =
                self.agents.iter_mut().map(Some).collect();
            let turns = batch.iter().zip(&unseen).filter_map(|(&i, messages)| {
                let agent = slots.get_mut(i)?.take()?;
                let span = telemetry::agent_span(agent.name());
                let turn =
                    agent.on_messages_with(messages, cancel.clone(), sink).instrument(span.clone());
                Some(async move { (turn.await, span) })
            });
            futures::future::join_all(turns).await
        };
        let mut stop = None;
        let mut first_error = None;
        for ((&speaker, unseen), (result, span)) in batch.iter().zip(unseen).zip(results) {
            let response = match result {
                Ok(r) => r,
                Err(e) => {
                    telemetry::record_error(&span, &e);
                    self.pending[speaker] = unseen;
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            let message = self.commit_turn(speaker, response.message, &span, sink, out, usage)?;
            if stop.is_none() {
                let mut events = response.inner_events;
                events.push(AgentEvent::Message(message));
                stop = self.check_termination(&events);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(stop),
        }
    }

    /// Commits a speaker's message: its usage on the turn's span and in the run's total, the
    /// event, every other agent's queue, the policy's view, the turn count and the output.
    fn commit_turn(
        &mut self,
        speaker: usize,
        message: AgentMessage,
        span: &tracing::Span,
        sink: &EventSink,
        out: &mut Vec<AgentMessage>,
        usage: &mut Usage,
    ) -> Result<AgentMessage, AgentError> {
        if let Some(u) = message.usage {
            if !span.is_disabled() {
                span.record("gen_ai.usage.input_tokens", i64::from(u.prompt_tokens));
                span.record("gen_ai.usage.output_tokens", i64::from(u.completion_tokens));
            }
            *usage += u;
        }
        sink.emit(AgentEvent::Message(message.clone()));
        self.broadcast(&message, Some(speaker));
        let view = GroupView {
            names: &self.names,
            descriptions: &self.descriptions,
            thread: &self.thread,
            last_speaker: self.last_speaker,
        };
        self.policy.observe(&view, speaker, &message)?;
        self.last_speaker = Some(speaker);
        self.turns += 1;
        out.push(message.clone());
        Ok(message)
    }

    /// Resets the agents if the policy asked to, then posts the policy's own messages.
    async fn apply_policy_messages(
        &mut self,
        reset_agents: bool,
        posts: Vec<AgentMessage>,
        sink: &EventSink,
        out: &mut Vec<AgentMessage>,
    ) {
        if reset_agents {
            for a in &mut self.agents {
                a.reset().await;
            }
            self.pending.iter_mut().for_each(Vec::clear);
        }
        for message in posts {
            sink.emit(AgentEvent::Message(message.clone()));
            self.broadcast(&message, None);
            out.push(message);
        }
    }

    /// Asks the policy who speaks next, journals its decision (with what it says and its
    /// state), resets and posts.
    async fn select_speaker(
        &mut self,
        cancel: &CancellationToken,
        sink: &EventSink,
        out: &mut Vec<AgentMessage>,
        usage: &mut Usage,
    ) -> Result<Decision, AgentError> {
        let view = GroupView {
            names: &self.names,
            descriptions: &self.descriptions,
            thread: &self.thread,
            last_speaker: self.last_speaker,
        };
        let selected = self.policy.select(&view, cancel, sink).await;
        *usage += self.policy.take_usage();
        let selected = selected?;
        let reset_agents = self.policy.take_reset_agents();
        let posts = self.policy.take_posts();
        let journal = sink.journal();
        let (decision, journaled) = match selected {
            None => {
                let reason = self.policy.done_reason();
                let journaled = journal.map_or(Ok(()), |j| j.policy_stopped(&reason, &posts));
                (Decision::Stop(reason), journaled)
            }
            Some(speaker) => {
                let journaled = match journal.zip(self.names.get(speaker)) {
                    Some((j, name)) => {
                        let state = self.policy.selection_state();
                        j.speaker_chosen(name, &posts, reset_agents, state)
                    }
                    None => Ok(()),
                };
                (Decision::Speak(speaker), journaled)
            }
        };
        // The posts are only messages: the team keeps them even when the journal failed (a
        // resumed run, which reads the journal, asks the policy again).
        self.apply_policy_messages(reset_agents, posts, sink, out).await;
        journaled?;
        Ok(decision)
    }

    /// Acts on a journaled decision of the policy as it was first acted on: its state, reset
    /// and posts, without asking it again.
    async fn replay_selection(
        &mut self,
        selection: Selection,
        sink: &EventSink,
        out: &mut Vec<AgentMessage>,
    ) -> Result<Decision, AgentError> {
        if let Some(state) = &selection.policy_state {
            self.policy.load_selection(state)?;
        }
        self.apply_policy_messages(selection.reset_agents, selection.posts, sink, out).await;
        match selection.speaker {
            None => Ok(Decision::Stop(selection.reason)),
            Some(name) => match self.names.iter().position(|n| *n == name) {
                Some(i) => Ok(Decision::Speak(i)),
                None => Err(AgentError::UnknownAgent(name)),
            },
        }
    }

    /// One turn: pick, speak, broadcast (several turns when the policy lets speakers run
    /// concurrently). `Ok(Some(reason))` stops the run.
    async fn turn(
        &mut self,
        cancel: &CancellationToken,
        sink: &EventSink,
        out: &mut Vec<AgentMessage>,
        usage: &mut Usage,
        base_turns: usize,
    ) -> Result<Option<String>, AgentError> {
        if cancel.is_cancelled() {
            return Err(AgentError::Cancelled);
        }
        let journal = sink.journal();
        let replayed = journal.and_then(|j| j.replayed_selection());
        let fresh = replayed.is_none();
        let decision = match replayed {
            Some(selection) => self.replay_selection(selection, sink, out).await?,
            None => self.select_speaker(cancel, sink, out, usage).await?,
        };
        let speaker = match decision {
            Decision::Speak(speaker) => speaker,
            Decision::Stop(reason) => return Ok(Some(reason)),
        };
        if speaker >= self.agents.len() {
            return Err(AgentError::Config(format!(
                "speaker policy chose agent #{speaker} of {}",
                self.agents.len()
            )));
        }
        // A journaled run keeps one speaker per record, so its batches run one at a time.
        if fresh && journal.is_none() {
            let batch = self.batch_with(speaker, base_turns);
            if batch.len() > 1 {
                return self.concurrent_turns(&batch, cancel, sink, out, usage).await;
            }
        }
        let unseen = std::mem::take(&mut self.pending[speaker]);
        let agent = &mut self.agents[speaker];
        let span = telemetry::agent_span(agent.name());
        let result =
            agent.on_messages_with(&unseen, cancel.clone(), sink).instrument(span.clone()).await;
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                telemetry::record_error(&span, &e);
                self.pending[speaker] = unseen;
                return Err(e);
            }
        };
        let message = self.commit_turn(speaker, response.message, &span, sink, out, usage)?;
        let mut events = response.inner_events;
        events.push(AgentEvent::Message(message.clone()));
        let stop = self.check_termination(&events);
        if let Some(j) = journal {
            j.turn_committed(self.turns, Some(&message), Team::save_state(self).await?)?;
        }
        Ok(stop)
    }

    /// Runs the task and the turns; the journal (if any) records the task, the commits and
    /// the end.
    async fn run_journaled(
        &mut self,
        task: Task,
        cancel: &CancellationToken,
        sink: &EventSink,
    ) -> Result<TaskResult, AgentError> {
        let journal = sink.journal();
        let mut out = Vec::new();
        let mut usage = Usage::default();
        let mut stop = None;
        if let Task::Messages(messages) = task {
            if let Some(j) = journal {
                j.task_started(&messages, self.turns)?;
            }
            for m in &messages {
                sink.emit(AgentEvent::Message(m.clone()));
                self.broadcast(m, None);
                out.push(m.clone());
            }
            let view = GroupView {
                names: &self.names,
                descriptions: &self.descriptions,
                thread: &self.thread,
                last_speaker: self.last_speaker,
            };
            self.policy.observe_task(&view, &messages)?;
            let events: Vec<AgentEvent> = messages.into_iter().map(AgentEvent::Message).collect();
            stop = self.check_termination(&events);
            if let Some(j) = journal {
                j.turn_committed(self.turns, None, Team::save_state(self).await?)?;
            }
        }
        // A resumed run counts its turn limit from where the journaled task started.
        let base = journal.and_then(|j| j.base_turns()).unwrap_or(self.turns);
        while stop.is_none() {
            let run_turns = self.turns.saturating_sub(base);
            if self.max_turns.is_some_and(|max| run_turns >= max) {
                stop = Some(format!("Maximum number of turns {} reached.", run_turns));
                break;
            }
            stop = self.turn(cancel, sink, &mut out, &mut usage, base).await?;
        }
        let reason = stop.unwrap_or_default();
        if let Some(j) = journal {
            j.finished(&reason)?;
        }
        sink.emit(AgentEvent::Stop { reason: reason.clone() });
        Ok(TaskResult { messages: out, stop_reason: Some(reason), usage })
    }
}

#[async_trait]
impl<P: SpeakerPolicy> Team for GroupChat<P> {
    async fn run_with(
        &mut self,
        task: Task,
        cancel: CancellationToken,
        sink: &EventSink,
    ) -> Result<TaskResult, AgentError> {
        let span = telemetry::team_span(self.name(), self.policy.kind());
        let res = self.run_journaled(task, &cancel, sink).instrument(span.clone()).await;
        match &res {
            Ok(result) if !span.is_disabled() => {
                span.record("agentgen.team.messages", result.messages.len() as i64);
                if let Some(reason) = &result.stop_reason {
                    span.record("agentgen.stop_reason", reason.as_str());
                }
            }
            Ok(_) => {}
            Err(e) => telemetry::record_error(&span, e),
        }
        if let (Err(AgentError::Cancelled), Some(j)) = (&res, sink.journal()) {
            j.cancelled();
        }
        res
    }

    async fn reset(&mut self) {
        for a in &mut self.agents {
            a.reset().await;
        }
        self.thread.clear();
        self.pending.iter_mut().for_each(Vec::clear);
        self.last_speaker = None;
        self.turns = 0;
        self.policy.reset();
        if let Some(t) = self.termination.as_mut() {
            t.reset();
        }
    }

    async fn save_state(&self) -> Result<Value, AgentError> {
        let mut agents = HashMap::new();
        for a in &self.agents {
            agents.insert(a.name().to_owned(), a.save_state().await?);
        }
        to_state(&GroupState {
            kind: "GroupChatState".into(),
            thread: self.thread.clone(),
            pending: self.names.iter().cloned().zip(self.pending.iter().cloned()).collect(),
            last_speaker: self.last_speaker.map(|i| self.names[i].clone()),
            turns: self.turns,
            policy: self.policy.save_state(),
            termination: self.termination.as_ref().map_or(Value::Null, |t| t.save_state()),
            agents,
        })
    }

    async fn load_state(&mut self, state: Value) -> Result<(), AgentError> {
        let mut state: GroupState = parse_state("team", state)?;
        let index = |name: &str| {
            self.names
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| AgentError::UnknownAgent(name.to_owned()))
        };
        let last_speaker = state.last_speaker.as_deref().map(index).transpose()?;
        let mut pending = vec![Vec::new(); self.agents.len()];
        for (name, msgs) in state.pending.drain() {
            pending[index(&name)?] = msgs;
        }
        for a in &mut self.agents {
            let saved = state.agents.remove(a.name()).ok_or_else(|| {
                AgentError::State(format!("no saved state for agent `{}`", a.name()))
            })?;
            a.load_state(saved).await?;
        }
        self.policy.load_state(&state.policy)?;
        if let Some(t) = self.termination.as_mut() {
            if !state.termination.is_null() {
                t.load_state(&state.termination)?;
            }
        }
        self.thread = state.thread;
        self.pending = pending;
        self.last_speaker = last_speaker;
        self.turns = state.turns;
        Ok(())
    }
}
