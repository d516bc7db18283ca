//! [`Swarm`]: the speaker keeps the floor until it hands over with a handoff tool call.

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::{GroupChat, GroupView, SpeakerPolicy};
use crate::agent::{AgentError, ChatAgent};
use crate::events::{AgentMessage, EventSink};

/// The first agent speaks first; after that whoever was handed the conversation last.
/// A task that is itself a handoff message starts with its target. A handoff to `user`
/// (outside the team) ends the run until the next task.
#[derive(Debug, Clone, Default)]
pub struct SwarmPolicy {
    current: usize,
    outside: Option<String>,
}

/// The one handoff target allowed outside a swarm: the person running it.
pub const USER: &str = "user";

impl SwarmPolicy {
    fn follow(&mut self, view: &GroupView<'_>, message: &AgentMessage) -> Result<(), AgentError> {
        if let Some(target) = message.handoff_target() {
            match view.index_of(target) {
                Some(i) => {
                    self.current = i;
                    self.outside = None;
                }
                None if target == USER => self.outside = Some(target.to_owned()),
                None => return Err(AgentError::UnknownAgent(target.to_owned())),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl SpeakerPolicy for SwarmPolicy {
    fn kind(&self) -> &'static str {
        "swarm"
    }

    fn validate(&self, agents: &[Box<dyn ChatAgent>]) -> Result<(), AgentError> {
        for a in agents {
            for t in a.handoff_targets() {
                if t != USER && !agents.iter().any(|b| b.name() == t) {
                    return Err(AgentError::Config(format!(
                        "agent `{}` hands off to `{t}`, which is not in the swarm",
                        a.name()
                    )));
                }
            }
        }
        Ok(())
    }

    async fn select(
        &mut self,
        _view: &GroupView<'_>,
        _cancel: &CancellationToken,
        _sink: &EventSink,
    ) -> Result<Option<usize>, AgentError> {
        Ok(if self.outside.is_some() { None } else { Some(self.current) })
    }

    fn done_reason(&self) -> String {
        format!("Handoff to {}, outside the team", self.outside.as_deref().unwrap_or(USER))
    }

    fn observe(
        &mut self,
        view: &GroupView<'_>,
        _speaker: usize,
        message: &AgentMessage,
    ) -> Result<(), AgentError> {
        self.follow(view, message)
    }

    fn observe_task(
        &mut self,
        view: &GroupView<'_>,
        messages: &[AgentMessage],
    ) -> Result<(), AgentError> {
        self.outside = None;
        messages.iter().try_for_each(|m| self.follow(view, m))
    }

    fn reset(&mut self) {
        self.current = 0;
        self.outside = None;
    }

    fn save_state(&self) -> Value {
        json!({"current_speaker_index": self.current, "outside": self.outside})
    }

    fn load_state(&mut self, state: &Value) -> Result<(), AgentError> {
        self.current = state
            .get("current_speaker_index")
            .and_then(Value::as_u64)
            .ok_or_else(|| AgentError::State("swarm: no current_speaker_index".into()))?
            as usize;
        self.outside = state.get("outside").and_then(Value::as_str).map(str::to_owned);
        Ok(())
    }
}

/// A team where agents pass the conversation on with handoffs (only the first handoff of a
/// turn counts).
pub type Swarm = GroupChat<SwarmPolicy>;

impl GroupChat<SwarmPolicy> {
    /// A swarm; the first agent speaks first. Every handoff target must be a member or
    /// `user`.
    pub fn new(agents: Vec<Box<dyn ChatAgent>>) -> Result<Self, AgentError> {
        Self::with_policy(agents, SwarmPolicy::default())
    }
}
