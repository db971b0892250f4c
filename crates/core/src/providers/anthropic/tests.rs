use serde_json::{json, Map, Value};

use super::*;
use crate::providers::http::{Step, StreamTranslate};
use crate::providers::sse::SseEvent;
use crate::providers::types::{StreamEvent, UpstreamErrorKind, Usage};

fn body(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

#[test]
fn url_with_and_without_v1() {
    assert_eq!(messages_url("https://api.anthropic.com"), "https://api.anthropic.com/v1/messages");
    assert_eq!(messages_url("http://127.0.0.1:9/v1"), "http://127.0.0.1:9/v1/messages");
}

#[test]
fn request_system_merge_and_params() {
    let b = body(json!({
        "model": "alias",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            {"role": "user", "content": "Hi"},
            {"role": "user", "content": [{"type": "text", "text": "there"}]},
            {"role": "assistant", "content": "Bonjour"},
            {"role": "user", "content": "Again"},
        ],
        "max_completion_tokens": 99, "max_tokens": 5, "temperature": 1.7, "top_p": 0.9,
        "stop": "END", "user": "u-1", "logit_bias": {"1": 2}, "n": 1, "stream_options": {"include_usage": true},
    }));
    let out = to_anthropic(&b, "claude-x", true);
    assert_eq!(out["model"], "claude-x");
    assert_eq!(out["system"], "Be brief.\n\nUse French.");
    assert_eq!(out["max_tokens"], 99);
    assert_eq!(out["temperature"], 1.0);
    assert_eq!(out["top_p"], 0.9);
    assert_eq!(out["stop_sequences"], json!(["END"]));
    assert_eq!(out["metadata"], json!({"user_id": "u-1"}));
    assert_eq!(out["stream"], true);
    for dropped in ["logit_bias", "n", "stream_options", "user", "max_completion_tokens"] {
        assert!(out.get(dropped).is_none(), "{dropped} leaked");
    }
    let msgs = out["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[0]["role"], "user");
    assert_eq!(msgs[0]["content"], json!([{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}]));
    assert_eq!(msgs[1]["role"], "assistant");
    assert_eq!(msgs[2]["content"][0]["text"], "Again");

    let b = body(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": ["a", "b"]}));
    let out = to_anthropic(&b, "m", false);
    assert_eq!(out["max_tokens"], DEFAULT_MAX_TOKENS);
    assert_eq!(out["stop_sequences"], json!(["a", "b"]));
    assert!(out.get("stream").is_none() && out.get("system").is_none());
    let b = body(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 12}));
    assert_eq!(to_anthropic(&b, "m", false)["max_tokens"], 12);
}

#[test]
fn request_images() {
    let b = body(json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}},
    ]}]}));
    let out = to_anthropic(&b, "m", false);
    let c = &out["messages"][0]["content"];
    assert_eq!(
        c[1],
        json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}})
    );
    assert_eq!(c[2], json!({"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}));
}

#[test]
fn request_tools_and_tool_results() {
    let b = body(json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "rainy"}]},
            {"role": "user", "content": "Thanks"},
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "description": "Get weather",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
                  {"type": "function", "function": {"name": "noargs"}}],
        "tool_choice": "required",
        "parallel_tool_calls": false,
    }));
    let out = to_anthropic(&b, "m", false);
    let msgs = out["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(
        msgs[1]["content"][0],
        json!({"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}})
    );
    assert_eq!(msgs[1]["content"][1]["input"], json!({"city": "Rome"}));
    assert_eq!(msgs[2]["role"], "user");
    assert_eq!(msgs[2]["content"][0], json!({"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"}));
    assert_eq!(msgs[2]["content"][1], json!({"type": "tool_result", "tool_use_id": "call_2", "content": "rainy"}));
    assert_eq!(msgs[2]["content"][2], json!({"type": "text", "text": "Thanks"}));
    assert_eq!(
        out["tools"][0],
        json!({"name": "weather", "description": "Get weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}})
    );
    assert_eq!(out["tools"][1], json!({"name": "noargs", "input_schema": {"type": "object", "properties": {}}}));
    assert_eq!(out["tool_choice"], json!({"type": "any", "disable_parallel_tool_use": true}));

    let choice = |c: Value| {
        let b = body(json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": c}));
        to_anthropic(&b, "m", false)["tool_choice"].clone()
    };
    assert_eq!(choice(json!("auto")), json!({"type": "auto"}));
    assert_eq!(choice(json!("none")), json!({"type": "none"}));
    assert_eq!(choice(json!({"type": "function", "function": {"name": "f"}})), json!({"type": "tool", "name": "f"}));
}

#[test]
fn response_text_tools_and_usage() {
    let answer = json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 30, "cache_creation_input_tokens": 5, "output_tokens": 7},
    });
    let (v, usage) = from_anthropic("a", answer.to_string().as_bytes(), "claude-x").unwrap();
    assert_eq!(usage, Usage { input_tokens: 45, output_tokens: 7, cached_tokens: 30 });
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "claude-x");
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], "Let me check.");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["id"], "toolu_1");
    assert_eq!(call["function"]["name"], "weather");
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris"}));
    assert_eq!(v["usage"]["prompt_tokens"], 45);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 30);

    for (stop, finish) in [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length")] {
        let answer = json!({"content": [{"type": "text", "text": "x"}], "stop_reason": stop, "usage": {"input_tokens": 1, "output_tokens": 1}});
        let (v, _) = from_anthropic("a", answer.to_string().as_bytes(), "m").unwrap();
        assert_eq!(v["choices"][0]["finish_reason"], finish);
        assert!(v["choices"][0]["message"].get("tool_calls").is_none());
    }
    assert!(from_anthropic("a", b"nope", "m").is_err());
    assert!(from_anthropic("a", b"{}", "m").is_err());
}

fn ev(name: &str, data: Value) -> SseEvent {
    SseEvent { event: name.to_string(), data: data.to_string() }
}

fn chunks(step: &Step) -> Vec<Value> {
    step.events
        .iter()
        .filter_map(|e| match e {
            Ok(StreamEvent::Chunk(b)) => Some(serde_json::from_slice(b).unwrap()),
            _ => None,
        })
        .collect()
}

/// A recorded Anthropic stream: text, then a tool use in pieces.
fn recorded() -> Vec<SseEvent> {
    vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
            "content": [], "model": "claude-x", "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 12, "cache_creation_input_tokens": 3, "cache_read_input_tokens": 20, "output_tokens": 1}}}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ev("ping", json!({"type": "ping"})),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me"}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " check."}}),
        ),
        ev("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": "}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}}),
        ),
        ev("content_block_stop", json!({"type": "content_block_stop", "index": 1})),
        ev(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 42}}),
        ),
        ev("message_stop", json!({"type": "message_stop"})),
    ]
}

#[test]
fn stream_full_sequence() {
    let mut t = StreamTranslator::new("a", "claude-x");
    let mut all = Vec::new();
    let mut usage = None;
    let mut done = false;
    for e in recorded() {
        assert!(!done, "event after done");
        let step = t.event(&e);
        all.extend(chunks(&step));
        for item in &step.events {
            match item {
                Ok(StreamEvent::Usage { usage: u, chunk }) => {
                    assert!(usage.is_none(), "two usage events");
                    usage = Some(*u);
                    let c: Value = serde_json::from_slice(chunk).unwrap();
                    assert_eq!(c["choices"], json!([]));
                    assert_eq!(c["usage"]["prompt_tokens"], 35);
                }
                Ok(_) => {}
                Err(e) => panic!("{e}"),
            }
        }
        done = step.done;
    }
    assert!(done);
    assert_eq!(usage, Some(Usage { input_tokens: 35, output_tokens: 42, cached_tokens: 20 }));
    assert_eq!(all[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(all.iter().all(|c| c["object"] == "chat.completion.chunk" && c["model"] == "claude-x"));
    let ids: Vec<_> = all.iter().map(|c| c["id"].clone()).collect();
    assert!(ids.iter().all(|i| *i == ids[0]));
    let text: String = all.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "Let me check.");
    let calls: Vec<&Value> = all.iter().filter_map(|c| c["choices"][0]["delta"].get("tool_calls")).collect();
    assert_eq!(
        calls[0][0],
        json!({"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": ""}})
    );
    let args: String = calls.iter().filter_map(|c| c[0]["function"]["arguments"].as_str()).collect();
    assert_eq!(args, "{\"city\": \"Paris\"}");
    assert!(calls.iter().all(|c| c[0]["index"] == 0));
    let last = all.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(all.iter().filter(|c| !c["choices"][0]["finish_reason"].is_null()).count(), 1);
}

#[test]
fn stream_error_event_and_cut() {
    let mut t = StreamTranslator::new("a", "m");
    let events = recorded();
    for e in &events[..4] {
        assert!(t.event(e).events.iter().all(|r| r.is_ok()));
    }
    let step =
        t.event(&ev("error", json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})));
    assert!(step.done);
    assert!(matches!(&step.events[..], [Err(e)] if e.message.contains("Overloaded")));

    let mut t = StreamTranslator::new("a", "m");
    for e in &events[..5] {
        t.event(e);
    }
    let end = t.end();
    assert!(matches!(&end[..], [Err(e)] if e.message.contains("message_stop")), "{end:?}");

    let mut t = StreamTranslator::new("a", "m");
    let step = t.event(&SseEvent { event: "content_block_delta".into(), data: "{\"type\": \"content".into() });
    assert!(step.done && matches!(&step.events[..], [Err(e)] if e.kind == UpstreamErrorKind::Protocol));
}

#[test]
fn huge_upstream_counts_saturate() {
    let max = u64::MAX;
    let answer = json!({"content": [], "usage": {"input_tokens": max, "cache_read_input_tokens": 1,
        "cache_creation_input_tokens": max, "output_tokens": max}});
    let (_, usage) = from_anthropic("a", answer.to_string().as_bytes(), "m").unwrap();
    assert_eq!(usage, Usage { input_tokens: max, output_tokens: max, cached_tokens: 1 });
    let mut t = StreamTranslator::new("a", "m");
    t.event(&ev("message_start", json!({"type": "message_start", "message": {"usage": answer["usage"]}})));
    let step = t.event(&ev("message_stop", json!({"type": "message_stop"})));
    assert!(step.done);
    assert!(matches!(&step.events[..], [.., Ok(StreamEvent::Usage { usage: u, .. })] if u.input_tokens == max));
}

#[test]
fn stream_second_tool_gets_next_index() {
    let mut t = StreamTranslator::new("a", "m");
    t.event(&recorded()[0]);
    for (block, id) in [(0, "t0"), (1, "t1")] {
        let s = t.event(&ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": block,
            "content_block": {"type": "tool_use", "id": id, "name": "f", "input": {}}}),
        ));
        assert_eq!(chunks(&s)[0]["choices"][0]["delta"]["tool_calls"][0]["index"], block);
    }
    let s = t.event(&ev(
        "content_block_delta",
        json!({"type": "content_block_delta", "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
    ));
    assert_eq!(chunks(&s)[0]["choices"][0]["delta"]["tool_calls"][0]["index"], 1);
}
