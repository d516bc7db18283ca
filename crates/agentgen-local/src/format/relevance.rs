//! Ordering tools by lexical relevance to the request, a generic mitigation for small models'
//! habit of calling the first tool listed.
//!
//! Each tool's text (name split at `_`, `-`, `.` and camel case, description, parameter names
//! and descriptions) is compared with the words of the latest user message. Words shared by
//! every tool carry no weight (inverse document frequency), a word matches its longer forms
//! (`rain` / `raining`), and ties keep the caller's order.

use std::collections::HashSet;

use agentgen_core::{ChatMessage, ToolSpec};
use serde_json::Value as Json;

const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "could", "do", "does", "for", "from",
    "get", "give", "have", "how", "i", "in", "is", "it", "its", "me", "my", "of", "on", "or",
    "please", "tell", "that", "the", "this", "to", "use", "want", "was", "what", "whats", "when",
    "where", "which", "who", "will", "with", "would", "you", "your",
];

/// Two words match when equal, or when one starts with the other and the shorter has at
/// least this many characters (`rain` / `raining`, `search` / `searches`).
const MIN_STEM: usize = 4;

fn same_word(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    short == long || (short.chars().count() >= MIN_STEM && long.starts_with(short))
}

fn has_word(doc: &HashSet<String>, w: &str) -> bool {
    doc.contains(w) || doc.iter().any(|d| same_word(d, w))
}

fn words(text: &str, out: &mut HashSet<String>) {
    // Split camelCase before lowercasing: getWeather → get Weather.
    let mut spaced = String::with_capacity(text.len() + 8);
    let mut prev_lower = false;
    for c in text.chars() {
        if c.is_uppercase() && prev_lower {
            spaced.push(' ');
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        spaced.push(c);
    }
    for w in spaced.split(|c: char| !c.is_alphanumeric()) {
        let w = w.to_lowercase();
        if w.chars().count() < 2 || STOPWORDS.contains(&w.as_str()) {
            continue;
        }
        out.insert(w);
    }
}

fn schema_words(schema: &Json, out: &mut HashSet<String>, depth: usize) {
    if depth > 4 {
        return;
    }
    if let Some(props) = schema.get("properties").and_then(Json::as_object) {
        for (name, prop) in props {
            words(name, out);
            if let Some(d) = prop.get("description").and_then(Json::as_str) {
                words(d, out);
            }
            if let Some(values) = prop.get("enum").and_then(Json::as_array) {
                for v in values.iter().filter_map(Json::as_str) {
                    words(v, out);
                }
            }
            schema_words(prop, out, depth + 1);
        }
    }
}

fn tool_words(tool: &ToolSpec) -> HashSet<String> {
    let mut out = HashSet::new();
    words(&tool.function.name, &mut out);
    if let Some(d) = &tool.function.description {
        words(d, &mut out);
    }
    schema_words(&tool.function.parameters, &mut out, 0);
    out
}

/// The text the ordering looks at: the latest user message.
pub(crate) fn query_text(messages: &[ChatMessage]) -> Option<&str> {
    messages.iter().rev().find(|m| matches!(m, ChatMessage::User { .. })).and_then(|m| m.text())
}

/// Relevance of each tool to `query` (higher is more relevant).
pub(crate) fn scores(tools: &[ToolSpec], query: &str) -> Vec<f64> {
    let mut q = HashSet::new();
    words(query, &mut q);
    let docs: Vec<HashSet<String>> = tools.iter().map(tool_words).collect();
    let n = docs.len() as f64;
    docs.iter()
        .map(|doc| {
            q.iter()
                .filter(|w| has_word(doc, w))
                .map(|w| {
                    let df = docs.iter().filter(|d| has_word(d, w)).count() as f64;
                    (n / df).ln()
                })
                .sum()
        })
        .collect()
}

/// The tools, most relevant to the latest user message first; the original order when no
/// tool stands out.
pub(crate) fn order<'a>(tools: &'a [ToolSpec], messages: &[ChatMessage]) -> Vec<&'a ToolSpec> {
    let mut idx: Vec<usize> = (0..tools.len()).collect();
    if let Some(query) = query_text(messages) {
        let s = scores(tools, query);
        // Stable sort: ties keep the caller's order.
        idx.sort_by(|a, b| s[*b].partial_cmp(&s[*a]).unwrap_or(std::cmp::Ordering::Equal));
    }
    idx.into_iter().map(|i| &tools[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tools() -> Vec<ToolSpec> {
        vec![
            ToolSpec::function(
                "get_weather",
                "Get the current weather for a city",
                json!({"type": "object", "properties": {"city": {"type": "string", "description": "City name"}}}),
            ),
            ToolSpec::function(
                "webSearch",
                "Search the web for pages about a topic",
                json!({"type": "object", "properties": {"query": {"type": "string"}}}),
            ),
            ToolSpec::function(
                "calculator",
                "Evaluate an arithmetic expression",
                json!({"type": "object", "properties": {"expression": {"type": "string"}}}),
            ),
        ]
    }

    fn names(messages: &[ChatMessage]) -> Vec<String> {
        let t = tools();
        order(&t, messages).iter().map(|t| t.function.name.clone()).collect()
    }

    #[test]
    fn the_matching_tool_moves_first() {
        assert_eq!(
            names(&[ChatMessage::user("Search for recent news about Rust")])[0],
            "webSearch"
        );
        assert_eq!(
            names(&[ChatMessage::user("Evaluate 17 * 23 with arithmetic")])[0],
            "calculator"
        );
        assert_eq!(
            names(&[ChatMessage::user("Is it raining in Oslo? weather please")])[0],
            "get_weather"
        );
    }

    #[test]
    fn no_signal_keeps_the_given_order() {
        assert_eq!(
            names(&[ChatMessage::user("hello there")]),
            ["get_weather", "webSearch", "calculator"]
        );
        assert_eq!(names(&[]), ["get_weather", "webSearch", "calculator"]);
    }

    #[test]
    fn uses_the_latest_user_message() {
        let msgs = [
            ChatMessage::user("weather in Paris?"),
            ChatMessage::assistant("Sunny."),
            ChatMessage::user("now search the web for Paris museums"),
        ];
        assert_eq!(names(&msgs)[0], "webSearch");
    }
}
