//! Agents as tools (`tools = ["agent:NAME"]`, `member = false`), inline nested teams and
//! per-agent fallback chains: parsed, checked with locations, built and run.

use std::path::Path;
use std::sync::Arc;

use agentgen_core::agent::{ApprovalPolicy, InputFn};
use agentgen_core::team::Team;
use agentgen_core::testing::{Reply, ScriptedBackend};
use agentgen_core::{ChatBackend, ChatMessage, ChatRequest};

use super::*;
use crate::config::{load, BackendKind, Overrides, Settings, Sources};

fn settings() -> Settings {
    let dir = tempfile::tempdir().unwrap();
    let sources = Sources { work_dir: Some(dir.path().to_owned()), ..Sources::default() };
    load(&sources, &Overrides::default()).unwrap()
}

fn parse(text: &str) -> Result<TeamSpec, TeamFileError> {
    TeamSpec::parse(text, Path::new("team.toml"))
}

fn build(spec: &TeamSpec, backends: Vec<Arc<ScriptedBackend>>) -> Box<dyn Team> {
    let settings = settings();
    let input: InputFn = Arc::new(|_| Box::pin(async { Ok(String::new()) }));
    let rt = Runtime {
        settings: &settings,
        approval: ApprovalPolicy::RunWithoutAsking,
        mcp: &[],
        input,
        max_messages: None,
    };
    let backends = backends.into_iter().map(|b| b as Arc<dyn ChatBackend>).collect();
    build_team(spec, backends, &rt).unwrap()
}

const LEAD_AND_HELPER: &str = r#"termination = "max_messages(2)"
[team]
type = "round_robin"

[[agents]]
name = "lead"
system_message = "You lead."
tools = ["agent:helper"]
reflect_on_tool_use = true

[[agents]]
name = "helper"
description = "Answers arithmetic."
system_message = "You help."
member = false
"#;

#[test]
fn agent_tools_are_checked_and_shown() {
    let spec = parse(LEAD_AND_HELPER).unwrap();
    assert!(!spec.agents[1].member);
    let shown = show(&spec);
    assert!(shown.contains("lead (assistant) tools: agent:helper;"), "{shown}");
    assert!(shown.contains("member: no (only called as a tool)"), "{shown}");

    let unknown = LEAD_AND_HELPER.replace("agent:helper", "agent:nobody");
    let err = parse(&unknown).unwrap_err();
    assert_eq!((err.line, err.column), (8, 10), "{err}");
    assert_eq!(err.field.as_deref(), Some("agents[0].tools"), "{err}");
    assert!(err.message.contains("no agent is named `nobody`"), "{err}");

    let own = LEAD_AND_HELPER.replace("agent:helper", "agent:lead");
    let err = parse(&own).unwrap_err();
    assert!(err.message.contains("its own tool"), "{err}");

    let looped = LEAD_AND_HELPER.replace("member = false", "tools = [\"agent:lead\"]");
    let err = parse(&looped).unwrap_err();
    assert!(err.message.contains("in a loop"), "{err}");

    let unused = LEAD_AND_HELPER.replace("tools = [\"agent:helper\"]\n", "");
    let err = parse(&unused).unwrap_err();
    assert_eq!((err.line, err.field.as_deref()), (11, Some("agents[1].member")), "{err}");

    let user = LEAD_AND_HELPER.replace("system_message = \"You help.\"", "kind = \"user_proxy\"");
    let err = parse(&user).unwrap_err();
    assert!(err.message.contains("user_proxy agent"), "{err}");
}

#[tokio::test]
async fn a_non_member_agent_answers_as_a_tool_and_takes_no_turn() {
    let spec = parse(LEAD_AND_HELPER).unwrap();
    let lead = Arc::new(ScriptedBackend::with_replies([
        Reply::call("c1", "helper", r#"{"task": "What is 6*7?"}"#),
        Reply::text("The helper says 42."),
    ]));
    let helper = Arc::new(ScriptedBackend::with_texts(["42"]));
    let mut team = build(&spec, vec![Arc::clone(&lead), Arc::clone(&helper)]);
    let result = team.run("Ask the helper.".into()).await.unwrap();
    let sources: Vec<&str> = result.messages.iter().map(|m| m.source.as_str()).collect();
    assert_eq!(sources, ["user", "lead"]);
    assert_eq!(result.messages[1].content, "The helper says 42.");
    let asked = helper.requests();
    assert_eq!(asked.len(), 1);
    assert!(asked[0].messages.iter().any(|m| m.text() == Some("What is 6*7?")));
    let tool_spec = serde_json::to_string(&lead.requests()[0].tools).unwrap();
    assert!(tool_spec.contains("Answers arithmetic.") && tool_spec.contains("task"), "{tool_spec}");
    let reflected = serde_json::to_string(&lead.requests()[1].messages).unwrap();
    assert!(reflected.contains("42"), "{reflected}");
}

const INLINE: &str = r#"termination = "max_messages(2)"
[team]
type = "round_robin"

[[agents]]
name = "som"
kind = "society_of_mind"

[agents.team]
termination = "max_messages(3)"
[agents.team.team]
type = "round_robin"
[[agents.team.agents]]
name = "a"
system_message = "You are a."
[[agents.team.agents]]
name = "b"
system_message = "You are b."
"#;

#[tokio::test]
async fn an_inline_team_is_checked_shown_and_run() {
    let spec = parse(INLINE).unwrap();
    let inner = spec.agents[0].inner.as_deref().unwrap();
    assert_eq!(inner.agent_names(), ["a", "b"]);
    assert!(show(&spec).contains("inner team (inline):"), "{}", show(&spec));

    let a = Arc::new(ScriptedBackend::with_texts(["from a"]));
    let b = Arc::new(ScriptedBackend::with_texts(["from b"]));
    let som = Arc::new(ScriptedBackend::with_texts(["the team's answer"]));
    let mut team = build(&spec, vec![a, b, Arc::clone(&som)]);
    let result = team.run("Go.".into()).await.unwrap();
    assert_eq!(result.messages[1].content, "the team's answer");
    let transcript = serde_json::to_string(&som.requests()[0].messages).unwrap();
    assert!(transcript.contains("from a") && transcript.contains("from b"), "{transcript}");
}

/// A lead whose tool is a whole team (society of mind, not a member): `INLINE`'s inner team.
fn lead_and_team_tool() -> String {
    let head = r#"termination = "max_messages(2)"
[team]
type = "round_robin"

[[agents]]
name = "lead"
system_message = "You lead."
tools = ["agent:research"]
reflect_on_tool_use = true

[[agents]]
name = "research"
kind = "society_of_mind"
description = "A research team: ask it a question."
member = false

"#;
    let inner = INLINE.find("[agents.team]").map_or("", |i| &INLINE[i..]);
    format!("{head}{inner}")
}

#[tokio::test]
async fn a_society_of_mind_agent_answers_as_a_tool_with_its_inner_team() {
    let spec = parse(&lead_and_team_tool()).unwrap();
    // Slots in file order: the lead, the inner team's a and b, the research agent's own model.
    let lead = Arc::new(ScriptedBackend::with_replies([
        Reply::call("c1", "research", r#"{"task": "Where is the key?"}"#),
        Reply::text("Research says: under the mat."),
    ]));
    let a = Arc::new(ScriptedBackend::with_texts(["a looked"]));
    let b = Arc::new(ScriptedBackend::with_texts(["b found it"]));
    let som = Arc::new(ScriptedBackend::with_texts(["under the mat"]));
    let mut team =
        build(&spec, vec![Arc::clone(&lead), Arc::clone(&a), Arc::clone(&b), Arc::clone(&som)]);
    let result = team.run("Find the key.".into()).await.unwrap();
    let sources: Vec<&str> = result.messages.iter().map(|m| m.source.as_str()).collect();
    assert_eq!(sources, ["user", "lead"]);
    assert_eq!(result.messages[1].content, "Research says: under the mat.");
    // The inner team worked on the lead's question; the team's answer came back as the result.
    assert!(a.requests()[0].messages.iter().any(|m| m.text() == Some("Where is the key?")));
    let inner = serde_json::to_string(&som.requests()[0].messages).unwrap();
    assert!(inner.contains("a looked") && inner.contains("b found it"), "{inner}");
    let reflected = serde_json::to_string(&lead.requests()[1].messages).unwrap();
    assert!(reflected.contains("under the mat"), "{reflected}");
    let tools = serde_json::to_string(&lead.requests()[0].tools).unwrap();
    assert!(tools.contains("A research team"), "{tools}");
}

#[test]
fn a_society_of_mind_tool_has_one_use() {
    // Also a member: two uses of the one inner team.
    let both = lead_and_team_tool().replace("member = false\n", "");
    let err = parse(&both).unwrap_err();
    assert_eq!((err.line, err.field.as_deref()), (12, Some("agents[1]")), "{err}");
    assert!(err.message.contains("would use it 2 times"), "{err}");
    // Two callers.
    let two = lead_and_team_tool().replace(
        "[[agents]]\nname = \"research\"",
        "[[agents]]\nname = \"second\"\nsystem_message = \"x\"\ntools = [\"agent:research\"]\n\n\
         [[agents]]\nname = \"research\"",
    );
    let err = parse(&two).unwrap_err();
    assert!(err.message.contains("would use it 2 times"), "{err}");
    assert!(parse(&lead_and_team_tool()).is_ok());
}

#[test]
fn an_error_inside_an_inline_team_points_into_it() {
    let bad = INLINE.replace("system_message = \"You are b.\"\n", "");
    let err = parse(&bad).unwrap_err();
    assert_eq!((err.line, err.column), (17, 8), "{err}");
    assert_eq!(err.field.as_deref(), Some("agents[1].system_message"), "{err}");
    let bad =
        INLINE.replace("type = \"round_robin\"\n[[agents.team", "type = \"ring\"\n[[agents.team");
    let err = parse(&bad).unwrap_err();
    assert_eq!(err.line, 12, "{err}");
}

const FALLBACK: &str = r#"[team]
type = "round_robin"

[[agents]]
name = "writer"
system_message = "You write."
fallback = [{ backend = "openai", model = "second", base_url = "BASE" }, { backend = "local" }]
"#;

#[test]
fn a_fallback_chain_follows_the_agent_backend_and_is_checked() {
    let spec = parse(FALLBACK).unwrap();
    let mut s = settings();
    s.backend = BackendKind::Groq;
    s.model = Some("primary".into());
    let chains = agent_chains(&spec, &s).unwrap();
    assert_eq!(chains.len(), 1);
    let kinds: Vec<_> = chains[0].iter().map(|c| (c.kind, c.model.as_deref())).collect();
    assert_eq!(
        kinds,
        [
            (BackendKind::Groq, Some("primary")),
            (BackendKind::OpenAi, Some("second")),
            (BackendKind::Local, None)
        ]
    );
    assert_eq!(chains[0][1].base_url.as_deref(), Some("BASE"));
    assert!(show(&spec).contains("fallback: openai second -> local"), "{}", show(&spec));

    let err = parse(&FALLBACK.replace("backend = \"local\"", "backend = \"cloud\"")).unwrap_err();
    assert_eq!((err.line, err.field.as_deref()), (7, Some("agents[0].fallback[1]")), "{err}");
    let err = parse(&FALLBACK.replace("{ backend = \"local\" }", "{ backend = \"local\", x = 1 }"))
        .unwrap_err();
    assert_eq!(err.line, 7, "{err}");
}

/// Loopback OpenAI-compatible stubs: one always 503, one answering with a fixed text.
mod stub {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use axum::routing::post;
    use axum::{Json, Router};
    use serde_json::{json, Value};

    async fn unavailable() -> impl IntoResponse {
        (StatusCode::SERVICE_UNAVAILABLE, "overloaded")
    }

    async fn answer(Json(body): Json<Value>) -> impl IntoResponse {
        let model = body["model"].as_str().unwrap_or_default().to_owned();
        Json(json!({"id": "c1", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant",
                "content": format!("answered by {model}")}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}}))
    }

    /// Serves on a free loopback port; returns the base URL.
    pub async fn start(working: bool) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = if working {
            Router::new().route("/v1/chat/completions", post(answer))
        } else {
            Router::new().route("/v1/chat/completions", post(unavailable))
        };
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/v1")
    }
}

#[tokio::test]
async fn a_failing_primary_falls_back_to_the_next_backend_over_http() {
    let down = stub::start(false).await;
    let up = stub::start(true).await;
    let spec =
        parse(&FALLBACK.replace("BASE", &up).replace(", { backend = \"local\" }", "")).unwrap();
    let mut s = settings();
    s.backend = BackendKind::OpenAi;
    s.model = Some("primary".into());
    s.base_url = Some(down);
    let chains = agent_chains(&spec, &s).unwrap();
    let mut pool = crate::backends::BackendPool::new(true);
    let backend = pool.get_chain(&s, &chains[0]).await.unwrap();
    assert_eq!(backend.info().name, "fallback");
    let req = ChatRequest { messages: vec![ChatMessage::user("hi")], ..ChatRequest::default() };
    let resp = backend.complete(req).await.unwrap();
    assert_eq!(resp.text(), Some("answered by second"));
    assert!(resp.served_by.is_some(), "{resp:?}");
}
