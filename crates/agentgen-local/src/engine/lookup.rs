//! Lookup decoding: drafts of the next tokens copied from the request's own context.
//!
//! Agent turns repeat text (a revised draft, quoted code, an echoed tool result), so the
//! tokens that followed an earlier occurrence of what the model just wrote are a good guess
//! of what it writes next. Each step, [`Lookup::draft`] finds the earlier place in the
//! prompt and the generated text whose tokens match the longest suffix of the sequence, and
//! proposes the tokens that followed it. The scheduler evaluates the pending token and the
//! draft in one batch with logits at every position, samples the request's own picker at
//! each position in turn, and keeps a draft token only while it equals that sample; the
//! cells of the rest leave the KV cache. The picker sees exactly the samples plain decoding
//! would draw, in the same order, so the output is plain decoding's (at temperature 0 and,
//! for the same seed, above it); only the number of batches changes.
//!
//! The draft length adapts: it doubles after a fully accepted draft, falls to what was
//! accepted after a rejection, and after drafts that were rejected outright the request
//! drafts nothing for a while, so text that does not repeat costs (almost) nothing.
//! Under an output constraint a draft is cut at its first token the grammar rejects.

use llama_cpp_2::token::LlamaToken;
use llguidance::Matcher;

use super::sampling::guarded;

/// How many tokens a first draft may hold.
const FIRST_DRAFT: usize = 4;
/// Shortest suffix match (in tokens) that proposes a draft: single tokens match everywhere.
const MIN_MATCH: usize = 2;
/// Matches longer than this count as this long (it bounds the backward scan).
const MAX_MATCH: usize = 32;
/// After this many drafts in a row were rejected outright, the pause stops growing.
const MAX_PAUSE_SHIFT: u32 = 4;

/// A request's lookup state.
pub(crate) struct Lookup {
    /// The most tokens one draft may hold.
    max: usize,
    /// The most tokens the next draft may hold (1..=max).
    k: usize,
    /// Drafts in a row whose first token was rejected.
    misses: u32,
    /// Steps left before the next draft.
    pause: u32,
    /// The output constraint, kept in the state the picker's copy is in, to check drafts.
    guard: Option<Matcher>,
    /// Tokens drafted (and evaluated).
    pub(crate) drafted: u32,
    /// Drafted tokens that equalled the request's own sample.
    pub(crate) accepted: u32,
}

impl Lookup {
    /// A request's state; `guard` is a copy of its output constraint in its initial state.
    pub(crate) fn new(max: usize, guard: Option<Matcher>) -> Self {
        Self {
            max,
            k: FIRST_DRAFT.min(max).max(1),
            misses: 0,
            pause: 0,
            guard,
            drafted: 0,
            accepted: 0,
        }
    }

    /// Follows a token the request's picker chose, as its constraint did.
    pub(crate) fn observe(&mut self, token: LlamaToken) {
        if let Some(guard) = self.guard.as_mut() {
            // The picker's constraint skips tokens once stopped; consuming into a stopped
            // matcher would poison it.
            if !guard.is_stopped()
                && guarded("follow a token", || guard.consume_token(token.0 as u32)).is_err()
            {
                self.broken();
            }
        }
    }

    /// Up to `room` (and the adaptive length) tokens to try after `last`, the token about to
    /// be evaluated after `context` (the tokens of the slot's cells). Empty when nothing in
    /// the context matches, when pausing, or when the constraint rejects the first token.
    pub(crate) fn draft(
        &mut self,
        context: &[LlamaToken],
        last: LlamaToken,
        room: usize,
    ) -> Vec<LlamaToken> {
        if self.pause > 0 {
            self.pause -= 1;
            return Vec::new();
        }
        let n = self.k.min(room);
        if n == 0 {
            return Vec::new();
        }
        let mut draft = find(context, last, n).to_vec();
        if let (Some(guard), false) = (self.guard.as_mut(), draft.is_empty()) {
            let ids: Vec<u32> = draft.iter().map(|t| t.0 as u32).collect();
            match guarded("check a draft", || guard.validate_tokens(&ids)) {
                Ok(valid) => draft.truncate(valid),
                Err(_) => {
                    self.broken();
                    return Vec::new();
                }
            }
        }
        self.drafted = self.drafted.saturating_add(draft.len() as u32);
        draft
    }

    /// Stops drafting for this request: its copy of the constraint failed (an error or a
    /// caught panic), so drafts can no longer be checked. The picker's own copy decides
    /// whether the request itself can go on.
    fn broken(&mut self) {
        self.guard = None;
        self.max = 0;
        self.k = 0;
    }

    /// Counts a drafted token the request's own sample confirmed.
    pub(crate) fn accept(&mut self) {
        self.accepted = self.accepted.saturating_add(1);
    }

    /// Adapts the draft length to how a draft of `drafted` tokens fared.
    pub(crate) fn adapt(&mut self, drafted: usize, accepted: usize) {
        if drafted == 0 || self.max == 0 {
            return;
        }
        if accepted == drafted {
            self.k = (self.k * 2).min(self.max);
            self.misses = 0;
        } else if accepted > 0 {
            self.k = accepted.max(1);
            self.misses = 0;
        } else {
            self.k = 1;
            self.pause = (1u32 << self.misses.min(MAX_PAUSE_SHIFT)) - 1;
            self.misses += 1;
        }
    }
}

/// The tokens that followed the earlier occurrence of the longest suffix of `context` +
/// `last` (at least [`MIN_MATCH`] tokens, the most recent of equally long ones), at most
/// `n` of them and never reaching past `context`; empty when there is none.
fn find(context: &[LlamaToken], last: LlamaToken, n: usize) -> &[LlamaToken] {
    let len = context.len();
    let mut best: Option<(usize, usize)> = None;
    // `j` is where `last` occurs earlier; its continuation starts at `j + 1`.
    for j in (0..len.saturating_sub(1)).rev() {
        if context[j] != last {
            continue;
        }
        // Count the tokens before `j` that equal those before the end of the sequence.
        let mut m = 1;
        while m < MAX_MATCH && m <= j && context[j - m] == context[len - m] {
            m += 1;
        }
        if best.is_none_or(|(_, b)| m > b) {
            best = Some((j, m));
            if m == MAX_MATCH {
                break;
            }
        }
    }
    match best {
        Some((j, m)) if m >= MIN_MATCH => &context[j + 1..(j + 1 + n).min(len)],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(ids: &[i32]) -> Vec<LlamaToken> {
        ids.iter().copied().map(LlamaToken::new).collect()
    }

    #[test]
    fn the_longest_match_wins_then_the_most_recent() {
        // Sequence …7 8 | 9: "8 9" occurs at 1..3 (followed by 4 5) and "7 8 9" at 5..8.
        let ctx = toks(&[1, 8, 9, 4, 5, 7, 8, 9, 6, 3, 7, 8]);
        assert_eq!(find(&ctx, LlamaToken::new(9), 3), toks(&[6, 3, 7]).as_slice());
        // Only two-token matches: the most recent one.
        let ctx = toks(&[1, 2, 10, 1, 2, 11, 0, 1]);
        assert_eq!(find(&ctx, LlamaToken::new(2), 2), toks(&[11, 0]).as_slice());
    }

    #[test]
    fn a_single_token_match_proposes_nothing() {
        let ctx = toks(&[5, 6, 7, 1]);
        assert!(find(&ctx, LlamaToken::new(6), 4).is_empty());
        assert!(find(&[], LlamaToken::new(6), 4).is_empty());
    }

    #[test]
    fn a_draft_stops_at_the_end_of_the_context() {
        let ctx = toks(&[3, 4, 5, 3]);
        assert_eq!(find(&ctx, LlamaToken::new(4), 8), toks(&[5, 3]).as_slice());
    }

    #[test]
    fn the_draft_length_adapts() {
        let mut l = Lookup::new(16, None);
        let ctx = toks(&(0..40).chain(0..3).collect::<Vec<_>>());
        let next = LlamaToken::new(3);
        assert_eq!(l.draft(&ctx, next, 100).len(), FIRST_DRAFT);
        l.adapt(4, 4);
        assert_eq!(l.draft(&ctx, next, 5).len(), 5, "bounded by the room");
        assert_eq!(l.draft(&ctx, next, 100).len(), 8);
        l.adapt(8, 3);
        assert_eq!(l.draft(&ctx, next, 100).len(), 3);
        l.adapt(3, 0);
        assert_eq!(l.draft(&ctx, next, 100).len(), 1, "no pause after the first miss");
        l.adapt(1, 0);
        assert!(l.draft(&ctx, next, 100).is_empty(), "a pause after the second");
        assert_eq!(l.draft(&ctx, next, 100).len(), 1);
        l.adapt(1, 1);
        l.accept();
        assert_eq!((l.drafted, l.accepted), (22, 1));
        assert_eq!(l.draft(&ctx, next, 100).len(), 2);
    }
}
