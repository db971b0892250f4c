//! The chat-body validator, then each provider's request translation of
//! what it accepts: never a panic; the OpenAI body sent upstream is one
//! JSON object with the client's members, `model` replaced.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sheepdog_core::providers::{anthropic, gemini, openai};
use sheepdog_core::request::parse_chat;

const UPSTREAM: &str = "up\"stream-model";

fuzz_target!(|data: &[u8]| {
    let Ok(req) = parse_chat(Bytes::copy_from_slice(data)) else { return };
    assert!(!req.requested_model.trim().is_empty());
    assert!(req.max_tokens != Some(0));
    for stream in [false, true] {
        let body = openai::upstream_body(&req, UPSTREAM, stream);
        let sent: serde_json::Map<String, Value> = match serde_json::from_slice(&body) {
            Ok(Value::Object(m)) => m,
            other => panic!("upstream body is not an object: {other:?}"),
        };
        assert_eq!(sent.get("model").and_then(Value::as_str), Some(UPSTREAM));
        // The client's members, as sent (validation builds no tree; the
        // target parses the body itself to compare).
        let client: serde_json::Map<String, Value> = match serde_json::from_slice(&req.raw) {
            Ok(Value::Object(m)) => m,
            other => panic!("a validated body is not an object: {other:?}"),
        };
        for (k, v) in &client {
            match k.as_str() {
                "model" => {}
                "stream" | "stream_options" if stream => {}
                _ => assert_eq!(sent.get(k), Some(v), "member {k:?} changed"),
            }
        }
        if stream && req.stream {
            let usage = sent.get("stream_options").and_then(|o| o.get("include_usage"));
            assert_eq!(usage, Some(&Value::Bool(true)));
        }
        let a = anthropic::to_anthropic(&req.translated(), UPSTREAM, stream);
        assert!(a.get("max_tokens").and_then(Value::as_u64).is_some());
        assert!(serde_json::to_vec(&a).is_ok());
    }
    let g = gemini::to_gemini(&req.translated());
    assert!(g.get("contents").is_some_and(Value::is_array));
    assert!(serde_json::to_vec(&g).is_ok());
});
