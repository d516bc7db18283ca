//! Parsing a model's raw output into text and structured tool calls.
//!
//! Recognised forms, for every family (a model does not always use its own): Hermes/Qwen
//! `<tool_call>{…}</tool_call>`, Llama 3.x `<|python_tag|>{…}` and bare `{"name", "parameters"}`,
//! Mistral `[TOOL_CALLS][…]` and `[TOOL_CALLS]name[ARGS]{…}`, JSON in a ```` ``` ```` fence,
//! and bare JSON objects or arrays. A JSON value is a call only when it names one of the
//! allowed tools; anything else stays text.

use agentgen_core::ToolCall;
use rand::Rng;
use serde_json::{Map, Value as Json};

use super::ParsedOutput;

/// How generated call ids look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdStyle {
    /// `call_` and 24 alphanumerics (OpenAI-like).
    OpenAi,
    /// 9 alphanumerics (Mistral templates reject anything else).
    Nine,
}

/// A fresh, random call id.
pub(crate) fn new_call_id(style: IdStyle) -> String {
    let mut rng = rand::thread_rng();
    let (prefix, n) = match style {
        IdStyle::OpenAi => ("call_", 24),
        IdStyle::Nine => ("", 9),
    };
    let tail: String =
        (0..n).map(|_| char::from(rng.sample(rand::distributions::Alphanumeric))).collect();
    format!("{prefix}{tail}")
}

/// One recognised call: byte span in the text and the calls it holds.
struct Span {
    start: usize,
    end: usize,
    calls: Vec<(String, String)>,
}

/// Splits `text` into content and calls to the `allowed` tool names.
pub(crate) fn parse(text: &str, allowed: &[&str], ids: IdStyle) -> ParsedOutput {
    if allowed.is_empty() {
        return ParsedOutput { content: non_empty(text), tool_calls: Vec::new() };
    }
    let mut spans: Vec<Span> = Vec::new();
    tagged(text, "<tool_call>", "</tool_call>", allowed, &mut spans);
    mistral(text, allowed, &mut spans);
    python_tag(text, allowed, &mut spans);
    fenced(text, allowed, &mut spans);
    bare(text, allowed, &mut spans);
    if spans.is_empty() {
        return ParsedOutput { content: non_empty(text), tool_calls: Vec::new() };
    }
    spans.sort_by_key(|s| s.start);
    let mut content = String::new();
    let mut at = 0;
    let mut tool_calls = Vec::new();
    for span in spans {
        content.push_str(&text[at..span.start]);
        at = span.end;
        for (name, args) in span.calls {
            tool_calls.push(ToolCall::new(new_call_id(ids), name, args));
        }
    }
    content.push_str(&text[at..]);
    ParsedOutput { content: non_empty(content.trim()), tool_calls }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.to_owned())
}

fn overlaps(spans: &[Span], start: usize, end: usize) -> bool {
    spans.iter().any(|s| start < s.end && s.start < end)
}

/// `open … close` blocks (the close may be missing at the end of the text).
fn tagged(text: &str, open: &str, close: &str, allowed: &[&str], spans: &mut Vec<Span>) {
    let mut from = 0;
    while let Some(pos) = text[from..].find(open) {
        let start = from + pos;
        let body_start = start + open.len();
        let (body_end, end) = match text[body_start..].find(close) {
            Some(p) => (body_start + p, body_start + p + close.len()),
            None => (text.len(), text.len()),
        };
        let body = strip_fence(text[body_start..body_end].trim());
        if let Some(calls) = json_calls_exact(body, allowed) {
            if !overlaps(spans, start, end) {
                spans.push(Span { start, end, calls });
            }
        }
        from = end.max(body_start);
    }
}

/// `[TOOL_CALLS]` followed by a JSON array/object, or by `name[ARGS]{…}` pairs.
fn mistral(text: &str, allowed: &[&str], spans: &mut Vec<Span>) {
    const TAG: &str = "[TOOL_CALLS]";
    let mut from = 0;
    while let Some(pos) = text[from..].find(TAG) {
        let start = from + pos;
        let mut at = start + TAG.len();
        let mut calls = Vec::new();
        if let Some((value, len)) = json_prefix(&text[at..]) {
            match value_calls(&value, allowed) {
                Some(c) => {
                    calls = c;
                    at += len;
                }
                None => {
                    from = at;
                    continue;
                }
            }
        } else {
            // Newer Mistral format: [TOOL_CALLS]name[ARGS]{json} (repeated).
            loop {
                let rest = &text[at..];
                let Some(args_pos) = rest.find("[ARGS]") else { break };
                let name = rest[..args_pos].trim().trim_start_matches("[TOOL_CALLS]").trim();
                let Some((args, len)) = json_prefix(&rest[args_pos + 6..]) else { break };
                let Some(call) = make_call(name, Some(&args), allowed) else { break };
                calls.push(call);
                at += args_pos + 6 + len;
                if !text[at..].trim_start().starts_with(TAG) {
                    break;
                }
                at += text[at..].find(TAG).unwrap_or(0) + TAG.len();
            }
        }
        if !calls.is_empty() && !overlaps(spans, start, at) {
            let end = skip_end_markers(text, at);
            spans.push(Span { start, end, calls });
        }
        from = at.max(start + TAG.len());
    }
}

/// `<|python_tag|>` followed by one or more JSON calls separated by `;` or whitespace.
fn python_tag(text: &str, allowed: &[&str], spans: &mut Vec<Span>) {
    const TAG: &str = "<|python_tag|>";
    let mut from = 0;
    while let Some(pos) = text[from..].find(TAG) {
        let start = from + pos;
        let mut at = start + TAG.len();
        let mut calls = Vec::new();
        while let Some((value, len)) = json_prefix(&text[at..]) {
            let Some(c) = value_calls(&value, allowed) else { break };
            calls.extend(c);
            at += len;
            let rest = &text[at..];
            let skipped =
                rest.len() - rest.trim_start_matches(|c: char| c == ';' || c.is_whitespace()).len();
            at += skipped;
        }
        if !calls.is_empty() && !overlaps(spans, start, at) {
            let end = skip_end_markers(text, at);
            spans.push(Span { start, end, calls });
        }
        from = at.max(start + TAG.len());
    }
}

/// End-of-message markers right after a call belong to it.
fn skip_end_markers(text: &str, mut at: usize) -> usize {
    for marker in ["<|eom_id|>", "<|eot_id|>", "</s>"] {
        let rest = &text[at..];
        let trimmed = rest.trim_start();
        if let Some(after) = trimmed.strip_prefix(marker) {
            at = text.len() - after.len();
        }
    }
    at
}

/// ```` ```json … ``` ```` (or an unlabelled fence) holding calls.
fn fenced(text: &str, allowed: &[&str], spans: &mut Vec<Span>) {
    let mut from = 0;
    while let Some(pos) = text[from..].find("```") {
        let start = from + pos;
        let after_ticks = start + 3;
        let line_end = text[after_ticks..].find('\n').map(|p| after_ticks + p);
        let label_end = line_end.unwrap_or(text.len());
        let label = text[after_ticks..label_end].trim();
        let (body_start, label_ok) = if label.starts_with('{') || label.starts_with('[') {
            (after_ticks, true) // ```{"name": …}``` on one line
        } else {
            (label_end, label.is_empty() || label.eq_ignore_ascii_case("json"))
        };
        let close = text[body_start..].find("```").map(|p| body_start + p);
        let (body_end, end) = match close {
            Some(c) => (c, c + 3),
            None => (text.len(), text.len()),
        };
        if label_ok {
            if let Some(calls) = json_calls_exact(text[body_start..body_end].trim(), allowed) {
                if !overlaps(spans, start, end) {
                    spans.push(Span { start, end, calls });
                }
            }
        }
        from = end.max(after_ticks);
    }
}

/// Bare JSON objects or arrays anywhere in the text.
fn bare(text: &str, allowed: &[&str], spans: &mut Vec<Span>) {
    let mut at = 0;
    while at < text.len() {
        let Some(pos) = text[at..].find(['{', '[']) else { break };
        let start = at + pos;
        if let Some(inside) = spans.iter().find(|s| s.start <= start && start < s.end) {
            at = inside.end;
            continue;
        }
        match json_prefix(&text[start..]) {
            Some((value, len)) => match value_calls(&value, allowed) {
                Some(calls) if !overlaps(spans, start, start + len) => {
                    spans.push(Span { start, end: start + len, calls });
                    at = start + len;
                }
                // A JSON value that is not a call is text; look inside no further.
                _ => at = start + len,
            },
            None => at = start + 1,
        }
    }
}

/// The byte offset of the first place in `text` where a tool call could begin, given what
/// has been written so far (the length of `text` when there is none).
pub(crate) fn first_possible_call(text: &str) -> usize {
    text.char_indices()
        .map(|(i, _)| i)
        .find(|&i| could_start_call(&text[i..]))
        .unwrap_or(text.len())
}

/// Whether a call could start at the beginning of `rest` (which may end mid-way).
fn could_start_call(rest: &str) -> bool {
    const TAGS: [&str; 3] = ["<tool_call>", "[TOOL_CALLS]", "<|python_tag|>"];
    if TAGS.iter().any(|t| rest.starts_with(t) || t.starts_with(rest)) {
        return true;
    }
    if let Some(after) = rest.strip_prefix('{') {
        let after = after.trim_start();
        return after.is_empty() || after.starts_with('"');
    }
    if let Some(after) = rest.strip_prefix('[') {
        let after = after.trim_start();
        return after.is_empty() || (after.starts_with('{') && could_start_call(after));
    }
    if "```".starts_with(rest) {
        return true;
    }
    if let Some(after) = rest.strip_prefix("```") {
        return match after.find('\n') {
            None => {
                "json".starts_with(&after.to_ascii_lowercase())
                    || after.trim_start().starts_with(['{', '['])
            }
            Some(nl) => {
                let label = after[..nl].trim();
                let body = after[nl + 1..].trim_start();
                (label.is_empty() || label.eq_ignore_ascii_case("json"))
                    && (body.is_empty() || body.starts_with(['{', '[']))
            }
        };
    }
    false
}

fn strip_fence(body: &str) -> &str {
    let Some(rest) = body.strip_prefix("```") else { return body };
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    rest.trim().strip_suffix("```").unwrap_or(rest).trim()
}

/// Calls when `body` is exactly one JSON value (or several separated by whitespace) naming
/// allowed tools.
fn json_calls_exact(body: &str, allowed: &[&str]) -> Option<Vec<(String, String)>> {
    let mut calls = Vec::new();
    let mut rest = body.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let (value, len) = json_prefix(rest)?;
        calls.extend(value_calls(&value, allowed)?);
        rest = rest[len..].trim_start_matches(|c: char| c == ',' || c == ';' || c.is_whitespace());
    }
    Some(calls)
}

/// The JSON value at the start of `s` (after whitespace) and the bytes it took.
fn json_prefix(s: &str) -> Option<(Json, usize)> {
    let trimmed = s.trim_start();
    let lead = s.len() - trimmed.len();
    if !trimmed.starts_with(['{', '[']) {
        return None;
    }
    let mut it = serde_json::Deserializer::from_str(trimmed).into_iter::<Json>();
    match it.next() {
        Some(Ok(v)) => Some((v, lead + it.byte_offset())),
        _ => None,
    }
}

/// The calls in a JSON value: one call object, an array of them, or `{"tool_calls": [...]}`.
/// `None` unless every item is a call to an allowed tool.
fn value_calls(v: &Json, allowed: &[&str]) -> Option<Vec<(String, String)>> {
    match v {
        Json::Array(items) if !items.is_empty() => {
            items.iter().map(|i| object_call(i.as_object()?, allowed)).collect()
        }
        Json::Object(map) => {
            if let Some(Json::Array(items)) = map.get("tool_calls") {
                return value_calls(&Json::Array(items.clone()), allowed);
            }
            object_call(map, allowed).map(|c| vec![c])
        }
        _ => None,
    }
}

/// One call object in any common shape: `{"name", "arguments"|"parameters"|"args"}`,
/// `{"function": {"name", "arguments"}}`, `{"function": name, "arguments"}`,
/// `{"tool"|"tool_name": name, …}`.
fn object_call(map: &Map<String, Json>, allowed: &[&str]) -> Option<(String, String)> {
    if let Some(Json::Object(inner)) = map.get("function") {
        return object_call(inner, allowed);
    }
    let name = ["name", "function", "tool", "tool_name"]
        .iter()
        .find_map(|k| map.get(*k).and_then(Json::as_str))?;
    let args = ["arguments", "parameters", "args", "input"].iter().find_map(|k| map.get(*k));
    // Extra keys beyond name/arguments/id/type mean this is some other object.
    let known = [
        "name",
        "function",
        "tool",
        "tool_name",
        "arguments",
        "parameters",
        "args",
        "input",
        "id",
        "type",
    ];
    if map.keys().any(|k| !known.contains(&k.as_str())) {
        return None;
    }
    make_call(name, args, allowed)
}

fn make_call(name: &str, args: Option<&Json>, allowed: &[&str]) -> Option<(String, String)> {
    let name = name.trim();
    let name = if allowed.contains(&name) {
        name
    } else {
        // `functions.get_weather` → `get_weather`
        let short = name.rsplit('.').next()?;
        *allowed.iter().find(|a| **a == short)?
    };
    let args = match args {
        None | Some(Json::Null) => Map::new(),
        Some(Json::Object(m)) => m.clone(),
        Some(Json::String(s)) if s.trim().is_empty() => Map::new(),
        Some(Json::String(s)) => match serde_json::from_str::<Json>(s) {
            Ok(Json::Object(m)) => m,
            _ => return None,
        },
        Some(_) => return None,
    };
    Some((name.to_owned(), Json::Object(args).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOOLS: &[&str] = &["get_weather", "web_search"];

    fn calls(text: &str) -> (Option<String>, Vec<(String, Json)>) {
        let out = parse(text, TOOLS, IdStyle::OpenAi);
        let calls = out
            .tool_calls
            .iter()
            .map(|c| (c.function.name.clone(), c.parsed_arguments().unwrap()))
            .collect();
        (out.content, calls)
    }

    fn weather(city: &str) -> (String, Json) {
        ("get_weather".into(), serde_json::json!({ "city": city }))
    }

    #[test]
    fn hermes_tags_one_and_several() {
        let (content, c) = calls("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>");
        assert_eq!((content, c), (None, vec![weather("Paris")]));
        let text = "Checking both.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"A\"}}\n</tool_call>\n\
                    <tool_call>\n{\"name\": \"web_search\", \"arguments\": \"{\\\"query\\\": \\\"b\\\"}\"}\n</tool_call>";
        let (content, c) = calls(text);
        assert_eq!(content.as_deref(), Some("Checking both."));
        assert_eq!(c, vec![weather("A"), ("web_search".into(), serde_json::json!({"query": "b"}))]);
    }

    #[test]
    fn hermes_without_closing_tag_and_with_inner_fence() {
        let (_, c) =
            calls("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"X\"}}");
        assert_eq!(c, vec![weather("X")]);
        let (_, c) = calls("<tool_call>\n```json\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Y\"}}\n```\n</tool_call>");
        assert_eq!(c, vec![weather("Y")]);
    }

    #[test]
    fn llama_bare_parameters_and_python_tag() {
        let (content, c) = calls(r#"{"name": "get_weather", "parameters": {"city": "Rome"}}"#);
        assert_eq!((content, c), (None, vec![weather("Rome")]));
        let (_, c) = calls(
            r#"<|python_tag|>{"name": "get_weather", "parameters": {"city": "A"}}; {"name": "get_weather", "parameters": {"city": "B"}}<|eom_id|>"#,
        );
        assert_eq!(c, vec![weather("A"), weather("B")]);
    }

    #[test]
    fn mistral_both_formats() {
        let (content, c) = calls(
            r#"[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Oslo"}}, {"name": "web_search", "arguments": {"query": "q"}}]</s>"#,
        );
        assert_eq!(content, None);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0], weather("Oslo"));
        let (_, c) = calls(
            r#"[TOOL_CALLS]get_weather[ARGS]{"city": "Bern"}[TOOL_CALLS]web_search[ARGS]{"query": "x"}"#,
        );
        assert_eq!(c[0], weather("Bern"));
        assert_eq!(c[1].0, "web_search");
    }

    #[test]
    fn fenced_and_bare_json_as_small_models_write_them() {
        let (content, c) = calls("```json\n{\n  \"name\": \"get_weather\",\n  \"arguments\": {\n    \"city\": \"Istanbul\"\n  }\n}\n```");
        assert_eq!((content, c), (None, vec![weather("Istanbul")]));
        let (content, c) = calls("Sure, I will look that up:\n```\n[{\"name\": \"web_search\", \"arguments\": {\"query\": \"rust\"}}]\n```");
        assert_eq!(content.as_deref(), Some("Sure, I will look that up:"));
        assert_eq!(c[0].0, "web_search");
        let (_, c) = calls("{\"function\": {\"name\": \"functions.get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Lima\\\"}\"}}");
        assert_eq!(c, vec![weather("Lima")]);
    }

    #[test]
    fn unknown_tools_and_plain_json_stay_text() {
        for text in [
            "<tool_call>\n{\"name\": \"delete_everything\", \"arguments\": {}}\n</tool_call>",
            "{\"name\": \"send_email\", \"arguments\": {\"to\": \"x\"}}",
            "```json\n{\"city\": \"Paris\", \"temp\": 21}\n```",
            "{\"name\": \"get_weather\", \"population\": 5}",
            "fn main() { println!(\"[1, 2]\"); }",
        ] {
            let out = parse(text, TOOLS, IdStyle::OpenAi);
            assert!(out.tool_calls.is_empty(), "{text}");
            assert_eq!(out.content.as_deref(), Some(text));
        }
    }

    #[test]
    fn no_allowed_tools_means_no_calls() {
        let text = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>";
        let out = parse(text, &[], IdStyle::OpenAi);
        assert!(out.tool_calls.is_empty());
        assert_eq!(out.content.as_deref(), Some(text));
        assert_eq!(parse("   ", TOOLS, IdStyle::OpenAi).content, None);
    }

    #[test]
    fn ids_are_unique_and_shaped() {
        let text = "[{\"name\": \"get_weather\", \"arguments\": {}}, {\"name\": \"get_weather\", \"arguments\": {}}]";
        let out = parse(text, TOOLS, IdStyle::OpenAi);
        assert_eq!(out.tool_calls.len(), 2);
        assert_ne!(out.tool_calls[0].id, out.tool_calls[1].id);
        assert!(out.tool_calls[0].id.starts_with("call_"));
        let nine = new_call_id(IdStyle::Nine);
        assert_eq!(nine.len(), 9);
        assert!(nine.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
