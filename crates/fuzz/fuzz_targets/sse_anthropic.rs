//! An Anthropic Messages event stream (SSE bytes, cut anywhere) through
//! the SSE parser and the Anthropic → OpenAI chunk translator.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sheepdog_core::providers::anthropic::StreamTranslator;

fuzz_target!(|data: &[u8]| {
    sheepdog_fuzz::stream(&mut StreamTranslator::new("fuzz", "model"), data);
});
