//! Helpers shared by the fuzz targets: feeding bytes to the SSE parser in
//! pieces and driving a provider's stream translator the way
//! `providers::http::translate` does, checking what comes out.

use serde_json::Value;
use sheepdog_core::providers::http::{Step, StreamTranslate};
use sheepdog_core::providers::sse::{SseEvent, SseParser};
use sheepdog_core::providers::StreamEvent;

/// Splits `data` into a list of cut points taken from its first bytes (the
/// rest is the input proper), so one input explores many chunkings.
pub fn pieces(data: &[u8]) -> (Vec<usize>, &[u8]) {
    let Some((&n, rest)) = data.split_first() else { return (Vec::new(), data) };
    let n = usize::from(n % 8).min(rest.len());
    let (cuts, input) = rest.split_at(n);
    let mut at: Vec<usize> = cuts.iter().map(|&c| usize::from(c)).collect();
    // Cut points as offsets from the previous one (at least 1 byte each).
    let mut pos = 0usize;
    for c in at.iter_mut() {
        pos += (*c).max(1);
        *c = pos;
    }
    at.retain(|&c| c < input.len());
    (at, input)
}

/// Feeds `input` to a fresh parser cut at `cuts`: the events, and whether
/// the parser took the whole input (`false`: it refused it at some point;
/// the events are those before).
pub fn sse_events(input: &[u8], cuts: &[usize]) -> (Vec<SseEvent>, bool) {
    let mut parser = SseParser::new();
    let mut out = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&input.len())) {
        if end < start {
            continue;
        }
        match parser.push(&input[start..end]) {
            Ok(evs) => out.extend(evs),
            Err(e) => {
                assert!(!e.message.is_empty());
                return (out, false);
            }
        }
        start = end;
    }
    out.extend(parser.finish());
    (out, true)
}

/// Parses `data` (cut points first, see [`pieces`]) as an SSE stream and
/// runs it through `translator`.
pub fn stream(translator: &mut dyn StreamTranslate, data: &[u8]) {
    let (cuts, input) = pieces(data);
    let (events, whole) = sse_events(input, &cuts);
    translate(translator, &events, whole);
}

/// Runs events through a translator as `providers::http::translate` does
/// (nothing after a step that is `done`; `end` when the events run out),
/// checking each item: every chunk made from a JSON event is one JSON
/// object, there is at most one usage event.
/// `ended`: the events ran out at the stream's end (not at a parse error).
pub fn translate(translator: &mut dyn StreamTranslate, events: &[SseEvent], ended: bool) {
    let mut items = Vec::new();
    let mut done = false;
    for ev in events {
        let Step { events, done: d } = translator.event(ev);
        // The OpenAI translator passes an upstream chunk through without
        // parsing it whole (the member scanner checks its structure, not
        // every scalar): only chunks made from JSON must be JSON.
        let data = ev.data.trim();
        if data == "[DONE]" || serde_json::from_str::<Value>(data).is_ok() {
            check_items(&events);
        }
        items.extend(events);
        if d {
            done = true;
            break;
        }
    }
    if !done && ended {
        items.extend(translator.end());
    }
    // The driver passes nothing after an error.
    if let Some(first_err) = items.iter().position(Result::is_err) {
        items.truncate(first_err + 1);
    }
    let usages = items.iter().filter(|i| matches!(i, Ok(StreamEvent::Usage { .. }))).count();
    assert!(usages <= 1, "{usages} usage events");
    for e in items.iter().filter_map(|i| i.as_ref().err()) {
        assert!(!e.message.is_empty());
    }
}

/// Every chunk and usage chunk is one JSON object.
fn check_items(items: &[Result<StreamEvent, sheepdog_core::providers::UpstreamError>]) {
    for item in items {
        match item {
            Ok(StreamEvent::Chunk(b)) | Ok(StreamEvent::Usage { chunk: b, .. }) => check_object(b),
            Ok(StreamEvent::Raw(_)) | Err(_) => {}
        }
    }
}

/// `bytes` is one JSON object.
pub fn check_object(bytes: &[u8]) {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(_)) => {}
        other => panic!("not a JSON object: {other:?} from {:?}", String::from_utf8_lossy(bytes)),
    }
}
