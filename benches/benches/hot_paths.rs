//! criterion benches of agentgen's hot pure-Rust paths: chat-template rendering, SSE parsing,
//! tool-call parsing, JSON-schema grammar compilation and request JSON decoding.
//!
//! The chat template is the real one from the default model's GGUF when it is on disk, else the
//! same template kept in `benches/fixtures/`.

use std::hint::black_box;

use agentgen_core::{ChatMessage, ChatRequest, ResponseFormat, ToolCall, ToolChoice, ToolSpec};
use agentgen_groq::sse::SseParser;
use agentgen_local::format::{read_gguf_metadata, ChatFormat};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::json;

const FIXTURE_TEMPLATE: &str = include_str!("../fixtures/qwen2.5-coder-chat-template.jinja");

/// The model's template, BOS and EOS: from the GGUF when present, else the fixture.
fn template() -> (String, String, String, &'static str) {
    if let Ok(path) = agentgen_models::cache::test_model_path() {
        if let Ok(meta) = read_gguf_metadata(&path) {
            if let Some(t) = meta.chat_template() {
                let bos = meta.bos_token().unwrap_or_default().to_owned();
                let eos = meta.eos_token().unwrap_or_default().to_owned();
                return (t.to_owned(), bos, eos, "GGUF");
            }
        }
    }
    (FIXTURE_TEMPLATE.to_owned(), String::new(), "<|im_end|>".to_owned(), "fixture")
}

fn tools() -> Vec<ToolSpec> {
    let place = json!({"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}}, "required": ["city"]});
    vec![
        ToolSpec::function("get_weather", "Current weather in a city.", place),
        ToolSpec::function(
            "web_search",
            "Search the web.",
            json!({"type": "object", "properties": {"query": {"type": "string"}, "max_results": {"type": "integer", "minimum": 1, "maximum": 10}}, "required": ["query"]}),
        ),
        ToolSpec::function(
            "calculate",
            "Evaluate arithmetic.",
            json!({"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}),
        ),
    ]
}

fn conversation(turns: usize) -> Vec<ChatMessage> {
    let mut messages =
        vec![ChatMessage::system("You are a helpful assistant in a team of three agents.")];
    for i in 0..turns {
        messages.push(ChatMessage::user(format!(
            "Step {i}: what should we check next about the river mills?"
        )));
        messages.push(ChatMessage::assistant(format!(
            "For step {i} we should count the stones and note the birds near the old road."
        )));
    }
    messages.push(ChatMessage::user("Summarise the plan."));
    messages
}

fn tool_conversation() -> Vec<ChatMessage> {
    let call = ToolCall::new("call_1", "get_weather", r#"{"city": "Istanbul"}"#);
    vec![
        ChatMessage::system("You are a helpful assistant."),
        ChatMessage::user("What's the weather in Istanbul?"),
        ChatMessage::assistant_tool_calls(vec![call]),
        ChatMessage::tool("call_1", r#"{"temp_c": 21, "sky": "clear"}"#),
    ]
}

fn bench_template(c: &mut Criterion) {
    let (tpl, bos, eos, source) = template();
    let format = ChatFormat::from_template(&tpl, &bos, &eos).expect("the chat template compiles");
    let mut g = c.benchmark_group(format!("chat_template_{source}"));
    let plain = ChatRequest::new(conversation(10));
    g.bench_function("render_21_messages", |b| {
        b.iter(|| format.render(black_box(&plain)).unwrap())
    });
    let with_tools = ChatRequest::new(tool_conversation()).with_tools(tools());
    g.bench_function("render_tools_and_result", |b| {
        b.iter(|| format.render(black_box(&with_tools)).unwrap())
    });
    g.finish();
}

fn bench_sse(c: &mut Criterion) {
    let mut body = String::new();
    for i in 0..200 {
        let chunk = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": format!("token{i} ")}, "finish_reason": null}]});
        body.push_str(&format!("data: {chunk}\n\n"));
    }
    body.push_str("data: [DONE]\n\n");
    let bytes = body.into_bytes();
    let mut g = c.benchmark_group("sse");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("parse_200_chunks_in_1KiB_pieces", |b| {
        b.iter(|| {
            let mut parser = SseParser::new();
            let mut events = 0;
            for piece in bytes.chunks(1024) {
                events += parser.feed(black_box(piece)).unwrap().len();
            }
            assert_eq!(events, 201);
            events
        })
    });
    g.finish();
}

fn bench_tool_parse(c: &mut Criterion) {
    let (tpl, bos, eos, _) = template();
    let format = ChatFormat::from_template(&tpl, &bos, &eos).expect("the chat template compiles");
    let req = ChatRequest::new(vec![ChatMessage::user("weather?")]).with_tools(tools());
    let cases = [
        ("hermes_tags", "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Istanbul\", \"unit\": \"c\"}}\n</tool_call>"),
        ("bare_json", "{\"name\": \"web_search\", \"arguments\": {\"query\": \"rust async runtimes\", \"max_results\": 3}}"),
        ("fenced_json", "```json\n{\"name\": \"calculate\", \"arguments\": {\"expression\": \"(24 / 3) * 1.2\"}}\n```"),
        ("plain_text", "The weather in Istanbul is clear and about 21 degrees, a fine day for a walk by the water."),
    ];
    let mut g = c.benchmark_group("tool_call_parse");
    for (name, text) in cases {
        g.bench_function(name, |b| b.iter(|| format.parse_output(black_box(text), &req)));
    }
    g.finish();
}

fn bench_grammar(c: &mut Criterion) {
    let (tpl, bos, eos, _) = template();
    let format = ChatFormat::from_template(&tpl, &bos, &eos).expect("the chat template compiles");
    let required = ChatRequest::new(vec![ChatMessage::user("weather in Oslo?")])
        .with_tools(tools())
        .with_tool_choice(ToolChoice::Required);
    let schema = ChatRequest::new(vec![ChatMessage::user("a person")]).with_response_format(ResponseFormat::json_schema(
        "person",
        json!({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5}}, "required": ["name", "age"]}),
    ));
    let tok_env = toktrie::ApproximateTokEnv::single_byte_env();
    let factory = llguidance::ParserFactory::new_simple(&tok_env).expect("llguidance factory");
    let mut g = c.benchmark_group("json_schema_grammar");
    for (name, req) in
        [("required_tool_call_3_tools", &required), ("response_json_schema", &schema)]
    {
        g.bench_function(format!("{name}/build"), |b| {
            b.iter(|| format.constraint(black_box(req)).unwrap())
        });
        let grammar = format.constraint(req).unwrap().expect("a constraint").grammar;
        g.bench_function(format!("{name}/compile"), |b| {
            b.iter_batched(
                || grammar.clone(),
                |gr| factory.create_parser(gr).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn bench_request_json(c: &mut Criterion) {
    let req = ChatRequest::new(conversation(10))
        .with_tools(tools())
        .with_temperature(0.2)
        .with_max_tokens(256);
    let body = serde_json::to_string(&req).unwrap();
    let mut g = c.benchmark_group("request_json");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("decode_21_messages_3_tools", |b| {
        b.iter(|| serde_json::from_str::<ChatRequest>(black_box(&body)).unwrap())
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_template,
    bench_sse,
    bench_tool_parse,
    bench_grammar,
    bench_request_json
);
criterion_main!(benches);
