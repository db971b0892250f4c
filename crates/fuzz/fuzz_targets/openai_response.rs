//! The OpenAI answer reader (`usage` of a `chat.completion` body, found by
//! the member scanner): never a panic; on a body serde_json reads as an
//! object, it agrees with serde_json on `choices` and `usage`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sheepdog_core::providers::openai::parse_completion_usage;

fuzz_target!(|data: &[u8]| {
    let got = parse_completion_usage("fuzz", data);
    if let Ok(Some(u)) = &got {
        let _ = u.to_openai();
    }
    let Ok(Value::Object(v)) = serde_json::from_slice::<Value>(data) else { return };
    let choices = v.get("choices").is_some_and(|c| !c.is_null());
    if !choices {
        assert!(got.is_err(), "accepted without choices");
    }
    // Duplicate keys: serde keeps the last, the scanner may differ; skip.
    if choices && got.is_ok() {
        match v.get("usage") {
            None | Some(Value::Null) => {}
            Some(u) => {
                if let Ok(Some(usage)) = &got {
                    if let Some(p) = u.get("prompt_tokens").and_then(Value::as_u64) {
                        assert_eq!(usage.input_tokens, p);
                    }
                }
            }
        }
    }
});
