//! OpenTelemetry export of the real `agentgen` binary on the real test model, to an OTLP/HTTP
//! receiver in this test: an HTTP server on 127.0.0.1 that takes `POST /v1/traces`
//! (`application/x-protobuf`), decodes each body as an `ExportTraceServiceRequest` with the
//! OpenTelemetry protocol's own message types, and answers an empty
//! `ExportTraceServiceResponse`, as a collector does.
//!
//! - `a_two_agent_run_exports_its_span_tree`: `agentgen run` with a two-agent team (the first
//!   agent must call the built-in `add` tool) exports one trace: the team's span at the root,
//!   one span per agent turn under it, a `chat {model}` span with the GenAI attributes under
//!   each turn, and the `execute_tool add` span under the first agent's turn.
//! - `serve_joins_the_callers_trace`: `agentgen serve` answers a request that carries a W3C
//!   `traceparent`; its request span has that trace id and that parent, with the model call
//!   under it. The same server started without an endpoint runs no exporter threads.
//! - `the_openai_client_sends_the_trace_on`: `agentgen run --backend openai` against a small
//!   OpenAI-compatible server in this test sends `traceparent` naming its own model-call span;
//!   the endpoint and service name come from `[telemetry]` in a `--config` file this time.
#![cfg(all(feature = "local", feature = "otel"))]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;

mod common;

/// One exported span, flattened.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
    kind: i32,
    attrs: HashMap<String, AnyValue>,
}

impl Span {
    fn str(&self, key: &str) -> Option<&str> {
        match self.attrs.get(key) {
            Some(AnyValue::StringValue(s)) => Some(s),
            _ => None,
        }
    }

    fn int(&self, key: &str) -> Option<i64> {
        match self.attrs.get(key) {
            Some(AnyValue::IntValue(n)) => Some(*n),
            _ => None,
        }
    }
}

/// What the receiver has decoded so far, and how many export requests it took.
#[derive(Debug, Default)]
struct Received {
    spans: Vec<Span>,
    requests: usize,
}

type Shared = Arc<Mutex<Received>>;

async fn traces(State(seen): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let kind = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if kind != Some("application/x-protobuf") {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "protobuf only").into_response();
    }
    let Ok(req) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, "not an ExportTraceServiceRequest").into_response();
    };
    let mut seen = seen.lock().unwrap();
    seen.requests += 1;
    for rs in req.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref()?.value.clone())
            .map(|v| match v {
                AnyValue::StringValue(s) => s,
                other => format!("{other:?}"),
            })
            .unwrap_or_default();
        for s in rs.scope_spans.into_iter().flat_map(|ss| ss.spans) {
            let attrs = s
                .attributes
                .into_iter()
                .filter_map(|kv| Some((kv.key, kv.value?.value?)))
                .collect();
            seen.spans.push(Span {
                service: service.clone(),
                trace_id: hex(&s.trace_id),
                span_id: hex(&s.span_id),
                parent: hex(&s.parent_span_id),
                name: s.name,
                kind: s.kind,
                attrs,
            });
        }
    }
    let answer = ExportTraceServiceResponse::default().encode_to_vec();
    ([(header::CONTENT_TYPE, "application/x-protobuf")], answer).into_response()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Starts the receiver on a free loopback port; returns its base URL and what it received.
fn receiver() -> (String, Shared) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let seen = Shared::default();
    let state = seen.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let app = Router::new().route("/v1/traces", post(traces)).with_state(state);
            axum::serve(listener, app).await.unwrap();
        });
    });
    (format!("http://{addr}"), seen)
}

const TEAM: &str = "[team]\ntype = \"round_robin\"\nname = \"adders\"\n\
    [termination]\nmax_messages = 3\n\
    [[agents]]\nname = \"calculator\"\n\
    system_message = \"You do arithmetic with your tools.\"\n\
    tools = [\"add\"]\ntool_choice = \"required\"\n\
    [[agents]]\nname = \"reporter\"\n\
    system_message = \"You state the result in one short sentence.\"\n";

#[test]
fn a_two_agent_run_exports_its_span_tree() {
    let Some(model) = agentgen_models::cache::model_for_tests() else { return };
    let (endpoint, seen) = receiver();
    let dir = tempfile::tempdir().unwrap();
    let team = dir.path().join("team.toml");
    std::fs::write(&team, TEAM).unwrap();
    let started = Instant::now();
    let out = common::agentgen(dir.path())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_SERVICE_NAME", "otel-test")
        .args(["run", "--team", team.to_str().unwrap(), "--model", model.to_str().unwrap()])
        .args(["--temperature", "0", "--seed", "7", "--max-tokens", "32", "--no-pull"])
        .arg("What is 2 + 3?")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\n{stdout}\n{stderr}", out.status);
    eprintln!("run took {:?}", started.elapsed());
    // The process flushed its spans before exiting: they are all here already.
    let seen = seen.lock().unwrap();
    let spans = &seen.spans;
    eprintln!("{} spans in {} export requests:\n{}", spans.len(), seen.requests, tree(spans));
    assert!(spans.iter().all(|s| s.service == "otel-test"), "{spans:#?}");
    assert!(spans.iter().all(|s| s.trace_id == spans[0].trace_id), "one trace: {spans:#?}");

    let roots: Vec<&Span> = spans.iter().filter(|s| s.parent.is_empty()).collect();
    let [root] = roots[..] else { panic!("one root span expected:\n{}", tree(spans)) };
    assert_eq!(root.name, "invoke_agent adders");
    assert_eq!(root.str("gen_ai.operation.name"), Some("invoke_agent"));
    assert_eq!(root.str("gen_ai.agent.name"), Some("adders"));
    assert_eq!(root.str("agentgen.team.type"), Some("round_robin"));
    assert_eq!(root.int("agentgen.team.messages"), Some(3));

    let children = |parent: &Span| -> Vec<&Span> {
        spans.iter().filter(|s| s.parent == parent.span_id).collect()
    };
    let turns = children(root);
    let names: Vec<&str> = turns.iter().filter_map(|t| t.str("gen_ai.agent.name")).collect();
    assert_eq!(names.len(), 2, "{}", tree(spans));
    assert!(names.contains(&"calculator") && names.contains(&"reporter"), "{names:?}");
    for turn in &turns {
        let agent = turn.str("gen_ai.agent.name").unwrap();
        assert_eq!(turn.name, format!("invoke_agent {agent}"));
        assert_eq!(turn.str("gen_ai.operation.name"), Some("invoke_agent"));
        let under = children(turn);
        let chats: Vec<&&Span> = under.iter().filter(|s| s.name.starts_with("chat ")).collect();
        assert_eq!(chats.len(), 1, "one model call in {agent}'s turn:\n{}", tree(spans));
        let chat = chats[0];
        assert_eq!(chat.kind, 3, "a chat span is a client span");
        assert_eq!(chat.str("gen_ai.operation.name"), Some("chat"));
        assert_eq!(chat.str("gen_ai.provider.name"), Some("local"));
        let model = chat.str("gen_ai.request.model").expect("gen_ai.request.model");
        assert_eq!(chat.name, format!("chat {model}"));
        assert!(chat.str("gen_ai.response.model").is_some_and(|m| !m.is_empty()));
        assert!(chat.int("gen_ai.usage.input_tokens").is_some_and(|n| n > 0), "{chat:#?}");
        assert!(chat.int("gen_ai.usage.output_tokens").is_some_and(|n| n > 0), "{chat:#?}");
        assert_eq!(chat.int("gen_ai.request.max_tokens"), Some(32));
        assert!(chat.attrs.contains_key("agentgen.timings.predicted_ms"), "{chat:#?}");
        // No message contents unless asked for.
        assert!(!chat.attrs.contains_key("gen_ai.input.messages"));
        let tools: Vec<&&Span> =
            under.iter().filter(|s| s.name.starts_with("execute_tool")).collect();
        if agent == "calculator" {
            assert_eq!(chat.str("gen_ai.response.finish_reasons"), Some("tool_calls"));
            let [tool] = tools[..] else { panic!("one tool call expected:\n{}", tree(spans)) };
            assert_eq!(tool.name, "execute_tool add");
            assert_eq!(tool.str("gen_ai.tool.name"), Some("add"));
            assert_eq!(tool.str("gen_ai.operation.name"), Some("execute_tool"));
            assert!(tool.str("gen_ai.tool.call.id").is_some_and(|id| !id.is_empty()));
            assert!(!tool.attrs.contains_key("gen_ai.tool.call.arguments"));
        } else {
            assert!(tools.is_empty(), "{}", tree(spans));
        }
    }
    assert_eq!(spans.len(), 6, "{}", tree(spans));
}

/// The spans as an indented tree, with their main attributes.
fn tree(spans: &[Span]) -> String {
    fn walk(spans: &[Span], parent: &str, depth: usize, out: &mut String) {
        for s in spans.iter().filter(|s| s.parent == parent) {
            let mut keys: Vec<&String> = s
                .attrs
                .keys()
                .filter(|k| {
                    k.starts_with("gen_ai.") || k.starts_with("http.") || k.ends_with("_ms")
                })
                .collect();
            keys.sort();
            let attrs: Vec<String> = keys
                .iter()
                .map(|k| match &s.attrs[*k] {
                    AnyValue::StringValue(v) => format!("{k}={v}"),
                    AnyValue::IntValue(v) => format!("{k}={v}"),
                    AnyValue::DoubleValue(v) => format!("{k}={v:.1}"),
                    other => format!("{k}={other:?}"),
                })
                .collect();
            out.push_str(&format!("{}{} [{}]\n", "  ".repeat(depth), s.name, attrs.join(", ")));
            walk(spans, &s.span_id, depth + 1, out);
        }
    }
    let mut out = String::new();
    let ids: Vec<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    // Roots, and spans whose parent is outside this set (a remote caller's span).
    let mut tops: Vec<&str> = spans
        .iter()
        .filter(|s| !ids.contains(&s.parent.as_str()))
        .map(|s| s.parent.as_str())
        .collect();
    tops.dedup();
    for top in tops {
        walk(spans, top, 0, &mut out);
    }
    out
}

/// An OpenAI-compatible endpoint that streams one short answer and keeps each request's
/// `traceparent` header.
#[cfg(feature = "groq")]
mod fake_openai {
    use std::sync::{Arc, Mutex};

    use axum::extract::State;
    use axum::http::HeaderMap;
    use axum::response::IntoResponse;
    use axum::routing::post;
    use axum::Router;
    use serde_json::json;

    pub type Seen = Arc<Mutex<Vec<Option<String>>>>;

    async fn chat(State(seen): State<Seen>, headers: HeaderMap) -> impl IntoResponse {
        let parent = headers.get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_owned);
        seen.lock().unwrap().push(parent);
        let chunk = json!({"id": "c1", "object": "chat.completion.chunk", "model": "fake",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi."},
            "finish_reason": null}]});
        let last = json!({"id": "c1", "object": "chat.completion.chunk", "model": "fake",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}});
        let sse = format!("data: {chunk}\n\ndata: {last}\n\ndata: [DONE]\n\n");
        ([("content-type", "text/event-stream")], sse)
    }

    /// Serves on a free loopback port; the base URL and the headers seen.
    pub fn start() -> (String, Seen) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let seen = Seen::default();
        let state = seen.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = Router::new().route("/v1/chat/completions", post(chat)).with_state(state);
                axum::serve(listener, app).await.unwrap();
            });
        });
        (format!("http://{addr}/v1"), seen)
    }
}

#[cfg(feature = "groq")]
#[test]
fn the_openai_client_sends_the_trace_on() {
    let (base, headers) = fake_openai::start();
    let (endpoint, seen) = receiver();
    let dir = tempfile::tempdir().unwrap();
    let team = dir.path().join("team.toml");
    let one_agent = "[team]\ntype = \"round_robin\"\n[termination]\nmax_messages = 2\n\
        [[agents]]\nname = \"greeter\"\nsystem_message = \"You greet.\"\n";
    std::fs::write(&team, one_agent).unwrap();
    let config = dir.path().join("config.toml");
    let telemetry =
        format!("[telemetry]\notlp_endpoint = \"{endpoint}\"\nservice_name = \"cfg\"\n");
    std::fs::write(&config, telemetry).unwrap();
    let out = common::agentgen(dir.path())
        .arg("--config")
        .arg(&config)
        .args(["run", "--team", team.to_str().unwrap(), "--backend", "openai"])
        .args(["--base-url", &base, "--model", "fake", "Say hi."])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\n{stderr}", out.status);
    let spans = seen.lock().unwrap().spans.clone();
    eprintln!("{}", tree(&spans));
    let chat = spans.iter().find(|s| s.name == "chat fake").expect("a `chat fake` span");
    assert_eq!(chat.service, "cfg");
    assert_eq!(chat.str("gen_ai.provider.name"), Some("openai"));
    assert_eq!(chat.int("gen_ai.usage.input_tokens"), Some(7));
    assert_eq!(chat.int("gen_ai.usage.output_tokens"), Some(2));
    let headers = headers.lock().unwrap();
    assert_eq!(headers.len(), 1, "{headers:?}");
    let expected = format!("00-{}-{}-01", chat.trace_id, chat.span_id);
    assert_eq!(headers[0].as_deref(), Some(expected.as_str()));
}

/// `agentgen serve` and the caller's trace.
#[cfg(feature = "server")]
mod serving {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;
    use std::path::Path;
    use std::process::{Child, Stdio};
    use std::time::{Duration, Instant};

    use super::{common, receiver, tree};

    /// Kills the child when the test ends, pass or fail.
    struct KillOnDrop(Child);

    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Starts `agentgen serve` on a free port; returns it and its address once it says it.
    fn serve(dir: &Path, model: &Path, endpoint: Option<&str>) -> (KillOnDrop, String) {
        let mut cmd = common::agentgen(dir);
        if let Some(endpoint) = endpoint {
            cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint).env("OTEL_BSP_SCHEDULE_DELAY", "100");
        }
        let mut child = cmd
            .args(["serve", "--port", "0", "--no-pull", "--model", model.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let server = KillOnDrop(child);
        let mut reader = BufReader::new(stdout);
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let addr = first
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http://"))
            .unwrap_or_else(|| panic!("no address in {first:?}"))
            .trim_end_matches("/v1")
            .to_owned();
        (server, addr)
    }

    /// The names of a process's threads (Linux).
    fn thread_names(pid: u32) -> Vec<String> {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
        tasks
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|n| n.trim().to_owned())
            .collect()
    }

    /// One HTTP/1.1 request with extra headers; the status and body.
    fn post(addr: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let status = resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        (status, resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
    }

    #[test]
    fn serve_joins_the_callers_trace() {
        let Some(model) = agentgen_models::cache::model_for_tests() else { return };
        let dir = tempfile::tempdir().unwrap();

        // Without an endpoint there is no exporter: none of its threads run.
        let (quiet, _) = serve(dir.path(), &model, None);
        // Once the runtime's workers have named themselves, an exporter would have too.
        let named = Instant::now() + Duration::from_secs(30);
        let names = loop {
            let names = thread_names(quiet.0.id());
            if names.iter().any(|n| n.starts_with("tokio-rt")) {
                break names;
            }
            assert!(Instant::now() < named, "the server's threads never named themselves");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            !names.iter().any(|n| n.starts_with("otlp-export") || n.starts_with("OpenTelemetry")),
            "{names:?}"
        );
        drop(quiet);

        let (endpoint, seen) = receiver();
        let (server, addr) = serve(dir.path(), &model, Some(&endpoint));
        // A new thread names itself once it first runs: on a busy machine that can come after
        // the address is printed.
        let named = Instant::now() + Duration::from_secs(30);
        loop {
            let names = thread_names(server.0.id());
            if names.iter().any(|n| n.starts_with("otlp-export")) {
                break;
            }
            assert!(Instant::now() < named, "no export thread: {names:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while !matches!(common::http(&addr, "GET", "/health", None), Ok((200, _))) {
            assert!(Instant::now() < deadline, "/health never answered 200");
            std::thread::sleep(Duration::from_millis(100));
        }

        let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
        let parent_id = "00f067aa0ba902b7";
        let (status, body) = post(
            &addr,
            "/v1/chat/completions",
            &format!("traceparent: 00-{trace_id}-{parent_id}-01\r\n"),
            r#"{"model":"default","messages":[{"role":"user","content":"Say hi."}],"max_tokens":4,"temperature":0}"#,
        );
        assert_eq!(status, 200, "{body}");

        let deadline = Instant::now() + Duration::from_secs(30);
        let spans = loop {
            let spans = seen.lock().unwrap().spans.clone();
            if spans.iter().any(|s| s.name == "POST /v1/chat/completions") {
                break spans;
            }
            assert!(Instant::now() < deadline, "no request span exported: {spans:#?}");
            std::thread::sleep(Duration::from_millis(100));
        };
        drop(server);
        eprintln!("{}", tree(&spans));
        let request = spans.iter().find(|s| s.name == "POST /v1/chat/completions").unwrap();
        assert_eq!(request.trace_id, trace_id);
        assert_eq!(request.parent, parent_id);
        assert_eq!(request.kind, 2, "a request span is a server span");
        assert_eq!(request.str("http.request.method"), Some("POST"));
        assert_eq!(request.str("http.route"), Some("/v1/chat/completions"));
        assert_eq!(request.int("http.response.status_code"), Some(200));
        assert_eq!(request.service, "agentgen");
        let chat = spans
            .iter()
            .find(|s| s.parent == request.span_id && s.name.starts_with("chat "))
            .unwrap_or_else(|| panic!("no model call under the request:\n{}", tree(&spans)));
        assert_eq!(chat.trace_id, trace_id);
        assert!(chat.int("gen_ai.usage.input_tokens").is_some_and(|n| n > 0), "{chat:#?}");
        assert!(chat.int("gen_ai.usage.output_tokens").is_some_and(|n| n > 0), "{chat:#?}");
    }
}
