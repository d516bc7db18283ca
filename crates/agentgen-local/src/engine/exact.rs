//! Does this llama.cpp build compute a token bit for bit the same whether it is evaluated
//! alone or inside a batch? Lookup decoding verifies drafts in one batch where plain decoding
//! takes one token a step, and continuous batching puts other requests' tokens beside a
//! request's own: both keep a greedy answer unchanged only where the answer is.
//!
//! llama.cpp's CPU backend picks its matrix kernels by batch size: llamafile's tinyBLAS for
//! two rows or more (`GGML_LLAMAFILE`), the repacked-weight GEMM from four (`GGML_CPU_REPACK`),
//! the tiled K-quant kernels from eight (`GGML_CPU_TILED_MM`), and flash attention splits a
//! single token's attention over long contexts across threads. Each sums in another order than
//! the one-row kernels, so the logits differ in their last bits and a near tie can flip a greedy
//! choice. Rather than trust build flags, the engine measures: [`probe`] evaluates a few tokens
//! in one batch and one at a time in a small context of its own and compares every logit.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;

/// The text whose tokens the probe evaluates (any text does; this one is code-like).
const PROBE_TEXT: &str =
    "fn transfer(from: &mut Account, to: &mut Account, amount: u64) -> Result<(), Error> {";
/// Tokens the probe evaluates: past every batch-size threshold above (8).
const PROBE_TOKENS: usize = 12;
/// Probe results remembered per process (model file and thread count); more start afresh.
const MAX_REMEMBERED: usize = 32;

/// Whether the model at `path` evaluates tokens bit for bit the same alone and in a batch, on
/// `threads` threads without flash attention. Measured once per model file and thread count
/// in a process (up to [`MAX_REMEMBERED`] of them). `false` also when the probe cannot run.
pub(crate) fn batch_invariant(
    backend: &LlamaBackend,
    model: &LlamaModel,
    path: PathBuf,
    threads: i32,
) -> bool {
    static SEEN: Mutex<Option<HashMap<(PathBuf, i32), bool>>> = Mutex::new(None);
    let key = (path, threads);
    if let Some(&known) =
        SEEN.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert_default().get(&key)
    {
        return known;
    }
    let exact = match probe(backend, model, threads) {
        Ok(exact) => exact,
        Err(e) => {
            tracing::warn!(error = %e, "could not check whether batching is exact; assuming not");
            false
        }
    };
    let mut seen = SEEN.lock().unwrap_or_else(PoisonError::into_inner);
    let seen = seen.get_or_insert_default();
    if seen.len() >= MAX_REMEMBERED {
        seen.clear();
    }
    seen.insert(key, exact);
    exact
}

/// Evaluates [`PROBE_TOKENS`] tokens in one batch, then one at a time, and compares.
fn probe(backend: &LlamaBackend, model: &LlamaModel, threads: i32) -> Result<bool, String> {
    let mut tokens = model.vocab().tokenize(PROBE_TEXT.as_bytes(), false, false);
    tokens.truncate(PROBE_TOKENS);
    if tokens.len() < 9 {
        return Err(format!("the probe text gave only {} tokens", tokens.len()));
    }
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(64))
        .with_n_batch(PROBE_TOKENS as u32)
        .with_n_ubatch(PROBE_TOKENS as u32)
        .with_flash_attention_policy(llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = model.new_context(backend, params).map_err(|e| format!("context: {e}"))?;
    let mut batch = LlamaBatch::new(PROBE_TOKENS, 1);
    for (pos, &t) in tokens.iter().enumerate() {
        batch.add(t, pos as i32, &[0], true).map_err(|e| e.to_string())?;
    }
    ctx.decode(&mut batch).map_err(|e| format!("decode: {e}"))?;
    let batched: Vec<Vec<f32>> =
        (0..tokens.len()).map(|i| ctx.get_logits_ith(i as i32).to_vec()).collect();
    ctx.clear_kv_cache_seq(Some(0), None, None).map_err(|e| e.to_string())?;
    for (pos, &t) in tokens.iter().enumerate() {
        batch.clear();
        batch.add(t, pos as i32, &[0], true).map_err(|e| e.to_string())?;
        ctx.decode(&mut batch).map_err(|e| format!("decode: {e}"))?;
        // Bitwise: NaN never equals itself, and -0.0 == 0.0 would hide a difference.
        let alone = ctx.get_logits_ith(0);
        let same = alone.len() == batched[pos].len()
            && alone.iter().zip(&batched[pos]).all(|(a, b)| a.to_bits() == b.to_bits());
        if !same {
            return Ok(false);
        }
    }
    Ok(true)
}
