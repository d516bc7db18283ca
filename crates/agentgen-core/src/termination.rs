//! Termination conditions: when a team run stops. Build one with the constructors on
//! [`Termination`] and combine them with `|` (either) and `&` (both, each at its own time):
//!
//! ```
//! use agentgen_core::termination::Termination;
//! let stop = Termination::max_messages(10) | Termination::text_mention("APPROVE");
//! ```
//!
//! A team checks its condition after the task and after every turn, with the events of that
//! step, and resets it when it fires.

use std::fmt;
use std::ops::{BitAnd, BitOr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::error::AgentError;
use crate::events::{AgentEvent, AgentMessage, MessageKind};

/// A condition that watches a run's events and says when to stop.
pub trait TerminationCondition: Send + Sync + fmt::Debug {
    /// Looks at the events of the latest step; returns the stop reason when the run should
    /// stop now.
    fn check(&mut self, events: &[AgentEvent]) -> Option<String>;
    /// Starts over.
    fn reset(&mut self);
    /// Counters and flags as JSON (for resuming a run).
    fn save_state(&self) -> Value {
        Value::Null
    }
    /// Restores what [`save_state`](Self::save_state) gave.
    fn load_state(&mut self, _state: &Value) -> Result<(), AgentError> {
        Ok(())
    }
}

/// A boxed termination condition that combines with `|` and `&`.
#[derive(Debug)]
pub struct Termination(Box<dyn TerminationCondition>);

impl Termination {
    /// Wraps any condition.
    pub fn new(condition: impl TerminationCondition + 'static) -> Self {
        Self(Box::new(condition))
    }

    /// Stops once `n` messages (the task included) have been said.
    pub fn max_messages(n: usize) -> Self {
        Self::new(MaxMessage { max: n, count: 0 })
    }

    /// Stops when a message contains `text`.
    pub fn text_mention(text: impl Into<String>) -> Self {
        Self::new(TextMention { text: text.into(), sources: Vec::new() })
    }

    /// Stops when a message from one of `sources` contains `text`.
    pub fn text_mention_from(text: impl Into<String>, sources: &[&str]) -> Self {
        Self::new(TextMention {
            text: text.into(),
            sources: sources.iter().map(|s| s.to_string()).collect(),
        })
    }

    /// Stops on a [`MessageKind::Stop`] message.
    pub fn stop_message() -> Self {
        Self::new(Predicate::new(
            "stop_message",
            |m| matches!(m.kind, MessageKind::Stop),
            |m| m.content.clone(),
        ))
    }

    /// Stops once the agents' model calls used more tokens than allowed (`None` = no limit).
    pub fn token_usage(
        max_total: Option<u32>,
        max_prompt: Option<u32>,
        max_completion: Option<u32>,
    ) -> Self {
        Self::new(TokenUsage { max_total, max_prompt, max_completion, used: Default::default() })
    }

    /// Stops when an agent hands over to `target`.
    pub fn handoff(target: impl Into<String>) -> Self {
        let target = target.into();
        let t = target.clone();
        Self::new(Predicate::new(
            "handoff",
            move |m| m.handoff_target() == Some(t.as_str()),
            move |m| format!("Handoff to {target} from {} detected.", m.source),
        ))
    }

    /// Stops once `limit` has passed since the first check after a reset.
    pub fn timeout(limit: Duration) -> Self {
        Self::new(Timeout { limit, started: None, before: Duration::ZERO })
    }

    /// Stops when the returned handle is triggered (checked after each step).
    pub fn external() -> (Self, ExternalHandle) {
        let handle = ExternalHandle(Arc::new(AtomicBool::new(false)));
        (Self::new(External(handle.clone())), handle)
    }

    /// Stops after any of `sources` has spoken.
    pub fn source_match(sources: &[&str]) -> Self {
        let list: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
        Self::new(Predicate::new(
            "source_match",
            move |m| list.contains(&m.source),
            |m| format!("'{}' answered", m.source),
        ))
    }

    /// Stops on a plain text message (from `source`, when given): an agent answered in words
    /// rather than with a tool call.
    pub fn text_message(source: Option<&str>) -> Self {
        let source = source.map(str::to_owned);
        Self::new(Predicate::new(
            "text_message",
            move |m| m.kind == MessageKind::Text && source.as_ref().is_none_or(|s| *s == m.source),
            |m| format!("Text message received from '{}'", m.source),
        ))
    }

    /// Stops once a tool called `name` has run.
    pub fn function_call(name: impl Into<String>) -> Self {
        Self::new(FunctionCalled(name.into()))
    }

    /// Stops when `predicate` says so about a step's events.
    pub fn functional(predicate: impl Fn(&[AgentEvent]) -> bool + Send + Sync + 'static) -> Self {
        Self::new(Functional(Box::new(predicate)))
    }
}

impl TerminationCondition for Termination {
    fn check(&mut self, events: &[AgentEvent]) -> Option<String> {
        self.0.check(events)
    }
    fn reset(&mut self) {
        self.0.reset()
    }
    fn save_state(&self) -> Value {
        self.0.save_state()
    }
    fn load_state(&mut self, state: &Value) -> Result<(), AgentError> {
        self.0.load_state(state)
    }
}

impl BitOr for Termination {
    type Output = Termination;
    fn bitor(self, other: Termination) -> Termination {
        Termination::new(Or(vec![self, other]))
    }
}

impl BitAnd for Termination {
    type Output = Termination;
    fn bitand(self, other: Termination) -> Termination {
        Termination::new(And { parts: vec![self, other], reasons: vec![None, None] })
    }
}

fn messages(events: &[AgentEvent]) -> impl Iterator<Item = &AgentMessage> {
    events.iter().filter_map(AgentEvent::as_message)
}

fn counter_state(state: &Value, key: &str) -> Result<u64, AgentError> {
    state
        .get(key)
        .and_then(Value::as_u64)
        .ok_or_else(|| AgentError::State(format!("termination state lacks `{key}`")))
}

#[derive(Debug)]
struct MaxMessage {
    max: usize,
    count: usize,
}

impl TerminationCondition for MaxMessage {
    fn check(&mut self, events: &[AgentEvent]) -> Option<String> {
        self.count += messages(events).count();
        (self.count >= self.max).then(|| {
            format!(
                "Maximum number of messages {} reached, current message count: {}",
                self.max, self.count
            )
        })
    }
    fn reset(&mut self) {
        self.count = 0;
    }
    fn save_state(&self) -> Value {
        json!({"count": self.count})
    }
    fn load_state(&mut self, state: &Value) -> Result<(), AgentError> {
        self.count = counter_state(state, "count")? as usize;
        Ok(())
    }
}

#[derive(Debug)]
struct TextMention {
    text: String,
    sources: Vec<String>,
}

impl TerminationCondition for TextMention {
    fn check(&mut self, events: &[AgentEvent]) -> Option<String> {
        messages(events)
            .find(|m| {
                (self.sources.is_empty() || self.sources.contains(&m.source))
                    && m.content.contains(&self.text)
            })
            .map(|_| format!("Text '{}' mentioned", self.text))
    }
    fn reset(&mut self) {}
}

/// A condition on single messages.
struct Predicate {
    name: &'static str,
    test: Box<dyn Fn(&AgentMessage) -> bool + Send + Sync>,
    reason: Box<dyn Fn(&AgentMessage) -> String + Send + Sync>,
}

impl Predicate {
    fn new(
        name: &'static str,
        test: impl Fn(&AgentMessage) -> bool + Send + Sync + 'static,
        reason: impl Fn(&AgentMessage) -> String + Send + Sync + 'static,
    ) -> Self {
        Self { name, test: Box::new(test), reason: Box::new(reason) }
    }
}

impl fmt::Debug for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Predicate").field(&self.name).finish()
    }
}

impl TerminationCondition for Predicate {
    fn check(&mut self, events: &[AgentEvent]) -> Option<String> {
        messages(events).find(|m| (self.test)(m)).map(|m| (self.reason)(m))
    }
    fn reset(&mut self) {}
}

#[derive(Debug)]
struct TokenUsage {
    max_total: Option<u32>,
    max_prompt: Option<u32>,
    max_completion: Option<u32>,
    used: crate::response::Usage,
}

impl TerminationCondition for TokenUsage {
    fn check(&mut self, events: &[AgentEvent]) -> Option<String> {
        for m in messages(events) {
            if let Some(u) = m.usage {
                self.used += u;
            }
        }
        let over = |limit: Option<u32>, used: u32| limit.is_some_and(|l| used >= l);
        let u = self.used;
        (over(self.max_total, u.total_tokens)
            || over(self.max_prompt, u.prompt_tokens)
            || over(self.max_completion, u.completion_tokens))
        .then(|| {
            format!(
                "Token usage limit reached, total_tokens={}, prompt_tokens={}, completion_tokens={}",
                u.total_tokens, u.prompt_tokens, u.completion_tokens
            )
        })
    }
    fn reset(&mut self) {
        self.used = Default::default();
    }
    fn save_state(&self) -> Value {
        json!({"used": self.used})
    }
    fn load_state(&mut self, state: &Value) -> Result<(), AgentError> {
        self.used = serde_json::from_value(state.get("used").cloned().unwrap_or(Value::Null))
            .map_err(|e| AgentError::State(format!("token usage termination: {e}")))?;
        Ok(())
    }
}

#[derive(Debug)]
struct Timeout {
    limit: Duration,
    started: Option<Instant>,
    before: Duration,
}

impl TerminationCondition for Timeout {
    fn check(&mut self, _events: &[AgentEvent]) -> Option<String> {
        let started = *self.started.get_or_insert_with(Instant::now);
        (self.before + started.elapsed() >= self.limit)
            .then(|| format!("Timeout of {:.3} seconds reached", self.limit.as_secs_f64()))
    }
    fn reset(&mut self) {
        self.started = None;
        self.before = Duration::ZERO;
    }
    fn save_state(&self) -> Value {
        let elapsed = self.before + self.started.map_or(Duration::ZERO, |s| s.elapsed());
        json!({"elapsed_ms": elapsed.as_millis() as u64})
    }
    fn load_state(&mut self, state: &Value) -> Result<(), AgentError> {
        self.before = Duration::from_millis(counter_state(state, "elapsed_ms")?);
        self.started = None;
        Ok(())
    }
}

/// Stops the run of the [`Termination::external`] it came with, at the next check.
#[derive(Debug, Clone)]
pub struct ExternalHandle(Arc<AtomicBool>);

impl ExternalHandle {
    /// Asks the run to stop after the current turn.
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether it has been triggered (and not reset since).
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Debug)]
struct External(ExternalHandle);

impl TerminationCondition for External {
    fn check(&mut self, _events: &[AgentEvent]) -> Option<String> {
        self.0.is_set().then(|| "External termination requested".to_owned())
    }
    fn reset(&mut self) {
        self.0 .0.store(false, Ordering::SeqCst);
    }
}

#[derive(Debug)]
struct FunctionCalled(String);

impl TerminationCondition for FunctionCalled {
    fn check(&mut self, events: &[AgentEvent]) -> Option<String> {
        events
            .iter()
            .any(|e| matches!(e, AgentEvent::ToolCallResult { results, .. } if results.iter().any(|r| r.name == self.0)))
            .then(|| format!("Function '{}' was executed.", self.0))
    }
    fn reset(&mut self) {}
}

type EventPredicate = Box<dyn Fn(&[AgentEvent]) -> bool + Send + Sync>;

struct Functional(EventPredicate);

impl fmt::Debug for Functional {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Functional")
    }
}

impl TerminationCondition for Functional {
    fn check(&mut self, events: &[AgentEvent]) -> Option<String> {
        (self.0)(events).then(|| "Functional termination condition met".to_owned())
    }
    fn reset(&mut self) {}
}

#[derive(Debug)]
struct Or(Vec<Termination>);

impl TerminationCondition for Or {
    fn check(&mut self, events: &[AgentEvent]) -> Option<String> {
        // Every part sees every step, so counters stay right whichever fires.
        let reasons: Vec<String> = self.0.iter_mut().filter_map(|c| c.check(events)).collect();
        (!reasons.is_empty()).then(|| reasons.join(", "))
    }
    fn reset(&mut self) {
        self.0.iter_mut().for_each(Termination::reset);
    }
    fn save_state(&self) -> Value {
        Value::Array(self.0.iter().map(Termination::save_state).collect())
    }
    fn load_state(&mut self, state: &Value) -> Result<(), AgentError> {
        load_parts(&mut self.0, state)
    }
}

/// Fires once every part has fired, each in its own step.
#[derive(Debug)]
struct And {
    parts: Vec<Termination>,
    reasons: Vec<Option<String>>,
}

impl TerminationCondition for And {
    fn check(&mut self, events: &[AgentEvent]) -> Option<String> {
        for (part, reason) in self.parts.iter_mut().zip(self.reasons.iter_mut()) {
            if reason.is_none() {
                *reason = part.check(events);
            }
        }
        if self.reasons.iter().all(Option::is_some) {
            Some(self.reasons.iter().flatten().cloned().collect::<Vec<_>>().join("; "))
        } else {
            None
        }
    }
    fn reset(&mut self) {
        self.parts.iter_mut().for_each(Termination::reset);
        self.reasons.iter_mut().for_each(|r| *r = None);
    }
    fn save_state(&self) -> Value {
        json!({"parts": self.parts.iter().map(Termination::save_state).collect::<Vec<_>>(), "reasons": self.reasons})
    }
    fn load_state(&mut self, state: &Value) -> Result<(), AgentError> {
        load_parts(&mut self.parts, state.get("parts").unwrap_or(&Value::Null))?;
        self.reasons = serde_json::from_value(state.get("reasons").cloned().unwrap_or(Value::Null))
            .map_err(|e| AgentError::State(format!("and-termination: {e}")))?;
        if self.reasons.len() != self.parts.len() {
            return Err(AgentError::State("and-termination: wrong number of parts".into()));
        }
        Ok(())
    }
}

fn load_parts(parts: &mut [Termination], state: &Value) -> Result<(), AgentError> {
    let states = state
        .as_array()
        .ok_or_else(|| AgentError::State("combined termination: expected a list".into()))?;
    if states.len() != parts.len() {
        return Err(AgentError::State("combined termination: wrong number of parts".into()));
    }
    parts.iter_mut().zip(states).try_for_each(|(p, s)| p.load_state(s))
}
