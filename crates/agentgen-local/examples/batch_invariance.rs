//! Does llama.cpp compute the same logits for a token whether it is evaluated alone or inside a
//! batch of several? Lookup decoding verifies k drafted tokens in one batch where plain
//! decoding evaluates one token a step; its greedy output equals plain decoding's only where
//! the logits agree (or differ too little to flip the most likely token).
//!
//! Greedy-decodes N tokens one at a time after a code-edit prompt, keeping every step's logits,
//! then evaluates the same tokens again in batches of k (as fully accepted drafts would be) and
//! compares, position by position: bitwise-equal logit vectors, the largest difference, and
//! positions where the most likely token differs.
//!
//! ```text
//! cargo run --release -p agentgen-local --example batch_invariance -- [MODEL] [N] [THREADS]
//! ```
//! MODEL defaults to the test model in the cache; `AGENTGEN_FLASH_ATTN=0|1` forces flash
//! attention off or on (default: llama.cpp's choice).
//!
//! On llama.cpp's default CPU build no batch size matches: llamafile's tinyBLAS computes
//! batches of 2 rows and more, repacked weights use a GEMM from 4 rows, the tiled K-quant
//! kernels take over from 8, and flash attention splits a lone token's attention over a long
//! context across threads. Built without the first two and run without the third, every
//! position matches bit for bit at every batch size (flash attention off):
//!
//! ```text
//! GGML_LLAMAFILE=OFF GGML_CPU_REPACK=OFF CARGO_TARGET_DIR=target/exact \
//!   cargo build -p agentgen-local --example batch_invariance
//! GGML_CPU_TILED_MM=0 AGENTGEN_FLASH_ATTN=0 target/exact/debug/examples/batch_invariance
//! ```

use std::num::NonZeroU32;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

const RUST: &str = include_str!("../tests/fixtures/ledger.rs");

fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model_path = match args.next().filter(|p| !p.is_empty()) {
        Some(p) => p.into(),
        None => agentgen_models::cache::test_model_path()?,
    };
    let steps: usize = args.next().map_or(Ok(96), |s| s.parse())?;
    let threads: i32 = args.next().map_or(Ok(2), |s| s.parse())?;
    let backend = LlamaBackend::init()?;
    let model_params = Box::pin(LlamaModelParams::default());
    let model = LlamaModel::load_from_file(&backend, &model_path, &model_params)?;
    let mut params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(4096))
        .with_n_batch(512)
        .with_n_ubatch(512)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    match std::env::var("AGENTGEN_FLASH_ATTN").as_deref() {
        Ok("0") => {
            params =
                params.with_flash_attention_policy(llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED)
        }
        Ok("1") => {
            params =
                params.with_flash_attention_policy(llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_ENABLED)
        }
        _ => {}
    }
    let mut ctx = model.new_context(&backend, params)?;
    let prompt = format!(
        "<|im_start|>user\nFix the bug in `transfer`: it refuses transfers it should allow.\n\n\
         ```rust\n{RUST}```<|im_end|>\n<|im_start|>assistant\n"
    );
    let tokens = model.vocab().tokenize(prompt.as_bytes(), false, true);
    let n_prompt = tokens.len();
    let mut batch = LlamaBatch::new(512, 1);
    for (chunk_start, chunk) in (0..).step_by(512).zip(tokens.chunks(512)) {
        batch.clear();
        for (j, &t) in chunk.iter().enumerate() {
            let pos = chunk_start + j;
            batch.add(t, pos as i32, &[0], pos + 1 == n_prompt)?;
        }
        ctx.decode(&mut batch)?;
    }
    let first = argmax(ctx.get_logits_ith(batch.n_tokens() - 1));

    // Plain: one token a step.
    let mut generated = vec![LlamaToken::new(first as i32)];
    let mut plain: Vec<Vec<f32>> = Vec::with_capacity(steps);
    for step in 0..steps {
        batch.clear();
        batch.add(generated[step], (n_prompt + step) as i32, &[0], true)?;
        ctx.decode(&mut batch)?;
        let logits = ctx.get_logits_ith(0).to_vec();
        generated.push(LlamaToken::new(argmax(&logits) as i32));
        plain.push(logits);
    }
    println!("prompt {n_prompt} tokens, {steps} greedy steps, {threads} threads");

    for k in [2usize, 4, 8, 16] {
        ctx.clear_kv_cache_seq(Some(0), Some(n_prompt as u32), None)?;
        let mut same_bits = 0;
        let mut flips = Vec::new();
        let mut max_diff = 0f32;
        for start in (0..steps).step_by(k) {
            let end = (start + k).min(steps);
            batch.clear();
            for (step, &token) in (start..end).zip(&generated[start..end]) {
                batch.add(token, (n_prompt + step) as i32, &[0], true)?;
            }
            ctx.decode(&mut batch)?;
            for (j, step) in (start..end).enumerate() {
                let logits = ctx.get_logits_ith(j as i32);
                let reference = &plain[step];
                if logits == reference.as_slice() {
                    same_bits += 1;
                }
                let diff =
                    logits.iter().zip(reference).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                max_diff = max_diff.max(diff);
                if argmax(logits) != argmax(reference) {
                    flips.push(step);
                }
            }
        }
        println!(
            "batches of {k:>2}: {same_bits}/{steps} positions with bitwise-equal logits, \
             largest difference {max_diff:.5}, most likely token differs at {flips:?}"
        );
    }
    Ok(())
}
