//! Lookup decoding on the real model (default GGUF: Qwen2.5-Coder-0.5B-Instruct Q4_K_M): on
//! code-edit turns, where the answer copies much of the prompt, the text is byte for byte the
//! text plain decoding gives (greedy, under a JSON-schema constraint, and sampled with a
//! seed), and drafted tokens were really accepted.
//!
//! The model comes from `$AGENTGEN_TEST_MODEL` or the model cache; a missing model fails
//! these tests unless `AGENTGEN_SKIP_MODEL_TESTS=1`.

use std::sync::{LazyLock, OnceLock};

use agentgen_core::{ChatMessage, ChatRequest};
use agentgen_local::format::PromptSegment;
use agentgen_local::{GenerateOptions, Generation, LocalBackend, LocalConfig};
use llguidance::api::TopLevelGrammar;
use serde_json::json;
use tokio::sync::Mutex;

/// Tests compare runs on one engine; run them one at a time.
static ALONE: LazyLock<Mutex<()>> = LazyLock::new(|| Mutex::new(()));

const PYTHON: &str = include_str!("fixtures/inventory.py");
const RUST: &str = include_str!("fixtures/ledger.rs");

fn engine() -> Option<LocalBackend> {
    static ENGINE: OnceLock<LocalBackend> = OnceLock::new();
    let path = agentgen_models::cache::model_for_tests()?;
    Some(
        ENGINE
            .get_or_init(|| {
                let mut config = LocalConfig::new(path);
                config.threads = Some(2);
                config.slots = 2;
                config.lookup_max_draft = Some(16);
                LocalBackend::load(config).expect("the test model loads")
            })
            .clone(),
    )
}

/// A code-edit turn: the instruction, then the file.
fn edit(backend: &LocalBackend, instruction: &str, lang: &str, code: &str) -> Vec<PromptSegment> {
    let req = ChatRequest::new(vec![
        ChatMessage::system("You are a careful programmer. Answer with the whole edited file."),
        ChatMessage::user(format!("{instruction}\n\n```{lang}\n{code}```")),
    ]);
    backend.chat_format().render(&req).expect("the prompt renders")
}

fn options(lookup: bool, max_tokens: u32) -> GenerateOptions {
    GenerateOptions { temperature: 0.0, max_tokens: Some(max_tokens), lookup, ..Default::default() }
}

/// Generates once without and once with lookup decoding; both must give the same text.
async fn plain_and_lookup(
    backend: &LocalBackend,
    prompt: &[PromptSegment],
    opts: &GenerateOptions,
    grammar: Option<&TopLevelGrammar>,
) -> (Generation, Generation) {
    let plain = GenerateOptions { lookup: false, ..opts.clone() };
    let plain = backend.generate(prompt.to_vec(), plain, grammar.cloned()).await.unwrap();
    let fast = GenerateOptions { lookup: true, ..opts.clone() };
    let fast = backend.generate(prompt.to_vec(), fast, grammar.cloned()).await.unwrap();
    assert_eq!(plain.timings.draft_n, 0, "a request that opted out drafts nothing");
    assert_eq!(fast.text, plain.text, "lookup decoding changed the text");
    assert_eq!(fast.finish_reason, plain.finish_reason);
    assert_eq!(fast.usage.completion_tokens, plain.usage.completion_tokens);
    let t = fast.timings;
    assert!(t.draft_n_accepted <= t.draft_n, "{t:?}");
    println!(
        "{} tokens, drafted {}, accepted {}; plain {:.1} t/s, lookup {:.1} t/s",
        fast.usage.completion_tokens,
        t.draft_n,
        t.draft_n_accepted,
        plain.timings.predicted_per_second,
        t.predicted_per_second
    );
    (plain, fast)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_edits_come_out_the_same_with_drafts_accepted() {
    let Some(backend) = engine() else { return };
    let _alone = ALONE.lock().await;
    let before = backend.stats();
    let cases = [
        ("Rename the method `total_value` to `stock_value`.", "python", PYTHON),
        ("Add a one-line docstring to every method of `Inventory`.", "python", PYTHON),
        ("Fix the bug in `transfer`: it refuses transfers it should allow.", "rust", RUST),
    ];
    for (instruction, lang, code) in cases {
        let prompt = edit(&backend, instruction, lang, code);
        let (_, fast) = plain_and_lookup(&backend, &prompt, &options(true, 96), None).await;
        assert!(
            fast.timings.draft_n_accepted > 0,
            "{instruction}: no draft was accepted: {:?}",
            fast.timings
        );
    }
    let after = backend.stats();
    assert!(after.draft_accepted > before.draft_accepted);
    assert!(after.draft_tokens >= after.draft_accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_schema_answer_comes_out_the_same() {
    let Some(backend) = engine() else { return };
    let _alone = ALONE.lock().await;
    let schema = json!({
        "type": "object",
        "properties": {
            "summary": {"type": "string"},
            "code": {"type": "string"}
        },
        "required": ["summary", "code"]
    });
    let grammar = TopLevelGrammar::from_lark(format!("start: %json {schema}"));
    let prompt = edit(
        &backend,
        "Rename `reorder_level` to `minimum_stock`. Answer in JSON: a one-sentence `summary` \
         and the edited file as `code`.",
        "python",
        PYTHON,
    );
    let (_, fast) = plain_and_lookup(&backend, &prompt, &options(true, 96), Some(&grammar)).await;
    assert!(fast.text.starts_with('{'), "{}", fast.text);
    assert!(fast.timings.draft_n_accepted > 0, "no draft was accepted: {:?}", fast.timings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_with_a_seed_draws_the_same_tokens() {
    let Some(backend) = engine() else { return };
    let _alone = ALONE.lock().await;
    let prompt = edit(&backend, "Rename `history` to `journal`.", "rust", RUST);
    let opts = GenerateOptions {
        temperature: 0.7,
        seed: Some(7),
        max_tokens: Some(80),
        ..GenerateOptions::default()
    };
    let (_, fast) = plain_and_lookup(&backend, &prompt, &opts, None).await;
    assert!(fast.timings.draft_n > 0, "nothing was drafted: {:?}", fast.timings);
}

/// Two requests drafting while batched together. Where batching is exact
/// ([`LocalBackend::exact_batching`]) each writes what it writes alone without drafts; on
/// llama.cpp's default build a bigger batch is computed with other kernels, so there only the
/// drafting is checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_draft_while_batched_together() {
    let Some(backend) = engine() else { return };
    let _alone = ALONE.lock().await;
    let a = edit(&backend, "Rename `parts` to `items`.", "python", PYTHON);
    let b = edit(&backend, "Rename `owner` to `holder`.", "rust", RUST);
    let run =
        |prompt: &Vec<PromptSegment>| backend.generate(prompt.clone(), options(true, 64), None);
    let (x, y) = tokio::join!(run(&a), run(&b));
    for (prompt, together) in [(&a, x.unwrap()), (&b, y.unwrap())] {
        assert!(together.timings.draft_n_accepted > 0, "{:?}", together.timings);
        if backend.exact_batching() {
            let alone = backend.generate(prompt.clone(), options(false, 64), None).await.unwrap();
            assert_eq!(together.text, alone.text);
        }
    }
}

/// The per-request switch on the chat API: `lookup_decoding: false` (a top-level field on the
/// wire) drafts nothing on an engine that has lookup on; left out, the same request drafts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_request_can_opt_out_of_lookup_drafts() {
    use agentgen_core::ChatBackend;
    let Some(backend) = engine() else { return };
    let _alone = ALONE.lock().await;
    let body = |lookup: Option<bool>| {
        let mut v = json!({
            "messages": [
                {"role": "system", "content": "You are a careful programmer. Answer with the whole edited file."},
                {"role": "user", "content": format!("Rename the method `total_value` to `stock_value`.\n\n```python\n{PYTHON}```")}
            ],
            "temperature": 0, "max_tokens": 48
        });
        if let Some(on) = lookup {
            v["lookup_decoding"] = json!(on);
        }
        serde_json::from_value::<ChatRequest>(v).expect("a valid request")
    };
    let off = backend.complete(body(Some(false))).await.unwrap();
    let on = backend.complete(body(None)).await.unwrap();
    let drafted = |r: &agentgen_core::ChatResponse| r.timings.as_ref().map_or(0, |t| t.draft_n);
    assert_eq!(drafted(&off), 0, "the request opted out");
    assert!(drafted(&on) > 0, "the default request drafted nothing: {:?}", on.timings);
    assert_eq!(off.text(), on.text());
}

/// The engine measures at load whether a token comes out bit for bit the same alone and in a
/// batch; lookup decoding is on by default exactly where it does, so a default engine's answer
/// is always plain decoding's. Flash attention asked for is never counted as exact (it splits a
/// lone token's attention over long contexts otherwise than a batch's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_is_on_by_default_only_where_batching_is_measured_exact() {
    let Some(path) = agentgen_models::cache::model_for_tests() else { return };
    let _alone = ALONE.lock().await;
    let mut config = LocalConfig::new(path);
    config.threads = Some(2);
    config.slots = 1;
    config.context_size = Some(2048);
    let engine = LocalBackend::load(config.clone()).expect("the test model loads");
    let exact = engine.exact_batching();
    println!("exact batching on this build: {exact}");
    let expected = if exact { agentgen_local::DEFAULT_LOOKUP_MAX_DRAFT } else { 0 };
    assert_eq!(engine.lookup_max_draft(), expected);
    let prompt =
        edit(&engine, "Rename the method `total_value` to `stock_value`.", "python", PYTHON);
    let g = engine.generate(prompt, options(true, 48), None).await.unwrap();
    assert_eq!(g.timings.draft_n > 0, exact, "{:?}", g.timings);
    drop(engine);

    config.flash_attention = Some(true);
    let with_fa = LocalBackend::load(config.clone()).expect("the test model loads");
    assert!(!with_fa.exact_batching());
    assert_eq!(with_fa.lookup_max_draft(), 0);
    drop(with_fa);

    // An explicit limit wins either way.
    config.flash_attention = None;
    config.lookup_max_draft = Some(4);
    let forced = LocalBackend::load(config).expect("the test model loads");
    assert_eq!(forced.lookup_max_draft(), 4);
}
