//! [`MagenticOneGroupChat`]: an orchestrator model leads the team, as in AutoGen's
//! `MagenticOneGroupChat`. It first writes a task ledger (facts and plan); then before every
//! turn a progress ledger (JSON: is the request satisfied, are we looping, is progress being
//! made, who speaks next and what they should do). The instruction is posted to the thread as
//! the orchestrator's message and the named agent speaks. Turns without progress (or in a loop)
//! count as stalls; after `max_stalls` the orchestrator updates facts and plan and the agents
//! start over. The run stops with the orchestrator's final answer when the request is
//! satisfied or after `max_turns` agent turns.
//!
//! Model output is untrusted: a progress ledger is parsed leniently (fenced or embedded JSON,
//! bare booleans), retried a bounded number of times with feedback, and otherwise replaced by
//! a default that hands the turn to the next agent in order.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::prompt_template::{check_template, PromptTemplateError};
use super::selector::mentioned_agents;
use super::{GroupChat, GroupView, SpeakerPolicy};
use crate::agent::{cancellable, AgentError, ChatAgent};
use crate::backend::ChatBackend;
use crate::events::{AgentEvent, AgentMessage, EventSink};
use crate::message::ChatMessage;
use crate::request::{ChatRequest, ResponseFormat};
use crate::response::Usage;

/// The orchestrator's name in the thread (AutoGen's).
pub const ORCHESTRATOR_NAME: &str = "MagenticOneOrchestrator";

const FACTS_PROMPT: &str = "Below I will present you a request. Before we begin addressing the request, please answer the following pre-survey to the best of your ability.

Here is the request:

{task}

Here is the pre-survey:

    1. Please list any specific facts or figures that are GIVEN in the request itself.
    2. Please list any facts that may need to be looked up, and WHERE SPECIFICALLY they might be found.
    3. Please list any facts that may need to be derived (e.g., via logical deduction, simulation, or computation).
    4. Please list any facts that are recalled from memory, hunches, well-reasoned guesses, etc.

Your answer should use headings:

    1. GIVEN OR VERIFIED FACTS
    2. FACTS TO LOOK UP
    3. FACTS TO DERIVE
    4. EDUCATED GUESSES";

const PLAN_PROMPT: &str = "Fantastic. To address this request we have assembled the following team:

{team}

Based on the team composition, and known and unknown facts, please devise a short bullet-point plan for addressing the original request. Remember, there is no requirement to involve all team members.";

const LEDGER_TEMPLATE: &str = "We are working to address the following user request:

{task}


To answer this request we have assembled the following team:

{team}


Here is an initial fact sheet to consider:

{facts}


Here is the plan to follow as best as possible:

{plan}";

const PROGRESS_PROMPT: &str = "Recall we are working on the following request:

{task}

And we have assembled the following team:

{team}

To make progress on the request, please answer the following questions, including necessary reasoning:

    - Is the request fully satisfied? (True if complete, or False if the original request has yet to be SUCCESSFULLY and FULLY addressed)
    - Are we in a loop where we are repeating the same requests and or getting the same responses as before?
    - Are we making forward progress? (True if just starting, or recent messages are adding value. False if recent messages show evidence of being stuck in a loop or if there is evidence of significant barriers to success)
    - Who should speak next? (select from: {names})
    - What instruction or question would you give this team member? (Phrase as if speaking directly to them, and include any specific information they may need)

Please output an answer in pure JSON format according to the following schema. The JSON object must be parsable as-is. DO NOT OUTPUT ANYTHING OTHER THAN JSON, AND DO NOT DEVIATE FROM THIS SCHEMA:

{
    \"is_request_satisfied\": {\"reason\": string, \"answer\": boolean},
    \"is_in_loop\": {\"reason\": string, \"answer\": boolean},
    \"is_progress_being_made\": {\"reason\": string, \"answer\": boolean},
    \"next_speaker\": {\"reason\": string, \"answer\": string (select from: {names})},
    \"instruction_or_question\": {\"reason\": string, \"answer\": string}
}";

const UPDATE_FACTS_PROMPT: &str = "As a reminder, we are working to solve the following task:

{task}

It's clear we aren't making as much progress as we would like, but we may have learned something new. Please rewrite the following fact sheet, updating it to include anything new we have learned that may be helpful.

Here is the old fact sheet:

{facts}";

const UPDATE_PLAN_PROMPT: &str = "Please briefly explain what went wrong on this last run (the root cause of the failure), and then come up with a new plan that takes steps and/or includes hints to overcome prior challenges and especially avoids repeating the same mistakes. As before, the new plan should be concise, be expressed in bullet-point form, and consider the following team composition (do not involve any other outside people since we cannot contact anyone else):

{team}";

/// The placeholders a final answer prompt may use (see
/// [`with_final_answer_prompt`](MagenticOneGroupChat::with_final_answer_prompt)).
pub const FINAL_ANSWER_PLACEHOLDERS: &[&str] = &["task", "team", "names", "facts", "plan"];

const FINAL_ANSWER_PROMPT: &str = "We are working on the following task:
{task}

We have completed the task.

The above messages contain the conversation that took place to complete the task.

Based on the information gathered, provide the final answer to the original request.
The answer should be phrased as if you were speaking to the user.";

/// One progress ledger: the orchestrator's judgement before a turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressLedger {
    /// The request is fully addressed.
    pub is_request_satisfied: bool,
    /// The team repeats itself.
    pub is_in_loop: bool,
    /// Recent messages add value.
    pub is_progress_being_made: bool,
    /// Who speaks next (a name the model gave; checked against the team).
    pub next_speaker: String,
    /// What the next speaker should do.
    pub instruction_or_question: String,
}

/// Why a progress ledger could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// No JSON object in the answer.
    #[error("no JSON object found in the answer")]
    NoJson,
    /// A key is missing or has the wrong type.
    #[error("missing or invalid key `{0}`")]
    Key(&'static str),
}

/// The JSON object in `text`: as is, inside a ``` fence, or between its first `{` and last `}`.
fn extract_json(text: &str) -> Option<Value> {
    let text = text.trim();
    if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(text) {
        return Some(v);
    }
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    let inner = text.get(start..=end)?;
    match serde_json::from_str::<Value>(inner) {
        Ok(v @ Value::Object(_)) => Some(v),
        _ => None,
    }
}

/// `obj[key].answer` (or `obj[key]` itself).
fn answer<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    let v = obj.get(key)?;
    match v.get("answer") {
        Some(a) => Some(a),
        None if v.is_object() => None,
        None => Some(v),
    }
}

fn answer_bool(obj: &Value, key: &'static str) -> Result<bool, LedgerError> {
    match answer(obj, key) {
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" => Ok(true),
            "false" | "no" => Ok(false),
            _ => Err(LedgerError::Key(key)),
        },
        _ => Err(LedgerError::Key(key)),
    }
}

fn answer_str(obj: &Value, key: &'static str) -> Result<String, LedgerError> {
    match answer(obj, key) {
        Some(Value::String(s)) => Ok(s.trim().to_owned()),
        _ => Err(LedgerError::Key(key)),
    }
}

/// Reads a progress ledger from a model's answer (pure, fenced or embedded JSON).
pub fn parse_progress_ledger(text: &str) -> Result<ProgressLedger, LedgerError> {
    let obj = extract_json(text).ok_or(LedgerError::NoJson)?;
    let is_request_satisfied = answer_bool(&obj, "is_request_satisfied")?;
    Ok(ProgressLedger {
        is_request_satisfied,
        is_in_loop: answer_bool(&obj, "is_in_loop").unwrap_or(false),
        is_progress_being_made: answer_bool(&obj, "is_progress_being_made").unwrap_or(true),
        next_speaker: match answer_str(&obj, "next_speaker") {
            Ok(s) => s,
            Err(e) if !is_request_satisfied => return Err(e),
            Err(_) => String::new(),
        },
        instruction_or_question: match answer_str(&obj, "instruction_or_question") {
            Ok(s) => s,
            Err(e) if !is_request_satisfied => return Err(e),
            Err(_) => String::new(),
        },
    })
}

fn ledger_schema() -> Value {
    let item = |ty: &str| {
        json!({"type": "object", "properties": {"reason": {"type": "string"}, "answer": {"type": ty}},
               "required": ["reason", "answer"], "additionalProperties": false})
    };
    json!({
        "type": "object",
        "properties": {
            "is_request_satisfied": item("boolean"),
            "is_in_loop": item("boolean"),
            "is_progress_being_made": item("boolean"),
            "next_speaker": item("string"),
            "instruction_or_question": item("string"),
        },
        "required": ["is_request_satisfied", "is_in_loop", "is_progress_being_made",
                     "next_speaker", "instruction_or_question"],
        "additionalProperties": false,
    })
}

/// The orchestrator: a [`SpeakerPolicy`] that posts its ledgers and instructions to the thread.
pub struct MagenticOnePolicy {
    backend: Arc<dyn ChatBackend>,
    defaults: ChatRequest,
    name: String,
    max_turns: usize,
    max_stalls: usize,
    max_json_retries: usize,
    first_speaker: Option<String>,
    // State.
    task: String,
    facts: String,
    plan: String,
    ledger_written: bool,
    stalls: usize,
    rounds: usize,
    posts: Vec<AgentMessage>,
    reset_agents: bool,
    done: Option<String>,
    /// The template of the request for the final answer.
    final_answer_prompt: String,
    /// Tokens the orchestrator's calls used, until taken.
    usage: Usage,
    /// The counts as the last committed turn left them, while a selection awaits its turn:
    /// `observe` keeps the selection's counts, and the next `select` rolls back those of a
    /// turn that failed, so a retried turn is not counted twice. (Ledgers the selection
    /// posted stay: they are in the thread.)
    before_select: Option<Counts>,
}

/// The counts a selection changes.
#[derive(Debug, Clone, Copy)]
struct Counts {
    stalls: usize,
    rounds: usize,
}

impl fmt::Debug for MagenticOnePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MagenticOnePolicy")
            .field("backend", &self.backend.info().name)
            .field("max_turns", &self.max_turns)
            .field("max_stalls", &self.max_stalls)
            .field("rounds", &self.rounds)
            .field("stalls", &self.stalls)
            .finish_non_exhaustive()
    }
}

impl MagenticOnePolicy {
    /// An orchestrator asking `backend` at temperature 0: 20 turns, 3 stalls, 3 JSON attempts.
    pub fn new(backend: Arc<dyn ChatBackend>) -> Self {
        Self {
            backend,
            defaults: ChatRequest { temperature: Some(0.0), ..ChatRequest::default() },
            name: ORCHESTRATOR_NAME.to_owned(),
            max_turns: 20,
            max_stalls: 3,
            max_json_retries: 3,
            first_speaker: None,
            task: String::new(),
            facts: String::new(),
            plan: String::new(),
            ledger_written: false,
            stalls: 0,
            rounds: 0,
            before_select: None,
            final_answer_prompt: FINAL_ANSWER_PROMPT.to_owned(),
            usage: Usage::default(),
            posts: Vec::new(),
            reset_agents: false,
            done: None,
        }
    }

    /// The facts the orchestrator keeps.
    pub fn facts(&self) -> &str {
        &self.facts
    }

    /// The current plan.
    pub fn plan(&self) -> &str {
        &self.plan
    }

    /// Stalls counted since the last re-plan.
    pub fn stalls(&self) -> usize {
        self.stalls
    }

    /// Checks a final answer prompt: not empty, and only [`FINAL_ANSWER_PLACEHOLDERS`].
    pub fn check_final_answer_prompt(template: &str) -> Result<(), PromptTemplateError> {
        check_template("final answer prompt", template, FINAL_ANSWER_PLACEHOLDERS)
    }

    fn fill(&self, template: &str, view: &GroupView<'_>) -> String {
        let team: Vec<String> =
            view.names.iter().zip(view.descriptions).map(|(n, d)| format!("{n}: {d}")).collect();
        template
            .replace("{team}", &team.join("\n"))
            .replace("{names}", &view.names.join(", "))
            .replace("{task}", &self.task)
            .replace("{facts}", &self.facts)
            .replace("{plan}", &self.plan)
    }

    /// The thread as chat messages, for the orchestrator's context.
    fn context(view: &GroupView<'_>) -> Vec<ChatMessage> {
        view.thread
            .iter()
            .map(|m| ChatMessage::user(format!("{}: {}", m.source, m.content)))
            .collect()
    }

    async fn ask(
        &mut self,
        messages: Vec<ChatMessage>,
        format: Option<ResponseFormat>,
        cancel: &CancellationToken,
    ) -> Result<String, AgentError> {
        let mut req = self.defaults.clone();
        req.messages = messages;
        if format.is_some() {
            req.response_format = format;
        }
        let backend = Arc::clone(&self.backend);
        let resp = cancellable(cancel, async move {
            crate::telemetry::complete_traced(backend.as_ref(), req).await
        })
        .await?;
        self.usage += resp.usage;
        Ok(resp.text().unwrap_or_default().trim().to_owned())
    }

    fn post(&mut self, content: String) {
        self.posts.push(AgentMessage::text(self.name.clone(), content));
    }

    /// Writes facts and plan (fresh, or updated after stalls) and posts the ledger.
    async fn write_ledger(
        &mut self,
        view: &GroupView<'_>,
        update: bool,
        cancel: &CancellationToken,
    ) -> Result<(), AgentError> {
        let mut messages = Self::context(view);
        let facts_prompt = if update { UPDATE_FACTS_PROMPT } else { FACTS_PROMPT };
        messages.push(ChatMessage::user(self.fill(facts_prompt, view)));
        let facts = self.ask(messages.clone(), None, cancel).await?;
        messages.push(ChatMessage::assistant(facts.clone()));
        let plan_prompt = if update { UPDATE_PLAN_PROMPT } else { PLAN_PROMPT };
        messages.push(ChatMessage::user(self.fill(plan_prompt, view)));
        let plan = self.ask(messages, None, cancel).await?;
        self.facts = facts;
        self.plan = plan;
        let ledger = self.fill(LEDGER_TEMPLATE, view);
        self.post(ledger);
        Ok(())
    }

    /// Asks for a progress ledger; `None` after `max_json_retries` unusable answers.
    async fn progress_ledger(
        &mut self,
        view: &GroupView<'_>,
        cancel: &CancellationToken,
    ) -> Result<Option<(ProgressLedger, usize)>, AgentError> {
        let format = self
            .backend
            .info()
            .capabilities
            .json_output
            .then(|| ResponseFormat::json_schema("progress_ledger", ledger_schema()));
        let mut messages = Self::context(view);
        messages.push(ChatMessage::user(self.fill(PROGRESS_PROMPT, view)));
        for attempt in 1..=self.max_json_retries.max(1) {
            let text = self.ask(messages.clone(), format.clone(), cancel).await?;
            let feedback = match parse_progress_ledger(&text) {
                Ok(l) if l.is_request_satisfied => return Ok(Some((l, 0))),
                Ok(l) => match Self::speaker_of(&l.next_speaker, view) {
                    Some(i) => return Ok(Some((l, i))),
                    None => format!(
                        "`next_speaker` must be one of: {}. Answer with the JSON object only.",
                        view.names.join(", ")
                    ),
                },
                Err(e) => {
                    format!("Your answer was not valid: {e}. Answer with the JSON object only.")
                }
            };
            tracing::debug!(attempt, answer = %text, "progress ledger unusable");
            messages.push(ChatMessage::assistant(text));
            messages.push(ChatMessage::user(feedback));
        }
        Ok(None)
    }

    fn speaker_of(name: &str, view: &GroupView<'_>) -> Option<usize> {
        view.index_of(name).or_else(|| match mentioned_agents(name, view.names)[..] {
            [one] => Some(one),
            _ => None,
        })
    }

    fn next_in_turn(view: &GroupView<'_>) -> usize {
        view.last_speaker.map_or(0, |l| (l + 1) % view.names.len().max(1))
    }

    async fn finish(
        &mut self,
        view: &GroupView<'_>,
        reason: String,
        cancel: &CancellationToken,
    ) -> Result<Option<usize>, AgentError> {
        let mut messages = Self::context(view);
        messages.push(ChatMessage::user(self.fill(&self.final_answer_prompt, view)));
        let answer = self.ask(messages, None, cancel).await?;
        self.post(answer);
        self.done = Some(reason);
        Ok(None)
    }

    fn counts(&self) -> Counts {
        Counts { stalls: self.stalls, rounds: self.rounds }
    }

    fn state_with(&self, c: Counts) -> Value {
        json!({
            "task": self.task, "facts": self.facts, "plan": self.plan,
            "ledger_written": self.ledger_written, "n_stalls": c.stalls,
            "n_rounds": c.rounds, "done": self.done,
        })
    }

    fn choose(
        &mut self,
        speaker: usize,
        instruction: String,
        fallback: bool,
        view: &GroupView<'_>,
        sink: &EventSink,
    ) -> Option<usize> {
        self.post(instruction);
        self.rounds += 1;
        sink.emit(AgentEvent::SpeakerSelected { speaker: view.names[speaker].clone(), fallback });
        Some(speaker)
    }
}

#[async_trait]
impl SpeakerPolicy for MagenticOnePolicy {
    fn kind(&self) -> &'static str {
        "magentic_one"
    }

    fn validate(&self, agents: &[Box<dyn ChatAgent>]) -> Result<(), AgentError> {
        if let Some(first) = &self.first_speaker {
            if !agents.iter().any(|a| a.name() == first) {
                return Err(AgentError::UnknownAgent(first.clone()));
            }
        }
        if agents.iter().any(|a| a.name() == self.name) {
            return Err(AgentError::Config(format!(
                "an agent is named `{}` like the orchestrator",
                self.name
            )));
        }
        Ok(())
    }

    async fn select(
        &mut self,
        view: &GroupView<'_>,
        cancel: &CancellationToken,
        sink: &EventSink,
    ) -> Result<Option<usize>, AgentError> {
        if self.done.is_some() {
            return Ok(None);
        }
        // The last selection's turn never committed: decide again from the state before it.
        if let Some(before) = self.before_select.take() {
            (self.stalls, self.rounds) = (before.stalls, before.rounds);
        }
        self.before_select = Some(self.counts());
        if self.task.is_empty() {
            self.task =
                view.thread.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join("\n");
        }
        if !self.ledger_written {
            self.write_ledger(view, false, cancel).await?;
            self.ledger_written = true;
            if let Some(i) = self.first_speaker.as_deref().and_then(|f| view.index_of(f)) {
                let instruction = format!(
                    "{}, please begin working on the request following the plan above.",
                    view.names[i]
                );
                return Ok(self.choose(i, instruction, false, view, sink));
            }
        }
        if self.rounds >= self.max_turns {
            let reason = format!("Maximum number of turns {} reached.", self.max_turns);
            return self.finish(view, reason, cancel).await;
        }
        let (ledger, speaker, fallback) = match self.progress_ledger(view, cancel).await? {
            Some((l, i)) => (l, i, false),
            None => {
                tracing::warn!("orchestrator gave no usable progress ledger; next in turn speaks");
                let i = Self::next_in_turn(view);
                let l = ProgressLedger {
                    is_request_satisfied: false,
                    is_in_loop: false,
                    is_progress_being_made: false,
                    next_speaker: view.names[i].clone(),
                    instruction_or_question: "Please continue working on the request.".into(),
                };
                (l, i, true)
            }
        };
        if ledger.is_request_satisfied {
            return self.finish(view, "The request is satisfied.".into(), cancel).await;
        }
        if ledger.is_in_loop || !ledger.is_progress_being_made {
            self.stalls += 1;
        } else {
            self.stalls = self.stalls.saturating_sub(1);
        }
        if self.stalls >= self.max_stalls {
            tracing::info!(stalls = self.stalls, "orchestrator re-plans");
            self.write_ledger(view, true, cancel).await?;
            self.stalls = 0;
            // The new plan is posted: the stalls that led to it are spent even if the turn fails.
            if let Some(before) = self.before_select.as_mut() {
                before.stalls = 0;
            }
            self.reset_agents = true;
        }
        let instruction = if ledger.instruction_or_question.is_empty() {
            "Please continue working on the request.".to_owned()
        } else {
            ledger.instruction_or_question
        };
        Ok(self.choose(speaker, instruction, fallback, view, sink))
    }

    fn observe(
        &mut self,
        _view: &GroupView<'_>,
        _speaker: usize,
        _message: &AgentMessage,
    ) -> Result<(), AgentError> {
        self.before_select = None;
        Ok(())
    }

    fn observe_task(
        &mut self,
        _view: &GroupView<'_>,
        messages: &[AgentMessage],
    ) -> Result<(), AgentError> {
        let text: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
        self.task = text.join("\n");
        self.before_select = None;
        self.ledger_written = false;
        self.rounds = 0;
        self.stalls = 0;
        self.done = None;
        Ok(())
    }

    fn take_posts(&mut self) -> Vec<AgentMessage> {
        std::mem::take(&mut self.posts)
    }

    fn take_usage(&mut self) -> Usage {
        std::mem::take(&mut self.usage)
    }

    fn take_reset_agents(&mut self) -> bool {
        std::mem::take(&mut self.reset_agents)
    }

    fn done_reason(&self) -> String {
        self.done.clone().unwrap_or_else(|| "No next speaker".to_owned())
    }

    fn reset(&mut self) {
        self.task.clear();
        self.facts.clear();
        self.plan.clear();
        self.ledger_written = false;
        self.stalls = 0;
        self.rounds = 0;
        self.posts.clear();
        self.reset_agents = false;
        self.done = None;
        self.before_select = None;
    }

    fn save_state(&self) -> Value {
        // The counts of committed turns only: a pending selection is made again on load.
        self.state_with(self.before_select.unwrap_or_else(|| self.counts()))
    }

    fn selection_state(&self) -> Option<Value> {
        // The ledger and counts this selection made, and the committed counts to go back to if
        // its turn fails.
        let mut state = self.state_with(self.counts());
        let before = self.before_select.unwrap_or_else(|| self.counts());
        state["before"] = json!({"n_stalls": before.stalls, "n_rounds": before.rounds});
        Some(state)
    }

    fn load_selection(&mut self, state: &Value) -> Result<(), AgentError> {
        self.load_state(state)?;
        let before = state.get("before").ok_or_else(|| {
            AgentError::State("magentic one: a selection's state has no `before` counts".into())
        })?;
        let n = |k: &str| before.get(k).and_then(Value::as_u64).unwrap_or(0) as usize;
        self.before_select = Some(Counts { stalls: n("n_stalls"), rounds: n("n_rounds") });
        Ok(())
    }

    fn load_state(&mut self, state: &Value) -> Result<(), AgentError> {
        let s = |k: &str| state.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
        let n = |k: &str| state.get(k).and_then(Value::as_u64).unwrap_or(0) as usize;
        if !state.is_object() {
            return Err(AgentError::State("magentic one: state is not an object".into()));
        }
        self.task = s("task");
        self.facts = s("facts");
        self.plan = s("plan");
        self.ledger_written = state.get("ledger_written").and_then(Value::as_bool).unwrap_or(false);
        self.stalls = n("n_stalls");
        self.rounds = n("n_rounds");
        self.done = state.get("done").and_then(Value::as_str).map(str::to_owned);
        self.posts.clear();
        self.reset_agents = false;
        self.before_select = None;
        Ok(())
    }
}

/// A team led by an orchestrator model.
pub type MagenticOneGroupChat = GroupChat<MagenticOnePolicy>;

impl GroupChat<MagenticOnePolicy> {
    /// A MagenticOne team whose orchestrator asks `backend` (at temperature 0).
    pub fn new(
        agents: Vec<Box<dyn ChatAgent>>,
        backend: Arc<dyn ChatBackend>,
    ) -> Result<Self, AgentError> {
        Self::with_policy(agents, MagenticOnePolicy::new(backend))
    }

    /// Agent turns before the orchestrator gives its final answer (default 20).
    pub fn with_orchestrator_max_turns(mut self, n: usize) -> Self {
        self.policy.max_turns = n;
        self
    }

    /// Stalls before the orchestrator re-plans (default 3, at least 1).
    pub fn with_max_stalls(mut self, n: usize) -> Self {
        self.policy.max_stalls = n.max(1);
        self
    }

    /// Attempts at a usable progress ledger before the next agent in turn speaks (default 3).
    pub fn with_max_json_retries(mut self, n: usize) -> Self {
        self.policy.max_json_retries = n.max(1);
        self
    }

    /// The agent that speaks right after the task ledger, without asking the orchestrator.
    pub fn with_first_speaker(mut self, name: impl Into<String>) -> Result<Self, AgentError> {
        let name = name.into();
        if !self.names.contains(&name) {
            return Err(AgentError::UnknownAgent(name));
        }
        self.policy.first_speaker = Some(name);
        Ok(self)
    }

    /// Sampling options of the orchestrator's model calls (default temperature 0).
    pub fn with_orchestrator_request_defaults(mut self, defaults: ChatRequest) -> Self {
        self.policy.defaults = defaults;
        self
    }

    /// The request for the orchestrator's final answer, instead of the default (AutoGen's).
    /// `{task}`, `{team}` (`name: description` lines), `{names}`, `{facts}` and `{plan}` are
    /// filled in; an empty template or another `{name}` is a [`PromptTemplateError`].
    pub fn with_final_answer_prompt(
        mut self,
        template: impl Into<String>,
    ) -> Result<Self, AgentError> {
        let template = template.into();
        MagenticOnePolicy::check_final_answer_prompt(&template)?;
        self.policy.final_answer_prompt = template;
        Ok(self)
    }

    /// The orchestrator's name in the thread (default `MagenticOneOrchestrator`).
    pub fn with_orchestrator_name(mut self, name: impl Into<String>) -> Result<Self, AgentError> {
        let name = name.into();
        if self.names.contains(&name) {
            return Err(AgentError::Config(format!(
                "an agent is named `{name}` like the orchestrator"
            )));
        }
        self.policy.name = name;
        Ok(self)
    }
}

#[cfg(test)]
#[path = "magentic_one_tests.rs"]
mod tests;
