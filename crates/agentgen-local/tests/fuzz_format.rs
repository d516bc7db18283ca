//! Fuzz targets of the format layer, on the real model's chat template: chat-template
//! rendering, JSON-schema-to-grammar, tool-call parsing, and the GGUF metadata reader. Whatever
//! the request, tool data or model output, each returns a value or a typed error and never
//! panics; parsed calls only name the request's tools; the streamable prefix is a prefix.
//! Corpus: `tests/__fuzz__/<target>/corpus`. CI runs a few hundred cases each;
//! `cargo xtask fuzz` runs 10^6.

use std::io::Read;
use std::sync::OnceLock;

use agentgen_core::fuzz_input::{fuzz_cases, FuzzBytes};
use agentgen_core::{ChatMessage, ChatRequest, ToolCall, ToolChoice, ToolSpec};
use agentgen_local::format::{read_gguf_metadata, ChatFormat};
use serde_json::Value;

/// Text that matters to templates and the tool-call parser.
const TEXT: &[&str] = &[
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<tool_call>",
    "</tool_call>",
    "\n",
    " ",
    "{",
    "}",
    "\"",
    "name",
    "arguments",
    ":",
    ",",
    "get",
    "{\"name\": \"get\", \"arguments\": {",
    "{{",
    "}}",
    "{%",
    "%}",
    "\\",
    "é",
    "\u{0}",
    "system",
    "user",
    "assistant",
    "```json",
];

/// Schemas the tool parameters start from (mutated, then used if still JSON).
const SCHEMAS: &[&str] = &[
    r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#,
    r#"{"type":"object","properties":{"n":{"type":"integer","minimum":0,"maximum":9},"e":{"enum":["a","b"]}}}"#,
    r#"{"type":"object","properties":{"l":{"type":"array","items":{"type":"number"},"maxItems":3},"o":{"anyOf":[{"type":"null"},{"type":"boolean"}]}}}"#,
    r#"{"type":"object","properties":{"s":{"type":"string","pattern":"^[a-z]+$","maxLength":5}},"additionalProperties":false}"#,
];

const SCHEMA_BITS: &[&str] =
    &["{", "}", "\"type\"", "\"object\"", "\"string\"", "\"$ref\"", "\"#\"", "\"items\"", ":", ","];

fn format() -> Option<&'static ChatFormat> {
    static FORMAT: OnceLock<Option<ChatFormat>> = OnceLock::new();
    FORMAT
        .get_or_init(|| {
            let path = agentgen_models::cache::model_for_tests()?;
            let meta = read_gguf_metadata(path).expect("the test GGUF reads");
            let specials: Vec<String> = TEXT[..5].iter().map(|s| (*s).to_owned()).collect();
            Some(
                ChatFormat::from_gguf_meta(&meta)
                    .and_then(|f| f.with_special_tokens(&specials))
                    .expect("the real template compiles"),
            )
        })
        .as_ref()
}

fn request(input: &mut FuzzBytes<'_>) -> ChatRequest {
    let mut tools = Vec::new();
    for i in 0..input.byte() % 3 {
        let base = input.pick(SCHEMAS).copied().unwrap_or(SCHEMAS[0]);
        let mutated = input.mutate(base.as_bytes(), SCHEMA_BITS, 3);
        let schema = serde_json::from_slice::<Value>(&mutated)
            .unwrap_or_else(|_| serde_json::from_str(base).expect("base schemas are JSON"));
        let name = format!("t{i}{}", input.text(&["_", "get", "<|im_end|>", "x"], 2));
        tools.push(ToolSpec::function(name, input.text(TEXT, 6), schema));
    }
    let mut messages = Vec::new();
    for _ in 0..1 + input.byte() % 4 {
        let text = input.text(TEXT, 10);
        let message = match input.byte() % 5 {
            0 => ChatMessage::system(text),
            1 | 2 => ChatMessage::user(text),
            3 => ChatMessage::assistant(text),
            _ => {
                let name = tools.first().map_or("get".to_owned(), |t: &ToolSpec| t.name().into());
                let call = ToolCall::new("call_1", name, input.text(TEXT, 6));
                messages.push(ChatMessage::assistant_tool_calls(vec![call]));
                ChatMessage::tool("call_1", text)
            }
        };
        messages.push(message);
    }
    let choice = match input.byte() % 4 {
        0 => ToolChoice::None,
        1 => ToolChoice::Required,
        2 => ToolChoice::Function(tools.first().map_or("nope".into(), |t| t.name().into())),
        _ => ToolChoice::Auto,
    };
    let req = ChatRequest::new(messages).with_tools(tools);
    if req.tools.is_empty() {
        req
    } else {
        req.with_tool_choice(choice)
    }
}

fn check_format(data: &[u8]) {
    let Some(format) = format() else { return };
    let mut input = FuzzBytes::new(data);
    let req = request(&mut input);
    let _ = format.render(&req);
    let _ = format.constraint(&req);
    let output = input.text(TEXT, 24);
    let parsed = format.parse_output(&output, &req);
    for call in &parsed.tool_calls {
        assert!(
            req.tools.iter().any(|t| t.name() == call.function.name),
            "parsed a call to `{}`, which is not a tool of the request",
            call.function.name
        );
    }
    let safe = format.stream_safe_len(&output, &req);
    assert!(safe <= output.len() && output.is_char_boundary(safe), "bad stream prefix {safe}");
}

#[test]
fn fuzz_chat_template_grammar_and_tool_calls() {
    bolero::check!().with_iterations(fuzz_cases(300)).for_each(check_format);
}

/// The first 16 KiB of the real GGUF: its header and the start of its metadata.
fn gguf_head() -> Option<&'static [u8]> {
    static HEAD: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    HEAD.get_or_init(|| {
        let path = agentgen_models::cache::model_for_tests()?;
        let mut head = Vec::new();
        std::fs::File::open(path).and_then(|f| f.take(16 * 1024).read_to_end(&mut head)).ok()?;
        Some(head)
    })
    .as_deref()
}

fn check_gguf(data: &[u8]) {
    let Some(head) = gguf_head() else { return };
    let mut input = FuzzBytes::new(data);
    let bytes = match input.byte() % 2 {
        0 => input.mutate(head, &["\u{0}", "\u{ff}\u{ff}\u{ff}\u{ff}", "GGUF"], 6),
        _ => [b"GGUF".as_slice(), input.rest()].concat(),
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("m.gguf");
    std::fs::write(&path, &bytes).expect("write");
    // Truncated or corrupt: a typed error, never a panic or a huge allocation.
    let _ = read_gguf_metadata(&path);
}

#[test]
fn fuzz_gguf_metadata_reader() {
    bolero::check!().with_iterations(fuzz_cases(300)).for_each(check_gguf);
}
