//! Token counts for remote models: exact with a Hugging Face `tokenizer.json`, estimated
//! (about four characters a token) without one.

use std::path::Path;
use std::sync::Arc;

use agentgen_core::ChatMessage;

use crate::config::ConfigError;

/// Tokens a chat template adds around each message (role markers, separators).
pub const PER_MESSAGE_OVERHEAD: usize = 4;

/// Tokens that open the assistant's reply.
pub const REPLY_PRIMING: usize = 3;

/// Counts prompt tokens.
#[derive(Clone)]
pub enum TokenCounter {
    /// Exact counts from the model's tokenizer.
    Tokenizer(Arc<tokenizers::Tokenizer>),
    /// `ceil(chars / 4)` per text.
    Estimate,
}

impl std::fmt::Debug for TokenCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tokenizer(_) => f.write_str("TokenCounter::Tokenizer"),
            Self::Estimate => f.write_str("TokenCounter::Estimate"),
        }
    }
}

impl TokenCounter {
    /// Loads a `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        tokenizers::Tokenizer::from_file(path)
            .map(|t| Self::Tokenizer(Arc::new(t)))
            .map_err(|e| ConfigError::Tokenizer { path: path.to_owned(), message: e.to_string() })
    }

    /// Whether counts are exact.
    pub fn is_exact(&self) -> bool {
        matches!(self, Self::Tokenizer(_))
    }

    /// Tokens in one text.
    pub fn count_text(&self, text: &str) -> Result<usize, String> {
        if text.is_empty() {
            return Ok(0);
        }
        match self {
            Self::Tokenizer(t) => {
                t.encode(text, false).map(|e| e.get_ids().len()).map_err(|e| e.to_string())
            }
            Self::Estimate => Ok(text.chars().count().div_ceil(4)),
        }
    }

    /// Tokens a prompt of these messages takes: each text, tool call and name, plus
    /// [`PER_MESSAGE_OVERHEAD`] per message and [`REPLY_PRIMING`].
    pub fn count_messages(&self, messages: &[ChatMessage]) -> Result<usize, String> {
        let mut total = REPLY_PRIMING;
        for m in messages {
            total += PER_MESSAGE_OVERHEAD;
            total += self.count_text(m.text().unwrap_or(""))?;
            total += self.count_text(m.name().unwrap_or(""))?;
            for call in m.tool_calls() {
                total += self.count_text(&call.function.name)?;
                total += self.count_text(&call.function.arguments)?;
            }
            if let ChatMessage::Tool { tool_call_id, .. } = m {
                total += self.count_text(tool_call_id)?;
            }
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentgen_core::ToolCall;

    const WORD_LEVEL: &str = r#"{
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "hello": 1, "world": 2},
                  "unk_token": "[UNK]"}
    }"#;

    #[test]
    fn estimate_is_a_quarter_of_the_characters_plus_overhead() {
        let c = TokenCounter::Estimate;
        assert_eq!(c.count_text("abcdefghi").unwrap(), 3);
        let msgs = [ChatMessage::user("abcdefgh")];
        assert_eq!(c.count_messages(&msgs).unwrap(), 2 + PER_MESSAGE_OVERHEAD + REPLY_PRIMING);
        let calls =
            [ChatMessage::assistant_tool_calls(vec![ToolCall::new("1", "add", "{\"a\":1}")])];
        assert_eq!(c.count_messages(&calls).unwrap(), 1 + 2 + PER_MESSAGE_OVERHEAD + REPLY_PRIMING);
    }

    #[test]
    fn a_tokenizer_file_counts_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        std::fs::write(&path, WORD_LEVEL).unwrap();
        let c = TokenCounter::from_file(&path).unwrap();
        assert!(c.is_exact());
        // Three words, whatever their length: the estimate would say 8.
        assert_eq!(c.count_text("hello world unknownwordhere").unwrap(), 3);
    }

    #[test]
    fn a_missing_tokenizer_is_a_config_error() {
        let err =
            TokenCounter::from_file(&tempfile::tempdir().unwrap().path().join("missing.json"))
                .unwrap_err();
        assert!(matches!(err, ConfigError::Tokenizer { .. }));
    }
}
