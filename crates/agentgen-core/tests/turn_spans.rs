//! Trace spans of concurrent graph branches. In a test binary of its own: tracing caches per
//! call site whether a span is wanted, and a test thread without a subscriber that reaches the
//! agent-turn call site while another test installs one can leave it cached as "never" (seen
//! once in CI as every turn reporting the team's span).

use std::sync::Arc;

use agentgen_core::events::AgentMessage;
use agentgen_core::team::{DiGraphBuilder, Team};
use agentgen_core::{AgentError, CancellationToken, ChatAgent};

/// Which agent ran inside which span.
type SpansSeen = Arc<std::sync::Mutex<Vec<(String, Option<tracing::Id>)>>>;

/// Records the span its turn runs in.
struct SpanProbe {
    name: String,
    seen: SpansSeen,
}

#[async_trait::async_trait]
impl ChatAgent for SpanProbe {
    fn name(&self) -> &str {
        &self.name
    }
    fn description(&self) -> &str {
        "probe"
    }
    async fn on_messages_with(
        &mut self,
        _messages: &[AgentMessage],
        _cancel: CancellationToken,
        _sink: &agentgen_core::events::EventSink,
    ) -> Result<agentgen_core::agent::Response, AgentError> {
        let span = tracing::Span::current();
        self.seen.lock().unwrap().push((self.name.clone(), span.id()));
        tokio::task::yield_now().await;
        Ok(agentgen_core::agent::Response::new(AgentMessage::text(self.name.clone(), "done")))
    }
    async fn reset(&mut self) {}
    async fn save_state(&self) -> Result<serde_json::Value, AgentError> {
        Ok(serde_json::Value::Null)
    }
    async fn load_state(&mut self, _state: serde_json::Value) -> Result<(), AgentError> {
        Ok(())
    }
}

/// Branches that speak concurrently each run in an agent-turn span of their own, as turns one
/// at a time do (traces show one `invoke_agent` per turn, not the branches inside the team's).
#[tokio::test]
async fn concurrent_graph_branches_each_get_their_own_turn_span() {
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry());
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let probe = |name: &str| SpanProbe { name: name.into(), seen: seen.clone() };
    let mut flow = DiGraphBuilder::new()
        .add_node(probe("a"))
        .add_node(probe("b"))
        .add_node(probe("c"))
        .add_edge("a", "b")
        .add_edge("a", "c")
        .build()
        .unwrap();
    flow.run("go".into()).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let ids: Vec<_> = seen.iter().map(|(_, id)| id.clone().expect("inside a span")).collect();
    let distinct: std::collections::HashSet<_> = ids.iter().map(|id| id.into_u64()).collect();
    assert_eq!(distinct.len(), 3, "each turn has a span of its own: {seen:?}");
}
