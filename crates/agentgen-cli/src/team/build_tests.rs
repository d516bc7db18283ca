//! Teams built from team files on scripted backends: each key reaches the runtime.

use std::path::Path;
use std::sync::Arc;

use agentgen_core::agent::{ApprovalPolicy, InputFn};
use agentgen_core::events::MessageKind;
use agentgen_core::team::Team;
use agentgen_core::testing::{Reply, ScriptedBackend};
use agentgen_core::ChatBackend;

use super::*;
use crate::config::{load, Overrides, Settings, Sources};

fn settings() -> Settings {
    let dir = tempfile::tempdir().unwrap();
    let sources = Sources { work_dir: Some(dir.path().to_owned()), ..Sources::default() };
    load(&sources, &Overrides::default()).unwrap()
}

fn answers(text: &'static str) -> InputFn {
    Arc::new(move |_| Box::pin(async move { Ok(text.to_owned()) }))
}

fn build(
    spec: &TeamSpec,
    backends: Vec<Arc<ScriptedBackend>>,
    max_messages: Option<usize>,
) -> Box<dyn Team> {
    let settings = settings();
    let rt = Runtime {
        settings: &settings,
        approval: ApprovalPolicy::RunWithoutAsking,
        mcp: &[],
        input: answers("from the person"),
        max_messages,
    };
    let backends = backends.into_iter().map(|b| b as Arc<dyn ChatBackend>).collect();
    build_team(spec, backends, &rt).unwrap()
}

fn spec(text: &str) -> TeamSpec {
    TeamSpec::parse(text, Path::new("t.toml")).unwrap()
}

fn texts(t: &[&'static str]) -> Arc<ScriptedBackend> {
    Arc::new(ScriptedBackend::with_texts(t.iter().copied()))
}

async fn sources(team: &mut Box<dyn Team>, task: &str) -> Vec<String> {
    let result = team.run(task.into()).await.unwrap();
    result.messages.iter().map(|m| m.source.clone()).collect()
}

fn sent(backend: &ScriptedBackend) -> String {
    serde_json::to_string(&backend.requests().iter().map(|r| &r.messages).collect::<Vec<_>>())
        .unwrap()
}

#[tokio::test]
async fn a_graph_file_runs_its_fan_out_and_fan_in() {
    let spec = spec(
        "[team]\ntype = \"graph\"\n\
         [[agents]]\nname = \"plan\"\nsystem_message = \"p\"\n\
         [[agents]]\nname = \"a\"\nsystem_message = \"a\"\n\
         [[agents]]\nname = \"b\"\nsystem_message = \"b\"\n\
         [[agents]]\nname = \"join\"\nsystem_message = \"j\"\n\
         [[edges]]\nfrom = \"plan\"\nto = \"a\"\n[[edges]]\nfrom = \"plan\"\nto = \"b\"\n\
         [[edges]]\nfrom = \"a\"\nto = \"join\"\n[[edges]]\nfrom = \"b\"\nto = \"join\"\n\
         condition = \"GO\"\n",
    );
    let backends = vec![texts(&["p"]), texts(&["from a"]), texts(&["from b GO"]), texts(&["j"])];
    let join = backends[3].clone();
    let mut team = build(&spec, backends, Some(10));
    assert_eq!(sources(&mut team, "t").await, ["user", "plan", "a", "b", "join"]);
    let seen = sent(&join);
    assert!(seen.contains("from a") && seen.contains("from b GO"), "{seen}");

    // Without "GO" the edge b -> join does not fire and join never runs.
    let backends = vec![texts(&["p"]), texts(&["from a"]), texts(&["from b"]), texts(&["j"])];
    let mut team = build(&spec, backends, Some(10));
    assert_eq!(sources(&mut team, "t").await, ["user", "plan", "a", "b"]);
}

#[tokio::test]
async fn the_termination_expression_applies_and_max_messages_flag_replaces_its_cap() {
    let spec = spec(
        "termination = \"max_messages(2) | text_mention('DONE')\"\n[team]\ntype = \"round_robin\"\n\
         [[agents]]\nname = \"a\"\nsystem_message = \"a\"\n\
         [[agents]]\nname = \"b\"\nsystem_message = \"b\"\n",
    );
    let mut team = build(&spec, vec![texts(&["1", "3"]), texts(&["2", "4"])], None);
    assert_eq!(sources(&mut team, "t").await, ["user", "a"]);
    let mut team = build(&spec, vec![texts(&["1", "3"]), texts(&["2", "DONE"])], Some(9));
    assert_eq!(sources(&mut team, "t").await, ["user", "a", "b", "a", "b"], "the flag replaced 2");
}

#[tokio::test]
async fn a_user_proxy_answers_from_the_input_function() {
    let spec = spec(
        "[team]\ntype = \"round_robin\"\n[[agents]]\nname = \"a\"\nsystem_message = \"a\"\n\
         [[agents]]\nname = \"me\"\nkind = \"user_proxy\"\n",
    );
    let mut team = build(&spec, vec![texts(&["question?"])], Some(3));
    let result = team.run("t".into()).await.unwrap();
    let last = result.messages.last().unwrap();
    assert_eq!((last.source.as_str(), last.content.as_str()), ("me", "from the person"));
}

#[tokio::test]
async fn a_society_of_mind_agent_runs_its_inner_team_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("inner.toml"),
        "termination = \"max_messages(2)\"\n[team]\ntype = \"round_robin\"\n\
         [[agents]]\nname = \"worker\"\nsystem_message = \"w\"\n",
    )
    .unwrap();
    let outer = dir.path().join("outer.toml");
    std::fs::write(
        &outer,
        "[team]\ntype = \"round_robin\"\n[[agents]]\nname = \"som\"\nkind = \"society_of_mind\"\n\
         team = \"inner.toml\"\nresponse_prompt = \"Answer now.\"\n",
    )
    .unwrap();
    let spec = TeamSpec::from_file(&outer).unwrap();
    let settings = settings();
    assert_eq!(agent_choices(&spec, &settings).unwrap().len(), 2, "the worker, then the som");
    let (worker, som) = (texts(&["inner work"]), texts(&["final answer"]));
    let mut team = build(&spec, vec![worker.clone(), som.clone()], Some(2));
    let result = team.run("t".into()).await.unwrap();
    assert_eq!(result.messages.last().unwrap().content, "final answer");
    assert_eq!(worker.request_count(), 1);
    let seen = sent(&som);
    assert!(seen.contains("inner work") && seen.contains("Answer now."), "{seen}");
}

#[tokio::test]
async fn output_schema_memory_and_model_context_reach_the_model() {
    let spec = spec(
        "[team]\ntype = \"round_robin\"\n[[agents]]\nname = \"a\"\nsystem_message = \"a\"\n\
         memory = [\"the sky is green here\"]\nmodel_context = { kind = \"buffered\", n = 1 }\n\
         output_schema = { type = \"object\", properties = { n = { type = \"integer\" } }, \
         required = [\"n\"] }\n",
    );
    let backend = texts(&["{\"n\": 3}", "{\"n\": 4}"]);
    let mut team = build(&spec, vec![backend.clone()], Some(2));
    let result = team.run("first".into()).await.unwrap();
    let answer = result.messages.last().unwrap();
    assert!(
        matches!(&answer.kind, MessageKind::Structured { value } if value["n"] == 3),
        "{answer:?}"
    );
    let first = &backend.requests()[0];
    assert!(first.response_format.is_some());
    assert!(sent(&backend).contains("the sky is green here"));
    team.run("second".into()).await.unwrap();
    // Buffered to one message: the second call carries "second" and no longer "first".
    let second = serde_json::to_string(&backend.requests()[1].messages).unwrap();
    assert!(second.contains("second") && !second.contains("first"), "{second}");
}

#[tokio::test]
async fn a_command_tool_runs_with_the_models_arguments_kept_literal() {
    let spec = spec(
        "[team]\ntype = \"round_robin\"\n[[command_tools]]\nname = \"shout\"\n\
         description = \"upper-cases\"\n\
         argv = [\"python3\", \"-c\", \"import sys; print(sys.argv[1].upper())\", \"{text}\"]\n\
         parameters = { type = \"object\", properties = { text = { type = \"string\" } }, \
         required = [\"text\"] }\n\
         [[agents]]\nname = \"a\"\nsystem_message = \"a\"\ntools = [\"shout\"]\n",
    );
    let backend = Arc::new(ScriptedBackend::with_replies([Reply::call(
        "c1",
        "shout",
        r#"{"text": "hi; rm -rf . $(id)"}"#,
    )]));
    let mut team = build(&spec, vec![backend], Some(2));
    let result = team.run("t".into()).await.unwrap();
    assert_eq!(result.messages.last().unwrap().content, "HI; RM -RF . $(ID)\n");
}

#[tokio::test]
async fn selector_candidates_and_prompt_shape_the_choice() {
    let spec = spec(
        "[team]\ntype = \"selector\"\nselector_prompt = \"Pick: {participants}\"\n\
         [team.candidates]\nalice = [\"bob\"]\n\
         [[agents]]\nname = \"alice\"\nsystem_message = \"a\"\n\
         [[agents]]\nname = \"bob\"\nsystem_message = \"b\"\n\
         [[agents]]\nname = \"carol\"\nsystem_message = \"c\"\n",
    );
    let selector = texts(&["alice", "carol"]);
    let backends = vec![texts(&["A"]), texts(&["B"]), texts(&["C"]), selector.clone()];
    let mut team = build(&spec, backends, Some(3));
    assert_eq!(sources(&mut team, "t").await, ["user", "alice", "bob"]);
    // After alice only bob may speak: no model call was needed to pick him.
    assert_eq!(selector.request_count(), 1);
    assert!(sent(&selector).contains("Pick: [alice, bob, carol]"), "{}", sent(&selector));
}

#[tokio::test]
async fn a_magentic_one_file_gets_its_orchestrator_and_first_speaker() {
    let spec = spec(
        "[team]\ntype = \"magentic_one\"\nmax_turns = 1\nfirst_speaker = \"b\"\n\
         [[agents]]\nname = \"a\"\nsystem_message = \"a\"\n\
         [[agents]]\nname = \"b\"\nsystem_message = \"b\"\n",
    );
    let orchestrator = texts(&["FACTS", "PLAN", "FINAL"]);
    let backends = vec![texts(&[]), texts(&["from b"]), orchestrator.clone()];
    let mut team = build(&spec, backends, Some(20));
    let o = agentgen_core::team::ORCHESTRATOR_NAME;
    assert_eq!(sources(&mut team, "t").await, ["user", o, o, "b", o]);
    assert_eq!(orchestrator.remaining(), 0);
}

#[tokio::test]
async fn a_magentic_one_file_asks_for_the_final_answer_with_its_prompt() {
    let spec = spec(
        "[team]\ntype = \"magentic_one\"\nmax_turns = 1\nfirst_speaker = \"a\"\n\
         final_answer_prompt = \"Sum up {task} for the user.\"\n\
         [[agents]]\nname = \"a\"\nsystem_message = \"a\"\n",
    );
    let orchestrator = texts(&["FACTS", "PLAN", "FINAL"]);
    let mut team = build(&spec, vec![texts(&["from a"]), orchestrator.clone()], Some(20));
    let result = team.run("the task".into()).await.unwrap();
    assert_eq!(result.messages.last().unwrap().content, "FINAL");
    let last = orchestrator.requests().last().unwrap().messages.last().cloned().unwrap();
    assert_eq!(last.text(), Some("Sum up the task for the user."));
}
