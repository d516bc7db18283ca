//! Fuzz target: the SSE reader and the chunk parser behind it (what a hostile upstream sends).
//! Whatever the bytes and however the network cuts them, the parser never panics, gives the
//! same events as when fed the stream whole, and each event's data parses to a chunk or a
//! typed error. Corpus: `tests/__fuzz__/<target>/corpus`. CI runs a few thousand cases;
//! `cargo xtask fuzz` runs 10^6.

use agentgen_core::fuzz_input::{fuzz_cases, FuzzBytes};
use agentgen_core::openai::ChatCompletionChunk;
use agentgen_groq::sse::{SseEvent, SseParser};

const FRAGMENTS: &[&str] = &[
    "data: ",
    "data:",
    "\n",
    "\r\n",
    "\r",
    "\n\n",
    ":",
    ": keep-alive\n",
    "event: ",
    "error",
    "id: ",
    "retry: 10\n",
    "[DONE]",
    "{",
    "}",
    "\"",
    "é",
    "\u{feff}",
    r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}"#,
    r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"f","arguments":"{\"a\""}}]}}]}"#,
    r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":18446744073709551615,"completion_tokens":1,"total_tokens":2}}"#,
    r#"{"x_groq":{"usage":{"prompt_time":1e306,"completion_time":-1}},"choices":[]}"#,
    r#"{"error":{"message":"m","type":"t"}}"#,
];

/// Events and the error (as text) of feeding `chunks` in order, then finishing.
fn run(chunks: &[&[u8]]) -> (Vec<SseEvent>, Option<String>) {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    for chunk in chunks {
        match parser.feed(chunk) {
            Ok(mut more) => events.append(&mut more),
            Err(e) => return (events, Some(e.to_string())),
        }
    }
    match parser.finish() {
        Ok(last) => events.extend(last),
        Err(e) => return (events, Some(e.to_string())),
    }
    (events, None)
}

fn check(data: &[u8]) {
    let mut input = FuzzBytes::new(data);
    let cuts: Vec<usize> =
        (0..usize::from(input.byte() % 8)).map(|_| usize::from(input.u16())).collect();
    let stream = match input.byte() % 2 {
        0 => input.rest().to_vec(),
        _ => input.text(FRAGMENTS, 48).into_bytes(),
    };
    let whole = run(&[&stream]);
    let mut pieces: Vec<&[u8]> = Vec::new();
    let mut at = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    cuts.sort_unstable();
    for cut in cuts {
        pieces.push(&stream[at..cut]);
        at = cut;
    }
    pieces.push(&stream[at..]);
    let split = run(&pieces);
    assert_eq!(whole.1, split.1, "cutting the stream changed whether it fails");
    if whole.1.is_none() {
        assert_eq!(whole.0, split.0, "cutting the stream changed its events");
    }
    for event in &whole.0 {
        if event.data != "[DONE]" {
            // Either a chunk or a typed error: never a panic.
            let _ = ChatCompletionChunk::parse(&event.data).map(ChatCompletionChunk::into_chunk);
        }
    }
}

#[test]
fn fuzz_sse_reader() {
    bolero::check!().with_iterations(fuzz_cases(3000)).for_each(check);
}
