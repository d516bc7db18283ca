//! Real-model tests of the two KV-cache layouts: a stream per slot (the default) and one
//! shared pool. The model comes from `$AGENTGEN_TEST_MODEL` or the model cache, as in
//! `engine.rs`.

use agentgen_core::{BackendError, ChatBackend, ChatMessage, ChatRequest, FinishReason};
use agentgen_local::{KvLayout, LocalBackend, LocalConfig};
use futures::StreamExt;

fn load(layout: KvLayout, context_size: u32) -> Option<LocalBackend> {
    let path = agentgen_models::cache::model_for_tests()?;
    let mut config = LocalConfig::new(path);
    config.context_size = Some(context_size);
    config.slots = 2;
    config.kv_layout = layout;
    Some(LocalBackend::load(config).expect("the test model loads"))
}

/// A request of about 190 prompt tokens that would write far more than `max_tokens`.
fn counting(first: u32, max_tokens: u32) -> ChatRequest {
    let filler = "Lighthouses guide ships. ".repeat(30);
    ChatRequest::new(vec![
        ChatMessage::system("You are a helpful assistant."),
        ChatMessage::user(format!("{filler}\nCount from {first} to 900, one number per line.")),
    ])
    .with_temperature(0.0)
    .with_max_tokens(max_tokens)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_slot_holds_a_whole_context_of_its_own() {
    let Some(backend) = load(KvLayout::PerSlot, 256) else { return };
    assert_eq!(backend.context_size(), 256, "the limit of one request");
    assert_eq!(backend.kv_cache_tokens(), 512, "two slots of 256");
    assert_eq!(backend.info().capabilities.context_length, Some(256));

    // Two prompts of ~190 tokens: together more than one slot's context, yet both run at once.
    let mut a = backend.stream(counting(1, 40)).await.unwrap();
    let mut b = backend.stream(counting(500, 40)).await.unwrap();
    a.next().await.expect("a first chunk").unwrap();
    b.next().await.expect("b first chunk").unwrap();
    assert_eq!(backend.stats().busy_slots, 2, "both requests generate together");
    let (mut a_chunks, mut b_chunks) = (1, 1);
    while let Some(chunk) = a.next().await {
        chunk.unwrap();
        a_chunks += 1;
    }
    while let Some(chunk) = b.next().await {
        chunk.unwrap();
        b_chunks += 1;
    }
    assert!(a_chunks > 10 && b_chunks > 10, "{a_chunks} {b_chunks}");

    // A prompt over one slot's context is refused, naming that limit.
    let long = "The quick brown fox jumps over the lazy dog. ".repeat(40);
    match backend.complete(ChatRequest::new(vec![ChatMessage::user(long)])).await {
        Err(BackendError::ContextOverflow { prompt_tokens, limit }) => {
            assert_eq!(limit, 256);
            assert!(prompt_tokens > 256 && prompt_tokens < 512, "{prompt_tokens}");
        }
        other => panic!("expected ContextOverflow, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_pool_gives_one_request_all_of_it() {
    let Some(backend) = load(KvLayout::Shared, 512) else { return };
    assert_eq!(backend.context_size(), 512);
    assert_eq!(backend.kv_cache_tokens(), 512, "one pool for both slots");

    // ~400 prompt tokens: more than half the pool, in one request.
    let long = format!("{}\nSay OK.", "The quick brown fox jumps over the lazy dog. ".repeat(40));
    let resp = backend
        .complete(
            ChatRequest::new(vec![ChatMessage::user(long)])
                .with_temperature(0.0)
                .with_max_tokens(8),
        )
        .await
        .unwrap();
    assert!(resp.usage.prompt_tokens > 256, "{:?}", resp.usage);

    // Two ~190-token prompts plus answers fit the pool side by side; both complete.
    let (a, b) =
        tokio::join!(backend.complete(counting(1, 24)), backend.complete(counting(500, 24)));
    for resp in [a.unwrap(), b.unwrap()] {
        assert_eq!(resp.finish_reason, FinishReason::Length);
        assert_eq!(resp.usage.completion_tokens, 24);
    }
}
