//! Model contexts: which part of an agent's history is sent to its model. A tool call and its
//! results are never split, and a view never starts with a tool result.

use serde::{Deserialize, Serialize};

use crate::backend::ChatBackend;
use crate::error::BackendError;
use crate::message::ChatMessage;

/// Which messages of the history the model sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ContextPolicy {
    /// All of them.
    #[default]
    Unbounded,
    /// The last `n` (rounded out to keep tool calls with their results).
    Buffered {
        /// How many.
        n: usize,
    },
    /// The first `head` and the last `tail`, with a note of how many were skipped.
    HeadAndTail {
        /// Kept from the start.
        head: usize,
        /// Kept from the end.
        tail: usize,
    },
    /// As many of the latest as fit in `limit` tokens (counted by the backend when it can,
    /// else estimated at four characters a token).
    TokenLimited {
        /// The budget for the history.
        limit: usize,
    },
}

/// An agent's history and the policy that picks what its model sees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ModelContext {
    policy: ContextPolicy,
    messages: Vec<ChatMessage>,
}

impl ModelContext {
    /// An empty context with this policy.
    pub fn new(policy: ContextPolicy) -> Self {
        Self { policy, messages: Vec::new() }
    }

    /// Keeps everything.
    pub fn unbounded() -> Self {
        Self::new(ContextPolicy::Unbounded)
    }

    /// Keeps the last `n` messages.
    pub fn buffered(n: usize) -> Self {
        Self::new(ContextPolicy::Buffered { n })
    }

    /// Keeps the first `head` and last `tail` messages.
    pub fn head_and_tail(head: usize, tail: usize) -> Self {
        Self::new(ContextPolicy::HeadAndTail { head, tail })
    }

    /// Keeps the latest messages that fit in `limit` tokens.
    pub fn token_limited(limit: usize) -> Self {
        Self::new(ContextPolicy::TokenLimited { limit })
    }

    /// The policy.
    pub fn policy(&self) -> ContextPolicy {
        self.policy
    }

    /// Adds a message to the history.
    pub fn push(&mut self, message: ChatMessage) {
        self.messages.push(message);
    }

    /// The whole history.
    pub fn all(&self) -> &[ChatMessage] {
        &self.messages
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.messages.clear();
    }

    /// Replaces the history (used when loading state).
    pub fn set_messages(&mut self, messages: Vec<ChatMessage>) {
        self.messages = messages;
    }

    /// What the model sees now.
    pub async fn view(&self, backend: &dyn ChatBackend) -> Result<Vec<ChatMessage>, BackendError> {
        let units = units(&self.messages);
        let take = |range: &[std::ops::Range<usize>]| -> Vec<ChatMessage> {
            range.iter().flat_map(|r| self.messages[r.clone()].iter().cloned()).collect()
        };
        match self.policy {
            ContextPolicy::Unbounded => Ok(self.messages.clone()),
            ContextPolicy::Buffered { n } => Ok(take(&last_units(&units, n))),
            ContextPolicy::HeadAndTail { head, tail } => {
                if self.messages.len() <= head + tail {
                    return Ok(self.messages.clone());
                }
                let mut head_units = Vec::new();
                let mut count = 0;
                for u in &units {
                    if count + u.len() > head {
                        break;
                    }
                    count += u.len();
                    head_units.push(u.clone());
                }
                let rest = &units[head_units.len()..];
                let tail_units = last_units(rest, tail);
                let skipped: usize =
                    rest[..rest.len() - tail_units.len()].iter().map(|u| u.len()).sum();
                let mut out = take(&head_units);
                if skipped > 0 {
                    out.push(ChatMessage::user(format!("Skipped {skipped} messages.")));
                }
                out.extend(take(&tail_units));
                Ok(out)
            }
            ContextPolicy::TokenLimited { limit } => {
                let mut start = 0;
                loop {
                    let view = take(&units[start..]);
                    if start + 1 >= units.len() || count_tokens(backend, &view).await? <= limit {
                        return Ok(view);
                    }
                    start += 1;
                }
            }
        }
    }
}

/// Tokens of these messages: the backend's count when it has one, else chars / 4 plus a few
/// tokens of framing per message.
pub async fn count_tokens(
    backend: &dyn ChatBackend,
    messages: &[ChatMessage],
) -> Result<usize, BackendError> {
    if let Some(n) = backend.count_tokens(messages).await? {
        return Ok(n);
    }
    Ok(estimate_tokens(messages))
}

/// The chars / 4 estimate (plus four tokens of framing per message).
pub fn estimate_tokens(messages: &[ChatMessage]) -> usize {
    messages
        .iter()
        .map(|m| {
            let args: usize = m
                .tool_calls()
                .iter()
                .map(|c| c.function.name.len() + c.function.arguments.len())
                .sum();
            (m.text().map_or(0, str::len) + args).div_ceil(4) + 4
        })
        .sum()
}

/// Splits the history into units: an assistant turn with tool calls together with the tool
/// results after it, or a single message.
fn units(messages: &[ChatMessage]) -> Vec<std::ops::Range<usize>> {
    let mut out: Vec<std::ops::Range<usize>> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        match m {
            ChatMessage::Tool { .. } if !out.is_empty() => {
                out.last_mut().into_iter().for_each(|r| r.end = i + 1)
            }
            _ => out.push(i..i + 1),
        }
    }
    out
}

/// The latest units holding at most `n` messages, but never fewer than one unit (when n > 0).
fn last_units(units: &[std::ops::Range<usize>], n: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut count = 0;
    for u in units.iter().rev() {
        if count + u.len() > n && !(out.is_empty() && n > 0) {
            break;
        }
        count += u.len();
        out.push(u.clone());
    }
    out.reverse();
    out
}

/// How the names of other speakers reach the model. Agents' messages are stored as user
/// messages with `name` set to the speaker; many backends cannot carry `name` (Groq refuses it,
/// chat templates drop it), so by default the name goes into the text, the same on every
/// backend. The task (named `user`) and the agent's own turns are never prefixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpeakerNames {
    /// `"name: text"` in the content and no `name` field.
    #[default]
    Prefix,
    /// The `name` field only (lost where the backend drops it).
    NameField,
    /// Neither: every other speaker is one anonymous user.
    Off,
}

impl SpeakerNames {
    /// The messages as this setting sends them.
    pub fn apply(self, messages: Vec<ChatMessage>) -> Vec<ChatMessage> {
        if self == Self::NameField {
            return messages;
        }
        messages
            .into_iter()
            .map(|m| match m {
                ChatMessage::User { content, name: Some(name) } => {
                    if self == Self::Prefix && name != "user" {
                        ChatMessage::user(format!("{name}: {content}"))
                    } else {
                        ChatMessage::user(content)
                    }
                }
                other => other,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::ToolCall;
    use crate::testing::ScriptedBackend;

    fn history() -> Vec<ChatMessage> {
        vec![
            ChatMessage::user("q1"),
            ChatMessage::assistant("a1"),
            ChatMessage::user("q2"),
            ChatMessage::assistant_tool_calls(vec![
                ToolCall::new("c1", "f", "{}"),
                ToolCall::new("c2", "f", "{}"),
            ]),
            ChatMessage::tool("c1", "r1"),
            ChatMessage::tool("c2", "r2"),
            ChatMessage::assistant("a2"),
        ]
    }

    async fn view(policy: ContextPolicy) -> Vec<ChatMessage> {
        let mut ctx = ModelContext::new(policy);
        history().into_iter().for_each(|m| ctx.push(m));
        ctx.view(&ScriptedBackend::new()).await.unwrap()
    }

    #[tokio::test]
    async fn buffered_keeps_tool_calls_with_results() {
        assert_eq!(view(ContextPolicy::Unbounded).await.len(), 7);
        assert_eq!(view(ContextPolicy::Buffered { n: 2 }).await, vec![history()[6].clone()]);
        let v = view(ContextPolicy::Buffered { n: 3 }).await;
        assert_eq!(v, vec![history()[6].clone()], "a 3-message tool unit does not fit with a2");
        let v = view(ContextPolicy::Buffered { n: 4 }).await;
        assert_eq!(v, history()[3..].to_vec());
        assert!(!matches!(v[0], ChatMessage::Tool { .. }));
    }

    #[tokio::test]
    async fn head_and_tail_notes_the_gap() {
        let v = view(ContextPolicy::HeadAndTail { head: 1, tail: 1 }).await;
        assert_eq!(
            v,
            vec![
                ChatMessage::user("q1"),
                ChatMessage::user("Skipped 5 messages."),
                ChatMessage::assistant("a2")
            ]
        );
    }

    #[tokio::test]
    async fn token_limited_drops_oldest_units() {
        let all = estimate_tokens(&history());
        let v = view(ContextPolicy::TokenLimited { limit: all }).await;
        assert_eq!(v.len(), 7);
        let v = view(ContextPolicy::TokenLimited { limit: estimate_tokens(&history()[3..]) }).await;
        assert_eq!(v, history()[3..].to_vec());
        let v = view(ContextPolicy::TokenLimited { limit: 1 }).await;
        assert_eq!(v, vec![history()[6].clone()], "the latest unit is always kept");
    }

    #[tokio::test]
    async fn token_limited_uses_backend_count() {
        let backend = ScriptedBackend::new().with_token_counter(|msgs| msgs.len() * 100);
        let mut ctx = ModelContext::token_limited(250);
        history().into_iter().for_each(|m| ctx.push(m));
        let v = ctx.view(&backend).await.unwrap();
        assert_eq!(v, vec![history()[6].clone()]);
    }
}
