//! An incremental parser for server-sent events, fed whatever byte chunks the network gives.
//!
//! It follows the WHATWG event-stream rules that OpenAI-style servers rely on: lines end in
//! `\n`, `\r\n` or `\r`; a blank line dispatches the event; `data:` lines of one event are
//! joined with `\n`; lines starting with `:` are comments; one space after the colon is
//! dropped. A line, or even a UTF-8 character, may be split across chunks.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, when the server named the event.
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
    /// The `id:` field, when given.
    pub id: Option<String>,
}

/// Turns a byte stream into [`SseEvent`]s, a chunk at a time.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the line not yet ended.
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` first in the next chunk belongs to it.
    after_cr: bool,
    data: String,
    has_data: bool,
    event: Option<String>,
    id: Option<String>,
}

/// The longest line the parser buffers before it gives up on the stream.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// The most `data:` bytes one event may gather (over all its lines).
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// The stream broke the event-stream format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line is not UTF-8.
    #[error("event-stream line is not UTF-8: {0}")]
    NotUtf8(String),
    /// A line grew past [`MAX_LINE_BYTES`] without ending.
    #[error("event-stream line longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong,
    /// One event's data grew past [`MAX_EVENT_BYTES`].
    #[error("event-stream event larger than {MAX_EVENT_BYTES} bytes")]
    EventTooLarge,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next chunk; returns the events it completed, in order.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        let mut events = Vec::new();
        let mut rest = chunk;
        // An empty chunk must not end the wait for the `\n` of a `\r\n` cut across chunks
        // (found by the fuzz target: a cut that fell twice on one `\r` split an event in two).
        if rest.is_empty() {
            return Ok(events);
        }
        if self.after_cr {
            self.after_cr = false;
            if let Some(stripped) = rest.strip_prefix(b"\n") {
                rest = stripped;
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&rest[..pos]);
            let ending = rest[pos];
            rest = &rest[pos + 1..];
            if ending == b'\r' {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            if self.line.len() > MAX_LINE_BYTES {
                return Err(SseError::LineTooLong);
            }
            let line = std::mem::take(&mut self.line);
            let line = String::from_utf8(line).map_err(|e| SseError::NotUtf8(e.to_string()))?;
            if let Some(event) = self.line_done(&line) {
                events.push(event);
            }
            if self.data.len() > MAX_EVENT_BYTES {
                return Err(SseError::EventTooLarge);
            }
        }
        self.line.extend_from_slice(rest);
        if self.line.len() > MAX_LINE_BYTES {
            return Err(SseError::LineTooLong);
        }
        Ok(events)
    }

    /// Ends the stream: an event whose closing blank line never came is dispatched, as
    /// servers that close right after the last `data:` line expect.
    pub fn finish(&mut self) -> Result<Option<SseEvent>, SseError> {
        let mut event = None;
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            let line = String::from_utf8(line).map_err(|e| SseError::NotUtf8(e.to_string()))?;
            event = self.line_done(&line);
        }
        Ok(event.or_else(|| self.dispatch()))
    }

    fn line_done(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            "id" => self.id = Some(value.to_owned()),
            _ => {} // `retry` and unknown fields are ignored.
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        let id = self.id.take();
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        Some(SseEvent { event, data: std::mem::take(&mut self.data), id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_chunk_between_cr_and_lf_keeps_them_one_line_ending() {
        let mut p = SseParser::new();
        let mut events = p.feed(b"data: a\r").unwrap();
        events.extend(p.feed(b"").unwrap());
        events.extend(p.feed(b"\ndata: b\n\n").unwrap());
        assert_eq!(data(&events), ["a\nb"]);
    }

    fn data(events: &[SseEvent]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    #[test]
    fn whole_events_in_one_chunk() {
        let mut p = SseParser::new();
        let ev = p.feed(b"data: {\"a\":1}\n\ndata: [DONE]\n\n").unwrap();
        assert_eq!(data(&ev), vec!["{\"a\":1}", "[DONE]"]);
    }

    #[test]
    fn data_split_at_every_byte_gives_the_same_events() {
        let text = "data: {\"x\":\"héllo\"}\r\n\r\n: keep-alive\n\ndata: [DONE]\r\n\r\n";
        let mut p = SseParser::new();
        let mut all = Vec::new();
        for b in text.as_bytes() {
            all.extend(p.feed(std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(data(&all), vec!["{\"x\":\"héllo\"}", "[DONE]"]);
        assert_eq!(p.finish().unwrap(), None);
    }

    #[test]
    fn crlf_split_between_chunks_is_one_line_end() {
        let mut p = SseParser::new();
        assert!(p.feed(b"data: a\r").unwrap().is_empty());
        // The `\n` completing `\r\n` must not count as a blank line.
        assert!(p.feed(b"\ndata: b\r").unwrap().is_empty());
        let ev = p.feed(b"\n\r\n").unwrap();
        assert_eq!(data(&ev), vec!["a\nb"]);
    }

    #[test]
    fn lone_cr_ends_lines() {
        let mut p = SseParser::new();
        let ev = p.feed(b"data: one\r\rdata: two\r\r").unwrap();
        assert_eq!(data(&ev), vec!["one", "two"]);
    }

    #[test]
    fn comments_event_names_and_ids() {
        let mut p = SseParser::new();
        let ev = p.feed(b": ping\nevent: error\nid: 7\ndata:x\n\n").unwrap();
        assert_eq!(
            ev,
            vec![SseEvent { event: Some("error".into()), data: "x".into(), id: Some("7".into()) }]
        );
    }

    #[test]
    fn blank_lines_without_data_dispatch_nothing() {
        let mut p = SseParser::new();
        assert!(p.feed(b"\n\n: c\n\nevent: x\n\n").unwrap().is_empty());
    }

    #[test]
    fn finish_dispatches_an_unterminated_event() {
        let mut p = SseParser::new();
        assert!(p.feed(b"data: tail").unwrap().is_empty());
        assert_eq!(p.finish().unwrap().map(|e| e.data), Some("tail".to_owned()));
    }

    #[test]
    fn a_line_past_the_limit_is_an_error_even_without_its_end() {
        let mut p = SseParser::new();
        let chunk = vec![b'a'; 64 * 1024];
        let mut fed = 0;
        let err = loop {
            match p.feed(&chunk) {
                Ok(events) => assert!(events.is_empty()),
                Err(e) => break e,
            }
            fed += chunk.len();
            assert!(fed <= MAX_LINE_BYTES, "a line of {fed} bytes was buffered");
        };
        assert_eq!(err, SseError::LineTooLong);
    }

    #[test]
    fn an_event_past_the_limit_is_an_error_though_each_line_is_short() {
        let mut p = SseParser::new();
        let line = format!("data: {}\n", "x".repeat(32 * 1024));
        let mut fed = 0;
        let err = loop {
            match p.feed(line.as_bytes()) {
                Ok(events) => assert!(events.is_empty(), "no blank line, so no event yet"),
                Err(e) => break e,
            }
            fed += line.len();
            assert!(fed <= MAX_EVENT_BYTES + line.len(), "an event of {fed} bytes was gathered");
        };
        assert_eq!(err, SseError::EventTooLarge);
        // Just under the limit is one event.
        let mut p = SseParser::new();
        // Eight lines of an eighth less a byte, joined by seven newlines: the limit less one.
        let eighth = format!("data: {}\n", "y".repeat(MAX_EVENT_BYTES / 8 - 1));
        let events = p.feed(format!("{}\n", eighth.repeat(8)).as_bytes()).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data.len(), MAX_EVENT_BYTES - 1);
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut p = SseParser::new();
        assert!(matches!(p.feed(b"data: \xff\xfe\n"), Err(SseError::NotUtf8(_))));
    }
}
