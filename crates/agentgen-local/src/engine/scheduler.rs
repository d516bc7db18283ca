//! Continuous batching over a fixed set of slots (llama.cpp sequence ids) and their KV cache:
//! a stream of its own per slot ([`KvLayout::PerSlot`]) or one pool for all ([`KvLayout::Shared`]).
//!
//! Every step builds one batch holding one token for every slot that is generating (followed
//! by its lookup draft, see [`super::lookup`]) and then as many pending prompt tokens as still
//! fit, so concurrent requests decode together.
//! Each slot remembers the tokens its KV cells hold; a new request takes the slot sharing
//! its longest token prefix (else an empty or the least recently used one) and only evaluates the rest.
//! A slot also keeps the logits that ended its last few prompts: a request whose whole prompt
//! is cached samples its first token from them instead of evaluating the last prompt token
//! again (llama.cpp's logits differ slightly with batch shape, so that re-evaluation could
//! change a greedy answer), so a repeated request answers the same and costs no prompt step.
//! Cells are accounted for, so a prompt never fails half-way for lack of them: each slot's own
//! stream holds any prompt that passed the context check; in a shared pool a request is admitted
//! only when its remaining prompt fits beside what other slots hold and reserve (idle slots'
//! caches are evicted, least recently used first, to make room).
//! llama.cpp decodes the tokens of split streams in one pass only when their sequence ids are
//! consecutive, so with one stream per slot a request that reuses no cache takes a free slot
//! next to busy ones.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use agentgen_core::{BackendError, FinishReason, Timings, Usage};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use super::job::{tokenize_prompt, Event, Finished, Job, SharedStats};
use super::lookup::Lookup;
use super::sampling::Picker;
use super::text::{Pushed, TextOutput};
use super::{KvLayout, LocalConfig};

mod speculate;

/// A job waiting for a slot, its prompt already tokenized.
struct Queued {
    job: Box<Job>,
    tokens: Vec<LlamaToken>,
}

/// How many prompt-end logits a slot keeps (each is one float per vocabulary entry).
const PROMPT_ENDS_KEPT: usize = 8;

/// The logits computed at the last token of an earlier prompt.
struct PromptEnd {
    /// Position of that token in the slot's sequence.
    pos: usize,
    logits: Vec<f32>,
}

/// One sequence of the KV cache.
struct Slot {
    seq: i32,
    /// Exactly the tokens whose KV cells this sequence holds, at positions 0..len.
    kv: Vec<LlamaToken>,
    /// Logits of earlier prompts' last tokens whose cells `kv` still holds, by position.
    ends: Vec<PromptEnd>,
    /// Scheduler clock of the last use, for LRU choice and eviction.
    last_used: u64,
    active: Option<Box<Active>>,
}

/// A request being served in a slot.
struct Active {
    job: Box<Job>,
    prompt: Vec<LlamaToken>,
    cached: usize,
    picker: Picker,
    /// Sampled and shown, not yet decoded.
    pending: Option<LlamaToken>,
    generated: u32,
    output: TextOutput,
    admitted: u64,
    prompt_started: Option<Instant>,
    first_token: Option<Instant>,
    /// Lookup decoding's state, when the request drafts.
    lookup: Option<Lookup>,
}

impl Active {
    fn in_prefill(&self, kv_len: usize) -> bool {
        kv_len < self.prompt.len()
    }
}

/// What one slot put into the current batch.
struct Planned {
    slot: usize,
    tokens: Vec<LlamaToken>,
    /// Batch index whose logits to sample from.
    logits: Option<i32>,
    /// Drafted tokens batched after `tokens`, each with its batch index.
    drafts: Vec<(LlamaToken, i32)>,
}

/// The slots, the queue and the llama.cpp context they share.
pub(crate) struct Scheduler<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    /// Cells of the whole cache.
    n_ctx: usize,
    /// The most cells one sequence may hold.
    limit: usize,
    /// One pool of cells for every slot (else one stream per slot).
    pooled: bool,
    n_batch: usize,
    n_vocab: i32,
    /// The most tokens a lookup draft may hold; 0: no lookup decoding.
    lookup_max: usize,
    slots: Vec<Slot>,
    queue: VecDeque<Queued>,
    clock: u64,
    stats: Arc<SharedStats>,
}

impl<'m> Scheduler<'m> {
    pub(crate) fn new(
        model: &'m LlamaModel,
        ctx: LlamaContext<'m>,
        config: &LocalConfig,
        lookup_max_draft: usize,
        limit: usize,
        stats: Arc<SharedStats>,
    ) -> Self {
        let n_ctx = ctx.n_ctx() as usize;
        let n_batch = (ctx.n_batch() as usize).max(1);
        let slots = (0..config.slots)
            .map(|i| Slot {
                seq: i as i32,
                kv: Vec::new(),
                ends: Vec::new(),
                last_used: 0,
                active: None,
            })
            .collect();
        Self {
            model,
            ctx,
            batch: LlamaBatch::new(n_batch, 1),
            n_ctx,
            limit,
            pooled: config.kv_layout == KvLayout::Shared,
            n_batch,
            n_vocab: model.n_vocab(),
            lookup_max: lookup_max_draft,
            slots,
            queue: VecDeque::new(),
            clock: 0,
            stats,
        }
    }

    /// No queued or running work.
    pub(crate) fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.slots.iter().all(|s| s.active.is_none())
    }

    /// Tokenizes a job and queues it, or answers it at once when its prompt cannot fit.
    pub(crate) fn enqueue(&mut self, job: Box<Job>) {
        let tokens = tokenize_prompt(self.model, &job.prompt);
        if tokens.is_empty() {
            let _ = job
                .events
                .send(Event::Error(BackendError::invalid_param("the prompt is empty", "messages")));
            return;
        }
        if tokens.len() + 1 > self.limit {
            let _ = job.events.send(Event::Error(BackendError::ContextOverflow {
                prompt_tokens: tokens.len(),
                limit: self.limit,
            }));
            return;
        }
        self.queue.push_back(Queued { job, tokens });
        self.publish_load();
    }

    /// Moves queued jobs into free slots while there are slots and KV cells for them.
    pub(crate) fn admit(&mut self) {
        while let Some(front) = self.queue.front() {
            if front.job.events.is_closed() {
                self.queue.pop_front();
                continue;
            }
            let Some(idx) = self.pick_slot(&front.tokens) else { break };
            let prompt_len = front.tokens.len();
            // A whole prompt cached with the logits of its last token needs no evaluation.
            let mut reuse = if self.slots[idx].replays(&front.tokens) {
                prompt_len
            } else {
                common_prefix(&self.slots[idx].kv, &front.tokens).min(prompt_len - 1)
            };
            if self.pooled {
                // A slot's own stream holds any prompt that passed `enqueue`; a pool may not.
                let need = prompt_len - reuse + 1;
                let others = self.used_cells() - self.slots[idx].kv.len() + self.reserved_cells();
                let mut avail = self.n_ctx.saturating_sub(others + reuse);
                if avail < need {
                    avail += self.evict_idle(need - avail, Some(idx));
                    if avail < need {
                        break;
                    }
                }
            }
            let Some(Queued { mut job, tokens }) = self.queue.pop_front() else { break };
            let slot = &mut self.slots[idx];
            if slot.kv.len() > reuse {
                let trimmed =
                    self.ctx.clear_kv_cache_seq(Some(slot.seq as u32), Some(reuse as u32), None);
                if !matches!(trimmed, Ok(true)) {
                    // Some memories cannot drop a tail; start the sequence over.
                    let _ = self.ctx.clear_kv_cache_seq(Some(slot.seq as u32), None, None);
                    reuse = 0;
                }
                slot.truncate(reuse);
            }
            self.clock += 1;
            slot.last_used = self.clock;
            let lookup = (self.lookup_max > 0 && job.options.lookup).then(|| {
                Lookup::new(self.lookup_max, job.matcher.as_ref().map(|m| m.deep_clone()))
            });
            let picker = Picker::new(&job.options, self.n_vocab, job.matcher.take());
            let output = TextOutput::new(&job.options.stop);
            SharedStats::add(&self.stats.prompt_tokens_cached, reuse);
            slot.active = Some(Box::new(Active {
                job,
                prompt: tokens,
                cached: reuse,
                picker,
                pending: None,
                generated: 0,
                output,
                admitted: self.clock,
                prompt_started: None,
                first_token: None,
                lookup,
            }));
            if reuse == prompt_len {
                self.replay(idx);
            }
        }
        self.publish_load();
    }

    /// Runs one batched decode and samples every slot that produced logits.
    pub(crate) fn step(&mut self) {
        self.drop_cancelled();
        self.batch.clear();
        let mut plan: Vec<Planned> = Vec::new();
        // Free cells of a shared pool; a slot's own stream is bounded by `limit` alone.
        let mut pool_free = self
            .pooled
            .then(|| self.n_ctx.saturating_sub(self.used_cells() + self.reserved_cells()));

        // One token for every generating slot.
        for i in 0..self.slots.len() {
            let Some(token) = self.slots[i].active.as_ref().and_then(|a| a.pending) else {
                continue;
            };
            if self.slots[i].kv.len() >= self.limit {
                self.finish(i, FinishReason::Length);
                continue;
            }
            if let Some(free) = pool_free.as_mut() {
                if *free == 0 {
                    *free += self.evict_idle(1, None);
                }
                if *free == 0 {
                    self.finish(i, FinishReason::Length);
                    continue;
                }
                *free -= 1;
            }
            let index = self.batch.n_tokens();
            let pos = self.slots[i].kv.len() as i32;
            if self.batch.add(token, pos, &[self.slots[i].seq], true).is_err() {
                break;
            }
            plan.push(Planned {
                slot: i,
                tokens: vec![token],
                logits: Some(index),
                drafts: Vec::new(),
            });
        }
        // Then lookup drafts after those tokens.
        self.plan_drafts(&mut plan, &mut pool_free);

        // Then prompt tokens, oldest request first, as many as fit in the batch.
        let mut prefilling: Vec<(u64, usize)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.active.as_ref().filter(|a| a.in_prefill(s.kv.len())).map(|a| (a.admitted, i))
            })
            .collect();
        prefilling.sort_unstable();
        for (_, i) in prefilling {
            let room = self.n_batch - self.batch.n_tokens() as usize;
            if room == 0 {
                break;
            }
            let slot = &mut self.slots[i];
            let Some(active) = slot.active.as_mut() else { continue };
            let start = slot.kv.len();
            let end = (start + room).min(active.prompt.len());
            let mut logits = None;
            for (pos, &token) in (start..end).zip(&active.prompt[start..end]) {
                let last = pos + 1 == active.prompt.len();
                if last {
                    logits = Some(self.batch.n_tokens());
                }
                if self.batch.add(token, pos as i32, &[slot.seq], last).is_err() {
                    break;
                }
            }
            active.prompt_started.get_or_insert_with(Instant::now);
            let tokens = active.prompt[start..end].to_vec();
            plan.push(Planned { slot: i, tokens, logits, drafts: Vec::new() });
        }

        if plan.is_empty() {
            return;
        }
        if let Err(e) = self.ctx.decode(&mut self.batch) {
            tracing::error!(error = %e, "llama.cpp decode failed");
            for p in plan {
                self.fail(p.slot, BackendError::Internal(format!("llama.cpp decode failed: {e}")));
            }
            return;
        }
        for p in plan {
            let slot = &mut self.slots[p.slot];
            let prefill = slot.active.as_ref().is_some_and(|a| a.in_prefill(slot.kv.len()));
            slot.kv.extend_from_slice(&p.tokens);
            if prefill {
                SharedStats::add(&self.stats.prompt_tokens_evaluated, p.tokens.len());
            }
            if let Some(active) = slot.active.as_mut() {
                active.pending = None;
            }
            match p.logits {
                Some(index) if p.drafts.is_empty() => self.sample(p.slot, index),
                Some(index) => self.verify(p.slot, index, &p.drafts),
                None => {}
            }
        }
    }

    /// Samples the next token of a slot from the logits at `index` of the last batch; the
    /// logits of a prompt's last token are kept for [`Scheduler::replay`].
    fn sample(&mut self, i: usize, index: i32) {
        let slot = &mut self.slots[i];
        let Some(active) = slot.active.as_mut() else { return };
        let token = match active.picker.pick(&self.ctx, index) {
            Ok(token) => token,
            Err(e) => return self.fail(i, e),
        };
        let slot = &mut self.slots[i];
        let Some(active) = slot.active.as_mut() else { return };
        if active.first_token.is_none() {
            let pos = active.prompt.len() - 1;
            slot.keep_end(pos, self.ctx.get_logits_ith(index));
        }
        self.take(i, token);
    }

    /// Samples the first token of a slot whose whole prompt is cached from the logits kept
    /// when that prompt was last evaluated: the same logits, so the same choice.
    fn replay(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        let Some(active) = slot.active.as_mut() else { return };
        let Some(end) = slot.ends.iter().find(|e| e.pos + 1 == active.prompt.len()) else {
            // `admit` checked they are there; never leave a request without a next step.
            self.fail(i, BackendError::Internal("the cached logits of the prompt are gone".into()));
            return;
        };
        let token = match active.picker.pick_from(&end.logits) {
            Ok(token) => token,
            Err(e) => return self.fail(i, e),
        };
        self.take(i, token);
    }

    /// Emits a sampled token, or ends the request on it.
    fn take(&mut self, i: usize, token: LlamaToken) {
        let Some(active) = self.slots[i].active.as_mut() else { return };
        if let Some(lookup) = active.lookup.as_mut() {
            lookup.observe(token);
        }
        let now = Instant::now();
        active.first_token.get_or_insert(now);
        if self.slots[i].kv.len() >= self.limit {
            // No position is left for this token: the context is full.
            self.finish(i, FinishReason::Length);
            return;
        }
        let Some(active) = self.slots[i].active.as_mut() else { return };
        active.generated += 1;
        SharedStats::add(&self.stats.tokens_generated, 1);
        let vocab = self.model.vocab();
        if vocab.is_eog(token) {
            self.finish(i, FinishReason::Stop);
            return;
        }
        let piece = vocab.token_to_piece(token, false, None);
        let (text, stopped) = match active.output.push(&piece) {
            Pushed::Text(t) => (t, false),
            Pushed::Stop(t) => (t, true),
        };
        if !text.is_empty() && active.job.events.send(Event::Text(text)).is_err() {
            self.release(i);
            return;
        }
        if stopped {
            self.finish(i, FinishReason::Stop);
        } else if active.job.options.max_tokens.is_some_and(|m| active.generated >= m) {
            self.finish(i, FinishReason::Length);
        } else {
            active.pending = Some(token);
        }
    }

    /// Ends a slot's request normally: the rest of its text, then usage and timings.
    fn finish(&mut self, i: usize, finish_reason: FinishReason) {
        let Some(mut active) = self.slots[i].active.take() else { return };
        let rest = active.output.finish();
        if !rest.is_empty() {
            let _ = active.job.events.send(Event::Text(rest));
        }
        let now = Instant::now();
        let prompt_n = (active.prompt.len() - active.cached) as u32;
        let first = active.first_token.unwrap_or(now);
        let prompt_ms = active.prompt_started.map_or(0.0, |s| ms(first - s));
        let predicted_ms = ms(now - first);
        let per_second = |n: u32, ms: f64| if ms > 0.0 { f64::from(n) * 1000.0 / ms } else { 0.0 };
        let (draft_n, draft_n_accepted) =
            active.lookup.as_ref().map_or((0, 0), |l| (l.drafted, l.accepted));
        let timings = Timings {
            prompt_n,
            prompt_ms,
            prompt_per_second: per_second(prompt_n, prompt_ms),
            predicted_n: active.generated,
            predicted_ms,
            predicted_per_second: per_second(active.generated, predicted_ms),
            time_to_first_token_ms: ms(first.saturating_duration_since(active.job.arrived)),
            draft_n,
            draft_n_accepted,
        };
        let usage = Usage::new(active.prompt.len() as u32, active.generated, active.cached as u32);
        // Counted before the caller hears of it, so a caller reading the stats after its
        // answer sees its request.
        self.stats.requests_finished.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = active.job.events.send(Event::Done(Finished { finish_reason, usage, timings }));
        self.touch(i);
    }

    /// Ends a slot's request with an error; its KV content is dropped.
    fn fail(&mut self, i: usize, error: BackendError) {
        if let Some(active) = self.slots[i].active.take() {
            let _ = active.job.events.send(Event::Error(error));
        }
        self.clear_slot(i);
        self.touch(i);
    }

    /// Frees a slot whose caller went away; what its cells hold stays usable as a cache.
    fn release(&mut self, i: usize) {
        if self.slots[i].active.take().is_some() {
            tracing::debug!(slot = i, "request cancelled");
        }
        self.touch(i);
    }

    fn drop_cancelled(&mut self) {
        for i in 0..self.slots.len() {
            if self.slots[i].active.as_ref().is_some_and(|a| a.job.events.is_closed()) {
                self.release(i);
            }
        }
    }

    fn touch(&mut self, i: usize) {
        self.clock += 1;
        self.slots[i].last_used = self.clock;
        self.publish_load();
    }

    fn clear_slot(&mut self, i: usize) {
        let seq = self.slots[i].seq as u32;
        let _ = self.ctx.clear_kv_cache_seq(Some(seq), None, None);
        self.slots[i].truncate(0);
    }

    /// The free slot for these tokens; see [`choose_slot`].
    fn pick_slot(&self, tokens: &[LlamaToken]) -> Option<usize> {
        let views: Vec<SlotView<'_>> = self
            .slots
            .iter()
            .map(|s| SlotView {
                kv: &s.kv,
                last_used: s.last_used,
                busy: s.active.is_some(),
                replays: s.replays(tokens),
            })
            .collect();
        choose_slot(&views, tokens, self.pooled)
    }

    /// Drops idle slots' caches, least recently used first, until `needed` cells are free
    /// or none is left to drop. Returns the cells freed.
    fn evict_idle(&mut self, needed: usize, except: Option<usize>) -> usize {
        let mut idle: Vec<(u64, usize)> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(i, s)| s.active.is_none() && !s.kv.is_empty() && Some(*i) != except)
            .map(|(i, s)| (s.last_used, i))
            .collect();
        idle.sort_unstable();
        let mut freed = 0;
        for (_, i) in idle {
            if freed >= needed {
                break;
            }
            freed += self.slots[i].kv.len();
            self.clear_slot(i);
        }
        freed
    }

    fn used_cells(&self) -> usize {
        self.slots.iter().map(|s| s.kv.len()).sum()
    }

    /// Cells promised to prompts still being evaluated.
    fn reserved_cells(&self) -> usize {
        self.slots
            .iter()
            .filter_map(|s| s.active.as_ref().map(|a| a.prompt.len().saturating_sub(s.kv.len())))
            .sum()
    }

    fn publish_load(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let busy = self.slots.iter().filter(|s| s.active.is_some()).count();
        self.stats.busy_slots.store(busy, Relaxed);
        self.stats.queue_depth.store(self.queue.len(), Relaxed);
    }
}

impl Slot {
    /// It holds the whole of `tokens` and the logits that ended them.
    fn replays(&self, tokens: &[LlamaToken]) -> bool {
        self.kv.starts_with(tokens)
            && tokens.len().checked_sub(1).is_some_and(|p| self.ends.iter().any(|e| e.pos == p))
    }

    /// Keeps the logits of a prompt's last token, dropping the oldest kept beyond the limit.
    fn keep_end(&mut self, pos: usize, logits: &[f32]) {
        self.ends.retain(|e| e.pos != pos);
        if self.ends.len() >= PROMPT_ENDS_KEPT {
            self.ends.remove(0);
        }
        self.ends.push(PromptEnd { pos, logits: logits.to_vec() });
    }

    /// Drops the cells from `len` on, and the logits that depended on them.
    fn truncate(&mut self, len: usize) {
        self.kv.truncate(len);
        self.ends.retain(|e| e.pos < len);
    }
}

/// What slot choice needs to know of a slot.
struct SlotView<'a> {
    kv: &'a [LlamaToken],
    last_used: u64,
    busy: bool,
    /// It holds the whole prompt and the logits of its last token.
    replays: bool,
}

/// The free slot for `tokens`: one that holds the whole prompt with its last logits (it answers
/// without evaluating anything, and the same as before); else the one sharing the longest
/// prefix, when that prefix keeps at least half of what the slot caches (a few common template
/// tokens must not wipe another conversation's cache). Else, with a stream per slot (`pooled`
/// false), one next to the most busy slots, so concurrent requests decode in one pass; then an
/// empty slot; then the least recently used. `None` when every slot is busy.
fn choose_slot(slots: &[SlotView<'_>], tokens: &[LlamaToken], pooled: bool) -> Option<usize> {
    use std::cmp::Reverse;
    let free = || slots.iter().enumerate().filter(|(_, s)| !s.busy);
    if let Some((i, _)) = free().filter(|(_, s)| s.replays).max_by_key(|(_, s)| s.last_used) {
        return Some(i);
    }
    let reusing = free()
        .map(|(i, s)| (common_prefix(s.kv, tokens), s, i))
        .filter(|(prefix, s, _)| *prefix > 0 && 2 * prefix >= s.kv.len())
        .max_by_key(|(prefix, s, _)| (*prefix, Reverse(s.last_used)))
        .map(|(_, _, i)| i);
    let busy = |j: Option<usize>| j.and_then(|j| slots.get(j)).is_some_and(|s| s.busy);
    let busy_neighbours = |i: usize| {
        if pooled {
            0
        } else {
            usize::from(busy(i.checked_sub(1))) + usize::from(busy(i.checked_add(1)))
        }
    };
    reusing.or_else(|| {
        free()
            .min_by_key(|(i, s)| (Reverse(busy_neighbours(*i)), !s.kv.is_empty(), s.last_used))
            .map(|(i, _)| i)
    })
}

fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(ids: &[i32]) -> Vec<LlamaToken> {
        ids.iter().copied().map(LlamaToken::new).collect()
    }

    fn view(kv: &[LlamaToken], last_used: u64, busy: bool) -> SlotView<'_> {
        SlotView { kv, last_used, busy, replays: false }
    }

    #[test]
    fn a_slot_that_replays_the_whole_prompt_wins_over_the_half_rule() {
        let (long, other) = (toks(&[1, 2, 3, 4, 5, 6, 7, 8]), toks(&[1, 2, 9]));
        let mut slots = [view(&long, 1, false), view(&other, 2, false)];
        // A prompt of 3 of the 8 cached tokens: not half of that cache, so not reused…
        assert_eq!(choose_slot(&slots, &toks(&[1, 2, 3]), false), Some(1));
        // …unless the slot kept the logits of that prompt's end.
        slots[0].replays = true;
        assert_eq!(choose_slot(&slots, &toks(&[1, 2, 3]), false), Some(0));
        slots[0].busy = true;
        assert_eq!(choose_slot(&slots, &toks(&[1, 2, 3]), false), Some(1));
    }

    #[test]
    fn the_slot_holding_the_prompt_prefix_wins_over_neighbours() {
        let (a, b, empty) = (toks(&[1, 2, 3]), toks(&[7, 8, 9]), toks(&[]));
        let slots =
            [view(&empty, 0, true), view(&b, 1, false), view(&empty, 0, false), view(&a, 2, false)];
        assert_eq!(choose_slot(&slots, &toks(&[1, 2, 3, 4]), false), Some(3));
        assert_eq!(choose_slot(&slots, &toks(&[1, 2, 3, 4]), true), Some(3));
    }

    #[test]
    fn a_stream_per_slot_keeps_busy_slots_neighbours() {
        let (old, new, empty) = (toks(&[5, 5]), toks(&[6, 6]), toks(&[]));
        // Slot 1 busy: a cached neighbour beats an empty slot further away.
        let slots = [
            view(&new, 3, false),
            view(&empty, 0, true),
            view(&old, 1, false),
            view(&empty, 0, false),
        ];
        assert_eq!(
            choose_slot(&slots, &toks(&[9]), false),
            Some(2),
            "the least recently used neighbour"
        );
        // Slots 0 and 2 busy: the gap between them is filled first.
        let slots = [
            view(&empty, 0, true),
            view(&old, 1, false),
            view(&empty, 0, true),
            view(&empty, 0, false),
        ];
        assert_eq!(choose_slot(&slots, &toks(&[9]), false), Some(1));
    }

    #[test]
    fn a_shared_pool_prefers_an_empty_slot_then_the_least_recently_used() {
        let (old, new, empty) = (toks(&[5, 5]), toks(&[6, 6]), toks(&[]));
        let slots = [
            view(&empty, 0, true),
            view(&old, 1, false),
            view(&empty, 0, true),
            view(&empty, 0, false),
        ];
        assert_eq!(choose_slot(&slots, &toks(&[9]), true), Some(3));
        let slots = [view(&new, 4, false), view(&empty, 0, true), view(&old, 1, false)];
        assert_eq!(choose_slot(&slots, &toks(&[9]), true), Some(2));
    }

    #[test]
    fn no_slot_when_all_are_busy() {
        let empty = toks(&[]);
        let slots = [view(&empty, 0, true), view(&empty, 0, true)];
        assert_eq!(choose_slot(&slots, &toks(&[1]), false), None);
    }
}
