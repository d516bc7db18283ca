//! Output constraints as llguidance Lark grammars: JSON answers, required tool calls, and the
//! `auto` grammar that lets the model answer in text or start a call that must then be valid.
//!
//! Every call alternative is `{"name": "<tool>", "arguments": <%json schema>}` (the key is
//! `parameters` for Llama 3), one alternative per tool, so a call can only name a provided
//! tool and its arguments always validate. JSON inside calls is compact with `", "` and
//! `": "` separators (as the templates' own `tojson` writes it) unless
//! [`FormatOptions::compact_json`] is off.
//!
//! The `auto` grammar is `start: calls | bare | fenced | TEXT | pre_calls`:
//! - `calls`: the family's own call format (`<tool_call>…</tool_call>` for Hermes/Qwen);
//! - `bare`, `fenced`: a call as a bare JSON object or in a ```` ```json ```` fence, the way
//!   small models often answer ([`FormatOptions::bare_json_calls`],
//!   [`FormatOptions::fenced_json_calls`]);
//! - `TEXT`: any text that does not begin like one of those (`<tool_call>`, `{`, or a fence
//!   followed by `{`) and, for Hermes, never contains `<tool_call>`;
//! - `pre_calls` (Hermes): prose that ends, lazily, at its first `<tool_call>`, then calls.
//!
//! So the model is free to answer in prose, but once it opens a call the rest must be a
//! valid call. After a complete answer the grammar accepts, so end-of-generation tokens are
//! allowed; with nothing else possible (one call, no parallel calls) the matcher stops.

use std::sync::{Mutex, OnceLock};

use agentgen_core::{ChatRequest, ResponseFormat, ToolChoice, ToolSpec};
use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{ApproximateTokEnv, TokEnv};
use llguidance::ParserFactory;
use serde_json::{json, Value as Json};

use super::grammar_cache::GrammarCache;
use super::{Constraint, ConstraintKind, FormatError, FormatOptions, ToolFamily};

/// Builds the constraint for `req`, or `None` when the output is free.
pub(crate) fn build(
    req: &ChatRequest,
    tools: &[&ToolSpec],
    family: ToolFamily,
    opts: &FormatOptions,
) -> Result<Option<Constraint>, FormatError> {
    let response_schema = match &req.response_format {
        None | Some(ResponseFormat::Text) => None,
        Some(ResponseFormat::JsonObject) => Some(json!({"type": "object"})),
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            check_response_schema(&json_schema.schema, opts.grammar_cache_bytes)?;
            Some(json_schema.schema.clone())
        }
    };
    let choice = req.effective_tool_choice();
    let callable: Vec<&ToolSpec> = match &choice {
        ToolChoice::None => Vec::new(),
        ToolChoice::Auto => tools.to_vec(),
        ToolChoice::Required if tools.is_empty() => return Err(FormatError::NoTools),
        ToolChoice::Required => tools.to_vec(),
        ToolChoice::Function(name) => {
            if tools.is_empty() {
                return Err(FormatError::NoTools);
            }
            let tool = tools
                .iter()
                .find(|t| t.function.name == *name)
                .ok_or_else(|| FormatError::UnknownTool { name: name.clone() })?;
            vec![*tool]
        }
    };
    for tool in &callable {
        check_tool_schema(tool, opts.grammar_cache_bytes)?;
    }
    let parallel = req.parallel_tool_calls.unwrap_or(true) && family != ToolFamily::Llama3;
    let g = Lark { family, opts, parallel };
    let (lark, kind, description) = match (&choice, response_schema) {
        (ToolChoice::Required | ToolChoice::Function(_), _) => {
            let names: Vec<&str> = callable.iter().map(|t| t.function.name.as_str()).collect();
            (
                g.required(&callable),
                ConstraintKind::ToolCallRequired,
                format!("a call to {}", names.join(" or ")),
            )
        }
        (ToolChoice::Auto, schema) if !callable.is_empty() && opts.constrain_auto => {
            let desc =
                if schema.is_some() { "JSON answer or tool calls" } else { "text or tool calls" };
            (g.auto(&callable, schema.as_ref()), ConstraintKind::ToolCallAuto, desc.to_owned())
        }
        (_, Some(schema)) => {
            let desc = if schema == json!({"type": "object"}) {
                "any JSON object"
            } else {
                "JSON valid against the response schema"
            };
            (
                format!("start: %json {}\n", g.schema(&schema)),
                ConstraintKind::ResponseJson,
                desc.to_owned(),
            )
        }
        (_, None) => return Ok(None),
    };
    let grammar = TopLevelGrammar::from_lark(lark.clone());
    Ok(Some(Constraint { grammar, lark, kind, description }))
}

struct Lark<'a> {
    family: ToolFamily,
    opts: &'a FormatOptions,
    parallel: bool,
}

impl Lark<'_> {
    /// The schema as inline `%json` text, tightened and with the JSON layout options.
    fn schema(&self, schema: &Json) -> String {
        let mut s = schema.clone();
        if self.opts.tighten_schemas {
            tighten(&mut s, 0);
        }
        if let Json::Object(map) = &mut s {
            if self.opts.compact_json && !map.contains_key("x-guidance") {
                map.insert(
                    "x-guidance".into(),
                    json!({"whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "}),
                );
            }
        }
        s.to_string()
    }

    /// Rules `fn` (one alternative per tool) and `arg_i` for the tools.
    fn functions(&self, tools: &[&ToolSpec]) -> String {
        let key = if self.family == ToolFamily::Llama3 { "parameters" } else { "arguments" };
        let mut out = String::from("fn: ");
        for i in 0..tools.len() {
            if i > 0 {
                out.push_str(" | ");
            }
            out.push_str(&format!("fn_{i}"));
        }
        out.push('\n');
        for (i, tool) in tools.iter().enumerate() {
            let name = serde_json::to_string(&tool.function.name).unwrap_or_default();
            let head = format!("{{\"name\": {name}, \"{key}\": ");
            out.push_str(&format!(
                "fn_{i}: {} args_{i} \"}}\"\nargs_{i}: %json {}\n",
                lark_str(&head),
                self.schema(&tool.function.parameters)
            ));
        }
        out
    }

    /// One or more calls (exactly one without parallel calls) in the family's own format.
    fn calls_rule(&self) -> &'static str {
        match (self.family, self.parallel) {
            (ToolFamily::Hermes, true) => {
                "calls: tagged more\nmore: (\"\\n\" tagged)* \"\\n\"?\n\
                 tagged: \"<tool_call>\" tagged_body\ntagged_body: \"\\n\" fn \"\\n</tool_call>\"\n"
            }
            (ToolFamily::Hermes, false) => {
                "calls: tagged more\nmore: \"\\n\"?\n\
                 tagged: \"<tool_call>\" tagged_body\ntagged_body: \"\\n\" fn \"\\n</tool_call>\"\n"
            }
            (ToolFamily::Mistral, true) => "calls: \"[TOOL_CALLS][\" fn (\", \" fn)* \"]\"\n",
            (ToolFamily::Mistral, false) => "calls: \"[TOOL_CALLS][\" fn \"]\"\n",
            (ToolFamily::Llama3 | ToolFamily::Generic, _) => "calls: fn\n",
        }
    }

    fn required(&self, tools: &[&ToolSpec]) -> String {
        format!("start: calls\n{}{}", self.calls_rule(), self.functions(tools))
    }

    /// `start: TEXT | calls | fenced | bare` (or a JSON answer instead of `TEXT` when a
    /// response format asks for JSON).
    fn auto(&self, tools: &[&ToolSpec], response: Option<&Json>) -> String {
        let mut alts = vec!["calls"];
        // Prefixes that commit the model to a call; text may not start with them.
        let mut openers: Vec<&str> = Vec::new();
        match self.family {
            ToolFamily::Hermes => openers.push("<tool_call>"),
            ToolFamily::Mistral => openers.push(r"\[TOOL_CALLS\]"),
            ToolFamily::Llama3 | ToolFamily::Generic => {}
        }
        let bare_is_calls =
            self.family.is_bare_json() || (self.opts.bare_json_calls && response.is_none());
        if bare_is_calls {
            if !self.family.is_bare_json() {
                alts.push("bare");
            }
            openers.push(r"\{");
        }
        if self.opts.fenced_json_calls {
            alts.push("fenced");
            openers.push(r"```(json)?\n\{");
        }
        let mut lark = String::new();
        match response {
            Some(schema) => {
                alts.push("answer");
                lark.push_str(&format!("answer: %json {}\n", self.schema(schema)));
            }
            None => {
                alts.push("TEXT");
                let exclude = openers.join("|");
                if self.family == ToolFamily::Hermes {
                    // Prose may lead into tagged calls: it ends (lazily) at the first
                    // `<tool_call>`, and plain text may then never contain one.
                    alts.push("pre_calls");
                    lark.push_str(&format!(
                        "TEXT: /(?s:.+)/ & ~/(?s:({exclude}).*)/ & ~/(?s:.*<tool_call>.*)/\n\
                         pre_calls: pre tagged_body more\npre[lazy]: /[^<{{`](?s:.*)<tool_call>/\n"
                    ));
                } else {
                    lark.push_str(&format!("TEXT: /(?s:.+)/ & ~/(?s:({exclude}).*)/\n"));
                }
            }
        }
        if alts.contains(&"bare") {
            lark.push_str("bare: fn \"\\n\"?\n");
        }
        if alts.contains(&"fenced") {
            lark.push_str("fenced: FENCE fn \"\\n```\" \"\\n\"?\nFENCE: /```(json)?\\n/\n");
        }
        format!("start: {}\n{lark}{}{}", alts.join(" | "), self.calls_rule(), self.functions(tools))
    }
}

impl ToolFamily {
    /// Whether the family's own call format is a bare JSON object.
    fn is_bare_json(self) -> bool {
        matches!(self, Self::Llama3 | Self::Generic)
    }
}

/// A Lark string literal (Lark strings use JSON string syntax).
fn lark_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// Forbids properties a schema does not list (`additionalProperties: false` where the schema
/// lists `properties` and says nothing): every output still validates against the original.
fn tighten(schema: &mut Json, depth: usize) {
    if depth > 32 {
        return;
    }
    let Json::Object(map) = schema else { return };
    if map.contains_key("properties")
        && !map.contains_key("additionalProperties")
        && !map.contains_key("patternProperties")
        && !map.contains_key("allOf")
        && !map.contains_key("$ref")
    {
        map.insert("additionalProperties".into(), Json::Bool(false));
    }
    for (key, child) in map.iter_mut() {
        match key.as_str() {
            "properties" | "$defs" | "definitions" => {
                if let Json::Object(children) = child {
                    for c in children.values_mut() {
                        tighten(c, depth + 1);
                    }
                }
            }
            "items" | "additionalProperties" => tighten(child, depth + 1),
            "anyOf" | "oneOf" | "prefixItems" => {
                if let Json::Array(children) = child {
                    for c in children {
                        tighten(c, depth + 1);
                    }
                }
            }
            _ => {}
        }
    }
}

/// A byte-level tokenizer, enough to check that llguidance compiles a schema.
fn check_factory() -> &'static ParserFactory {
    static FACTORY: OnceLock<ParserFactory> = OnceLock::new();
    FACTORY.get_or_init(|| {
        let env: TokEnv = ApproximateTokEnv::single_byte_env();
        let mut f = ParserFactory::new_simple(&env).expect("a byte tokenizer always builds");
        f.quiet();
        f
    })
}

/// Compiles `lark` with llguidance against a byte tokenizer; the error text when it fails.
/// Grammars that compiled before are remembered, in at most `cache_bytes` bytes.
pub(crate) fn compile_check(lark: &str, cache_bytes: usize) -> Result<(), String> {
    static GOOD: OnceLock<Mutex<GrammarCache>> = OnceLock::new();
    let good = GOOD.get_or_init(Default::default);
    if good.lock().map(|g| g.contains(lark)).unwrap_or(false) {
        return Ok(());
    }
    check_factory()
        .create_parser(TopLevelGrammar::from_lark(lark.to_owned()))
        .map_err(|e| e.to_string())?;
    if let Ok(mut g) = good.lock() {
        g.insert(lark, cache_bytes);
    }
    Ok(())
}

/// A tool's parameters must be a JSON schema for an object that both jsonschema and
/// llguidance accept.
pub(crate) fn check_tool_schema(tool: &ToolSpec, cache_bytes: usize) -> Result<(), FormatError> {
    let name = &tool.function.name;
    let bad = |reason: String| FormatError::InvalidToolSchema { tool: name.clone(), reason };
    let schema = &tool.function.parameters;
    let Json::Object(map) = schema else {
        return Err(bad("parameters must be a JSON object schema".into()));
    };
    match map.get("type") {
        None => {}
        Some(Json::String(t)) if t == "object" => {}
        Some(Json::Array(ts)) if ts.iter().any(|t| t == "object") => {}
        Some(other) => {
            return Err(bad(format!("parameters must describe an object, not type {other}")))
        }
    }
    jsonschema::validator_for(schema).map_err(|e| bad(e.to_string()))?;
    compile_check(&format!("start: %json {schema}\n"), cache_bytes)
        .map_err(|e| bad(format!("unsupported schema: {e}")))
}

fn check_response_schema(schema: &Json, cache_bytes: usize) -> Result<(), FormatError> {
    let bad = |reason: String| FormatError::InvalidResponseSchema { reason };
    if !schema.is_object() && !schema.is_boolean() {
        return Err(bad("the schema must be a JSON object".into()));
    }
    jsonschema::validator_for(schema).map_err(|e| bad(e.to_string()))?;
    compile_check(&format!("start: %json {schema}\n"), cache_bytes)
        .map_err(|e| bad(format!("unsupported schema: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::DEFAULT_GRAMMAR_CACHE_BYTES;
    use agentgen_core::ChatMessage;
    use llguidance::Matcher;

    fn tools() -> Vec<ToolSpec> {
        vec![
            ToolSpec::function(
                "add",
                "Adds two integers",
                json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                       "required": ["a", "b"]}),
            ),
            ToolSpec::function(
                "now",
                "The current time",
                json!({"type": "object", "properties": {}}),
            ),
        ]
    }

    /// Whether the grammar takes `text` byte by byte and then allows the end.
    fn accepts(c: &Constraint, text: &str) -> bool {
        let f = check_factory();
        let mut m = Matcher::new(f.create_parser(c.grammar.clone()));
        let trie = f.tok_env().tok_trie();
        for t in trie.greedy_tokenize(text.as_bytes()) {
            match m.compute_mask_or_eos() {
                Ok(mask) if mask.is_allowed(t) => m.consume_token(t).unwrap(),
                _ => return false,
            }
        }
        m.compute_mask_or_eos().map(|mask| mask.is_allowed(trie.eos_token())).unwrap_or(false)
    }

    fn build_for(
        family: ToolFamily,
        choice: ToolChoice,
        response: Option<ResponseFormat>,
    ) -> Constraint {
        let tools = tools();
        let refs: Vec<&ToolSpec> = tools.iter().collect();
        let mut req = ChatRequest::new(vec![ChatMessage::user("x")]).with_tools(tools.clone());
        req.tool_choice = Some(choice);
        req.response_format = response;
        build(&req, &refs, family, &FormatOptions::default()).unwrap().expect("a constraint")
    }

    #[test]
    fn every_family_and_choice_compiles() {
        let families =
            [ToolFamily::Hermes, ToolFamily::Llama3, ToolFamily::Mistral, ToolFamily::Generic];
        let choices = [ToolChoice::Auto, ToolChoice::Required, ToolChoice::Function("now".into())];
        for family in families {
            for choice in choices.clone() {
                for response in [None, Some(ResponseFormat::JsonObject)] {
                    let c = build_for(family, choice.clone(), response.clone());
                    compile_check(&c.lark, DEFAULT_GRAMMAR_CACHE_BYTES)
                        .unwrap_or_else(|e| panic!("{family:?} {choice:?}: {e}\n{}", c.lark));
                }
            }
        }
    }

    #[test]
    fn llama3_uses_parameters_and_one_call() {
        let c = build_for(ToolFamily::Llama3, ToolChoice::Required, None);
        assert!(accepts(&c, r#"{"name": "add", "parameters": {"a": 1, "b": 2}}"#), "{}", c.lark);
        assert!(!accepts(&c, r#"{"name": "add", "arguments": {"a": 1, "b": 2}}"#));
        let auto = build_for(ToolFamily::Llama3, ToolChoice::Auto, None);
        assert!(accepts(&auto, "It is noon."));
        assert!(accepts(&auto, r#"{"name": "now", "parameters": {}}"#));
        assert!(!accepts(&auto, r#"{"name": "later", "parameters": {}}"#));
    }

    #[test]
    fn mistral_calls_are_a_tagged_array() {
        let c = build_for(ToolFamily::Mistral, ToolChoice::Required, None);
        let two = r#"[TOOL_CALLS][{"name": "add", "arguments": {"a": 1, "b": 2}}, {"name": "now", "arguments": {}}]"#;
        assert!(accepts(&c, two), "{}", c.lark);
        assert!(!accepts(&c, r#"[TOOL_CALLS][{"name": "add", "arguments": {"a": "1", "b": 2}}]"#));
    }

    #[test]
    fn auto_with_a_json_response_format_takes_json_or_calls() {
        let c = build_for(ToolFamily::Hermes, ToolChoice::Auto, Some(ResponseFormat::JsonObject));
        assert!(accepts(&c, r#"{"result": 3}"#), "{}", c.lark);
        assert!(accepts(&c, "<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>"));
        assert!(!accepts(&c, "three"));
    }

    #[test]
    fn required_wins_over_a_response_format() {
        let c =
            build_for(ToolFamily::Generic, ToolChoice::Required, Some(ResponseFormat::JsonObject));
        assert_eq!(c.kind, ConstraintKind::ToolCallRequired);
        assert!(accepts(&c, r#"{"name": "now", "arguments": {}}"#));
        assert!(!accepts(&c, r#"{"result": 3}"#));
    }

    #[test]
    fn tighten_closes_listed_objects_only() {
        let mut s = json!({"type": "object", "properties": {"a": {"type": "object", "properties": {}}},
                           "required": ["a"]});
        tighten(&mut s, 0);
        assert_eq!(s["additionalProperties"], json!(false));
        assert_eq!(s["properties"]["a"]["additionalProperties"], json!(false));
        let mut open = json!({"type": "object", "additionalProperties": {"type": "string"}});
        tighten(&mut open, 0);
        assert_eq!(open["additionalProperties"], json!({"type": "string"}));
    }

    #[test]
    fn bad_tool_schemas_are_reported_with_the_tool() {
        for params in [
            json!("object"),
            json!({"type": "string"}),
            json!({"type": "object", "properties": {"a": {"type": "nope"}}}),
        ] {
            let tool = ToolSpec::function("t", "d", params.clone());
            match check_tool_schema(&tool, DEFAULT_GRAMMAR_CACHE_BYTES) {
                Err(FormatError::InvalidToolSchema { tool, .. }) => assert_eq!(tool, "t"),
                other => panic!("{params}: {other:?}"),
            }
        }
        assert!(check_tool_schema(
            &ToolSpec::function("t", "d", json!({"type": "object"})),
            DEFAULT_GRAMMAR_CACHE_BYTES
        )
        .is_ok());
    }

    #[test]
    fn compile_check_rejects_broken_lark() {
        assert!(compile_check("start: \"a\"\n", DEFAULT_GRAMMAR_CACHE_BYTES).is_ok());
        assert!(compile_check("start: nothing_here\n", DEFAULT_GRAMMAR_CACHE_BYTES).is_err());
    }
}
