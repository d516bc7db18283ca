//! The engine's request limits on the real model: too many or too long `stop` strings are
//! refused with an error naming the setting, through the chat API and the raw generate API,
//! before anything reaches the engine thread; requests within the limits still run.

use agentgen_core::{BackendError, ChatBackend, ChatMessage, ChatRequest};
use agentgen_local::format::PromptSegment;
use agentgen_local::{GenerateOptions, LocalBackend, LocalConfig, LocalError};

fn with_stops(stop: Vec<String>) -> ChatRequest {
    let mut req = ChatRequest::new(vec![ChatMessage::user("Count to three.")])
        .with_temperature(0.0)
        .with_max_tokens(4);
    req.stop = stop;
    req
}

fn is_stop_error(e: &BackendError, setting: &str) -> bool {
    matches!(e, BackendError::InvalidRequest { param: Some(p), message, .. }
        if p == "stop" && message.contains(setting))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_lists_beyond_the_settings_are_refused() {
    let Some(path) = agentgen_models::cache::model_for_tests() else { return };
    let mut config = LocalConfig::new(path);
    config.slots = 1;
    config.context_size = Some(512);
    config.max_stop_strings = 3;
    config.max_stop_len = 8;
    assert!(matches!(
        config.check_stop(&vec!["a".to_owned(); 4]),
        Err(LocalError::TooManyStops { limit: 3, actual: 4 })
    ));
    let backend = LocalBackend::load(config).expect("the test model loads");

    let four: Vec<String> = (0..4).map(|i| format!("s{i}")).collect();
    let err = backend.complete(with_stops(four.clone())).await.unwrap_err();
    assert!(is_stop_error(&err, "max_stop_strings"), "{err:?}");
    let err = backend.stream(with_stops(vec!["x".repeat(9)])).await.err().unwrap();
    assert!(is_stop_error(&err, "max_stop_len"), "{err:?}");

    // The raw API is held to the same limits.
    let prompt = vec![PromptSegment { text: "Hello".into(), parse_special: false }];
    let options = GenerateOptions { stop: four, max_tokens: Some(2), ..Default::default() };
    let err = backend.generate(prompt.clone(), options, None).await.unwrap_err();
    assert!(is_stop_error(&err, "max_stop_strings"), "{err:?}");

    // At the limits, the request runs.
    let ok = with_stops(vec!["12345678".into(), "b".into(), "c".into()]);
    let resp = backend.complete(ok).await.expect("within the limits");
    assert!(resp.usage.completion_tokens > 0);
    assert_eq!(backend.stats().requests_finished, 1, "refused requests never reached the engine");
}
