//! Fuzz target: the request parser and validator (`POST /v1/chat/completions` bodies).
//! Whatever the bytes, parsing returns a request or a 400, never panics, and an accepted
//! request satisfies what the validator promises. Corpus: `tests/__fuzz__/<target>/corpus`.
//! CI runs a few thousand cases; `cargo xtask fuzz` runs 10^6.

use agentgen_core::fuzz_input::{fuzz_cases, FuzzBytes};
use agentgen_server::wire::{parse_chat_request_with, RequestLimits};

/// Valid bodies the mutations start from.
const BASES: &[&str] = &[
    r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
    r#"{"messages":[{"role":"system","content":"s"},{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true},"max_tokens":8,"stop":["\n"],"temperature":0.2,"top_p":0.9,"seed":1}"#,
    r#"{"messages":[{"role":"user","content":"w"}],"tools":[{"type":"function","function":{"name":"get","description":"d","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],"tool_choice":"required"}"#,
    r#"{"messages":[{"role":"user","content":"w"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"get","arguments":"{\"city\":\"x\"}"}}]},{"role":"tool","tool_call_id":"c1","content":"ok"}]}"#,
    r##"{"messages":[{"role":"user","content":[{"type":"text","text":"a"}]}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","properties":{"a":{"anyOf":[{"type":"integer"},{"$ref":"#"}]}}}}}}"##,
];

/// What the mutations insert: the parser's keys and values, and JSON punctuation.
const FRAGMENTS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "null",
    "true",
    "false",
    "-1",
    "1e309",
    "0.5",
    "\"messages\"",
    "\"role\"",
    "\"user\"",
    "\"assistant\"",
    "\"tool\"",
    "\"system\"",
    "\"content\"",
    "\"tools\"",
    "\"type\"",
    "\"function\"",
    "\"name\"",
    "\"parameters\"",
    "\"tool_choice\"",
    "\"required\"",
    "\"auto\"",
    "\"none\"",
    "\"response_format\"",
    "\"json_schema\"",
    "\"json_object\"",
    "\"schema\"",
    "\"stop\"",
    "\"max_tokens\"",
    "\"stream\"",
    "\"n\"",
    "\"logprobs\"",
    "\"$ref\"",
    "\"#/definitions/a\"",
    "\"anyOf\"",
    "\"properties\"",
    "\"items\"",
    "\"enum\"",
    "\"pattern\"",
    "\"(a*)*b\"",
    "\"tool_calls\"",
    "\"arguments\"",
    "\"tool_call_id\"",
    "\"top_k\"",
    "\"min_p\"",
    "\"repeat_penalty\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"<|im_end|>\"",
];

fn check(data: &[u8]) {
    let mut input = FuzzBytes::new(data);
    let body = match input.byte() % 3 {
        0 => input.rest().to_vec(),
        1 => {
            let base = input.pick(BASES).copied().unwrap_or(BASES[0]);
            input.mutate(base.as_bytes(), FRAGMENTS, 12)
        }
        _ => input.text(FRAGMENTS, 64).into_bytes(),
    };
    let limits = RequestLimits { max_tools: 4, max_schema_bytes: 2048, max_schema_depth: 8 };
    match parse_chat_request_with(&body, &limits) {
        Ok(parsed) => {
            let req = &parsed.request;
            assert!(!req.messages.is_empty(), "accepted a request without messages");
            assert!(req.tools.len() <= limits.max_tools, "accepted too many tools");
            assert!(req.max_tokens != Some(0), "accepted max_tokens 0");
        }
        Err(e) => {
            let status = e.status.as_u16();
            assert_eq!(status, 400, "a bad body must be a 400, got {status}: {e:?}");
        }
    }
}

#[test]
fn fuzz_request_parser() {
    bolero::check!().with_iterations(fuzz_cases(3000)).for_each(check);
}
