//! Lookup decoding's part of a step (see [`super::super::lookup`]): drafts batched right after
//! a generating slot's pending token, each with its logits, and their check against the
//! request's own samples once the batch is decoded. Other slots' tokens and prompts share the
//! same batch, so continuous batching goes on around the drafts.

use llama_cpp_2::token::LlamaToken;

use super::{Planned, Scheduler, SharedStats};
use agentgen_core::BackendError;

impl Scheduler<'_> {
    /// Batches a draft after the pending token of every slot in `plan` that drafts, in the room
    /// the batch, the slot's context, its `max_tokens` and a shared pool (`pool_free`) leave.
    pub(super) fn plan_drafts(&mut self, plan: &mut [Planned], pool_free: &mut Option<usize>) {
        if self.lookup_max == 0 {
            return;
        }
        for p in plan.iter_mut() {
            let batch_room = self.n_batch.saturating_sub(self.batch.n_tokens() as usize);
            let slot = &mut self.slots[p.slot];
            let Some(active) = slot.active.as_mut() else { continue };
            let Some(lookup) = active.lookup.as_mut() else { continue };
            let Some(&last) = p.tokens.first() else { continue };
            // The pending token takes position `kv.len()`; drafts follow it.
            let mut room = batch_room.min(self.limit.saturating_sub(slot.kv.len() + 1));
            if let Some(max) = active.job.options.max_tokens {
                // A fully accepted draft of n tokens yields n + 1 samples.
                room = room.min(max.saturating_sub(active.generated + 1) as usize);
            }
            if let Some(free) = pool_free.as_ref() {
                room = room.min(*free);
            }
            let draft = lookup.draft(&slot.kv, last, room);
            let first = slot.kv.len() + 1;
            for (pos, &token) in (first..).zip(&draft) {
                let index = self.batch.n_tokens();
                if self.batch.add(token, pos as i32, &[slot.seq], true).is_err() {
                    break;
                }
                p.drafts.push((token, index));
            }
            if let Some(free) = pool_free.as_mut() {
                *free -= p.drafts.len();
            }
            SharedStats::add(&self.stats.draft_tokens, p.drafts.len());
        }
    }

    /// Samples slot `i` from the logits at `index` (its pending token's), then at each drafted
    /// token's index for as long as the previous sample equalled that drafted token; the
    /// cells of drafted tokens no sample confirmed leave the cache. The picker draws exactly
    /// the samples plain decoding would, one per position, in order.
    pub(super) fn verify(&mut self, i: usize, index: i32, drafts: &[(LlamaToken, i32)]) {
        let cells_end = self.slots[i].kv.len() + drafts.len();
        let mut index = index;
        let mut accepted = 0;
        for &(draft, draft_index) in drafts {
            self.sample(i, index);
            let slot = &mut self.slots[i];
            let Some(active) = slot.active.as_mut().filter(|a| a.pending == Some(draft)) else {
                break;
            };
            // The drafted token's cell already holds it: it is decoded, not pending.
            active.pending = None;
            if let Some(lookup) = active.lookup.as_mut() {
                lookup.accept();
            }
            slot.kv.push(draft);
            accepted += 1;
            index = draft_index;
        }
        SharedStats::add(&self.stats.draft_accepted, accepted);
        if accepted == drafts.len() {
            self.sample(i, index);
        }
        let slot = &mut self.slots[i];
        if let Some(lookup) = slot.active.as_mut().and_then(|a| a.lookup.as_mut()) {
            lookup.adapt(drafts.len(), accepted);
        }
        let kept = slot.kv.len();
        if kept >= cells_end {
            return;
        }
        let seq = slot.seq as u32;
        if !matches!(self.ctx.clear_kv_cache_seq(Some(seq), Some(kept as u32), None), Ok(true)) {
            // This memory cannot drop a tail: no more drafts, and this sequence starts over.
            tracing::warn!("the KV cache cannot drop rejected drafts; lookup decoding is off");
            self.lookup_max = 0;
            if self.slots[i].active.is_some() {
                let error = "the KV cache could not drop rejected draft tokens".to_owned();
                self.fail(i, BackendError::Internal(error));
            } else {
                self.clear_slot(i);
            }
        }
    }
}
