use super::*;
use crate::profile::{GROQ, LLAMA_SERVER, OLLAMA, OPENAI, OPENAI_COMPATIBLE, VLLM};
use agentgen_core::{ChatMessage, ResponseFormat, ToolSpec};
use serde_json::json;

fn req() -> ChatRequest {
    ChatRequest::new(vec![ChatMessage::system("s"), ChatMessage::user_named("hi", "alice")])
}

#[test]
fn groq_body_strips_names_and_renames_max_tokens() {
    let mut r = req().with_max_tokens(32).with_temperature(0.0);
    r.sampling.top_k = Some(40);
    let body = request_body(&GROQ, "m1", &r, false, &Map::new()).unwrap();
    assert_eq!(body["model"], "m1");
    assert_eq!(body["messages"][1], json!({"role": "user", "content": "hi"}));
    assert_eq!(body["max_completion_tokens"], 32);
    assert_eq!(body["temperature"], 0.0);
    assert!(body.get("max_tokens").is_none());
    assert!(body.get("top_k").is_none());
    assert!(body.get("stream").is_none());
}

#[test]
fn compatible_body_is_sent_as_is() {
    let mut r = req().with_max_tokens(8);
    r.sampling.min_p = Some(0.1);
    let body = request_body(&OPENAI_COMPATIBLE, "m", &r, true, &Map::new()).unwrap();
    assert_eq!(body["messages"][1]["name"], "alice");
    assert_eq!(body["max_tokens"], 8);
    assert_eq!(body["min_p"], json!(0.1f32));
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
}

#[test]
fn each_profile_sends_only_the_sampling_it_honours() {
    let mut r = req();
    r.sampling.top_k = Some(3);
    r.sampling.repeat_penalty = Some(1.1);
    let sent = |p| {
        let body = request_body(p, "m", &r, false, &Map::new()).unwrap();
        ["top_k", "min_p", "repeat_penalty"]
            .into_iter()
            .filter(|f| body.get(*f).is_some())
            .collect::<Vec<_>>()
    };
    assert_eq!(sent(&LLAMA_SERVER), ["top_k", "repeat_penalty"]);
    assert_eq!(sent(&VLLM), ["top_k"]);
    assert!(sent(&OLLAMA).is_empty());
    assert!(sent(&OPENAI).is_empty());
}

#[test]
fn groq_refuses_five_stops_and_schema_with_stream_or_tools() {
    let mut r = req();
    r.stop = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
    let err = request_body(&GROQ, "m", &r, false, &Map::new()).unwrap_err();
    assert!(matches!(&err, BackendError::InvalidRequest { param: Some(p), .. } if p == "stop"));
    r.stop.truncate(4);
    assert!(request_body(&GROQ, "m", &r, false, &Map::new()).is_ok());

    let r = req().with_response_format(ResponseFormat::json_schema("r", json!({"type": "object"})));
    assert!(request_body(&GROQ, "m", &r, false, &Map::new()).is_ok());
    let err = request_body(&GROQ, "m", &r, true, &Map::new()).unwrap_err();
    assert!(err.to_string().contains("stream"), "{err}");
    let r = r.with_tools(vec![ToolSpec::function("f", "d", json!({"type": "object"}))]);
    let err = request_body(&GROQ, "m", &r, false, &Map::new()).unwrap_err();
    assert!(err.to_string().contains("tools"), "{err}");
    // Other servers get what they are asked for.
    assert!(request_body(&OPENAI_COMPATIBLE, "m", &r, true, &Map::new()).is_ok());
}

#[test]
fn groq_sends_strict_schemas_only_to_the_models_that_take_them() {
    let r = req().with_response_format(ResponseFormat::json_schema("r", json!({"type": "object"})));
    let strict = |model: &str| {
        request_body(&GROQ, model, &r, false, &Map::new()).unwrap()["response_format"]
            ["json_schema"]
            .get("strict")
            .cloned()
    };
    assert_eq!(strict("openai/gpt-oss-20b"), Some(json!(true)));
    assert_eq!(strict("qwen/qwen3.6-27b"), None);
}

#[test]
fn extras_follow_each_profile() {
    let extra = |k: &str, v: Value| Map::from_iter([(k.to_owned(), v)]);
    assert!(GROQ.check_extra(&extra("service_tier", json!("flex"))).is_ok());
    assert!(GROQ.check_extra(&extra("n", json!(1))).is_ok());
    assert!(GROQ.check_extra(&extra("n", json!(2))).is_err());
    assert!(GROQ.check_extra(&extra("logprobs", json!(true))).is_err());
    assert!(GROQ.check_extra(&extra("logit_bias", json!({"1": 2}))).is_err());
    assert!(OPENAI_COMPATIBLE.check_extra(&extra("logprobs", json!(true))).is_ok());
    assert!(OPENAI_COMPATIBLE.check_extra(&extra("stream", json!(true))).is_err());
    let body =
        request_body(&GROQ, "m", &req(), false, &extra("service_tier", json!("flex"))).unwrap();
    assert_eq!(body["service_tier"], "flex");
}

#[test]
fn profiles_are_found_by_name() {
    for p in crate::profile::PROFILES {
        assert_eq!(crate::profile::ProviderProfile::named(p.name), Some(p));
    }
    assert_eq!(crate::profile::ProviderProfile::named("nope"), None);
}
