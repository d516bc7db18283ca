//! Rendering the model's own Jinja chat template with minijinja, the way Hugging Face
//! `transformers` does (trim_blocks, lstrip_blocks, Python-style `tojson`, `raise_exception`,
//! `strftime_now`, Python string methods), and splitting the result into segments so message
//! text is tokenized as text and only the template's own markup may become special tokens.

use std::fmt::Write as _;

use agentgen_core::{ChatMessage, ToolSpec};
use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, Error, ErrorKind};
use serde_json::{json, Value as Json};

use super::{FormatError, PromptSegment};

const TEMPLATE_NAME: &str = "chat_template";

/// A compiled chat template.
#[derive(Debug)]
pub(crate) struct Template {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl Template {
    /// Compiles `source` (the GGUF `tokenizer.chat_template`).
    pub(crate) fn new(source: &str, bos: &str, eos: &str) -> Result<Self, FormatError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("tojson", tojson_filter);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned(TEMPLATE_NAME, source.to_owned())
            .map_err(|e| FormatError::Template { reason: describe(&e) })?;
        Ok(Self { env, bos_token: bos.to_owned(), eos_token: eos.to_owned() })
    }

    /// Renders the conversation with `add_generation_prompt = true` and splits it into
    /// template segments (special tokens parsed) and message-text segments (parsed as text).
    pub(crate) fn render(
        &self,
        messages: &[ChatMessage],
        tools: &[&ToolSpec],
        id_map: &dyn Fn(&str) -> String,
    ) -> Result<Vec<PromptSegment>, FormatError> {
        let sentinel = Sentinel::choose(messages, tools);
        let mut contents: Vec<&str> = Vec::new();
        let wire = messages_for_template(messages, id_map, &mut |text| {
            contents.push(text);
            sentinel.mark(contents.len() - 1)
        });
        let tools_json: Vec<Json> =
            tools.iter().map(|t| serde_json::to_value(t).unwrap_or(Json::Null)).collect();
        let marked = self.render_raw(wire, tools_json.clone())?;
        let wire = messages_for_template(messages, id_map, &mut |text| text.to_owned());
        let real = self.render_raw(wire, tools_json)?;
        let mut order = Vec::new();
        if let Some(segments) = sentinel.split(&marked, &contents, &mut order) {
            if segments.iter().map(|s| s.text.len()).sum::<usize>() == real.len()
                && segments.iter().map(|s| s.text.as_str()).eq(split_like(&real, &segments))
            {
                return Ok(segments);
            }
        }
        // The template transformed message text (trimmed, sliced or inspected it): find each
        // text, or its trimmed form, in the real rendering, in the order the markers appeared.
        tracing::debug!("the chat template altered message text; locating texts by search");
        Ok(locate(&real, &contents, &order))
    }

    fn render_raw(&self, messages: Json, tools: Vec<Json>) -> Result<String, FormatError> {
        let tmpl = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| FormatError::Template { reason: describe(&e) })?;
        let tools = if tools.is_empty() { Value::from(()) } else { Value::from_serialize(&tools) };
        let ctx = minijinja::context! {
            messages => Value::from_serialize(&messages),
            tools => tools,
            add_generation_prompt => true,
            bos_token => self.bos_token.clone(),
            eos_token => self.eos_token.clone(),
        };
        tmpl.render(ctx).map_err(|e| FormatError::Render { reason: describe(&e) })
    }
}

/// The most useful text of a minijinja error: the template's own message when it raised one.
fn describe(e: &Error) -> String {
    match (e.kind(), e.detail()) {
        (ErrorKind::InvalidOperation, Some(detail)) => detail.to_owned(),
        _ => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                let _ = write!(s, ": {inner}");
                src = inner.source();
            }
            s
        }
    }
}

/// Messages in the shape Hugging Face templates expect: OpenAI messages, except that tool-call
/// arguments are a parsed JSON object (templates do `tool_call.arguments | tojson`) and tool
/// results carry the called function's `name` too. `text` maps each message text to what the
/// template should see.
fn messages_for_template<'a>(
    messages: &'a [ChatMessage],
    id_map: &dyn Fn(&str) -> String,
    text: &mut dyn FnMut(&'a str) -> String,
) -> Json {
    let mut out = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let v = match m {
            ChatMessage::System { content, .. } => {
                json!({"role": "system", "content": text(content)})
            }
            ChatMessage::User { content, .. } => json!({"role": "user", "content": text(content)}),
            ChatMessage::Assistant { content, tool_calls, .. } => {
                let mut v = json!({
                    "role": "assistant",
                    "content": content.as_deref().map(&mut *text),
                });
                if !tool_calls.is_empty() {
                    let calls: Vec<Json> = tool_calls
                        .iter()
                        .map(|c| {
                            let args = c
                                .parsed_arguments()
                                .unwrap_or_else(|_| Json::String(c.function.arguments.clone()));
                            json!({"id": id_map(&c.id), "type": "function",
                                   "function": {"name": c.function.name, "arguments": args}})
                        })
                        .collect();
                    v["tool_calls"] = Json::Array(calls);
                }
                v
            }
            ChatMessage::Tool { tool_call_id, content } => {
                let mut v = json!({"role": "tool", "tool_call_id": id_map(tool_call_id),
                                   "content": text(content)});
                if let Some(name) = called_name(&messages[..i], tool_call_id) {
                    v["name"] = Json::String(name.to_owned());
                }
                v
            }
        };
        out.push(v);
    }
    Json::Array(out)
}

/// The function name of the earlier tool call with this id.
fn called_name<'a>(before: &'a [ChatMessage], id: &str) -> Option<&'a str> {
    before
        .iter()
        .rev()
        .flat_map(|m| m.tool_calls())
        .find(|c| c.id == id)
        .map(|c| c.function.name.as_str())
}

/// Marks message texts in the rendered prompt: `open` + index + `close`, with two
/// private-use characters that occur nowhere in the request.
struct Sentinel {
    open: char,
    close: char,
}

impl Sentinel {
    fn choose(messages: &[ChatMessage], tools: &[&ToolSpec]) -> Self {
        let tools_text = serde_json::to_string(tools).unwrap_or_default();
        let used = |c: char| {
            tools_text.contains(c)
                || messages.iter().filter_map(ChatMessage::text).any(|t| t.contains(c))
        };
        // Supplementary private-use plane 15: never assigned, practically never in chat text.
        let mut base = 0xF0000u32;
        loop {
            let open = char::from_u32(base).unwrap_or('\u{E000}');
            let close = char::from_u32(base + 1).unwrap_or('\u{E001}');
            if !(used(open) || used(close)) || base >= 0xFFFF0 {
                return Self { open, close };
            }
            base += 2;
        }
    }

    fn mark(&self, index: usize) -> String {
        format!("{}{index}{}", self.open, self.close)
    }

    /// Splits the rendered prompt at the markers (recording the order of message indices);
    /// `None` when the template mangled one.
    fn split(
        &self,
        rendered: &str,
        contents: &[&str],
        order: &mut Vec<usize>,
    ) -> Option<Vec<PromptSegment>> {
        let mut segs = Segments::default();
        let mut rest = rendered;
        while let Some(start) = rest.find(self.open) {
            if rest[..start].contains(self.close) {
                return None;
            }
            segs.push(&rest[..start], true);
            let after = &rest[start + self.open.len_utf8()..];
            let end = after.find(self.close)?;
            let idx: usize = after[..end].parse().ok()?;
            segs.push(contents.get(idx)?, false);
            order.push(idx);
            rest = &after[end + self.close.len_utf8()..];
        }
        if rest.contains(self.close) {
            return None;
        }
        segs.push(rest, true);
        Some(segs.0)
    }
}

/// Segments under construction: adjacent pieces of the same kind merge, empty ones vanish.
#[derive(Default)]
struct Segments(Vec<PromptSegment>);

impl Segments {
    fn push(&mut self, text: &str, parse_special: bool) {
        if text.is_empty() {
            return;
        }
        match self.0.last_mut() {
            Some(last) if last.parse_special == parse_special => last.text.push_str(text),
            _ => self.0.push(PromptSegment { text: text.to_owned(), parse_special }),
        }
    }
}

/// `real` cut at the lengths of `segments` (to compare texts piece by piece).
fn split_like<'a>(
    real: &'a str,
    segments: &'a [PromptSegment],
) -> impl Iterator<Item = &'a str> + 'a {
    let mut at = 0;
    segments.iter().map(move |s| {
        let piece = real.get(at..at + s.text.len()).unwrap_or("");
        at += s.text.len();
        piece
    })
}

/// Fallback split of the real rendering: each message text (or its trimmed form) found in
/// order is a text segment; what cannot be found stays template text.
fn locate(real: &str, contents: &[&str], order: &[usize]) -> Vec<PromptSegment> {
    let mut segs = Segments::default();
    let mut pos = 0;
    for &idx in order {
        let Some(text) = contents.get(idx) else { continue };
        let found = [*text, text.trim()]
            .into_iter()
            .filter(|t| !t.is_empty())
            .find_map(|t| real[pos..].find(t).map(|at| (pos + at, t.len())));
        if let Some((at, len)) = found {
            segs.push(&real[pos..at], true);
            segs.push(&real[at..at + len], false);
            pos = at + len;
        }
    }
    segs.push(&real[pos..], true);
    segs.0
}

/// `tojson` as Hugging Face defines it: Python `json.dumps` (no HTML escaping, non-ASCII kept,
/// `", "` / `": "` separators, optional `indent`, optional `sort_keys`).
fn tojson_filter(value: Value, indent: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let indent = match kwargs.get::<Option<Value>>("indent")?.or(indent) {
        None => None,
        Some(v) if v.is_none() || v.is_undefined() => None,
        Some(v) => match v.as_usize() {
            Some(n) => Some(" ".repeat(n)),
            None => Some(v.as_str().map(str::to_owned).ok_or_else(|| {
                Error::new(ErrorKind::InvalidOperation, "tojson indent must be an int or string")
            })?),
        },
    };
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
    let ensure_ascii = kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false);
    let _ = kwargs.get::<Option<Value>>("separators")?;
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(&value)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
    let mut out = String::new();
    py_dumps(&json, indent.as_deref(), sort_keys, ensure_ascii, 0, &mut out);
    Ok(Value::from_safe_string(out))
}

/// Python's `json.dumps` output for `v`.
pub(crate) fn py_dumps(
    v: &Json,
    indent: Option<&str>,
    sort_keys: bool,
    ascii: bool,
    level: usize,
    out: &mut String,
) {
    let item_sep = if indent.is_some() { "," } else { ", " };
    let newline = |out: &mut String, level: usize| {
        if let Some(ind) = indent {
            out.push('\n');
            for _ in 0..level {
                out.push_str(ind);
            }
        }
    };
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => out.push_str(&n.to_string()),
        Json::String(s) => py_string(s, ascii, out),
        Json::Array(items) if items.is_empty() => out.push_str("[]"),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                py_dumps(item, indent, sort_keys, ascii, level + 1, out);
            }
            newline(out, level);
            out.push(']');
        }
        Json::Object(map) if map.is_empty() => out.push_str("{}"),
        Json::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            if sort_keys {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                py_string(k, ascii, out);
                out.push_str(": ");
                py_dumps(item, indent, sort_keys, ascii, level + 1, out);
            }
            newline(out, level);
            out.push('}');
        }
    }
}

fn py_string(s: &str, ascii: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ascii && !c.is_ascii()) => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

/// `strftime_now(format)`: the current UTC time formatted with the common `strftime` codes
/// (`%Y %y %m %d %e %B %b %A %a %H %I %M %S %p %j %%`).
fn strftime_now(format: String) -> Result<Value, Error> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok(Value::from(strftime(&format, secs)))
}

/// Formats the UTC time `secs` after the Unix epoch.
pub(crate) fn strftime(format: &str, secs: u64) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] =
        ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
    let t = agentgen_core::clock::UtcDateTime::from_unix(secs);
    let (y, m, d, h, mi, s, yday) =
        (t.year, t.month, t.day, t.hour, t.minute, t.second, t.day_of_year);
    let month = MONTHS[(m - 1) as usize];
    let weekday = DAYS[t.weekday as usize];
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let _ = match chars.next() {
            Some('Y') => write!(out, "{y}"),
            Some('y') => write!(out, "{:02}", y.rem_euclid(100)),
            Some('m') => write!(out, "{m:02}"),
            Some('d') => write!(out, "{d:02}"),
            Some('e') => write!(out, "{d:>2}"),
            Some('B') => write!(out, "{month}"),
            Some('b') => write!(out, "{}", &month[..3]),
            Some('A') => write!(out, "{weekday}"),
            Some('a') => write!(out, "{}", &weekday[..3]),
            Some('H') => write!(out, "{h:02}"),
            Some('I') => write!(out, "{:02}", if h % 12 == 0 { 12 } else { h % 12 }),
            Some('M') => write!(out, "{mi:02}"),
            Some('S') => write!(out, "{s:02}"),
            Some('p') => write!(out, "{}", if h < 12 { "AM" } else { "PM" }),
            Some('j') => write!(out, "{yday:03}"),
            Some('%') => write!(out, "%"),
            Some(other) => write!(out, "%{other}"),
            None => write!(out, "%"),
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_all(src: &str, messages: &[ChatMessage]) -> Vec<PromptSegment> {
        Template::new(src, "<s>", "</s>")
            .unwrap()
            .render(messages, &[], &|id| id.to_owned())
            .unwrap()
    }

    #[test]
    fn python_json_matches_json_dumps() {
        let v = json!({"b": [1, 2.5, null], "a": "é\"<x>\n", "e": {}});
        let mut out = String::new();
        py_dumps(&v, None, false, false, 0, &mut out);
        assert_eq!(out, r#"{"b": [1, 2.5, null], "a": "é\"<x>\n", "e": {}}"#);
        let mut out = String::new();
        py_dumps(&json!({"k": [1]}), Some("  "), false, true, 0, &mut out);
        assert_eq!(out, "{\n  \"k\": [\n    1\n  ]\n}");
        let mut out = String::new();
        py_dumps(&json!("é😀"), None, false, true, 0, &mut out);
        assert_eq!(out, r#""\u00e9\ud83d\ude00""#);
    }

    #[test]
    fn strftime_formats_a_known_date() {
        // 2024-07-26 13:25:09 UTC, a Friday.
        assert_eq!(
            strftime("%d %b %Y %H:%M:%S %A %j", 1_722_000_309),
            "26 Jul 2024 13:25:09 Friday 208"
        );
        assert_eq!(strftime("%Y-%m-%d", 0), "1970-01-01");
    }

    #[test]
    fn raise_exception_message_reaches_the_error() {
        let t = Template::new("{{ raise_exception('roles must alternate') }}", "", "").unwrap();
        let err = t.render(&[ChatMessage::user("x")], &[], &|id| id.to_owned()).unwrap_err();
        assert!(
            matches!(&err, FormatError::Render { reason } if reason == "roles must alternate"),
            "{err}"
        );
    }

    #[test]
    fn broken_template_is_a_template_error() {
        let err = Template::new("{% for m in messages %}", "", "").unwrap_err();
        assert!(matches!(err, FormatError::Template { .. }), "{err}");
    }

    #[test]
    fn contents_are_text_segments_and_markup_is_special() {
        let src =
            "{% for m in messages %}<|{{ m.role }}|>{{ m.content | trim }}<|end|>{% endfor %}\
                   {% if add_generation_prompt %}<|assistant|>{% endif %}";
        let segs = render_all(src, &[ChatMessage::user("hi <|end|> there")]);
        assert_eq!(
            segs,
            vec![
                PromptSegment { text: "<|user|>".into(), parse_special: true },
                PromptSegment { text: "hi <|end|> there".into(), parse_special: false },
                PromptSegment { text: "<|end|><|assistant|>".into(), parse_special: true },
            ]
        );
    }

    #[test]
    fn a_template_that_slices_text_falls_back_to_real_text() {
        let src = "{% for m in messages %}[{{ m.content[:4] }}]{% endfor %}";
        let segs = render_all(src, &[ChatMessage::user("abcdef")]);
        assert_eq!(segs, vec![PromptSegment { text: "[abcd]".into(), parse_special: true }]);
    }

    #[test]
    fn a_template_that_trims_text_still_keeps_it_as_text() {
        let src =
            "{% for m in messages %}<|{{ m.role }}|>{{ m.content.strip() }}<|end|>{% endfor %}";
        let segs = render_all(src, &[ChatMessage::user("  a <|end|> b \n")]);
        assert_eq!(
            segs,
            vec![
                PromptSegment { text: "<|user|>".into(), parse_special: true },
                PromptSegment { text: "a <|end|> b".into(), parse_special: false },
                PromptSegment { text: "<|end|>".into(), parse_special: true },
            ]
        );
    }

    /// A template in the style of Llama 3.x: trims, `tools is not none`, `tojson(indent=4)`,
    /// `strftime_now`, `reject('equalto')`, `.get()`, tool results by role `ipython`.
    const LLAMA_STYLE: &str = r#"{{- bos_token }}
{%- set date_string = strftime_now("%d %b %Y") %}
{%- if messages[0]['role'] == 'system' %}{% set system = messages[0]['content']|trim %}{% set messages = messages[1:] %}{% else %}{% set system = "" %}{% endif %}
{{- "<|start_header_id|>system<|end_header_id|>

" }}
{%- if tools is not none %}{{- "Environment: ipython
" }}{% endif %}
{{- "Today Date: " + date_string + "

" }}
{%- if tools is not none %}
{%- for t in tools %}{{- t | tojson(indent=4) }}{{- "

" }}{%- endfor %}
{%- endif %}
{{- system }}{{- "<|eot_id|>" }}
{%- for message in messages %}
{%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>

'+ message['content'] | trim + '<|eot_id|>' }}
{%- elif 'tool_calls' in message %}
{%- if not message.tool_calls|length == 1 %}{{- raise_exception("This model only supports single tool-calls at once!") }}{%- endif %}
{%- set tool_call = message.tool_calls[0].function %}
{{- '<|start_header_id|>assistant<|end_header_id|>

' -}}
{{- '{"name": "' + tool_call.name + '", "parameters": ' }}{{- tool_call.arguments | tojson }}{{- "}" }}{{- "<|eot_id|>" }}
{%- elif message.role == "tool" or message.role == "ipython" %}
{{- "<|start_header_id|>ipython<|end_header_id|>

" }}{{- message.content }}{{- "<|eot_id|>" }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>

' }}{%- endif %}
{{- ([1, 2, 3] | reject('equalto', 2) | join(",")) if messages[0].get('missing') }}"#;

    #[test]
    fn llama_style_template_renders_tools_calls_and_results() {
        use agentgen_core::ToolCall;
        let t = Template::new(LLAMA_STYLE, "<|begin_of_text|>", "<|eot_id|>").unwrap();
        let tool = ToolSpec::function(
            "add",
            "Adds",
            json!({"type": "object", "properties": {"a": {"type": "integer"}}}),
        );
        let msgs = [
            ChatMessage::system("  Be exact.  "),
            ChatMessage::user("1+1?"),
            ChatMessage::assistant_tool_calls(vec![ToolCall::new("c1", "add", r#"{"a": 1}"#)]),
            ChatMessage::tool("c1", "2"),
        ];
        let segs = t.render(&msgs, &[&tool], &|id| id.to_owned()).unwrap();
        let text: String = segs.iter().map(|s| s.text.as_str()).collect();
        assert!(text.starts_with("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\nToday Date: "), "{text}");
        assert!(
            text.contains(
                "{\n    \"type\": \"function\",\n    \"function\": {\n        \"name\": \"add\""
            ),
            "{text}"
        );
        assert!(text.contains("Be exact.<|eot_id|>"), "{text}");
        assert!(
            text.contains("{\"name\": \"add\", \"parameters\": {\"a\": 1}}<|eot_id|>"),
            "{text}"
        );
        assert!(
            text.contains("<|start_header_id|>ipython<|end_header_id|>\n\n2<|eot_id|>"),
            "{text}"
        );
        assert!(text.ends_with("<|start_header_id|>assistant<|end_header_id|>\n\n"), "{text}");
        // The trimmed system text is still found and kept as text.
        assert!(segs.iter().any(|s| !s.parse_special && s.text == "Be exact."), "{segs:?}");
        // Two calls in one message: the template's own exception becomes a Render error.
        let two = [
            ChatMessage::user("x"),
            ChatMessage::assistant_tool_calls(vec![
                ToolCall::new("a", "add", "{}"),
                ToolCall::new("b", "add", "{}"),
            ]),
        ];
        let err = t.render(&two, &[&tool], &|id| id.to_owned()).unwrap_err();
        assert!(err.to_string().contains("single tool-calls"), "{err}");
    }

    #[test]
    fn python_string_methods_and_namespace_work() {
        let src = "{% set ns = namespace(n=0) %}{% for m in messages %}{% if m.role.startswith('us') %}\
                   {% set ns.n = ns.n + 1 %}{% endif %}{% endfor %}{{ ns.n }}|{{ '  a b '.strip().split(' ') | length }}";
        let segs = render_all(src, &[ChatMessage::user("a"), ChatMessage::assistant("b")]);
        assert_eq!(segs[0].text, "1|2");
    }
}
