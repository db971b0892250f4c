//! The Anthropic Messages answer → OpenAI `chat.completion` translation:
//! never a panic; what it returns is a chat.completion with usage.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sheepdog_core::providers::anthropic::from_anthropic;

fuzz_target!(|data: &[u8]| {
    if let Ok((body, usage)) = from_anthropic("fuzz", data, "model") {
        assert_eq!(body["object"], "chat.completion");
        assert!(body["choices"].as_array().is_some_and(|c| c.len() == 1));
        assert!(usage.cached_tokens <= usage.input_tokens);
        assert_eq!(body["usage"]["prompt_tokens"].as_u64(), Some(usage.input_tokens));
        assert!(!body.to_string().is_empty());
    }
});
