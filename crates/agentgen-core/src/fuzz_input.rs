//! Byte-driven inputs for fuzz targets: the fuzzer's bytes choose among fragments that matter to
//! the parser under test (JSON keys, control-token text, line endings) and raw text, so random
//! and coverage-guided engines alike reach past the first syntax check. Used by the fuzz targets
//! in each crate's `tests/fuzz_*.rs` (bolero: `cargo test` runs them at a small budget,
//! `cargo xtask fuzz` at 10^6 cases each).

/// Cases a fuzz target runs under `cargo test`: `BOLERO_RANDOM_ITERATIONS` when set (what
/// `cargo xtask fuzz` sets for its long run), else `default` (the CI budget).
pub fn fuzz_cases(default: usize) -> usize {
    std::env::var("BOLERO_RANDOM_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A cursor over the fuzzer's bytes. Every read is total: past the end it yields zeros/empty.
#[derive(Debug, Clone)]
pub struct FuzzBytes<'a> {
    data: &'a [u8],
}

impl<'a> FuzzBytes<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte, 0 past the end.
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    /// The next two bytes as a little-endian number.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// Up to `n` next bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// What is left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    /// One of `items`, chosen by the next byte (`None` when `items` is empty).
    pub fn pick<'b, T>(&mut self, items: &'b [T]) -> Option<&'b T> {
        let b = usize::from(self.byte());
        (!items.is_empty()).then(|| &items[b % items.len()])
    }

    /// Text of up to `pieces` parts: each part is one of `fragments` or up to 15 raw bytes
    /// (lossy UTF-8), as the next bytes choose.
    pub fn text(&mut self, fragments: &[&str], pieces: usize) -> String {
        let mut out = String::new();
        let n = usize::from(self.byte()) % (pieces + 1);
        for _ in 0..n {
            if self.is_empty() {
                break;
            }
            let b = self.byte();
            if b < 160 && !fragments.is_empty() {
                out.push_str(fragments[usize::from(b) % fragments.len()]);
            } else {
                let len = usize::from(b % 16);
                out.push_str(&String::from_utf8_lossy(self.take(len)));
            }
        }
        out
    }

    /// `base` with up to `edits` fragments or raw bytes inserted at chosen byte offsets, and
    /// spans deleted: a mutation of a valid input that keeps most of its structure.
    pub fn mutate(&mut self, base: &[u8], fragments: &[&str], edits: usize) -> Vec<u8> {
        let mut out = base.to_vec();
        let n = usize::from(self.byte()) % (edits + 1);
        for _ in 0..n {
            if self.is_empty() {
                break;
            }
            let at = usize::from(self.u16()) % (out.len() + 1);
            match self.byte() % 4 {
                0 => {
                    let len = usize::from(self.byte() % 8).min(out.len() - at);
                    out.drain(at..at + len);
                }
                1 => {
                    let len = usize::from(self.byte() % 8);
                    let raw = self.take(len).to_vec();
                    out.splice(at..at, raw);
                }
                _ => {
                    let frag = self.pick(fragments).copied().unwrap_or("");
                    out.splice(at..at, frag.bytes());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_the_end_are_empty_not_panics() {
        let mut b = FuzzBytes::new(&[3, 0, 200, 1]);
        assert_eq!(b.byte(), 3);
        assert_eq!(b.take(10), &[0, 200, 1]);
        assert_eq!(b.byte(), 0);
        assert_eq!(b.u16(), 0);
        assert_eq!(b.text(&["x"], 4), "");
        assert_eq!(b.mutate(b"abc", &["x"], 3), b"abc");
        assert_eq!(b.pick::<u8>(&[]), None);
    }

    #[test]
    fn text_joins_chosen_fragments() {
        let mut b = FuzzBytes::new(&[2, 0, 1]);
        assert_eq!(b.text(&["<a>", "<b>"], 4), "<a><b>");
        let mut b = FuzzBytes::new(&[1, 0, 4, 3, 0, 0]);
        assert_eq!(b.mutate(b"{}", &["\"k\""], 2), b"{\"k\"}");
    }
}
