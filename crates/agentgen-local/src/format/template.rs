//! Rendering the model's own Jinja chat template with minijinja, the way Hugging Face
//! `transformers` does (trim_blocks, lstrip_blocks, Python-style `tojson`, `raise_exception`,
//! `strftime_now`, Python string methods), and splitting the result into segments so message
//! text is tokenized as text and only the template's own markup may become special tokens.

use std::collections::HashMap;
use std::fmt::Write as _;

use agentgen_core::{ChatMessage, ToolSpec};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, Error, ErrorKind};
use serde_json::{json, Value as Json};

use super::segments::{assemble, locate, mark_data, specials_in, Piece, Sentinel};
use super::{FormatError, PromptSegment};

const TEMPLATE_NAME: &str = "chat_template";

/// A compiled chat template.
#[derive(Debug)]
pub(crate) struct Template {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
    /// The model's special-token texts (what special parsing turns into control tokens).
    special: Option<AhoCorasick>,
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
        Ok(Self { env, bos_token: bos.to_owned(), eos_token: eos.to_owned(), special: None })
    }

    /// Sets the model's special-token texts: request data (tool names, descriptions, schemas,
    /// call ids and arguments) containing one is then tokenized as plain text.
    pub(crate) fn set_special_tokens(&mut self, texts: &[String]) -> Result<(), FormatError> {
        let texts: Vec<&str> = texts.iter().map(String::as_str).filter(|t| !t.is_empty()).collect();
        self.special = if texts.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(texts)
                    .map_err(|e| FormatError::Template { reason: e.to_string() })?,
            )
        };
        Ok(())
    }

    /// Renders the conversation with `add_generation_prompt = true` and splits it into
    /// template segments (special tokens parsed) and request-text segments (parsed as text):
    /// message texts, and tool or call data that contains a special token's text.
    ///
    /// Errors: [`FormatError::SpecialTokenText`] when the template altered such data so that
    /// it cannot be told apart from the template's own markup.
    pub(crate) fn render(
        &self,
        messages: &[ChatMessage],
        tools: &[&ToolSpec],
        id_map: &dyn Fn(&str) -> String,
    ) -> Result<Vec<PromptSegment>, FormatError> {
        let tools_json: Vec<Json> =
            tools.iter().map(|t| serde_json::to_value(t).unwrap_or(Json::Null)).collect();
        let real_wire = messages_for_template(messages, id_map, &mut |text| text.to_owned());
        let request_text = serde_json::to_string(&(&real_wire, &tools_json)).unwrap_or_default();
        let sentinel = Sentinel::choose(request_text.chars());
        drop(request_text);
        let mut contents: Vec<String> = Vec::new();
        let mut marked_wire = messages_for_template(messages, id_map, &mut |text| {
            contents.push(text.to_owned());
            sentinel.mark(contents.len() - 1)
        });
        let mut marked_tools = Json::Array(tools_json.clone());
        if let Some(special) = &self.special {
            let mut mark = |s: &str| {
                special.is_match(s).then(|| {
                    contents.push(s.to_owned());
                    sentinel.mark(contents.len() - 1)
                })
            };
            mark_data(&mut marked_wire, &mut mark);
            mark_data(&mut marked_tools, &mut mark);
        }
        let marked_tools = match marked_tools {
            Json::Array(items) => items,
            other => vec![other],
        };
        let marked = self.render_raw(marked_wire, marked_tools)?;
        let real = self.render_raw(real_wire, tools_json)?;
        let pieces = sentinel.split(&marked);
        if let Some(segments) = pieces.as_deref().and_then(|p| assemble(p, &real, &contents)) {
            return Ok(segments);
        }
        // The template transformed request text (trimmed, sliced or inspected it): find each
        // text in the real rendering, in the order the markers appeared.
        tracing::debug!("the chat template altered request text; locating texts by search");
        let order: Vec<usize> = match &pieces {
            Some(p) => p
                .iter()
                .filter_map(|p| match p {
                    Piece::Text(i) => Some(*i),
                    Piece::Template(_) => None,
                })
                .collect(),
            None => (0..contents.len()).collect(),
        };
        let segments = locate(&real, &contents, &order);
        if let (Some(special), Some(pieces)) = (&self.special, &pieces) {
            // The template's own markup holds this many special tokens; more in the template
            // segments means request data would become control tokens.
            let own = specials_in(
                special,
                pieces.iter().filter_map(|p| match p {
                    Piece::Template(t) => Some(*t),
                    Piece::Text(_) => None,
                }),
            );
            let found =
                specials_in(special, segments.iter().filter(|s| s.parse_special).map(|s| &s.text));
            if found > own {
                return Err(FormatError::SpecialTokenText { count: found - own });
            }
        } else if let Some(special) = &self.special {
            if contents.iter().any(|c| special.is_match(c)) {
                return Err(FormatError::SpecialTokenText { count: 1 });
            }
        }
        Ok(segments)
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
    // Each call id's function, as of the message being written (the latest earlier call wins).
    let mut called: HashMap<&str, &str> = HashMap::new();
    for m in messages {
        for c in m.tool_calls() {
            called.insert(c.id.as_str(), c.function.name.as_str());
        }
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
                if let Some(name) = called.get(tool_call_id.as_str()) {
                    v["name"] = Json::String((*name).to_owned());
                }
                v
            }
        };
        out.push(v);
    }
    Json::Array(out)
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
