//! A Gemini streamGenerateContent SSE stream (bytes, cut anywhere) through
//! the SSE parser and the Gemini → OpenAI chunk translator.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sheepdog_core::providers::gemini::StreamTranslator;

fuzz_target!(|data: &[u8]| {
    sheepdog_fuzz::stream(&mut StreamTranslator::new("fuzz", "model"), data);
});
