//! [`SelectorGroupChat`]: a model picks the next speaker. Answers that name no candidate, or
//! several, are retried with feedback up to `max_selector_attempts` times; then the next
//! candidate in turn speaks, so a confused small model never stalls or crashes the team.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::{GroupChat, GroupView, SpeakerPolicy};
use crate::agent::{cancellable, AgentError, ChatAgent};
use crate::backend::ChatBackend;
use crate::events::{AgentEvent, AgentMessage, EventSink};
use crate::message::ChatMessage;
use crate::request::ChatRequest;
use crate::response::Usage;

/// Picks the next speaker by name from the thread, or `None` to let the model choose.
pub type SelectorFn = Arc<dyn Fn(&[AgentMessage]) -> Option<String> + Send + Sync>;

/// Narrows the names the model may choose from, given the thread.
pub type CandidateFn = Arc<dyn Fn(&[AgentMessage]) -> Vec<String> + Send + Sync>;

/// The default selector prompt. `{roles}`, `{participants}` and `{history}` are filled in.
pub const DEFAULT_SELECTOR_PROMPT: &str = "You are in a role play game. The following roles are available:
{roles}.
Read the following conversation. Then select the next role from {participants} to play. Only return the role.

{history}

Read the above conversation. Then select the next role from {participants} to play. Only return the role.";

/// A model picks the next speaker.
pub struct SelectorPolicy {
    backend: Arc<dyn ChatBackend>,
    prompt: String,
    allow_repeated_speaker: bool,
    max_attempts: usize,
    selector_func: Option<SelectorFn>,
    candidate_func: Option<CandidateFn>,
    defaults: ChatRequest,
    /// Tokens the selector's calls used, until taken.
    usage: Usage,
}

impl fmt::Debug for SelectorPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelectorPolicy")
            .field("backend", &self.backend.info().name)
            .field("allow_repeated_speaker", &self.allow_repeated_speaker)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl SelectorPolicy {
    /// A selector asking `backend`, three attempts, no repeated speaker.
    pub fn new(backend: Arc<dyn ChatBackend>) -> Self {
        Self {
            backend,
            prompt: DEFAULT_SELECTOR_PROMPT.to_owned(),
            allow_repeated_speaker: false,
            max_attempts: 3,
            selector_func: None,
            candidate_func: None,
            defaults: ChatRequest {
                temperature: Some(0.0),
                max_tokens: Some(32),
                ..ChatRequest::default()
            },
            usage: Usage::default(),
        }
    }

    fn candidates(&self, view: &GroupView<'_>) -> Result<Vec<usize>, AgentError> {
        let mut out: Vec<usize> = match &self.candidate_func {
            Some(f) => f(view.thread)
                .iter()
                .map(|n| view.index_of(n).ok_or_else(|| AgentError::UnknownAgent(n.clone())))
                .collect::<Result<_, _>>()?,
            None => (0..view.names.len()).collect(),
        };
        if !self.allow_repeated_speaker && self.candidate_func.is_none() && out.len() > 1 {
            out.retain(|&i| Some(i) != view.last_speaker);
        }
        if out.is_empty() {
            return Err(AgentError::Config("the candidate function returned no agent".into()));
        }
        Ok(out)
    }

    fn prompt_for(&self, view: &GroupView<'_>, candidates: &[usize]) -> String {
        let roles: Vec<String> = candidates
            .iter()
            .map(|&i| format!("{}: {}", view.names[i], view.descriptions[i]))
            .collect();
        let participants: Vec<&str> = candidates.iter().map(|&i| view.names[i].as_str()).collect();
        let history: Vec<String> =
            view.thread.iter().map(|m| format!("{}: {}", m.source, m.content)).collect();
        self.prompt
            .replace("{roles}", &roles.join("\n"))
            .replace("{participants}", &format!("[{}]", participants.join(", ")))
            .replace("{history}", &history.join("\n\n"))
    }
}

/// The agent names mentioned in `answer` as whole words (case-insensitive), in name order.
pub fn mentioned_agents(answer: &str, names: &[String]) -> Vec<usize> {
    let hay = answer.to_lowercase();
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    names
        .iter()
        .enumerate()
        .filter(|(_, name)| {
            let needle = name.to_lowercase();
            !needle.is_empty()
                && hay.match_indices(&needle).any(|(at, _)| {
                    let before = hay[..at].chars().next_back();
                    let after = hay[at + needle.len()..].chars().next();
                    !before.is_some_and(is_word) && !after.is_some_and(is_word)
                })
        })
        .map(|(i, _)| i)
        .collect()
}

#[async_trait]
impl SpeakerPolicy for SelectorPolicy {
    fn take_usage(&mut self) -> Usage {
        std::mem::take(&mut self.usage)
    }

    fn kind(&self) -> &'static str {
        "selector"
    }

    async fn select(
        &mut self,
        view: &GroupView<'_>,
        cancel: &CancellationToken,
        sink: &EventSink,
    ) -> Result<Option<usize>, AgentError> {
        if view.thread.is_empty() {
            return Ok(Some(0));
        }
        if let Some(f) = &self.selector_func {
            if let Some(name) = f(view.thread) {
                return view.index_of(&name).map(Some).ok_or(AgentError::UnknownAgent(name));
            }
        }
        let candidates = self.candidates(view)?;
        if let [only] = candidates[..] {
            return Ok(Some(only));
        }
        let names: Vec<String> = candidates.iter().map(|&i| view.names[i].clone()).collect();
        let mut messages = vec![ChatMessage::user(self.prompt_for(view, &candidates))];
        for attempt in 1..=self.max_attempts {
            let mut req = self.defaults.clone();
            req.messages = messages.clone();
            let backend = Arc::clone(&self.backend);
            let resp = cancellable(cancel, async move {
                crate::telemetry::complete_traced(backend.as_ref(), req).await
            })
            .await?;
            self.usage += resp.usage;
            let answer = resp.text().unwrap_or_default().to_owned();
            let mentioned = mentioned_agents(&answer, &names);
            let feedback = match mentioned[..] {
                [one] => {
                    let speaker = candidates[one];
                    sink.emit(AgentEvent::SpeakerSelected {
                        speaker: view.names[speaker].clone(),
                        fallback: false,
                    });
                    return Ok(Some(speaker));
                }
                [] => match mentioned_agents(&answer, view.names)[..] {
                    [other] if Some(other) == view.last_speaker => format!(
                        "Repeated speaker is not allowed, please select a different name from: {}.",
                        names.join(", ")
                    ),
                    _ => format!(
                        "No valid name was mentioned. Please select from: {}.",
                        names.join(", ")
                    ),
                },
                _ => format!(
                    "Expected exactly one name to be mentioned. Please select only one from: {}.",
                    names.join(", ")
                ),
            };
            tracing::debug!(attempt, answer = %answer, "selector answer unusable");
            messages.push(ChatMessage::assistant(answer));
            messages.push(ChatMessage::user(feedback));
        }
        let n = view.names.len();
        let start = view.last_speaker.map_or(0, |l| l + 1);
        let speaker = (start..start + n)
            .map(|i| i % n)
            .find(|i| candidates.contains(i))
            .unwrap_or(candidates[0]);
        tracing::warn!(speaker = %view.names[speaker], "selector gave no usable answer; next in turn speaks");
        sink.emit(AgentEvent::SpeakerSelected {
            speaker: view.names[speaker].clone(),
            fallback: true,
        });
        Ok(Some(speaker))
    }

    fn observe(
        &mut self,
        _view: &GroupView<'_>,
        _speaker: usize,
        _message: &AgentMessage,
    ) -> Result<(), AgentError> {
        Ok(())
    }

    fn reset(&mut self) {}

    fn save_state(&self) -> Value {
        json!({})
    }

    fn load_state(&mut self, _state: &Value) -> Result<(), AgentError> {
        Ok(())
    }
}

/// A team where a model picks each next speaker.
pub type SelectorGroupChat = GroupChat<SelectorPolicy>;

impl GroupChat<SelectorPolicy> {
    /// A selector team whose speakers `backend` picks (at temperature 0).
    pub fn new(
        agents: Vec<Box<dyn ChatAgent>>,
        backend: Arc<dyn ChatBackend>,
    ) -> Result<Self, AgentError> {
        Self::with_policy(agents, SelectorPolicy::new(backend))
    }

    /// Sets the selector prompt (`{roles}`, `{participants}`, `{history}` are filled in).
    pub fn with_selector_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.policy.prompt = prompt.into();
        self
    }

    /// Whether the last speaker may be picked again (default no).
    pub fn with_allow_repeated_speaker(mut self, allow: bool) -> Self {
        self.policy.allow_repeated_speaker = allow;
        self
    }

    /// How many times the model is asked before the next in turn speaks (default 3).
    pub fn with_max_selector_attempts(mut self, attempts: usize) -> Self {
        self.policy.max_attempts = attempts;
        self
    }

    /// Picks speakers with a function first; the model is asked only when it returns `None`.
    pub fn with_selector_func(
        mut self,
        f: impl Fn(&[AgentMessage]) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.policy.selector_func = Some(Arc::new(f));
        self
    }

    /// Limits the model's choice to the names this function returns.
    pub fn with_candidate_func(
        mut self,
        f: impl Fn(&[AgentMessage]) -> Vec<String> + Send + Sync + 'static,
    ) -> Self {
        self.policy.candidate_func = Some(Arc::new(f));
        self
    }

    /// Sampling options of the selector's model calls (default temperature 0, 32 tokens).
    pub fn with_selector_request_defaults(mut self, defaults: ChatRequest) -> Self {
        self.policy.defaults = defaults;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_whole_words() {
        let names = vec!["writer".to_owned(), "reviewer".to_owned(), "re".to_owned()];
        assert_eq!(mentioned_agents("Writer", &names), vec![0]);
        assert_eq!(mentioned_agents("the reviewer.", &names), vec![1]);
        assert_eq!(mentioned_agents("writer or reviewer", &names), vec![0, 1]);
        assert!(mentioned_agents("rewriters", &names).is_empty());
    }
}
