//! A compact index of the tools (`- name: description`) in the system message, a generic
//! counter to small models' habit of calling the first tool listed.
//!
//! The template's own tool block lists full JSON signatures one after another, and a 0.5B model
//! picks the first one far more often than the requests warrant. One line per tool with what it
//! does, in the system message, took the first-listed pick on a 24-prompt, 4-tool set from
//! 11–12 down to 6–7 (6 would be right) and the right tool from 19/24 and 17/24 to 20/24 and
//! 19/24 (tools forward and reversed). It is the same text in every turn, so it costs no prefix
//! cache.

use agentgen_core::{ChatMessage, ToolSpec};

/// What follows the index.
const ADVICE: &str = "Pick the function by what its description says it does.";

/// One line per tool: `- name: first line of the description`.
fn index(tools: &[&ToolSpec]) -> String {
    tools
        .iter()
        .map(|t| {
            let description = t
                .function
                .description
                .as_deref()
                .and_then(|d| d.lines().map(str::trim).find(|l| !l.is_empty()))
                .unwrap_or("");
            if description.is_empty() {
                format!("- {}", t.function.name)
            } else {
                format!("- {}: {description}", t.function.name)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The messages with the tool index in the system message: added after the caller's system
/// text, or as a system message of its own when there is none.
pub(crate) fn with_tool_index(messages: &[ChatMessage], tools: &[&ToolSpec]) -> Vec<ChatMessage> {
    let mut out = messages.to_vec();
    match out.first_mut() {
        Some(ChatMessage::System { content, .. }) => {
            content.push_str(&format!("\n\nYou have these functions:\n{}\n{ADVICE}", index(tools)));
        }
        _ => out.insert(
            0,
            ChatMessage::system(format!(
                "You are a helpful assistant with these functions:\n{}\n{ADVICE}",
                index(tools)
            )),
        ),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(name: &str, description: &str) -> ToolSpec {
        ToolSpec::function(name, description, json!({"type": "object"}))
    }

    #[test]
    fn adds_a_system_message_when_there_is_none() {
        let (a, b) = (tool("get_weather", "Current weather.\nMore text."), tool("add", ""));
        let out = with_tool_index(&[ChatMessage::user("hi")], &[&a, &b]);
        assert_eq!(out.len(), 2);
        let ChatMessage::System { content, .. } = &out[0] else { panic!("{out:?}") };
        assert_eq!(
            content,
            "You are a helpful assistant with these functions:\n- get_weather: Current weather.\n- add\nPick the function by what its description says it does."
        );
        assert_eq!(out[1], ChatMessage::user("hi"));
    }

    #[test]
    fn appends_to_the_callers_system_message() {
        let a = tool("search_web", "Search the web.");
        let msgs = [ChatMessage::system("Be brief."), ChatMessage::user("hi")];
        let out = with_tool_index(&msgs, &[&a]);
        assert_eq!(out.len(), 2);
        let ChatMessage::System { content, .. } = &out[0] else { panic!("{out:?}") };
        assert!(content.starts_with(
            "Be brief.\n\nYou have these functions:\n- search_web: Search the web.\n"
        ));
    }
}
