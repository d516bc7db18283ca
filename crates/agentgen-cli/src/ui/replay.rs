//! A journaled session as the live view's events: the journal's records replayed in order,
//! timed from the session's first record, with each turn's tokens and timings taken from the
//! model answers the journal kept.

use agentgen_core::journal::{Entry, JournalRecord};
use agentgen_core::{AgentEvent, MessageKind};

use super::event::{AgentInfo, ModelCall, RunState, UiEvent};
use super::timeline::Timeline;

/// The events a page shows for a session's records.
pub fn replay(entries: &[Entry]) -> Vec<UiEvent> {
    let start = entries.first().map_or(0, |e| e.at_ms);
    let mut timeline = Timeline::new();
    let mut out = Vec::new();
    let mut ended = false;
    for e in entries {
        let t_ms = e.at_ms.saturating_sub(start);
        let mut events = Vec::new();
        match &e.record {
            JournalRecord::TaskStarted { messages, .. } => {
                ended = false;
                out.push(UiEvent::Status { state: RunState::Running, reason: None });
                events.extend(messages.iter().cloned().map(AgentEvent::Message));
            }
            JournalRecord::SpeakerChosen { speaker, posts, .. } => {
                events.push(AgentEvent::SpeakerSelected {
                    speaker: speaker.clone(),
                    fallback: false,
                });
                events.extend(posts.iter().cloned().map(AgentEvent::Message));
            }
            JournalRecord::PolicyStopped { posts, .. } => {
                events.extend(posts.iter().cloned().map(AgentEvent::Message));
            }
            JournalRecord::ModelAnswer { agent, response } => {
                let took = response.timings.map_or(0.0, |t| t.prompt_ms + t.predicted_ms);
                timeline.model_call(ModelCall {
                    agent: agent.clone(),
                    start_ms: t_ms.saturating_sub(took as u64),
                    end_ms: t_ms,
                    first_token_ms: None,
                    usage: Some(response.usage),
                    timings: response.timings,
                });
            }
            JournalRecord::UserInput { agent, text } => events.push(AgentEvent::Message(
                agentgen_core::AgentMessage::text(format!("{agent} (typed)"), text.clone()),
            )),
            JournalRecord::ToolStarted { agent, call } => {
                events.push(AgentEvent::ToolCallRequest {
                    source: agent.clone(),
                    calls: vec![call.clone()],
                })
            }
            JournalRecord::ToolFinished { agent, result } => {
                events.push(AgentEvent::ToolCallResult {
                    source: agent.clone(),
                    results: vec![result.clone()],
                })
            }
            JournalRecord::TurnCommitted { message: Some(m), .. } => {
                if let MessageKind::Handoff { target } = &m.kind {
                    events.push(AgentEvent::Handoff {
                        source: m.source.clone(),
                        target: target.clone(),
                    });
                }
                events.push(AgentEvent::Message(m.clone()));
            }
            JournalRecord::TurnCommitted { message: None, .. } => {}
            JournalRecord::Finished { reason } => {
                events.push(AgentEvent::Stop { reason: reason.clone() });
            }
            JournalRecord::Cancelled => {}
        }
        for event in events {
            let turn = timeline.observe(t_ms, &event);
            out.push(UiEvent::Event { t_ms, event });
            out.extend(turn.map(UiEvent::Turn));
        }
        match &e.record {
            JournalRecord::Finished { reason } => {
                ended = true;
                out.push(UiEvent::Status {
                    state: RunState::Finished,
                    reason: Some(reason.clone()),
                });
            }
            JournalRecord::Cancelled => {
                ended = true;
                out.push(UiEvent::Status {
                    state: RunState::Cancelled,
                    reason: Some("interrupted (resumable)".into()),
                });
            }
            _ => {}
        }
    }
    if !ended {
        out.push(UiEvent::Status {
            state: RunState::Incomplete,
            reason: Some("stopped mid-run (resumable)".into()),
        });
    }
    out
}

/// The agents of a session: its team's agents, with the backend and model each used as its
/// journaled answers say.
pub fn agents(names: &[(String, bool)], entries: &[Entry]) -> Vec<AgentInfo> {
    names
        .iter()
        .map(|(name, assistant)| {
            let model = entries.iter().find_map(|e| match &e.record {
                JournalRecord::ModelAnswer { agent, response } if agent == name => Some(response),
                _ => None,
            });
            AgentInfo {
                name: name.clone(),
                kind: if *assistant { "assistant" } else { "code_executor" },
                backend: model.and_then(|r| r.served_by.clone()),
                model: model.map(|r| r.model.clone()),
                locality: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use agentgen_core::{
        AgentMessage, ChatMessage, ChatResponse, FinishReason, Timings, ToolCall, ToolResult, Usage,
    };

    use super::*;

    fn entry(at_ms: u64, record: JournalRecord) -> Entry {
        Entry { seq: at_ms, at_ms, record }
    }

    fn answer() -> ChatResponse {
        ChatResponse {
            id: "1".into(),
            model: "qwen".into(),
            message: ChatMessage::assistant("hi"),
            finish_reason: FinishReason::Stop,
            usage: Usage::new(30, 10, 20),
            timings: Some(Timings {
                prompt_ms: 100.0,
                predicted_ms: 250.0,
                time_to_first_token_ms: 120.0,
                ..Timings::default()
            }),
            served_by: None,
        }
    }

    fn session(last: Option<JournalRecord>) -> Vec<Entry> {
        let mut entries = vec![
            entry(
                1_000,
                JournalRecord::TaskStarted {
                    messages: vec![AgentMessage::text("user", "go")],
                    base_turns: 0,
                    meta: serde_json::Value::Null,
                },
            ),
            entry(1_010, JournalRecord::ModelAnswer { agent: "w".into(), response: answer() }),
            entry(
                1_020,
                JournalRecord::ToolStarted {
                    agent: "w".into(),
                    call: ToolCall::new("c1", "add", "{}"),
                },
            ),
            entry(
                1_030,
                JournalRecord::ToolFinished {
                    agent: "w".into(),
                    result: ToolResult {
                        call_id: "c1".into(),
                        name: "add".into(),
                        content: "3".into(),
                        is_error: false,
                    },
                },
            ),
            entry(
                1_500,
                JournalRecord::TurnCommitted {
                    turn: 1,
                    message: Some(AgentMessage::text("w", "3")),
                    state: serde_json::Value::Null,
                },
            ),
        ];
        entries.extend(last.map(|r| entry(1_600, r)));
        entries
    }

    fn json(events: &[UiEvent]) -> Vec<serde_json::Value> {
        events.iter().map(|e| serde_json::to_value(e).unwrap()).collect()
    }

    #[test]
    fn a_finished_session_replays_messages_tools_turn_timing_and_its_end() {
        let events = json(&replay(&session(Some(JournalRecord::Finished {
            reason: "Maximum number of messages 2 reached.".into(),
        }))));
        let kinds: Vec<String> = events
            .iter()
            .map(|e| match e["kind"].as_str().unwrap() {
                "event" => format!("event:{}", e["event"]["event"].as_str().unwrap()),
                k => k.to_owned(),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "status",
                "event:message",
                "event:tool_call_request",
                "event:tool_call_result",
                "event:message",
                "turn",
                "event:stop",
                "status"
            ]
        );
        let turn = &events[5];
        assert_eq!(turn["agent"], "w");
        assert_eq!(turn["duration_ms"], 500);
        assert_eq!(turn["ttft_ms"], 120.0);
        assert_eq!(turn["tokens_per_s"], 40.0);
        assert_eq!(turn["cached_tokens"], 20);
        assert_eq!(events[7]["state"], "finished");
        assert_eq!(events[2]["t_ms"], 20);
    }

    #[test]
    fn an_interrupted_or_killed_session_says_so() {
        let events = json(&replay(&session(Some(JournalRecord::Cancelled))));
        assert_eq!(events.last().unwrap()["state"], "cancelled");
        let events = json(&replay(&session(None)));
        assert_eq!(events.last().unwrap()["state"], "incomplete");
    }

    #[test]
    fn agents_take_their_model_from_the_journal() {
        let names = [("w".to_owned(), true), ("terminal".to_owned(), false)];
        let agents = agents(&names, &session(None));
        assert_eq!(agents[0].model.as_deref(), Some("qwen"));
        assert_eq!(agents[1].kind, "code_executor");
        assert_eq!(agents[1].model, None);
    }
}
