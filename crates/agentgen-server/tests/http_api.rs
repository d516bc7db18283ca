//! The OpenAI wire shapes and error answers, over real HTTP on 127.0.0.1.

mod common;

use std::sync::Arc;

use agentgen_server::ServeConfig;
use common::{sse_data, user, Scripted, TestServer};
use serde_json::{json, Value};

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn post(srv: &TestServer, body: &Value) -> (u16, Value) {
    let resp = client().post(srv.chat_url()).json(body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn assert_error(body: &Value, code: Option<&str>) {
    let err = &body["error"];
    assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(err["type"].is_string(), "{body}");
    assert!(err.as_object().unwrap().contains_key("param"), "{body}");
    assert!(err.as_object().unwrap().contains_key("code"), "{body}");
    if let Some(code) = code {
        assert_eq!(err["code"], code, "{body}");
    }
}

#[tokio::test]
async fn whole_answer_has_openai_shape() {
    let srv = TestServer::local(Arc::new(Scripted::local())).await;
    let (status, body) = post(&srv, &user("hello there")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["model"], "test-model");
    assert_eq!(
        body["choices"][0]["message"],
        json!({"role": "assistant", "content": "echo: hello there"})
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["total_tokens"], 10);
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
    srv.stop().await.unwrap();
}

#[tokio::test]
async fn tool_calls_come_back_in_the_message() {
    let srv = TestServer::local(Arc::new(Scripted::local())).await;
    let mut req = user("use the tool");
    req["tools"] = json!([{"type": "function", "function": {"name": "add", "parameters":
        {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}}]);
    let (status, body) = post(&srv, &req).await;
    assert_eq!(status, 200, "{body}");
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert!(choice["message"]["content"].is_null());
    assert_eq!(
        choice["message"]["tool_calls"],
        json!([{"id": "call_1", "type": "function", "function": {"name": "add", "arguments": "{\"a\":2,\"b\":3}"}}])
    );
    srv.stop().await.unwrap();
}

#[tokio::test]
async fn streamed_answer_has_role_deltas_finish_usage_and_done() {
    let srv = TestServer::local(Arc::new(Scripted::local())).await;
    let mut req = user("one two");
    req["stream"] = json!(true);
    req["stream_options"] = json!({"include_usage": true});
    let resp = client().post(srv.chat_url()).json(&req).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let data = sse_data(&resp.text().await.unwrap());
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> =
        data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk" && c["id"] == chunks[0]["id"]));
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect::<Vec<_>>()
        .concat();
    assert_eq!(text, "echo: one two");
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 3);
    assert_eq!(usage["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
    srv.stop().await.unwrap();
}

#[tokio::test]
async fn streamed_tool_call_arrives_in_pieces() {
    let srv = TestServer::local(Arc::new(Scripted::local())).await;
    let mut req = user("tool please");
    req["stream"] = json!(true);
    req["tools"] = json!([{"type": "function", "function": {"name": "add"}}]);
    let resp = client().post(srv.chat_url()).json(&req).send().await.unwrap();
    let data = sse_data(&resp.text().await.unwrap());
    let chunks: Vec<Value> =
        data.iter().filter(|d| *d != "[DONE]").map(|d| serde_json::from_str(d).unwrap()).collect();
    let pieces: Vec<&Value> =
        chunks.iter().filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0)).collect();
    assert_eq!(pieces.len(), 3);
    assert_eq!(pieces[0]["id"], "call_1");
    assert_eq!(pieces[0]["type"], "function");
    assert_eq!(pieces[0]["function"]["name"], "add");
    let args: String = pieces.iter().filter_map(|p| p["function"]["arguments"].as_str()).collect();
    assert_eq!(args, "{\"a\":2,\"b\":3}");
    assert!(pieces[1].get("id").is_none());
    assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "tool_calls");
    assert!(chunks.iter().all(|c| c.get("usage").is_none()), "no usage without include_usage");
    assert_eq!(data.last().unwrap(), "[DONE]");
    srv.stop().await.unwrap();
}

#[tokio::test]
async fn bad_input_gets_4xx_error_json_and_the_server_keeps_serving() {
    let backend = Arc::new(Scripted::local());
    let config = ServeConfig { body_limit_bytes: 4096, ..ServeConfig::default() };
    let srv = TestServer::start(config, backend.clone(), None).await;
    let c = client();
    let raw = |body: &'static str| {
        c.post(srv.chat_url()).header("content-type", "application/json").body(body).send()
    };

    let resp = raw("{\"messages\": [").await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_error(&resp.json().await.unwrap(), Some("invalid_json"));

    let (s, b) =
        post(&srv, &json!({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}))
            .await;
    assert_eq!(s, 400);
    assert_error(&b, Some("invalid_type"));
    assert_eq!(b["error"]["param"], "temperature");

    let (s, b) = post(&srv, &json!({"messages": "not a list"})).await;
    assert_eq!(s, 400);
    assert_eq!(b["error"]["param"], "messages");

    let (s, b) =
        post(&srv, &json!({"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}))
            .await;
    assert_eq!(s, 404);
    assert_error(&b, Some("model_not_found"));

    let (s, b) = post(&srv, &json!({"messages": [{"role": "user", "content": "x"}], "tools": [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": 5}}}}}]})).await;
    assert_eq!(s, 400);
    assert_error(&b, Some("invalid_schema"));

    let (s, b) =
        post(&srv, &json!({"messages": [{"role": "user", "content": "x"}], "logprobs": true}))
            .await;
    assert_eq!(s, 400);
    assert_error(&b, Some("unsupported_parameter"));

    let big = json!({"messages": [{"role": "user", "content": "x".repeat(10_000)}]});
    let (s, b) = post(&srv, &big).await;
    assert_eq!(s, 413);
    assert_error(&b, Some("request_too_large"));

    let (s, b) = post(&srv, &user("this prompt will overflow")).await;
    assert_eq!(s, 400);
    assert_error(&b, Some("context_length_exceeded"));
    let mut streamed = user("overflow again");
    streamed["stream"] = json!(true);
    let (s, b) = post(&srv, &streamed).await;
    assert_eq!(s, 400, "a streamed request that fails before its first token is a plain error");
    assert_error(&b, Some("context_length_exceeded"));

    let (s, b) = post(&srv, &user("badschema")).await;
    assert_eq!(s, 400);
    assert_eq!(b["error"]["param"], "tools");

    let resp = c.get(format!("{}/v1/nope", srv.url)).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_error(&resp.json().await.unwrap(), Some("unknown_url"));

    let resp = c.get(srv.chat_url()).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_error(&resp.json().await.unwrap(), None);

    // Still serving.
    let (s, b) = post(&srv, &user("still alive")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["choices"][0]["message"]["content"], "echo: still alive");
    srv.stop().await.unwrap();
}

#[tokio::test]
async fn api_key_is_required_in_either_header_but_not_for_health() {
    let config = ServeConfig { api_key: Some("sk-local-123".into()), ..ServeConfig::default() };
    let srv = TestServer::start(config, Arc::new(Scripted::local()), None).await;
    let c = client();
    let resp = c.post(srv.chat_url()).json(&user("hi")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "authentication_error");
    let resp =
        c.post(srv.chat_url()).bearer_auth("sk-wrong").json(&user("hi")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_error(&resp.json().await.unwrap(), Some("invalid_api_key"));
    let resp =
        c.post(srv.chat_url()).bearer_auth("sk-local-123").json(&user("hi")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = c
        .get(format!("{}/v1/models", srv.url))
        .header("x-api-key", "sk-local-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = c.get(format!("{}/health", srv.url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    srv.stop().await.unwrap();
}

#[tokio::test]
async fn models_health_and_metrics() {
    let srv = TestServer::local(Arc::new(Scripted::local())).await;
    let c = client();
    let models: Value =
        c.get(format!("{}/v1/models", srv.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "test-model");
    assert_eq!(models["data"][0]["object"], "model");
    let one = c.get(format!("{}/v1/models/test-model", srv.url)).send().await.unwrap();
    assert_eq!(one.status(), 200);
    let missing = c.get(format!("{}/v1/models/other", srv.url)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_error(&missing.json().await.unwrap(), Some("model_not_found"));
    let health: Value =
        c.get(format!("{}/health", srv.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");

    post(&srv, &user("count me")).await;
    post(&srv, &json!({"messages": []})).await;
    let text = c.get(format!("{}/metrics", srv.url)).send().await.unwrap().text().await.unwrap();
    assert!(
        text.contains("agentgen_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("agentgen_requests_total{route=\"/v1/chat/completions\",status=\"400\"} 1"),
        "{text}"
    );
    assert!(text.contains("agentgen_prompt_tokens_total 7"), "{text}");
    assert!(text.contains("agentgen_completion_tokens_total 3"), "{text}");
    assert!(text.contains("agentgen_cached_tokens_total 2"), "{text}");
    assert!(text.contains("agentgen_request_duration_seconds_count 1"), "{text}");
    assert!(text.contains("agentgen_time_to_first_token_seconds_bucket"), "{text}");
    assert!(text.contains("agentgen_queue_depth 0"), "{text}");
    assert!(text.contains("agentgen_busy_slots 0"), "{text}");
    srv.stop().await.unwrap();
}

#[tokio::test]
async fn loading_server_answers_503_until_the_backend_arrives() {
    let server =
        agentgen_server::Server::bind(ServeConfig { port: 0, ..ServeConfig::default() }, None)
            .await
            .unwrap();
    let url = format!("http://{}", server.local_addr().unwrap());
    let state = server.state().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    let c = client();
    let resp = c.get(format!("{url}/health")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "unavailable_error");
    assert_eq!(body["error"]["message"], "Loading model");
    let resp = c.post(format!("{url}/v1/chat/completions")).json(&user("hi")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    state.install_backend(Arc::new(Scripted::local())).unwrap();
    assert_eq!(c.get(format!("{url}/health")).send().await.unwrap().status(), 200);
    assert_eq!(
        c.post(format!("{url}/v1/chat/completions"))
            .json(&user("hi"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn cors_is_off_unless_asked() {
    let c = client();
    let srv = TestServer::local(Arc::new(Scripted::local())).await;
    let resp = c
        .get(format!("{}/health", srv.url))
        .header("origin", "http://example.test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "a foreign origin is refused without CORS");
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
    srv.stop().await.unwrap();
    let srv = TestServer::start(
        ServeConfig { cors_origins: vec!["http://example.test".into()], ..ServeConfig::default() },
        Arc::new(Scripted::local()),
        None,
    )
    .await;
    let resp = c
        .get(format!("{}/health", srv.url))
        .header("origin", "http://example.test")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().contains_key("access-control-allow-origin"));
    srv.stop().await.unwrap();
}

#[tokio::test]
async fn default_and_configured_aliases_name_the_served_model() {
    let config = ServeConfig {
        model_aliases: vec!["llama-3.1-8b-instant".into()],
        ..ServeConfig::default()
    };
    let backend = Arc::new(Scripted::local());
    let srv = TestServer::start(config, backend.clone(), None).await;
    for model in ["default", "llama-3.1-8b-instant", "test-model"] {
        let (s, b) =
            post(&srv, &json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
                .await;
        assert_eq!(s, 200, "{model}: {b}");
        assert_eq!(b["model"], "test-model");
        let seen = backend.probe.last.lock().unwrap().clone().unwrap();
        assert_eq!(seen.model.as_deref(), Some("test-model"), "the backend gets its own id");
    }
    let resp = client().get(format!("{}/v1/models/default", srv.url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    srv.stop().await.unwrap();
}
