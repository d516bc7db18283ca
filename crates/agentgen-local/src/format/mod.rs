//! Chat formats: the model's own Jinja chat template rendered into prompt segments,
//! tool-call parsing of the model's output, and llguidance output constraints.
//!
//! [`ChatFormat`] is built once per model from the GGUF `tokenizer.chat_template`
//! (see [`read_gguf_metadata`]). Every method is pure (no model, no I/O), so tests and
//! benchmarks call them directly:
//!
//! - [`ChatFormat::render`] — the prompt as [`PromptSegment`]s: template markup (tokenize
//!   with special-token parsing) and message text (tokenize as plain text, so a user who
//!   writes `<|im_start|>` cannot inject a control token).
//! - [`ChatFormat::constraint`] — the llguidance grammar the answer must follow, if any.
//! - [`ChatFormat::parse_output`] — the raw answer split into text and tool calls.

mod error;
pub mod gguf_meta;
mod grammar;
mod grammar_cache;
mod parse;
mod relevance;
mod segments;
mod template;
mod tool_index;

use agentgen_core::{ChatMessage, ChatRequest, ToolCall, ToolChoice, ToolSpec};
use serde_json::Value as Json;

pub use error::FormatError;
pub use gguf_meta::{is_gguf, read_gguf_metadata, GgufMeta, GgufValue};
pub use grammar_cache::DEFAULT_GRAMMAR_CACHE_BYTES;

/// The tool-call convention a chat template was written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ToolFamily {
    /// Hermes / Qwen: `<tool_call>\n{"name": …, "arguments": …}\n</tool_call>`.
    Hermes,
    /// Llama 3.x: a bare `{"name": …, "parameters": …}` (optionally after `<|python_tag|>`).
    Llama3,
    /// Mistral: `[TOOL_CALLS][{"name": …, "arguments": …}]`.
    Mistral,
    /// Anything else: bare `{"name": …, "arguments": …}`.
    Generic,
}

impl ToolFamily {
    /// Detects the family from the template's text.
    pub fn detect(template: &str) -> Self {
        if template.contains("<tool_call>") {
            Self::Hermes
        } else if template.contains("[TOOL_CALLS]") {
            Self::Mistral
        } else if template.contains("<|python_tag|>")
            || template.contains("<|eom_id|>")
            || template.contains("<|start_header_id|>")
        {
            Self::Llama3
        } else {
            Self::Generic
        }
    }
}

/// One piece of a rendered prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptSegment {
    /// The text.
    pub text: String,
    /// `true` for template markup (special tokens like `<|im_start|>` are parsed), `false`
    /// for message text (tokenized as plain text).
    pub parse_special: bool,
}

/// What [`ChatFormat::constraint`] constrains the answer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConstraintKind {
    /// A JSON answer (`json_object` or `json_schema`).
    ResponseJson,
    /// One or more tool calls (`required` or a named function).
    ToolCallRequired,
    /// Free text, or tool calls that must be valid once started (`auto`).
    ToolCallAuto,
}

/// An output constraint: an llguidance grammar plus what it means.
///
/// The grammar accepts once a complete answer is written; at that point the end-of-generation
/// tokens are allowed (llguidance unmasks them in accepting states), and when nothing else
/// may follow the matcher stops. Either way the turn ends there.
///
/// Use: build the token environment and an `llguidance::ParserFactory` once per model (the
/// factory takes most of a second for a 150k vocabulary), then per request
/// `Matcher::new(factory.create_parser(constraint.grammar.clone()))` (a few milliseconds)
/// and mask each step with it; feed every sampled token to the matcher exactly once.
#[derive(Debug, Clone)]
pub struct Constraint {
    /// The grammar, for `ParserFactory::create_parser`.
    pub grammar: llguidance::api::TopLevelGrammar,
    /// The same grammar as Lark source (for logs and debugging).
    pub lark: String,
    /// What it constrains.
    pub kind: ConstraintKind,
    /// A short human description, e.g. `a call to get_weather or web_search`.
    pub description: String,
}

/// A model's answer split into text and tool calls.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedOutput {
    /// The text outside tool calls; `None` when there is none.
    pub content: Option<String>,
    /// The tool calls, each to a tool of the request, with a fresh unique id.
    pub tool_calls: Vec<ToolCall>,
}

/// Knobs of the format layer. The defaults are what agentgen ships with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatOptions {
    /// List tools most-relevant-first (lexical match with the latest user message) in the
    /// prompt, so a small model's lean toward the first tool listed helps instead of hurts.
    /// Costs prefix-cache reuse when the order changes between turns, and measured no better
    /// than off on the 0.5B model: off by default.
    pub order_tools_by_relevance: bool,
    /// Add a one-line-per-tool index (`- name: description`) to the system message of
    /// templates that render tools themselves, which takes away most of a small model's lean
    /// toward the first tool listed.
    pub tool_index: bool,
    /// Constrain `auto` answers: text, or a call that must be valid once started.
    pub constrain_auto: bool,
    /// In `auto`, an answer that starts with `{` is a call (small models often answer so).
    pub bare_json_calls: bool,
    /// In `auto`, an answer that starts with a ```` ```json ```` fence and `{` is a call.
    pub fenced_json_calls: bool,
    /// Constrained JSON is compact with `", "` / `": "` separators (no free whitespace, so a
    /// small model cannot loop on newlines).
    pub compact_json: bool,
    /// Add `additionalProperties: false` to schemas that list `properties` and say nothing,
    /// so constrained calls carry no invented keys (every output still validates).
    pub tighten_schemas: bool,
    /// Bytes of grammar text kept of the grammars already checked to compile (one cache for
    /// the process; the oldest go first, a larger grammar is checked every time).
    pub grammar_cache_bytes: usize,
}

impl Default for FormatOptions {
    fn default() -> Self {
        Self {
            order_tools_by_relevance: false,
            tool_index: true,
            constrain_auto: true,
            bare_json_calls: true,
            fenced_json_calls: true,
            compact_json: true,
            tighten_schemas: true,
            grammar_cache_bytes: DEFAULT_GRAMMAR_CACHE_BYTES,
        }
    }
}

/// A model's chat format: its template, its tool-call family and the format options.
#[derive(Debug)]
pub struct ChatFormat {
    template: template::Template,
    family: ToolFamily,
    uses_bos: bool,
    /// Whether the template itself renders `tools` (otherwise they are described in the
    /// system message and tool turns are written as plain messages).
    native_tools: bool,
    options: FormatOptions,
}

impl ChatFormat {
    /// Compiles the model's Jinja chat template (GGUF `tokenizer.chat_template`) with the
    /// model's BOS and EOS token texts (empty when the model has none).
    pub fn from_template(
        template: &str,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<Self, FormatError> {
        Ok(Self {
            template: template::Template::new(template, bos_token, eos_token)?,
            family: ToolFamily::detect(template),
            uses_bos: !bos_token.is_empty() && template.contains("bos_token"),
            native_tools: template.contains("tools"),
            options: FormatOptions::default(),
        })
    }

    /// The format of a GGUF model: its `tokenizer.chat_template` with its BOS and EOS texts.
    /// A model without a chat template is a [`FormatError::Template`] error.
    pub fn from_gguf_meta(meta: &GgufMeta) -> Result<Self, FormatError> {
        let template = meta.chat_template().ok_or_else(|| FormatError::Template {
            reason: "the model file has no tokenizer.chat_template".into(),
        })?;
        Self::from_template(
            template,
            meta.bos_token().unwrap_or(""),
            meta.eos_token().unwrap_or(""),
        )?
        .with_special_tokens(&meta.special_token_texts())
    }

    /// The same format knowing the model's special-token texts (control and user-defined
    /// tokens): tool names, descriptions, schemas, call ids and call arguments that contain
    /// one are then rendered as plain-text segments, never as control tokens.
    pub fn with_special_tokens(mut self, texts: &[String]) -> Result<Self, FormatError> {
        self.template.set_special_tokens(texts)?;
        Ok(self)
    }

    /// The same format with other options.
    pub fn with_options(mut self, options: FormatOptions) -> Self {
        self.options = options;
        self
    }

    /// The options in force.
    pub fn options(&self) -> &FormatOptions {
        &self.options
    }

    /// The tool-call family detected from the template.
    pub fn family(&self) -> ToolFamily {
        self.family
    }

    /// Whether the template writes the BOS token itself (then do not add another one when
    /// tokenizing the prompt).
    pub fn template_adds_bos(&self) -> bool {
        self.uses_bos
    }

    /// The tools shown to the model, in prompt order (none for `tool_choice: none`).
    pub fn prompt_tools<'a>(&self, req: &'a ChatRequest) -> Vec<&'a ToolSpec> {
        if req.effective_tool_choice() == ToolChoice::None {
            return Vec::new();
        }
        if self.options.order_tools_by_relevance {
            relevance::order(&req.tools, &req.messages)
        } else {
            req.tools.iter().collect()
        }
    }

    /// Each tool's lexical relevance to the latest user message (what
    /// [`FormatOptions::order_tools_by_relevance`] sorts by), in the request's order.
    pub fn tool_relevance(&self, req: &ChatRequest) -> Vec<(String, f64)> {
        let query = relevance::query_text(&req.messages).unwrap_or("");
        let scores = relevance::scores(&req.tools, query);
        req.tools.iter().map(|t| t.name().to_owned()).zip(scores).collect()
    }

    /// Renders the conversation with the model's template and `add_generation_prompt`,
    /// as template segments and message-text segments.
    pub fn render(&self, req: &ChatRequest) -> Result<Vec<PromptSegment>, FormatError> {
        check_tool_names(&req.tools)?;
        let tools = self.prompt_tools(req);
        let mistral = self.family == ToolFamily::Mistral;
        let id_map = move |id: &str| if mistral { nine_char_id(id) } else { id.to_owned() };
        // Templates without tools get them described in the system message by
        // `emulate_tools` instead; the index is for the template's own tool block.
        let indexed;
        let messages = if self.options.tool_index && self.native_tools && !tools.is_empty() {
            indexed = tool_index::with_tool_index(&req.messages, &tools);
            &indexed
        } else {
            &req.messages
        };
        if self.native_tools || (tools.is_empty() && !has_tool_turns(messages)) {
            return self.template.render(messages, &tools, &id_map);
        }
        let key = if self.family == ToolFamily::Llama3 { "parameters" } else { "arguments" };
        let messages = emulate_tools(messages, &tools, key);
        self.template.render(&messages, &[], &id_map)
    }

    /// The rendered prompt as one string (segments joined), for logs and tests.
    pub fn render_text(&self, req: &ChatRequest) -> Result<String, FormatError> {
        Ok(self.render(req)?.into_iter().map(|s| s.text).collect())
    }

    /// The constraint the answer must follow, or `None` when it is free.
    ///
    /// `required` / a named function: one or more calls (exactly one when
    /// `parallel_tool_calls` is false) to the allowed tools, arguments valid per schema.
    /// `auto` (with [`FormatOptions::constrain_auto`]): text, or calls that are valid once
    /// started. `response_format` `json_object` / `json_schema`: that JSON (a required tool
    /// call takes precedence). Errors: invalid tool or response schemas, an unknown named
    /// tool, or a required call without tools.
    pub fn constraint(&self, req: &ChatRequest) -> Result<Option<Constraint>, FormatError> {
        check_tool_names(&req.tools)?;
        let tools = self.prompt_tools(req);
        grammar::build(req, &tools, self.family, &self.options)
    }

    /// Splits the model's raw answer into text and calls to the request's tools
    /// (only the named tool for a named `tool_choice`, none for `none`).
    pub fn parse_output(&self, text: &str, req: &ChatRequest) -> ParsedOutput {
        let allowed: Vec<&str> = match req.effective_tool_choice() {
            ToolChoice::None => Vec::new(),
            ToolChoice::Function(name) => {
                req.tools.iter().map(|t| t.name()).filter(|n| *n == name).collect()
            }
            ToolChoice::Auto | ToolChoice::Required => req.tools.iter().map(|t| t.name()).collect(),
        };
        let ids = if self.family == ToolFamily::Mistral {
            parse::IdStyle::Nine
        } else {
            parse::IdStyle::OpenAi
        };
        parse::parse(text, &allowed, ids)
    }

    /// Checks a call's arguments against its tool's schema; the reasons when they fail.
    pub fn validate_call(&self, call: &ToolCall, req: &ChatRequest) -> Result<(), String> {
        let tool = req
            .tools
            .iter()
            .find(|t| t.function.name == call.function.name)
            .ok_or_else(|| format!("`{}` is not a tool of this request", call.function.name))?;
        let args = call.parsed_arguments().map_err(|e| format!("arguments are not JSON: {e}"))?;
        let validator =
            jsonschema::validator_for(&tool.function.parameters).map_err(|e| e.to_string())?;
        let errors: Vec<String> = validator.iter_errors(&args).map(|e| e.to_string()).collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// How many leading bytes of a partial answer can be streamed as text: everything before
    /// the first place where [`ChatFormat::parse_output`] could still find a tool call
    /// (`<tool_call>`, `[TOOL_CALLS]`, `<|python_tag|>`, a JSON object with a key, a
    /// ```` ```json ```` fence, or the start of one at the end). Always the whole text when
    /// the request allows no tool calls.
    pub fn stream_safe_len(&self, text: &str, req: &ChatRequest) -> usize {
        if req.tools.is_empty() || req.effective_tool_choice() == ToolChoice::None {
            return text.len();
        }
        parse::first_possible_call(text)
    }
}

fn has_tool_turns(messages: &[ChatMessage]) -> bool {
    messages.iter().any(|m| matches!(m, ChatMessage::Tool { .. }) || !m.tool_calls().is_empty())
}

/// For templates that know nothing of tools: the tools and the call format described in the
/// system message, calls written as JSON text, tool results as user messages.
fn emulate_tools(messages: &[ChatMessage], tools: &[&ToolSpec], key: &str) -> Vec<ChatMessage> {
    let mut out = Vec::with_capacity(messages.len() + 1);
    if !tools.is_empty() {
        let mut text = format!(
            "You can call these tools. To call one, answer with only a JSON object \
             {{\"name\": <tool name>, \"{key}\": <arguments object>}}.\nTools:"
        );
        for t in tools {
            text.push('\n');
            text.push_str(&serde_json::to_string(&t.function).unwrap_or_default());
        }
        match messages.first() {
            Some(ChatMessage::System { content, name }) => out.push(ChatMessage::System {
                content: format!("{content}\n\n{text}"),
                name: name.clone(),
            }),
            _ => out.push(ChatMessage::system(text)),
        }
    }
    let skip = usize::from(
        !out.is_empty() && matches!(messages.first(), Some(ChatMessage::System { .. })),
    );
    for m in &messages[skip..] {
        out.push(match m {
            ChatMessage::Assistant { content, tool_calls, name } if !tool_calls.is_empty() => {
                let mut text = content.clone().unwrap_or_default();
                for c in tool_calls {
                    let args = c.parsed_arguments().unwrap_or(Json::Null);
                    let call = serde_json::json!({"name": c.function.name, key: args});
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&call.to_string());
                }
                ChatMessage::Assistant {
                    content: Some(text),
                    tool_calls: Vec::new(),
                    name: name.clone(),
                }
            }
            ChatMessage::Tool { tool_call_id, content } => {
                let name = messages
                    .iter()
                    .flat_map(|m| m.tool_calls())
                    .find(|c| c.id == *tool_call_id)
                    .map_or("tool", |c| c.function.name.as_str());
                ChatMessage::user(format!("Result of {name}: {content}"))
            }
            other => other.clone(),
        });
    }
    out
}

/// Tool names must be non-empty and unique.
fn check_tool_names(tools: &[ToolSpec]) -> Result<(), FormatError> {
    for (i, t) in tools.iter().enumerate() {
        let name = t.name();
        if name.trim().is_empty() || name.chars().any(char::is_control) {
            return Err(FormatError::InvalidTools {
                reason: format!("tool {i} has an empty or unprintable name"),
            });
        }
        if tools[..i].iter().any(|o| o.name() == name) {
            return Err(FormatError::InvalidTools {
                reason: format!("two tools are named `{name}`"),
            });
        }
    }
    Ok(())
}

/// A stable 9-character alphanumeric id (Mistral templates accept no other), kept as is when
/// it already is one.
fn nine_char_id(id: &str) -> String {
    if id.len() == 9 && id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return id.to_owned();
    }
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (0..9)
        .map(|_| {
            let c = ALPHABET[(h % 62) as usize] as char;
            h /= 62;
            c
        })
        .collect()
}

/// The JSON schema of a tool's arguments, for callers that validate themselves.
pub fn tool_schema<'a>(req: &'a ChatRequest, name: &str) -> Option<&'a Json> {
    req.tools.iter().find(|t| t.function.name == name).map(|t| &t.function.parameters)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<ChatFormat>();
        shareable::<Constraint>();
    }

    #[test]
    fn families_are_detected() {
        assert_eq!(ToolFamily::detect("{{ '<tool_call>' }}"), ToolFamily::Hermes);
        assert_eq!(ToolFamily::detect("<|start_header_id|>{{ m }}<|eot_id|>"), ToolFamily::Llama3);
        assert_eq!(ToolFamily::detect("[AVAILABLE_TOOLS]{{ t }}[TOOL_CALLS]"), ToolFamily::Mistral);
        assert_eq!(ToolFamily::detect("{{ m.content }}"), ToolFamily::Generic);
    }

    #[test]
    fn nine_char_ids_are_stable() {
        let a = nine_char_id("call_abcdef123");
        assert_eq!(a.len(), 9);
        assert_eq!(a, nine_char_id("call_abcdef123"));
        assert_ne!(a, nine_char_id("call_abcdef124"));
        assert_eq!(nine_char_id("Ab3456789"), "Ab3456789");
    }

    #[test]
    fn stream_safe_len_holds_back_possible_calls() {
        let f = ChatFormat::from_template("{{ '<tool_call>' }}", "", "").unwrap();
        let tools = vec![ToolSpec::function("f", "d", json!({"type": "object"}))];
        let req = ChatRequest::new(vec![ChatMessage::user("x")]).with_tools(tools);
        assert_eq!(f.stream_safe_len("Hello there", &req), 11);
        assert_eq!(f.stream_safe_len("Hello <tool_", &req), 6);
        assert_eq!(f.stream_safe_len("Sure: {\"name\"", &req), 6);
        assert_eq!(f.stream_safe_len("fn main() {\n    x();\n}\n", &req), 23);
        assert_eq!(f.stream_safe_len("code:\n```rust\nlet v = [1];\n```", &req), 27);
        assert_eq!(f.stream_safe_len("code:\n```rust\nlet v = [1];\n```\nDone.", &req), 36);
        assert_eq!(f.stream_safe_len("Call:\n```js", &req), 6);
        assert_eq!(f.stream_safe_len("Call:\n```json\n", &req), 6);
        assert_eq!(f.stream_safe_len("Calls: [ {", &req), 7);
        let plain = ChatRequest::new(vec![ChatMessage::user("x")]);
        assert_eq!(f.stream_safe_len("a {", &plain), 3);
    }

    #[test]
    fn templates_without_tools_get_them_in_the_system_message() {
        let src = "{% for m in messages %}[{{ m.role }}]{{ m.content }}\n{% endfor %}[assistant]";
        let f = ChatFormat::from_template(src, "", "").unwrap();
        assert_eq!(f.family(), ToolFamily::Generic);
        let tools = vec![ToolSpec::function("add", "Adds", json!({"type": "object"}))];
        let req = ChatRequest::new(vec![
            ChatMessage::system("Be exact."),
            ChatMessage::user("1+1?"),
            ChatMessage::assistant_tool_calls(vec![ToolCall::new("c1", "add", r#"{"a": 1}"#)]),
            ChatMessage::tool("c1", "2"),
        ])
        .with_tools(tools);
        let text = f.render_text(&req).unwrap();
        assert!(text.starts_with("[system]Be exact.\n\nYou can call these tools."), "{text}");
        assert!(text.contains("{\"name\":\"add\",\"description\":\"Adds\""), "{text}");
        assert!(text.contains("[assistant]{\"name\":\"add\",\"arguments\":{\"a\":1}}\n"), "{text}");
        assert!(text.contains("[user]Result of add: 2\n"), "{text}");
        let plain = ChatRequest::new(vec![ChatMessage::user("hi")]);
        assert_eq!(f.render_text(&plain).unwrap(), "[user]hi\n[assistant]");
    }

    #[test]
    fn duplicate_tool_names_are_rejected() {
        let f = ChatFormat::from_template("x", "", "").unwrap();
        let t = ToolSpec::function("f", "d", json!({"type": "object"}));
        let req = ChatRequest::new(vec![ChatMessage::user("x")]).with_tools(vec![t.clone(), t]);
        assert!(matches!(f.render(&req), Err(FormatError::InvalidTools { .. })));
        assert!(matches!(f.constraint(&req), Err(FormatError::InvalidTools { .. })));
    }
}
