//! Chat messages in the OpenAI wire shape: `{"role": …, "content": …}`.

use serde::{Deserialize, Deserializer, Serialize};

/// One message of a conversation, tagged by `role` as on the OpenAI and Groq wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum ChatMessage {
    /// Instructions for the model. `developer` on the wire is read as `system`.
    #[serde(alias = "developer")]
    System {
        /// The text.
        #[serde(deserialize_with = "content_text")]
        content: String,
        /// Optional author name (never sent to Groq, which rejects it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// A user (or another agent speaking as a user).
    User {
        /// The text.
        #[serde(deserialize_with = "content_text")]
        content: String,
        /// Optional author name: agentgen puts the speaking agent's name here.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// The model's turn: text, tool calls, or both.
    Assistant {
        /// The text, absent when the turn is only tool calls.
        #[serde(default, deserialize_with = "opt_content_text")]
        content: Option<String>,
        /// Tool calls the model asked for.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
        /// Optional author name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// The result of one tool call, tied to it by id.
    Tool {
        /// The id of the [`ToolCall`] this answers.
        tool_call_id: String,
        /// The result, as text (JSON results are serialised).
        #[serde(deserialize_with = "content_text")]
        content: String,
    },
}

impl ChatMessage {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::System { content: content.into(), name: None }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::User { content: content.into(), name: None }
    }

    /// A user message with an author name.
    pub fn user_named(content: impl Into<String>, name: impl Into<String>) -> Self {
        Self::User { content: content.into(), name: Some(name.into()) }
    }

    /// An assistant message with text only.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::Assistant { content: Some(content.into()), tool_calls: Vec::new(), name: None }
    }

    /// An assistant message that only calls tools.
    pub fn assistant_tool_calls(tool_calls: Vec<ToolCall>) -> Self {
        Self::Assistant { content: None, tool_calls, name: None }
    }

    /// A tool result.
    pub fn tool(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self::Tool { tool_call_id: tool_call_id.into(), content: content.into() }
    }

    /// The wire name of the role: `system`, `user`, `assistant` or `tool`.
    pub fn role(&self) -> &'static str {
        match self {
            Self::System { .. } => "system",
            Self::User { .. } => "user",
            Self::Assistant { .. } => "assistant",
            Self::Tool { .. } => "tool",
        }
    }

    /// The text of the message, if it has any.
    pub fn text(&self) -> Option<&str> {
        match self {
            Self::System { content, .. }
            | Self::User { content, .. }
            | Self::Tool { content, .. } => Some(content),
            Self::Assistant { content, .. } => content.as_deref(),
        }
    }

    /// The tool calls of an assistant message (empty for every other role).
    pub fn tool_calls(&self) -> &[ToolCall] {
        match self {
            Self::Assistant { tool_calls, .. } => tool_calls,
            _ => &[],
        }
    }

    /// The author name, if one is set.
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::System { name, .. } | Self::User { name, .. } | Self::Assistant { name, .. } => {
                name.as_deref()
            }
            Self::Tool { .. } => None,
        }
    }

    /// The same message without an author name (Groq rejects `messages[].name`).
    pub fn without_name(mut self) -> Self {
        match &mut self {
            Self::System { name, .. } | Self::User { name, .. } | Self::Assistant { name, .. } => {
                *name = None
            }
            Self::Tool { .. } => {}
        }
        self
    }
}

/// A call of one function tool, as the model asked for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Unique id; the tool result carries it back.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type", default = "function_kind")]
    pub kind: String,
    /// Which function and with what arguments.
    pub function: FunctionCall,
}

impl ToolCall {
    /// A function call with JSON-encoded arguments.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            kind: function_kind(),
            function: FunctionCall { name: name.into(), arguments: arguments.into() },
        }
    }

    /// The arguments parsed as JSON.
    pub fn parsed_arguments(&self) -> Result<serde_json::Value, serde_json::Error> {
        if self.function.arguments.trim().is_empty() {
            return Ok(serde_json::Value::Object(Default::default()));
        }
        serde_json::from_str(&self.function.arguments)
    }
}

fn function_kind() -> String {
    "function".to_owned()
}

/// The function part of a [`ToolCall`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// The tool's name.
    pub name: String,
    /// The arguments as a JSON-encoded string (the OpenAI wire shape).
    #[serde(default)]
    pub arguments: String,
}

/// Content on the wire is a string or an array of `{"type":"text","text":…}` parts.
#[derive(Deserialize)]
#[serde(untagged)]
enum WireContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Deserialize)]
struct ContentPart {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

impl WireContent {
    fn into_text<E: serde::de::Error>(self) -> Result<String, E> {
        match self {
            Self::Text(text) => Ok(text),
            Self::Parts(parts) => {
                let mut out = String::new();
                for part in parts {
                    match (part.kind.as_str(), part.text) {
                        ("text", Some(text)) => out.push_str(&text),
                        (kind, _) => {
                            return Err(E::custom(format!(
                                "content part of type `{kind}` is not supported (text only)"
                            )))
                        }
                    }
                }
                Ok(out)
            }
        }
    }
}

fn content_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    WireContent::deserialize(d)?.into_text()
}

fn opt_content_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<WireContent>::deserialize(d)?.map(WireContent::into_text).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_round_trip_in_openai_shape() {
        let msgs = vec![
            ChatMessage::system("be brief"),
            ChatMessage::user_named("hi", "alice"),
            ChatMessage::assistant_tool_calls(vec![ToolCall::new("c1", "add", r#"{"a":1}"#)]),
            ChatMessage::tool("c1", "2"),
            ChatMessage::assistant("done"),
        ];
        let wire = serde_json::to_value(&msgs).unwrap();
        assert_eq!(wire[0], json!({"role":"system","content":"be brief"}));
        assert_eq!(wire[1], json!({"role":"user","content":"hi","name":"alice"}));
        assert_eq!(
            wire[2],
            json!({"role":"assistant","content":null,"tool_calls":[
                {"id":"c1","type":"function","function":{"name":"add","arguments":"{\"a\":1}"}}]})
        );
        assert_eq!(wire[3], json!({"role":"tool","tool_call_id":"c1","content":"2"}));
        let back: Vec<ChatMessage> = serde_json::from_value(wire).unwrap();
        assert_eq!(back, msgs);
    }

    #[test]
    fn content_parts_and_developer_role_are_read() {
        let m: ChatMessage = serde_json::from_value(json!({
            "role":"developer","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]
        }))
        .unwrap();
        assert_eq!(m, ChatMessage::system("ab"));
    }

    #[test]
    fn image_parts_are_rejected_not_dropped() {
        let err = serde_json::from_value::<ChatMessage>(json!({
            "role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]
        }))
        .unwrap_err();
        assert!(err.to_string().contains("image_url"), "{err}");
    }

    #[test]
    fn empty_arguments_parse_as_empty_object() {
        let call = ToolCall::new("1", "now", "");
        assert_eq!(call.parsed_arguments().unwrap(), json!({}));
    }

    #[test]
    fn without_name_strips_the_author() {
        assert_eq!(ChatMessage::user_named("x", "bob").without_name(), ChatMessage::user("x"));
    }
}
