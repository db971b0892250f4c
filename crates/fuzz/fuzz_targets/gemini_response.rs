//! The Gemini GenerateContentResponse → OpenAI `chat.completion`
//! translation: never a panic; one choice per candidate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sheepdog_core::providers::gemini::from_gemini;

fuzz_target!(|data: &[u8]| {
    if let Ok((body, usage)) = from_gemini("fuzz", data, "model") {
        assert_eq!(body["object"], "chat.completion");
        let candidates = serde_json::from_slice::<Value>(data)
            .ok()
            .and_then(|v| v.get("candidates").and_then(Value::as_array).map(Vec::len));
        assert_eq!(body["choices"].as_array().map(Vec::len), candidates);
        if let Some(u) = usage {
            assert_eq!(body["usage"]["prompt_tokens"].as_u64(), Some(u.input_tokens));
        }
        assert!(!body.to_string().is_empty());
    }
});
