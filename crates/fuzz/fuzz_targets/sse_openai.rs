//! An OpenAI chat.completion.chunk stream (SSE bytes, cut anywhere)
//! through the SSE parser and the OpenAI stream translator.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sheepdog_core::providers::openai::StreamTranslator;

fuzz_target!(|data: &[u8]| {
    sheepdog_fuzz::stream(&mut StreamTranslator::new("fuzz"), data);
});
