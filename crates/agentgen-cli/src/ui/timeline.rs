//! Per-turn timing: folds an agent's model calls into one [`TurnStats`] when its turn's
//! message arrives. A turn starts when the previous one ended (or the task was given, or the
//! speaker was chosen) and ends with the agent's message, tools included.

use std::collections::{HashMap, VecDeque};

use agentgen_core::AgentEvent;

use super::event::{ModelCall, TurnStats};

/// Model calls waiting for their turn to end; more than this and the oldest are dropped.
const MAX_PENDING_CALLS: usize = 64;

/// Turns seen so far and the model calls of the turn in progress.
#[derive(Debug, Default)]
pub struct Timeline {
    mark_ms: u64,
    turns: HashMap<String, u32>,
    calls: VecDeque<ModelCall>,
}

impl Timeline {
    /// An empty timeline; turns are timed from 0 ms.
    pub fn new() -> Self {
        Self::default()
    }

    /// A model call finished.
    pub fn model_call(&mut self, call: ModelCall) {
        if self.calls.len() >= MAX_PENDING_CALLS {
            self.calls.pop_front();
        }
        self.calls.push_back(call);
    }

    /// An event of the run, `t_ms` after its start: the stats of the turn it ends, if it ends
    /// one.
    pub fn observe(&mut self, t_ms: u64, event: &AgentEvent) -> Option<TurnStats> {
        match event {
            AgentEvent::SpeakerSelected { .. } => {
                self.mark_ms = t_ms;
                None
            }
            // The task (or a message a person typed in): no model behind it.
            AgentEvent::Message(m) if m.source == "user" => {
                self.mark_ms = t_ms;
                self.calls.clear();
                None
            }
            AgentEvent::Message(m) => {
                let turn = self.turns.entry(m.source.clone()).or_insert(0);
                *turn += 1;
                let calls: Vec<ModelCall> = std::mem::take(&mut self.calls)
                    .into_iter()
                    .filter(|c| c.agent == m.source)
                    .collect();
                let mut stats = fold(&m.source, *turn, &calls);
                if calls.is_empty() {
                    if let Some(u) = m.usage {
                        stats.prompt_tokens = u.prompt_tokens;
                        stats.cached_tokens = u.cached_tokens;
                        stats.completion_tokens = u.completion_tokens;
                    }
                }
                stats.start_ms = self.mark_ms;
                stats.duration_ms = t_ms.saturating_sub(self.mark_ms);
                self.mark_ms = t_ms;
                Some(stats)
            }
            _ => None,
        }
    }
}

/// One turn's calls summed: tokens added, the first call's time to first token, generation
/// speed over every call's generation time.
fn fold(agent: &str, turn: u32, calls: &[ModelCall]) -> TurnStats {
    let mut stats = TurnStats {
        agent: agent.to_owned(),
        turn,
        start_ms: 0,
        duration_ms: 0,
        model_calls: calls.len() as u32,
        ttft_ms: None,
        tokens_per_s: None,
        prompt_tokens: 0,
        cached_tokens: 0,
        completion_tokens: 0,
    };
    let (mut generated, mut gen_ms) = (0u32, 0f64);
    for call in calls {
        let usage = call.usage.unwrap_or_default();
        stats.prompt_tokens += usage.prompt_tokens;
        stats.cached_tokens += usage.cached_tokens;
        stats.completion_tokens += usage.completion_tokens;
        let timings = call.timings.filter(|t| t.predicted_ms > 0.0);
        let generation_ms = match (timings, call.first_token_ms) {
            (Some(t), _) => Some(t.predicted_ms),
            (None, Some(first)) => Some(call.end_ms.saturating_sub(first) as f64),
            (None, None) => None,
        };
        if let Some(ms) = generation_ms.filter(|ms| *ms > 0.0) {
            generated += usage.completion_tokens;
            gen_ms += ms;
        }
    }
    if let Some(first) = calls.first() {
        // The backend's own figure when it measures one (a tool call may arrive whole at the
        // end of its generation), else measured around the backend.
        let measured = first.first_token_ms.map(|t| t.saturating_sub(first.start_ms) as f64);
        stats.ttft_ms =
            first.timings.map(|t| t.time_to_first_token_ms).filter(|ms| *ms > 0.0).or(measured);
    }
    if generated > 0 && gen_ms > 0.0 {
        stats.tokens_per_s = Some(f64::from(generated) * 1000.0 / gen_ms);
    }
    stats
}

#[cfg(test)]
mod tests {
    use agentgen_core::{AgentMessage, Timings, Usage};

    use super::*;

    fn call(agent: &str, start: u64, first: Option<u64>, end: u64, usage: Usage) -> ModelCall {
        ModelCall {
            agent: agent.into(),
            start_ms: start,
            end_ms: end,
            first_token_ms: first,
            usage: Some(usage),
            timings: None,
        }
    }

    fn said(source: &str) -> AgentEvent {
        AgentEvent::Message(AgentMessage::text(source, "x"))
    }

    #[test]
    fn a_streamed_turn_is_timed_from_its_calls() {
        let mut t = Timeline::new();
        assert_eq!(t.observe(100, &said("user")), None);
        t.model_call(call("w", 110, Some(300), 1300, Usage::new(50, 20, 30)));
        let s = t.observe(1310, &said("w")).unwrap();
        assert_eq!((s.agent.as_str(), s.turn, s.start_ms, s.duration_ms), ("w", 1, 100, 1210));
        assert_eq!(s.ttft_ms, Some(190.0));
        assert_eq!(s.tokens_per_s, Some(20.0), "20 tokens in the 1000 ms after the first");
        assert_eq!((s.prompt_tokens, s.cached_tokens, s.completion_tokens), (50, 30, 20));
    }

    #[test]
    fn a_tool_turn_sums_its_calls_and_prefers_the_backend_timings() {
        let mut t = Timeline::new();
        t.observe(0, &said("user"));
        t.observe(5, &AgentEvent::SpeakerSelected { speaker: "c".into(), fallback: false });
        let timings =
            Timings { predicted_ms: 500.0, time_to_first_token_ms: 80.0, ..Timings::default() };
        let mut first = call("c", 10, None, 700, Usage::new(40, 10, 0));
        first.timings = Some(timings);
        t.model_call(first);
        t.model_call(call("c", 800, Some(900), 1400, Usage::new(60, 30, 40)));
        let s = t.observe(1500, &said("c")).unwrap();
        assert_eq!((s.start_ms, s.duration_ms, s.model_calls), (5, 1495, 2));
        assert_eq!(s.ttft_ms, Some(80.0), "the backend's own figure");
        assert_eq!(s.tokens_per_s, Some(40.0), "40 tokens over 500 + 500 ms");
        assert_eq!((s.prompt_tokens, s.cached_tokens, s.completion_tokens), (100, 40, 40));
        assert_eq!(t.observe(2000, &said("c")).unwrap().turn, 2, "the agent's second turn");
    }

    #[test]
    fn a_turn_without_model_calls_takes_the_message_usage_and_no_speed() {
        let mut t = Timeline::new();
        t.observe(0, &said("user"));
        t.model_call(call("other", 0, Some(1), 2, Usage::new(1, 1, 0)));
        let msg = AgentMessage::text("terminal", "exit code: 0").with_usage(Usage::new(7, 3, 2));
        let s = t.observe(40, &AgentEvent::Message(msg)).unwrap();
        assert_eq!(s.model_calls, 0, "another agent's call is not this turn's");
        assert_eq!((s.prompt_tokens, s.cached_tokens, s.completion_tokens), (7, 2, 3));
        assert_eq!((s.ttft_ms, s.tokens_per_s), (None, None));
    }

    #[test]
    fn pending_calls_are_bounded() {
        let mut t = Timeline::new();
        for i in 0..(MAX_PENDING_CALLS as u64 + 10) {
            t.model_call(call("w", i, None, i + 1, Usage::new(1, 1, 0)));
        }
        assert_eq!(t.observe(1000, &said("w")).unwrap().model_calls, MAX_PENDING_CALLS as u32);
    }
}
