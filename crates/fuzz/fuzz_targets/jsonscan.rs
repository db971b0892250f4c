//! The JSON member scanner: never a panic; member ranges lie inside the
//! input, in order, each span starting at its key's quote and ending at its
//! value's end; on input serde_json reads as an object, the scanner accepts
//! it and finds the same members with the same values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use sheepdog_core::jsonscan;

fuzz_target!(|data: &[u8]| {
    let mut members = Vec::new();
    let scanned = jsonscan::members(data, |m| members.push(m));
    let mut prev_end = 0;
    for m in &members {
        assert!(m.span.start >= prev_end && m.span.start < m.value.start);
        assert!(m.value.start < m.value.end && m.value.end <= data.len());
        assert_eq!(m.span.end, m.value.end);
        assert_eq!(data[m.span.start], b'"');
        assert_eq!(&data[m.span.start + 1..m.span.start + 1 + m.key.len()], m.key);
        let _ = jsonscan::is_non_empty_array(data, &m.value);
        prev_end = m.span.end;
    }
    let Ok(Value::Object(parsed)) = serde_json::from_slice::<Value>(data) else { return };
    assert!(scanned.is_ok(), "serde_json reads an object the scanner refuses");
    // Members as the scanner found them, keys decoded, the last of a name winning (as in serde_json).
    let mut found = Map::new();
    for m in &members {
        let key: String = serde_json::from_slice(&data[m.span.start..m.span.start + m.key.len() + 2])
            .unwrap_or_else(|e| panic!("key {:?} is not a JSON string: {e}", m.key));
        let value: Value = serde_json::from_slice(&data[m.value.clone()])
            .unwrap_or_else(|e| panic!("value of {key:?} is not JSON: {e}"));
        assert_eq!(jsonscan::is_null(data, &m.value), value.is_null());
        assert_eq!(jsonscan::is_non_empty_array(data, &m.value), value.as_array().is_some_and(|a| !a.is_empty()));
        found.insert(key, value);
    }
    assert_eq!(found, parsed);
});
