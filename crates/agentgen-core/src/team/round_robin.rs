//! [`RoundRobinGroupChat`]: agents speak in a fixed order.

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::{GroupChat, GroupView, SpeakerPolicy};
use crate::agent::{AgentError, ChatAgent};
use crate::events::{AgentMessage, EventSink};

/// Each agent in turn, starting with the first.
#[derive(Debug, Clone, Default)]
pub struct RoundRobinPolicy {
    next: usize,
}

#[async_trait]
impl SpeakerPolicy for RoundRobinPolicy {
    fn kind(&self) -> &'static str {
        "round_robin"
    }

    async fn select(
        &mut self,
        view: &GroupView<'_>,
        _cancel: &CancellationToken,
        _sink: &EventSink,
    ) -> Result<Option<usize>, AgentError> {
        Ok(Some(self.next % view.names.len()))
    }

    fn observe(
        &mut self,
        view: &GroupView<'_>,
        speaker: usize,
        _message: &AgentMessage,
    ) -> Result<(), AgentError> {
        self.next = (speaker + 1) % view.names.len();
        Ok(())
    }

    fn reset(&mut self) {
        self.next = 0;
    }

    fn save_state(&self) -> Value {
        json!({"next_speaker_index": self.next})
    }

    fn load_state(&mut self, state: &Value) -> Result<(), AgentError> {
        self.next = state
            .get("next_speaker_index")
            .and_then(Value::as_u64)
            .ok_or_else(|| AgentError::State("round robin: no next_speaker_index".into()))?
            as usize;
        Ok(())
    }
}

/// A team whose agents speak in a fixed order.
pub type RoundRobinGroupChat = GroupChat<RoundRobinPolicy>;

impl GroupChat<RoundRobinPolicy> {
    /// A round-robin team; the first agent speaks first.
    pub fn new(agents: Vec<Box<dyn ChatAgent>>) -> Result<Self, AgentError> {
        Self::with_policy(agents, RoundRobinPolicy::default())
    }
}
