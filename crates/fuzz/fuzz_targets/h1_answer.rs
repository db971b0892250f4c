//! The upstream HTTP/1.1 answer reader (head, then the body as its head
//! frames it: Content-Length, chunked, until close): never a panic; the
//! body is never larger than the input; the same answer whatever the
//! chunking of the input (cut into pieces whose size comes from the first
//! byte, and fed whole).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sheepdog_core::providers::h1::fuzzing::read_answer;

fuzz_target!(|data: &[u8]| {
    let Some((&piece, input)) = data.split_first() else { return };
    let whole = read_answer(input, input.len().max(1));
    let split = read_answer(input, usize::from(piece).max(1));
    if let Ok(Some(r)) = &whole {
        assert!(r.body.len() + r.rest <= input.len());
        assert!((100..1000).contains(&r.status));
    }
    if let (Ok(a), Ok(b)) = (&whole, &split) {
        assert_eq!(a, b, "the answer depends on how the input was cut");
    }
});
