//! Where does prompt processing lose time against `llama-bench`? Times the evaluation of one
//! prompt of exactly P tokens (from an empty KV cache, logits for the last token only, as
//! `llama-bench`'s ppP does) under each llama.cpp setting the engine chooses differently, in
//! alternating rounds so a busy machine shifts every setting alike, and prints the median
//! tokens/s of each with its ratio to the first (llama-bench's own defaults). Then, in the same
//! context, it decodes G tokens one at a time (greedy) and prints the same for decoding.
//!
//! ```text
//! cargo run --release -p agentgen-local --example prefill_sweep -- [MODEL] [P] [ROUNDS] [THREADS] [G]
//! ```
//! MODEL defaults to the test model in the cache; P to 512, ROUNDS to 5, THREADS to 2, G to 64.

use std::num::NonZeroU32;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;

const RUST: &str = include_str!("../tests/fixtures/ledger.rs");

/// One setting under test.
#[derive(Clone, Copy)]
struct Setting {
    name: &'static str,
    n_batch: u32,
    n_ubatch: u32,
    flash: llama_cpp_sys_2::llama_flash_attn_type,
    /// Sequences in the context (the engine's slots) and whether they share one KV buffer.
    seqs: u32,
    unified: bool,
    /// KV cells per sequence.
    ctx_per_seq: u32,
    /// Evaluate the prompt in chunks of this many tokens (the engine's batch).
    chunk: usize,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model_path = match args.next().filter(|p| !p.is_empty()) {
        Some(p) => p.into(),
        None => agentgen_models::cache::test_model_path()?,
    };
    let p: usize = args.next().map_or(Ok(512), |s| s.parse())?;
    let rounds: usize = args.next().map_or(Ok(5), |s| s.parse())?;
    let threads: i32 = args.next().map_or(Ok(2), |s| s.parse())?;
    let g: usize = args.next().map_or(Ok(64), |s| s.parse())?;
    let backend = LlamaBackend::init()?;
    let model_params = Box::pin(LlamaModelParams::default());
    let model = LlamaModel::load_from_file(&backend, &model_path, &model_params)?;
    let mut text = String::new();
    while model.vocab().tokenize(text.as_bytes(), false, false).len() < p {
        text.push_str(RUST);
    }
    let mut tokens = model.vocab().tokenize(text.as_bytes(), false, false);
    tokens.truncate(p);

    use llama_cpp_sys_2::{
        LLAMA_FLASH_ATTN_TYPE_AUTO as AUTO, LLAMA_FLASH_ATTN_TYPE_DISABLED as OFF,
        LLAMA_FLASH_ATTN_TYPE_ENABLED as ON,
    };
    let base = Setting {
        name: "llama-bench defaults (batch 2048, ubatch 512, fa off, 1 seq)",
        n_batch: 2048,
        n_ubatch: 512,
        flash: OFF,
        seqs: 1,
        unified: true,
        ctx_per_seq: 4096,
        chunk: 2048,
    };
    let settings = [
        Setting { ..base },
        Setting { name: "fa auto", flash: AUTO, ..base },
        Setting { name: "fa on", flash: ON, ..base },
        Setting { name: "batch 512 = ubatch", n_batch: 512, chunk: 512, ..base },
        Setting { name: "4 seqs, split KV", seqs: 4, unified: false, ..base },
        Setting { name: "4 seqs, unified KV", seqs: 4, unified: true, ..base },
        Setting {
            name: "engine default (batch 512, fa auto, 4 seqs split)",
            n_batch: 512,
            n_ubatch: 512,
            flash: AUTO,
            seqs: 4,
            unified: false,
            ctx_per_seq: 4096,
            chunk: 512,
        },
    ];
    println!("prompt {p} tokens, {rounds} rounds, {threads} threads");
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); settings.len()];
    let mut decode: Vec<Vec<f64>> = vec![Vec::new(); settings.len()];
    for _ in 0..rounds {
        for ((s, out), dec) in settings.iter().zip(samples.iter_mut()).zip(decode.iter_mut()) {
            let params = LlamaContextParams::default()
                .with_n_ctx(NonZeroU32::new(s.ctx_per_seq * s.seqs))
                .with_n_batch(s.n_batch)
                .with_n_ubatch(s.n_ubatch)
                .with_n_seq_max(s.seqs)
                .with_kv_unified(s.unified)
                .with_flash_attention_policy(s.flash)
                .with_n_threads(threads)
                .with_n_threads_batch(threads);
            let mut ctx = model.new_context(&backend, params)?;
            let mut batch = LlamaBatch::new(s.chunk, 1);
            // A warm-up decode of a few tokens, as llama-bench does, then the timed prompt.
            batch.add(tokens[0], 0, &[0], true)?;
            ctx.decode(&mut batch)?;
            ctx.clear_kv_cache();
            let started = Instant::now();
            for (start, chunk) in (0..).step_by(s.chunk).zip(tokens.chunks(s.chunk)) {
                batch.clear();
                for (j, &t) in chunk.iter().enumerate() {
                    let pos = start + j;
                    batch.add(t, pos as i32, &[0], pos + 1 == p)?;
                }
                ctx.decode(&mut batch)?;
            }
            out.push(p as f64 / started.elapsed().as_secs_f64());
            // Decoding: one token a step after the prompt, as generation does.
            let started = Instant::now();
            let mut last = batch.n_tokens() - 1;
            for i in 0..g {
                let logits = ctx.get_logits_ith(last);
                let next = (0..logits.len()).max_by(|&a, &b| logits[a].total_cmp(&logits[b]));
                let token = llama_cpp_2::token::LlamaToken::new(next.unwrap_or(0) as i32);
                batch.clear();
                batch.add(token, (p + i) as i32, &[0], true)?;
                ctx.decode(&mut batch)?;
                last = 0;
            }
            dec.push(g as f64 / started.elapsed().as_secs_f64());
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for (what, samples) in [("prompt", &mut samples), ("decode", &mut decode)] {
        println!("{what}:");
        let medians: Vec<f64> = samples.iter_mut().map(median).collect();
        for ((s, m), v) in settings.iter().zip(&medians).zip(samples.iter()) {
            println!(
                "{:<58} {:>7.1} tok/s ({:.3}x; min {:.1}, max {:.1})",
                s.name,
                m,
                m / medians[0],
                v.first().copied().unwrap_or(0.0),
                v.last().copied().unwrap_or(0.0)
            );
        }
    }
    Ok(())
}
