//! The engine's job protocol: what callers send the inference thread ([`Command`], [`Job`]),
//! what it reports back ([`Event`], [`Finished`], [`LoadInfo`]), the counters both sides
//! share, and how a prompt becomes tokens. The worker and the scheduler both depend on this
//! module and not on each other's.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use agentgen_core::{BackendError, FinishReason, Timings, Usage};
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token_type::LlamaTokenAttr;
use llguidance::Matcher;
use tokio::sync::{mpsc, oneshot};

use super::sampling::GenerateOptions;
use crate::format::PromptSegment;

/// What the inference thread is asked to do.
pub(crate) enum Command {
    /// Generate text for a prompt.
    Generate(Box<Job>),
    /// Tokenize prompt segments, one token list per segment.
    Tokenize { segments: Vec<PromptSegment>, reply: oneshot::Sender<Vec<Vec<i32>>> },
    /// Build llguidance's view of the vocabulary.
    TokEnv { reply: oneshot::Sender<toktrie::TokEnv> },
    /// Panic on the inference thread (tests of the supervisor).
    #[cfg(feature = "fault-injection")]
    Panic,
}

/// One generation request.
pub(crate) struct Job {
    pub prompt: Vec<PromptSegment>,
    pub options: GenerateOptions,
    /// The output constraint, ready to sample with.
    pub matcher: Option<Matcher>,
    pub events: mpsc::UnboundedSender<Event>,
    /// When the caller asked.
    pub arrived: Instant,
}

/// What the inference thread reports about one job.
#[derive(Debug)]
pub(crate) enum Event {
    /// More text (stop sequences already removed).
    Text(String),
    /// The end.
    Done(Finished),
    /// The job failed.
    Error(BackendError),
}

/// How a job ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Finished {
    pub finish_reason: FinishReason,
    pub usage: Usage,
    pub timings: Timings,
}

/// What the thread learnt loading the model.
#[derive(Debug, Clone)]
pub(crate) struct LoadInfo {
    /// The most tokens one request may hold.
    pub n_ctx: u32,
    /// The KV cache's cells, all slots together.
    pub kv_cells: u32,
    pub chat_template: Option<String>,
    pub bos_token: String,
    pub eos_token: String,
    /// The texts special parsing turns into control or user-defined tokens.
    pub special_tokens: Vec<String>,
    /// Whether a token's logits are the same alone and in any batch (see `exact`).
    pub exact_batching: bool,
    /// The draft limit lookup decoding runs with (0: off).
    pub lookup_max_draft: usize,
}

/// Counters the thread updates and callers read.
#[derive(Debug, Default)]
pub(crate) struct SharedStats {
    pub prompt_tokens_evaluated: AtomicU64,
    pub prompt_tokens_cached: AtomicU64,
    pub tokens_generated: AtomicU64,
    pub requests_finished: AtomicU64,
    pub draft_tokens: AtomicU64,
    pub draft_accepted: AtomicU64,
    pub busy_slots: AtomicUsize,
    pub queue_depth: AtomicUsize,
}

impl SharedStats {
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// One segment as tokens: template text may hold control tokens, message text never does.
pub(crate) fn tokenize_segment(model: &LlamaModel, segment: &PromptSegment) -> Vec<LlamaToken> {
    model.vocab().tokenize(segment.text.as_bytes(), false, segment.parse_special)
}

/// The texts of the vocabulary's control and user-defined tokens: what tokenizing with special
/// parsing matches.
pub(crate) fn special_token_texts(model: &LlamaModel) -> Vec<String> {
    let vocab = model.vocab();
    vocab
        .tokens()
        .filter(|&t| {
            let attr = vocab.attr(t);
            attr.contains(LlamaTokenAttr::Control) || attr.contains(LlamaTokenAttr::UserDefined)
        })
        .map(|t| String::from_utf8_lossy(&vocab.token_to_piece(t, true, None)).into_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The whole prompt as tokens, with the BOS token in front when the model wants one and the
/// template did not write it.
pub(crate) fn tokenize_prompt(model: &LlamaModel, segments: &[PromptSegment]) -> Vec<LlamaToken> {
    let mut tokens: Vec<LlamaToken> =
        segments.iter().flat_map(|s| tokenize_segment(model, s)).collect();
    let vocab = model.vocab();
    let bos = vocab.bos();
    if vocab.should_add_bos() && bos.0 >= 0 && tokens.first() != Some(&bos) {
        tokens.insert(0, bos);
    }
    tokens
}
