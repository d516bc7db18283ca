//! Splitting a rendered prompt into template markup (special tokens parsed) and text that came
//! from the request (tokenized as plain text): message texts, and any tool name, description,
//! schema, call id or call argument that contains a special token's text.
//!
//! Each such text is replaced by a marker (`open` + index + `close`, two private-use characters
//! found nowhere in the request) before a first rendering; a second rendering with the real
//! texts is then cut where the markers were. A text may come out as written or JSON-escaped
//! (the template's `tojson`).

use aho_corasick::AhoCorasick;
use serde_json::Value as Json;

use super::template::py_dumps;
use super::PromptSegment;

/// The first code point of the supplementary private-use plane 15, where markers come from:
/// never assigned, practically never in chat text.
const PLANE_15: u32 = 0xF0000;
/// Code points in plane 15.
const PLANE_15_LEN: usize = 0x10000;

/// The two marker characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sentinel {
    pub(crate) open: char,
    pub(crate) close: char,
}

impl Sentinel {
    /// The first pair of plane-15 characters that occurs nowhere in `chars` (all of the
    /// request's text), read once.
    pub(crate) fn choose(chars: impl IntoIterator<Item = char>) -> Self {
        let mut used = vec![false; PLANE_15_LEN];
        for c in chars {
            if let Some(i) = (c as u32).checked_sub(PLANE_15).filter(|&i| i < PLANE_15_LEN as u32) {
                used[i as usize] = true;
            }
        }
        // Every pair taken (a request made of nothing else): the split then fails its check
        // and the fallback search applies.
        let first =
            (0..PLANE_15_LEN - 1).step_by(2).find(|&i| !used[i] && !used[i + 1]).unwrap_or(0);
        let at = |i: usize| char::from_u32(PLANE_15 + i as u32).unwrap_or('\u{E000}');
        Self { open: at(first), close: at(first + 1) }
    }

    pub(crate) fn mark(&self, index: usize) -> String {
        format!("{}{index}{}", self.open, self.close)
    }

    /// The marked rendering cut into template pieces and marker indices; `None` when the
    /// template mangled a marker.
    pub(crate) fn split<'a>(&self, rendered: &'a str) -> Option<Vec<Piece<'a>>> {
        let mut pieces = Vec::new();
        let mut rest = rendered;
        while let Some(start) = rest.find(self.open) {
            if rest[..start].contains(self.close) {
                return None;
            }
            pieces.push(Piece::Template(&rest[..start]));
            let after = &rest[start + self.open.len_utf8()..];
            let end = after.find(self.close)?;
            pieces.push(Piece::Text(after[..end].parse().ok()?));
            rest = &after[end + self.close.len_utf8()..];
        }
        if rest.contains(self.close) {
            return None;
        }
        pieces.push(Piece::Template(rest));
        Some(pieces)
    }
}

/// A piece of the marked rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    /// Template markup.
    Template(&'a str),
    /// The request text with this index.
    Text(usize),
}

/// The real rendering cut like `pieces`: every template piece must come next in `real`, and
/// every text as written or JSON-escaped. `None` when the two renderings differ otherwise.
pub(crate) fn assemble(
    pieces: &[Piece<'_>],
    real: &str,
    contents: &[String],
) -> Option<Vec<PromptSegment>> {
    let mut segs = Segments::default();
    let mut at = 0;
    for piece in pieces {
        let rest = &real[at..];
        let (text, parse_special) = match *piece {
            Piece::Template(t) => (rest.starts_with(t).then_some(t)?, true),
            Piece::Text(i) => {
                let raw = contents.get(i)?.as_str();
                if rest.starts_with(raw) {
                    (raw, false)
                } else {
                    let escaped = json_escaped(raw);
                    (&rest[..rest.starts_with(escaped.as_str()).then_some(escaped.len())?], false)
                }
            }
        };
        segs.push(text, parse_special);
        at += text.len();
    }
    (at == real.len()).then_some(segs.0)
}

/// Fallback split of the real rendering: each text (as written, trimmed or JSON-escaped) found
/// in `order` is a text segment; what cannot be found stays template text.
pub(crate) fn locate(real: &str, contents: &[String], order: &[usize]) -> Vec<PromptSegment> {
    let mut segs = Segments::default();
    let mut pos = 0;
    for &idx in order {
        let Some(text) = contents.get(idx) else { continue };
        let escaped = json_escaped(text);
        let found = [text.as_str(), text.trim(), escaped.as_str()]
            .into_iter()
            .filter(|t| !t.is_empty())
            .find_map(|t| real[pos..].find(t).map(|at| (pos + at, t.len())));
        if let Some((at, len)) = found {
            segs.push(&real[pos..at], true);
            segs.push(&real[at..at + len], false);
            pos = at + len;
        }
    }
    segs.push(&real[pos..], true);
    segs.0
}

/// Special-token texts found in template segments (tokenized with special parsing).
pub(crate) fn specials_in(
    special: &AhoCorasick,
    texts: impl IntoIterator<Item = impl AsRef<str>>,
) -> usize {
    texts.into_iter().map(|t| special.find_iter(t.as_ref()).count()).sum()
}

/// Replaces every string and object key in `v` for which `mark` returns a marker.
pub(crate) fn mark_data(v: &mut Json, mark: &mut dyn FnMut(&str) -> Option<String>) {
    match v {
        Json::String(s) => {
            if let Some(m) = mark(s) {
                *s = m;
            }
        }
        Json::Array(items) => items.iter_mut().for_each(|x| mark_data(x, mark)),
        Json::Object(map) => {
            for (key, mut value) in std::mem::take(map) {
                mark_data(&mut value, mark);
                map.insert(mark(&key).unwrap_or(key), value);
            }
        }
        Json::Null | Json::Bool(_) | Json::Number(_) => {}
    }
}

/// `s` as `tojson` writes it inside its quotes.
fn json_escaped(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    py_dumps(&Json::String(s.to_owned()), None, false, false, 0, &mut out);
    out.get(1..out.len().saturating_sub(1)).unwrap_or_default().to_owned()
}

/// Segments under construction: adjacent pieces of the same kind merge, empty ones vanish.
#[derive(Default)]
pub(crate) struct Segments(pub(crate) Vec<PromptSegment>);

impl Segments {
    pub(crate) fn push(&mut self, text: &str, parse_special: bool) {
        if text.is_empty() {
            return;
        }
        match self.0.last_mut() {
            Some(last) if last.parse_special == parse_special => last.text.push_str(text),
            _ => self.0.push(PromptSegment { text: text.to_owned(), parse_special }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn sentinel_reads_a_crafted_request_once() {
        // 4 MiB of plane-15 characters taking the first marker of every pair but the last.
        let taken: Vec<char> = (0..PLANE_15_LEN as u32 - 2)
            .step_by(2)
            .filter_map(|i| char::from_u32(PLANE_15 + i))
            .collect();
        let text: String = taken.iter().cycle().take(1 << 20).collect();
        assert!(text.len() >= 4 << 20);
        let pulled = Cell::new(0usize);
        let chars = text.chars().inspect(|_| pulled.set(pulled.get() + 1));
        let s = Sentinel::choose(chars);
        assert_eq!(pulled.get(), text.chars().count(), "each character is read exactly once");
        assert_eq!(s.open as u32, PLANE_15 + PLANE_15_LEN as u32 - 2);
        assert!(!text.contains(s.open) && !text.contains(s.close));
    }

    #[test]
    fn texts_are_found_as_written_or_json_escaped() {
        let s = Sentinel::choose("".chars());
        let contents = vec!["a\"<|x|>".to_owned(), "plain".to_owned()];
        let marked = format!("[{}] \"{}\"", s.mark(1), s.mark(0));
        let real = "[plain] \"a\\\"<|x|>\"";
        let pieces = s.split(&marked).unwrap();
        let segs = assemble(&pieces, real, &contents).unwrap();
        let plain: Vec<&str> =
            segs.iter().filter(|s| !s.parse_special).map(|s| s.text.as_str()).collect();
        assert_eq!(plain, ["plain", "a\\\"<|x|>"]);
        assert_eq!(segs.iter().map(|s| s.text.as_str()).collect::<String>(), real);
        assert!(assemble(&pieces, "[plain] \"other\"", &contents).is_none());
    }

    #[test]
    fn marking_reaches_keys_and_nested_values() {
        let mut v = serde_json::json!({"a<|e|>": {"b": ["x", "y<|e|>"]}, "c": 1});
        let mut seen = Vec::new();
        mark_data(&mut v, &mut |s| {
            s.contains("<|e|>").then(|| {
                seen.push(s.to_owned());
                format!("M{}", seen.len())
            })
        });
        assert_eq!(v, serde_json::json!({"M2": {"b": ["x", "M1"]}, "c": 1}));
    }
}
