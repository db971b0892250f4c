//! The SSE line parser: never a panic, and the same events whatever the
//! chunking (the input cut at points taken from its first bytes, and fed
//! whole).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sheepdog_fuzz::{pieces, sse_events};

fuzz_target!(|data: &[u8]| {
    let (cuts, input) = pieces(data);
    let (whole, whole_ok) = sse_events(input, &[]);
    let (split, split_ok) = sse_events(input, &cuts);
    let (bytewise, bytewise_ok) = sse_events(input, &(1..input.len()).collect::<Vec<_>>());
    assert_eq!(whole_ok, split_ok);
    assert_eq!(whole_ok, bytewise_ok);
    if whole_ok {
        assert_eq!(whole, split);
        assert_eq!(whole, bytewise);
    }
    for ev in &whole {
        assert!(ev.data.len() <= input.len() && ev.event.len() <= input.len());
    }
});
