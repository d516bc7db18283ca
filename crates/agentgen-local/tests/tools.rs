//! Real-model tests of tool calling and structured output on the default GGUF
//! (Qwen2.5-Coder-0.5B-Instruct Q4_K_M): `auto` turns plain tool-needing requests into valid
//! calls, `required` and a named tool always give a valid call, `json_schema` output
//! validates and `json_object` output parses.
//!
//! Every call and every JSON answer is checked with an independent JSON-schema validator
//! against the schema the request gave, not with the engine's own checks.
//!
//! The model comes from `$AGENTGEN_TEST_MODEL` or the model cache; a missing model fails
//! these tests unless `AGENTGEN_SKIP_MODEL_TESTS=1`. All tests share one engine (loaded once
//! per test binary), which batches their concurrent requests.
//!
//! `tool_selection_accuracy_figures` (ignored) prints how often the *right* tool is chosen,
//! with the format's tool index on and off and the tools listed in two orders:
//!
//! ```text
//! cargo test -p agentgen-local --test tools -- --ignored --nocapture
//! ```

use std::path::PathBuf;
use std::sync::OnceLock;

use agentgen_core::{
    BackendError, ChatBackend, ChatMessage, ChatRequest, ChatResponse, FinishReason,
    ResponseFormat, ToolCall, ToolChoice, ToolSpec,
};
use agentgen_local::format::{read_gguf_metadata, ChatFormat, FormatOptions};
use agentgen_local::{GenerateOptions, LocalBackend, LocalConfig};
use futures::future::join_all;
use serde_json::{json, Value as Json};

const SEED: u64 = 7;
const MAX_TOKENS: u32 = 96;

fn model_path() -> Option<PathBuf> {
    agentgen_models::cache::model_for_tests()
}

/// The engine every test of this binary shares, loaded once.
fn shared() -> Option<LocalBackend> {
    static SHARED: OnceLock<LocalBackend> = OnceLock::new();
    let path = model_path()?;
    Some(
        SHARED
            .get_or_init(|| {
                LocalBackend::load(LocalConfig::new(path)).expect("the test model loads")
            })
            .clone(),
    )
}

fn get_weather() -> ToolSpec {
    ToolSpec::function(
        "get_weather",
        "Get the current weather (temperature, conditions) for a city.",
        json!({
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris"}
            },
            "required": ["city"]
        }),
    )
}

fn search_web() -> ToolSpec {
    ToolSpec::function(
        "search_web",
        "Search the web and return the top results for a query.",
        json!({
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "The search query"}
            },
            "required": ["query"]
        }),
    )
}

fn add() -> ToolSpec {
    ToolSpec::function(
        "add",
        "Add two integers and return their sum.",
        json!({
            "type": "object",
            "properties": {
                "a": {"type": "integer", "description": "First number"},
                "b": {"type": "integer", "description": "Second number"}
            },
            "required": ["a", "b"]
        }),
    )
}

fn send_email() -> ToolSpec {
    ToolSpec::function(
        "send_email",
        "Send an email message to a recipient.",
        json!({
            "type": "object",
            "properties": {
                "to": {"type": "string", "description": "Recipient email address"},
                "subject": {"type": "string", "description": "Subject line"},
                "body": {"type": "string", "description": "Message text"}
            },
            "required": ["to", "subject", "body"]
        }),
    )
}

/// The four tools in their default order.
fn tools() -> Vec<ToolSpec> {
    vec![get_weather(), search_web(), add(), send_email()]
}

fn request(prompt: &str, tools: Vec<ToolSpec>, choice: ToolChoice) -> ChatRequest {
    ChatRequest::new(vec![ChatMessage::user(prompt)])
        .with_tools(tools)
        .with_tool_choice(choice)
        .with_temperature(0.0)
        .with_seed(SEED)
        .with_max_tokens(MAX_TOKENS)
}

/// Checks a call against the request's tools with an independent validator: the name is one
/// of the tools and the arguments are JSON valid against that tool's schema.
fn check_call(call: &ToolCall, tools: &[ToolSpec]) -> Result<(), String> {
    let tool = tools
        .iter()
        .find(|t| t.function.name == call.function.name)
        .ok_or_else(|| format!("`{}` is not one of the tools", call.function.name))?;
    let args: Json = serde_json::from_str(&call.function.arguments)
        .map_err(|e| format!("arguments are not JSON ({e}): {}", call.function.arguments))?;
    check_json(&args, &tool.function.parameters)
}

fn check_json(value: &Json, schema: &Json) -> Result<(), String> {
    let validator = jsonschema::validator_for(schema).map_err(|e| format!("bad schema: {e}"))?;
    let errors: Vec<String> = validator.iter_errors(value).map(|e| e.to_string()).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{value} does not validate: {}", errors.join("; ")))
    }
}

fn describe(resp: &Result<ChatResponse, BackendError>) -> String {
    match resp {
        Ok(r) if !r.tool_calls().is_empty() => r
            .tool_calls()
            .iter()
            .map(|c| format!("{}({})", c.function.name, c.function.arguments))
            .collect::<Vec<_>>()
            .join(" + "),
        Ok(r) => format!("text {:?} [{:?}]", r.text().unwrap_or(""), r.finish_reason),
        Err(e) => format!("error: {e}"),
    }
}

/// Prompts that plainly need one of the four tools, with the tool they need.
const AUTO_PROMPTS: &[(&str, &str)] = &[
    ("What's the weather like in Paris right now?", "get_weather"),
    ("Is it raining in Tokyo today?", "get_weather"),
    ("How hot is it in Cairo at the moment?", "get_weather"),
    ("Search the web for the latest Rust release notes.", "search_web"),
    ("Look up who won the 2022 FIFA World Cup.", "search_web"),
    ("Find recent news articles about the James Webb telescope.", "search_web"),
    ("What is 1234 plus 5678?", "add"),
    ("Add 17 and 25 for me.", "add"),
    (
        "Send an email to alice@example.com with the subject 'Lunch' saying I'll be 10 minutes late.",
        "send_email",
    ),
    ("Email bob@example.com to tell him the meeting moved to 3pm.", "send_email"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_tool_choice_turns_plain_requests_into_valid_calls() {
    let Some(backend) = shared() else { return };
    let tools = tools();
    let results = join_all(AUTO_PROMPTS.iter().map(|(prompt, _)| {
        let backend = backend.clone();
        let req = request(prompt, tools.clone(), ToolChoice::Auto);
        async move { backend.complete(req).await }
    }))
    .await;

    let mut called = 0;
    let mut right = 0;
    let mut invalid = Vec::new();
    for ((prompt, expected), resp) in AUTO_PROMPTS.iter().zip(&results) {
        println!("auto | {prompt} | want {expected} | {}", describe(resp));
        let resp = resp.as_ref().unwrap_or_else(|e| panic!("`{prompt}` failed: {e}"));
        if resp.tool_calls().is_empty() {
            continue;
        }
        called += 1;
        assert_eq!(resp.finish_reason, FinishReason::ToolCalls, "{prompt}");
        if resp.tool_calls().iter().any(|c| c.function.name == *expected) {
            right += 1;
        }
        for call in resp.tool_calls() {
            if let Err(why) = check_call(call, &tools) {
                invalid.push(format!("{prompt}: {why}"));
            }
        }
    }
    let n = AUTO_PROMPTS.len();
    println!("auto: {called}/{n} answered with calls, {right}/{n} called the needed tool");
    assert!(invalid.is_empty(), "invalid calls: {invalid:#?}");
    assert!(called * 10 >= n * 8, "only {called}/{n} tool-needing prompts came back as calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_and_named_tool_choice_always_give_a_valid_call() {
    let Some(backend) = shared() else { return };
    let tools = tools();
    let prompts = [
        "hello",
        "What's the weather in Oslo?",
        "What is 3 plus 4?",
        "Write a haiku about autumn.",
    ];
    let choices = [ToolChoice::Required, ToolChoice::Function("add".into())];
    let cases: Vec<(&str, ToolChoice)> = choices
        .iter()
        .flat_map(|choice| prompts.iter().map(move |p| (*p, choice.clone())))
        .collect();
    let results = join_all(cases.iter().map(|(prompt, choice)| {
        let backend = backend.clone();
        let req = request(prompt, tools.clone(), choice.clone());
        async move { backend.complete(req).await }
    }))
    .await;

    let mut failures = Vec::new();
    for ((prompt, choice), resp) in cases.iter().zip(&results) {
        println!("{choice:?} | {prompt} | {}", describe(resp));
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{choice:?} `{prompt}`: {e}"));
                continue;
            }
        };
        if resp.tool_calls().is_empty() || resp.finish_reason != FinishReason::ToolCalls {
            failures.push(format!("{choice:?} `{prompt}`: no call ({:?})", resp.message));
        }
        for call in resp.tool_calls() {
            if let Err(why) = check_call(call, &tools) {
                failures.push(format!("{choice:?} `{prompt}`: {why}"));
            }
            if let ToolChoice::Function(name) = choice {
                if call.function.name != *name {
                    failures.push(format!(
                        "{choice:?} `{prompt}`: called {} instead",
                        call.function.name
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_schema_output_validates() {
    let Some(backend) = shared() else { return };
    let schema = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "mood": {"type": "string", "enum": ["happy", "sad", "neutral"]}
        },
        "required": ["name", "age", "mood"],
        "additionalProperties": false
    });
    let prompts = [
        "Describe a fictional person.",
        "Invent a character for a short story about the sea.",
        "Tell me about yourself.",
    ];
    let results = join_all(prompts.iter().map(|prompt| {
        let backend = backend.clone();
        let req = ChatRequest::new(vec![ChatMessage::user(*prompt)])
            .with_response_format(ResponseFormat::json_schema("person", schema.clone()))
            .with_temperature(0.0)
            .with_seed(SEED)
            .with_max_tokens(MAX_TOKENS);
        async move { backend.complete(req).await }
    }))
    .await;
    for (prompt, resp) in prompts.iter().zip(results) {
        let resp = resp.unwrap_or_else(|e| panic!("`{prompt}` failed: {e}"));
        let text = resp.text().unwrap_or("");
        println!("json_schema | {prompt} | {text}");
        let value: Json = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("`{prompt}`: not JSON ({e}): {text:?}"));
        if let Err(why) = check_json(&value, &schema) {
            panic!("`{prompt}`: {why}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_object_output_parses() {
    let Some(backend) = shared() else { return };
    let prompts =
        ["List three primary colors.", "hello", "Give the capital and population of France."];
    let results = join_all(prompts.iter().map(|prompt| {
        let backend = backend.clone();
        let req = ChatRequest::new(vec![
            ChatMessage::system("Answer in JSON."),
            ChatMessage::user(*prompt),
        ])
        .with_response_format(ResponseFormat::JsonObject)
        .with_temperature(0.0)
        .with_seed(SEED)
        .with_max_tokens(MAX_TOKENS);
        async move { backend.complete(req).await }
    }))
    .await;
    for (prompt, resp) in prompts.iter().zip(results) {
        let resp = resp.unwrap_or_else(|e| panic!("`{prompt}` failed: {e}"));
        let text = resp.text().unwrap_or("");
        println!("json_object | {prompt} | {text} [{:?}]", resp.finish_reason);
        let value: Json = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("`{prompt}`: not JSON ({e}): {text:?}"));
        assert!(value.is_object(), "`{prompt}`: {value} is not an object");
    }
}

/// Prompts for the selection figures: six per tool, none naming the tool.
const SELECTION_PROMPTS: &[(&str, &str)] = &[
    ("What's the weather in Berlin?", "get_weather"),
    ("Will I need an umbrella in London today?", "get_weather"),
    ("How cold is it in Moscow right now?", "get_weather"),
    ("Is it sunny in Madrid?", "get_weather"),
    ("What's the temperature in Sydney at the moment?", "get_weather"),
    ("Is it snowing in Denver?", "get_weather"),
    ("Who is the current CEO of Microsoft?", "search_web"),
    ("Find the official website of the Python Software Foundation.", "search_web"),
    ("Look up reviews of the latest iPhone.", "search_web"),
    ("What are the opening hours of the Louvre museum?", "search_web"),
    ("Search for tutorials on learning Kubernetes.", "search_web"),
    ("What happened in the news today?", "search_web"),
    ("What is 48 plus 97?", "add"),
    ("Calculate the sum of 250 and 375.", "add"),
    ("I have 12 apples and buy 30 more. How many do I have? Use the tool.", "add"),
    ("What's 1000 + 2345?", "add"),
    ("Add 8 to 64.", "add"),
    ("Compute 19 + 23.", "add"),
    (
        "Send a message to carol@example.com titled 'Report' saying the report is ready.",
        "send_email",
    ),
    ("Email dave@example.com that I can't make it tonight.", "send_email"),
    ("Write to eve@example.com with subject 'Hi' and say hello from me.", "send_email"),
    ("Mail frank@example.com the text 'See you Monday', subject 'Plans'.", "send_email"),
    ("Let grace@example.com know by email that the invoice was paid.", "send_email"),
    ("Notify henry@example.com via email that the server is back up.", "send_email"),
];

/// Tokens per answer in the selection figures.
const SELECT_TOKENS: u32 = 32;

/// The tool named by a call cut off before its end (`{"name": "…"` at the start of the
/// answer, after `<tool_call>` or after a ```` ```json ```` fence), if the answer is one.
fn started_call(text: &str) -> Option<String> {
    let t = text.trim_start();
    let t = t.strip_prefix("<tool_call>").or_else(|| t.strip_prefix("```json")).unwrap_or(t);
    let t = t.trim_start();
    let rest = t.strip_prefix("{\"name\": \"")?;
    rest.find('"').map(|end| rest[..end].to_owned())
}

/// One measurement: per prompt, the tool called (or `None`) and the raw answer.
async fn select_all(
    backend: &LocalBackend,
    format: &ChatFormat,
    tools: &[ToolSpec],
    choice: &ToolChoice,
) -> Vec<(Option<String>, String)> {
    let jobs = SELECTION_PROMPTS.iter().map(|(prompt, _)| {
        // The choice of tool is made in the first tokens; a short budget is enough.
        let req = request(prompt, tools.to_vec(), choice.clone()).with_max_tokens(SELECT_TOKENS);
        let segments = format.render(&req).expect("renders");
        let grammar = format.constraint(&req).expect("constraint").map(|c| c.grammar);
        let options = GenerateOptions::from_request(&req).expect("options");
        let backend = backend.clone();
        async move {
            let out = backend.generate(segments, options, grammar).await.expect("generates");
            let parsed = format.parse_output(&out.text, &req);
            for call in &parsed.tool_calls {
                assert_eq!(check_call(call, tools), Ok(()), "{prompt}");
            }
            let name = match parsed.tool_calls.first() {
                Some(c) => Some(c.function.name.clone()),
                // Cut off by the budget: the constraint already fixed the name.
                None if out.finish_reason == FinishReason::Length => started_call(&out.text),
                None => None,
            };
            (name, out.text)
        }
    });
    join_all(jobs).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "prints tool-selection figures; run explicitly"]
async fn tool_selection_accuracy_figures() {
    let Some(backend) = shared() else { return };
    let path = backend.model_path().to_owned();
    let meta = read_gguf_metadata(&path).expect("reads the GGUF metadata");
    let format = |index: bool| {
        let options = FormatOptions { tool_index: index, ..FormatOptions::default() };
        ChatFormat::from_gguf_meta(&meta).expect("chat format").with_options(options)
    };
    let (on, off) = (format(true), format(false));

    // The "on" format renders exactly what the engine itself renders.
    let probe = request(SELECTION_PROMPTS[0].0, tools(), ToolChoice::Auto);
    assert_eq!(on.render(&probe).unwrap(), backend.chat_format().render(&probe).unwrap());

    let forward = tools();
    let reversed: Vec<ToolSpec> = forward.iter().rev().cloned().collect();
    let n = SELECTION_PROMPTS.len();
    println!("{n} prompts, {} tools, temperature 0, max_tokens {SELECT_TOKENS}", forward.len());
    println!(
        "{:<9} {:<10} {:<34} {:>8} {:>6} {:>8}  chosen-first-listed",
        "choice", "index", "tool order", "right", "calls", "no call"
    );
    // `auto` is the default and the path agents take.
    let choice = ToolChoice::Auto;
    for (index, fmt) in [("on", &on), ("off", &off)] {
        for (order_name, order) in [("forward", &forward), ("reversed", &reversed)] {
            let answers = select_all(&backend, fmt, order, &choice).await;
            let chosen: Vec<Option<String>> = answers.iter().map(|(c, _)| c.clone()).collect();
            let right = SELECTION_PROMPTS
                .iter()
                .zip(&chosen)
                .filter(|((_, want), got)| got.as_deref() == Some(*want))
                .count();
            let calls = chosen.iter().filter(|c| c.is_some()).count();
            let first = order[0].function.name.as_str();
            let first_n = chosen.iter().filter(|c| c.as_deref() == Some(first)).count();
            let names: Vec<&str> = order.iter().map(|t| t.name()).collect();
            println!(
                "{:<9} {:<10} {:<34} {:>5}/{n} {:>6} {:>8}  {first_n} ({first})",
                format!("{choice:?}"),
                index,
                format!("{order_name} {}", names.join(",")),
                right,
                calls,
                n - calls,
            );
            for ((prompt, want), (got, text)) in SELECTION_PROMPTS.iter().zip(&answers) {
                if got.as_deref() != Some(*want) {
                    println!("    miss: {prompt} | want {want} | got {got:?} | {text:?}");
                }
            }
        }
    }
}
