//! Speed and cache figures of the local engine on the default model, printed for the notes.
//! Not a timed test: it asserts nothing about speed. Run it with
//!
//! ```text
//! cargo test -p agentgen-local --test engine_figures -- --ignored --nocapture
//! ```
//!
//! `AGENTGEN_FIGURE_THREADS` sets the CPU threads (default 2); `AGENTGEN_FIGURE_FLASH` = 0 or 1
//! turns flash attention off or on (default: llama.cpp decides); `AGENTGEN_FIGURE_KV=shared`
//! runs the shared KV layout instead of a stream per slot.

use std::time::Instant;

use agentgen_core::{ChatBackend, ChatMessage, ChatRequest};
use agentgen_local::format::PromptSegment;
use agentgen_local::{GenerateOptions, LocalBackend, LocalConfig};

fn load() -> LocalBackend {
    let path = agentgen_models::cache::test_model_path().unwrap_or_else(|e| panic!("{e}"));
    let threads =
        std::env::var("AGENTGEN_FIGURE_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(2);
    let mut config = LocalConfig::new(path);
    config.threads = Some(threads);
    config.flash_attention = std::env::var("AGENTGEN_FIGURE_FLASH").ok().map(|v| v == "1");
    if let Ok(layout) = std::env::var("AGENTGEN_FIGURE_KV") {
        config.kv_layout = layout.parse().expect("AGENTGEN_FIGURE_KV: per-slot or shared");
    }
    println!(
        "threads: {threads}, flash attention: {:?}, KV layout: {:?}",
        config.flash_attention, config.kv_layout
    );
    LocalBackend::load(config).expect("the test model loads")
}

fn text(s: &str) -> PromptSegment {
    PromptSegment { text: s.to_owned(), parse_special: false }
}

fn greedy(max_tokens: u32) -> GenerateOptions {
    GenerateOptions { temperature: 0.0, max_tokens: Some(max_tokens), ..GenerateOptions::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "prints speed figures; run explicitly"]
async fn figures() {
    let backend = load();

    // Prompt processing: ~512 fresh tokens, as llama-bench's pp512 (a different first word each
    // run defeats the cache).
    let mut pp = Vec::new();
    for run in 0..3 {
        let body = format!("{run} {}", "alpha beta gamma delta epsilon zeta eta theta ".repeat(57));
        let g = backend.generate(vec![text(&body)], greedy(1), None).await.unwrap();
        pp.push((g.timings.prompt_n, g.timings.prompt_per_second));
    }
    println!("prompt processing (n, t/s): {pp:?}");

    // Decode: 128 tokens.
    let mut tg = Vec::new();
    for run in 0..2 {
        let prompt = format!("<|im_start|>user\nCount from {run} to 2000, one number per line.<|im_end|>\n<|im_start|>assistant\n");
        let seg = PromptSegment { text: prompt, parse_special: true };
        let g = backend.generate(vec![seg], greedy(128), None).await.unwrap();
        tg.push((g.timings.predicted_n, g.timings.predicted_per_second));
    }
    println!("decode (n, t/s): {tg:?}");

    // Decode again while the other slots hold long cached prompts: with one KV pool shared by
    // every slot, attention spans every cached cell, so this shows what a team's cached
    // conversations cost a fresh stream (with a stream per slot, nothing).
    let mut cached = 0;
    for slot in 0..3 {
        let body = format!("{slot} {}", "iota kappa lambda mu nu xi omicron pi ".repeat(150));
        cached +=
            backend.generate(vec![text(&body)], greedy(1), None).await.unwrap().usage.prompt_tokens;
    }
    let mut tg_cached = Vec::new();
    for run in 0..2 {
        let prompt = format!("<|im_start|>user\nCount from {} to 2000, one number per line.<|im_end|>\n<|im_start|>assistant\n", run + 7);
        let seg = PromptSegment { text: prompt, parse_special: true };
        let g = backend.generate(vec![seg], greedy(128), None).await.unwrap();
        tg_cached.push((g.timings.predicted_n, g.timings.predicted_per_second));
    }
    println!("decode beside {cached} cached tokens in 3 other slots (n, t/s): {tg_cached:?}");

    // Four streams at once versus one after another.
    let req = |i: usize| {
        ChatRequest::new(vec![ChatMessage::user(format!(
            "Count from {i} to 500, one number per line."
        ))])
        .with_temperature(0.0)
        .with_max_tokens(64)
    };
    let started = Instant::now();
    let mut tokens = 0;
    for i in 0..4 {
        tokens += backend.complete(req(i)).await.unwrap().usage.completion_tokens;
    }
    let sequential = f64::from(tokens) / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let all = futures::future::join_all((10..14).map(|i| backend.complete(req(i)))).await;
    let tokens: u32 = all.into_iter().map(|r| r.unwrap().usage.completion_tokens).sum();
    let concurrent = f64::from(tokens) / started.elapsed().as_secs_f64();
    println!("4 requests: sequential {sequential:.1} t/s, concurrent {concurrent:.1} t/s (wall, prompt included)");

    // A 3-agent, 12-message round-robin: how much of the prompts the cache served.
    let roles = [
        "You are the planner. Break the task into short numbered steps.",
        "You are the coder. Write compact Rust code for the current step.",
        "You are the reviewer. Point out one concrete problem or say APPROVE.",
    ];
    let task =
        "Write a function that parses a comma-separated list of integers and returns their sum.";
    let before = backend.stats();
    let mut history: Vec<(usize, String)> = Vec::new();
    let (mut prompt_total, mut cached_total) = (0u64, 0u64);
    for turn in 0..12 {
        let me = turn % 3;
        let mut messages = vec![ChatMessage::system(roles[me]), ChatMessage::user(task)];
        for (who, said) in &history {
            messages.push(if *who == me {
                ChatMessage::assistant(said.clone())
            } else {
                ChatMessage::user_named(said.clone(), format!("agent{who}"))
            });
        }
        let resp = backend
            .complete(ChatRequest::new(messages).with_temperature(0.0).with_max_tokens(48))
            .await
            .unwrap();
        prompt_total += u64::from(resp.usage.prompt_tokens);
        cached_total += u64::from(resp.usage.cached_tokens);
        history.push((me, resp.text().unwrap_or_default().to_owned()));
    }
    let after = backend.stats();
    let evaluated = after.prompt_tokens_evaluated - before.prompt_tokens_evaluated;
    println!(
        "round-robin: {prompt_total} prompt tokens, {cached_total} from cache, {evaluated} evaluated = {:.1}% of a cache-less engine",
        100.0 * evaluated as f64 / prompt_total as f64
    );
}
