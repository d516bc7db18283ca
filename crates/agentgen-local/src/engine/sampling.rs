//! Per-request sampling settings and how a request picks its tokens: llama.cpp's sampler chain
//! built from those settings, or the most likely token read straight off the logits, after the
//! output constraint (when there is one) has masked the tokens it forbids.
//!
//! The constraint runs here, in Rust, under [`std::panic::catch_unwind`], not as a llama.cpp
//! sampler: a panic inside a sampler callback (an `extern "C"` function) aborts the whole
//! process, while here it fails the one request.

use agentgen_core::{BackendError, ChatRequest};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;
use llguidance::Matcher;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// How many recent tokens the repetition penalty looks at.
const PENALTY_LAST_N: i32 = 64;

/// Sampling and stopping settings of one generation. Defaults follow llama.cpp's.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Temperature; 0 picks the most likely token every time (deterministic).
    pub temperature: f32,
    /// Nucleus sampling threshold; 1 disables it.
    pub top_p: f32,
    /// Keep only the k most likely tokens; 0 disables it.
    pub top_k: u32,
    /// Drop tokens less likely than `min_p` × the most likely one; 0 disables it.
    pub min_p: f32,
    /// Penalty on recently generated tokens; 1 disables it.
    pub repeat_penalty: f32,
    /// Seed of the random sampler; `None` picks a fresh one.
    pub seed: Option<u64>,
    /// Most tokens to generate; `None` runs to the end of the context.
    pub max_tokens: Option<u32>,
    /// Generation ends before any of these, which are never emitted.
    pub stop: Vec<String>,
    /// Whether lookup decoding may draft tokens for this request (when the engine's
    /// [`LocalConfig::lookup_max_draft`](super::LocalConfig::lookup_max_draft) allows it).
    /// It never changes what is sampled, only how many tokens one step evaluates. Default on.
    pub lookup: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_p: 0.95,
            top_k: 40,
            min_p: 0.05,
            repeat_penalty: 1.0,
            seed: None,
            max_tokens: None,
            stop: Vec::new(),
            lookup: true,
        }
    }
}

impl GenerateOptions {
    /// The options a chat request asks for, defaults filling what it leaves out.
    ///
    /// Errors with [`BackendError::InvalidRequest`] naming the field when a value is out of range.
    pub fn from_request(req: &ChatRequest) -> Result<Self, BackendError> {
        let d = Self::default();
        let opts = Self {
            temperature: req.temperature.unwrap_or(d.temperature),
            top_p: req.top_p.unwrap_or(d.top_p),
            top_k: req.sampling.top_k.unwrap_or(d.top_k),
            min_p: req.sampling.min_p.unwrap_or(d.min_p),
            repeat_penalty: req.sampling.repeat_penalty.unwrap_or(d.repeat_penalty),
            seed: req.seed,
            max_tokens: req.max_tokens,
            stop: req.stop.clone(),
            lookup: req.sampling.lookup_decoding.unwrap_or(d.lookup),
        };
        opts.validate()?;
        Ok(opts)
    }

    /// Checks every value is in range.
    pub fn validate(&self) -> Result<(), BackendError> {
        let bad = |msg: &str, param: &str| Err(BackendError::invalid_param(msg, param));
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return bad("temperature must be a number >= 0", "temperature");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p must be in (0, 1]", "top_p");
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad("min_p must be in [0, 1]", "min_p");
        }
        if !(self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0) {
            return bad("repeat_penalty must be a number > 0", "repeat_penalty");
        }
        if self.max_tokens == Some(0) {
            return bad("max_tokens must be at least 1", "max_tokens");
        }
        if self.top_k > i32::MAX as u32 {
            return bad("top_k is too large", "top_k");
        }
        Ok(())
    }
}

/// How one request picks its tokens.
pub(crate) enum Picker {
    /// The most likely token, read straight off the logits: what a chain of llama.cpp's greedy
    /// sampler alone picks, without copying the whole vocabulary into a candidate array for
    /// every token (0.4 ms a token with a 152k vocabulary).
    Greedy,
    /// llama.cpp's sampler chain.
    Chain(LlamaSampler),
    /// An output constraint masks the logits (in Rust, a panic caught), then the chain picks.
    Constrained {
        /// The constraint, in step with the tokens picked so far.
        matcher: Box<Matcher>,
        /// The rest of the chain: penalties, then greedy or the random draw.
        chain: LlamaSampler,
    },
}

impl Picker {
    /// The picker for these options; see [`build_chain`] for the chain.
    pub(crate) fn new(opts: &GenerateOptions, n_vocab: i32, constraint: Option<Matcher>) -> Self {
        match constraint {
            Some(matcher) => {
                Self::Constrained { matcher: Box::new(matcher), chain: build_chain(opts, n_vocab) }
            }
            None if opts.repeat_penalty == 1.0 && opts.temperature <= 0.0 => Self::Greedy,
            None => Self::Chain(build_chain(opts, n_vocab)),
        }
    }

    /// Picks from the logits at `index` of the context's last batch.
    ///
    /// Errors with [`BackendError::Internal`] when the output constraint fails or panics (the
    /// request cannot go on; the engine can).
    pub(crate) fn pick(
        &mut self,
        ctx: &LlamaContext<'_>,
        index: i32,
    ) -> Result<LlamaToken, BackendError> {
        match self {
            Self::Greedy => Ok(LlamaToken::new(argmax(ctx.get_logits_ith(index)))),
            // `sample` also accepts the token into every sampler of the chain.
            Self::Chain(chain) => Ok(chain.sample(ctx, index)),
            Self::Constrained { matcher, chain } => {
                pick_constrained(matcher, chain, ctx.get_logits_ith(index))
            }
        }
    }

    /// Picks from logits kept from an earlier batch, as [`Picker::pick`] would have.
    pub(crate) fn pick_from(&mut self, logits: &[f32]) -> Result<LlamaToken, BackendError> {
        match self {
            Self::Greedy => Ok(LlamaToken::new(argmax(logits))),
            Self::Chain(chain) => {
                let mut candidates = candidates(logits, |_| true);
                candidates.apply_sampler(chain);
                let token = candidates.selected_token().ok_or_else(no_token)?;
                chain.accept(token);
                Ok(token)
            }
            Self::Constrained { matcher, chain } => pick_constrained(matcher, chain, logits),
        }
    }
}

/// Every token with its logit, or minus infinity where `allowed` says no.
fn candidates(logits: &[f32], allowed: impl Fn(u32) -> bool) -> LlamaTokenDataArray {
    LlamaTokenDataArray::from_iter(
        (0..).zip(logits).map(|(t, &l)| {
            let logit = if allowed(t as u32) { l } else { f32::NEG_INFINITY };
            LlamaTokenData::new(LlamaToken::new(t), logit, 0.0)
        }),
        false,
    )
}

fn no_token() -> BackendError {
    BackendError::Internal("the sampler chose no token".into())
}

/// Masks what the constraint forbids, lets the chain pick, and moves the constraint past the
/// pick: what llama.cpp's llguidance sampler does at the head of a chain, except that a failing
/// constraint ends the request instead of being ignored (which would let the output leave the
/// grammar) and a panic in it is caught.
fn pick_constrained(
    matcher: &mut Matcher,
    chain: &mut LlamaSampler,
    logits: &[f32],
) -> Result<LlamaToken, BackendError> {
    let mut candidates = guarded("mask the vocabulary", || {
        #[cfg(feature = "fault-injection")]
        if fault::PANIC_IN_CONSTRAINT.swap(false, std::sync::atomic::Ordering::SeqCst) {
            panic!("a fault injected by a test");
        }
        matcher.compute_mask_or_eos().map(|mask| candidates(logits, |t| mask.is_allowed(t)))
    })?;
    candidates.apply_sampler(chain);
    let token = candidates.selected_token().ok_or_else(no_token)?;
    chain.accept(token);
    // Consuming into a stopped constraint would poison it; it only allows end-of-generation.
    if !matcher.is_stopped() {
        guarded("follow the chosen token", || matcher.consume_token(token.0 as u32))?;
    }
    Ok(token)
}

/// Runs a step of the output constraint, turning its error or its panic into an error of the
/// request.
pub(crate) fn guarded<T, E: std::fmt::Display>(
    what: &str,
    step: impl FnOnce() -> Result<T, E>,
) -> Result<T, BackendError> {
    match catch_unwind(AssertUnwindSafe(step)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => {
            Err(BackendError::Internal(format!("the output constraint could not {what}: {e}")))
        }
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            tracing::error!(%why, "the output constraint panicked while it tried to {what}");
            Err(BackendError::Internal(format!(
                "the output constraint panicked while it tried to {what}: {why}"
            )))
        }
    }
}

/// Faults tests can inject.
#[cfg(feature = "fault-injection")]
pub(crate) mod fault {
    use std::sync::atomic::AtomicBool;

    /// The next constrained pick, in any engine of the process, panics inside the constraint.
    pub(crate) static PANIC_IN_CONSTRAINT: AtomicBool = AtomicBool::new(false);
}

/// The index llama.cpp's greedy sampler selects: the first of the highest logits, scanning
/// with `>` from index 0 (so a NaN never wins, unless it stands first); 0 for no logits.
fn argmax(logits: &[f32]) -> i32 {
    let Some(&first) = logits.first() else { return 0 };
    if first.is_nan() {
        return 0;
    }
    // Two passes a chunk of 8 at a time, so both vectorise: 50 µs for 152k logits, where one
    // index at a time takes 230 and llama.cpp's greedy sampler about 400.
    let chunks = logits.chunks_exact(8);
    let mut lanes = [first; 8];
    for chunk in chunks.clone() {
        for (m, &v) in lanes.iter_mut().zip(chunk) {
            *m = if v > *m { v } else { *m };
        }
    }
    let top = lanes.iter().chain(chunks.remainder()).fold(first, |m, &v| if v > m { v } else { m });
    let index = logits.chunks(8).enumerate().find_map(|(c, chunk)| {
        let hit = chunk.iter().fold(false, |hit, &v| hit | (v == top));
        hit.then(|| c * 8 + chunk.iter().position(|&v| v == top).unwrap_or(0))
    });
    index.and_then(|i| i32::try_from(i).ok()).unwrap_or(0)
}

/// The sampler chain for these options: penalties, then greedy or
/// top-k/top-p/min-p/temperature/dist. (An output constraint masks the logits before the
/// chain sees them, see [`pick_constrained`].)
///
/// The chain's `sample` call accepts the chosen token into every sampler of the chain;
/// nothing else may accept it again.
fn build_chain(opts: &GenerateOptions, n_vocab: i32) -> LlamaSampler {
    let mut chain = Vec::new();
    if opts.repeat_penalty != 1.0 {
        chain.push(LlamaSampler::penalties(n_vocab, PENALTY_LAST_N, opts.repeat_penalty, 0.0, 0.0));
    }
    if opts.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        if opts.top_k > 0 {
            chain.push(LlamaSampler::top_k(opts.top_k as i32));
        }
        if opts.top_p < 1.0 {
            chain.push(LlamaSampler::top_p(opts.top_p, 1));
        }
        if opts.min_p > 0.0 {
            chain.push(LlamaSampler::min_p(opts.min_p, 1));
        }
        chain.push(LlamaSampler::temp(opts.temperature));
        chain.push(LlamaSampler::dist(seed32(opts.seed)));
    }
    LlamaSampler::chain(chain, true)
}

/// Folds a 64-bit seed into llama.cpp's 32 bits, avoiding its "random seed" marker; no seed
/// gives a fresh random one.
fn seed32(seed: Option<u64>) -> u32 {
    let seed = seed.unwrap_or_else(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish()
    });
    let folded = (seed ^ (seed >> 32)) as u32;
    if folded == u32::MAX {
        0x5eed
    } else {
        folded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_values_override_defaults() {
        let mut req = ChatRequest::default().with_temperature(0.0).with_seed(9).with_max_tokens(5);
        req.sampling.top_k = Some(3);
        req.stop = vec!["x".into()];
        let o = GenerateOptions::from_request(&req).unwrap();
        assert_eq!(o.temperature, 0.0);
        assert_eq!(o.top_k, 3);
        assert_eq!(o.top_p, 0.95);
        assert_eq!(o.seed, Some(9));
        assert_eq!(o.max_tokens, Some(5));
        assert_eq!(o.stop, vec!["x"]);
        assert!(o.lookup, "lookup drafts are allowed unless the request opts out");
        req.sampling.lookup_decoding = Some(false);
        assert!(!GenerateOptions::from_request(&req).unwrap().lookup);
    }

    #[test]
    fn out_of_range_values_name_their_field() {
        let param = |req: ChatRequest| match GenerateOptions::from_request(&req) {
            Err(BackendError::InvalidRequest { param, .. }) => param,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            param(ChatRequest::default().with_temperature(-1.0)).as_deref(),
            Some("temperature")
        );
        assert_eq!(
            param(ChatRequest { top_p: Some(0.0), ..Default::default() }).as_deref(),
            Some("top_p")
        );
        assert_eq!(param(ChatRequest::default().with_max_tokens(0)).as_deref(), Some("max_tokens"));
        assert_eq!(
            param(ChatRequest {
                sampling: agentgen_core::Sampling {
                    repeat_penalty: Some(0.0),
                    ..Default::default()
                },
                ..Default::default()
            })
            .as_deref(),
            Some("repeat_penalty")
        );
    }

    #[test]
    fn seeds_are_stable_and_never_the_random_marker() {
        assert_eq!(seed32(Some(42)), seed32(Some(42)));
        assert_ne!(seed32(Some(u64::from(u32::MAX))), u32::MAX);
        assert_ne!(seed32(Some(1)), seed32(Some(2)));
    }

    /// What a chain of llama.cpp's greedy sampler alone selects.
    fn llama_greedy(logits: &[f32]) -> i32 {
        Picker::Chain(LlamaSampler::chain_simple([LlamaSampler::greedy()]))
            .pick_from(logits)
            .expect("greedy always selects")
            .0
    }

    #[test]
    fn argmax_picks_what_llama_cpps_greedy_sampler_picks() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for len in [1usize, 7, 8, 9, 64, 1000, 151_936] {
            // Few distinct values, so ties between maxima are common.
            let logits: Vec<f32> = (0..len).map(|_| (next() % 50) as f32 - 25.0).collect();
            assert_eq!(argmax(&logits), llama_greedy(&logits), "length {len}");
        }
        let special = [
            vec![f32::NAN, 1.0, 3.0, f32::NAN, 3.0],
            vec![f32::NEG_INFINITY, f32::NEG_INFINITY],
            vec![-0.0, 0.0, -1.0],
            vec![-5.0, -2.0, -2.0, -7.0, -1.5, -9.0, -1.5, -3.0, -1.5],
        ];
        for logits in special {
            assert_eq!(argmax(&logits), llama_greedy(&logits), "{logits:?}");
        }
        assert_eq!(argmax(&[2.0, f32::NAN, 5.0, 5.0]), 2, "the first of equal maxima");
    }

    #[test]
    fn a_failing_or_panicking_constraint_step_is_an_error_of_the_request() {
        let err = guarded("mask", || Err::<(), _>("bad state")).unwrap_err();
        assert!(
            matches!(&err, BackendError::Internal(m) if m.contains("could not mask: bad state")),
            "{err:?}"
        );
        let err = guarded("mask", || -> Result<(), String> { panic!("boom {}", 7) }).unwrap_err();
        assert!(
            matches!(&err, BackendError::Internal(m) if m.contains("panicked") && m.contains("boom 7")),
            "{err:?}"
        );
        assert_eq!(guarded("mask", || Ok::<_, String>(3)).unwrap(), 3);
    }

    #[test]
    fn only_plain_greedy_requests_skip_the_chain() {
        let greedy = GenerateOptions { temperature: 0.0, ..Default::default() };
        assert!(matches!(Picker::new(&greedy, 10, None), Picker::Greedy));
        let penalised = GenerateOptions { repeat_penalty: 1.1, ..greedy.clone() };
        assert!(matches!(Picker::new(&penalised, 10, None), Picker::Chain(_)));
        assert!(matches!(Picker::new(&GenerateOptions::default(), 10, None), Picker::Chain(_)));
    }
}
