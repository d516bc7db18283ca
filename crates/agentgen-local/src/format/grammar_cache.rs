//! The grammars llguidance compiled before (agents resend the same tools every turn), bounded
//! by entries and by bytes: the oldest go first, and a grammar larger than the whole budget is
//! never kept.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

/// Default byte budget of the cache ([`super::FormatOptions::grammar_cache_bytes`]).
pub const DEFAULT_GRAMMAR_CACHE_BYTES: usize = 8 << 20;
/// Most grammars kept, whatever their size.
pub(crate) const MAX_ENTRIES: usize = 512;

/// Grammar texts known to compile, oldest first.
#[derive(Debug, Default)]
pub(crate) struct GrammarCache {
    known: HashSet<Arc<str>>,
    order: VecDeque<Arc<str>>,
    bytes: usize,
}

impl GrammarCache {
    pub(crate) fn contains(&self, grammar: &str) -> bool {
        self.known.contains(grammar)
    }

    /// Remembers `grammar`, dropping the oldest until it fits in `budget` bytes and
    /// [`MAX_ENTRIES`]; `false` (and nothing kept) when it alone exceeds the budget.
    pub(crate) fn insert(&mut self, grammar: &str, budget: usize) -> bool {
        if grammar.len() > budget {
            return false;
        }
        if self.contains(grammar) {
            return true;
        }
        while self.bytes + grammar.len() > budget || self.order.len() >= MAX_ENTRIES {
            let Some(old) = self.order.pop_front() else { break };
            self.known.remove(&old);
            self.bytes -= old.len();
        }
        let grammar: Arc<str> = Arc::from(grammar);
        self.bytes += grammar.len();
        self.known.insert(Arc::clone(&grammar));
        self.order.push_back(grammar);
        true
    }

    /// Bytes of grammar text held.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_budget_holds_whatever_is_inserted() {
        let mut cache = GrammarCache::default();
        let budget = 10_000;
        for i in 0..100 {
            let g = format!("{i:04}{}", "x".repeat(996));
            assert!(cache.insert(&g, budget));
            assert!(cache.bytes() <= budget, "{} bytes after {i}", cache.bytes());
        }
        assert_eq!(cache.len(), 10, "ten 1000-byte grammars fit in 10 000 bytes");
        assert!(cache.contains(&format!("0099{}", "x".repeat(996))), "the newest stays");
        assert!(!cache.contains(&format!("0000{}", "x".repeat(996))), "the oldest went");
        let huge = "y".repeat(budget + 1);
        assert!(!cache.insert(&huge, budget), "larger than the budget: not kept");
        assert!(!cache.contains(&huge));
        assert_eq!(cache.len(), 10, "and nothing was evicted for it");
    }

    #[test]
    fn the_entry_count_is_bounded_too() {
        let mut cache = GrammarCache::default();
        for i in 0..MAX_ENTRIES + 50 {
            cache.insert(&i.to_string(), usize::MAX);
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        assert_eq!(cache.bytes(), cache.order.iter().map(|g| g.len()).sum::<usize>());
    }
}
