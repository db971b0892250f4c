//! The emulators over HTTP: validation, wire shapes, scripted faults.

use std::time::Duration;

use serde_json::{json, Value};
use sheepdog_emulators::{Emulator, Wire};

#[allow(clippy::unwrap_used)]
async fn post(url: &str, headers: &[(&str, &str)], body: &Value) -> reqwest::Response {
    let mut rb = reqwest::Client::new().post(url).json(body);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    rb.send().await.unwrap()
}

#[allow(clippy::unwrap_used)]
async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// SSE `data:` payloads (and event names) of a whole body.
fn sse(text: &str) -> Vec<(String, String)> {
    let text = text.replace("\r\n", "\n");
    text.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let mut event = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = e.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = d.to_string();
                }
            }
            (event, data)
        })
        .collect()
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

// ---------------------------------------------------------------------------
// OpenAI
// ---------------------------------------------------------------------------

#[tokio::test]
async fn openai_validation_and_models() {
    let emu = Emulator::start(Wire::OpenAi).await.unwrap();
    let url = format!("{}/chat/completions", emu.base_url());
    let (s, v) = json_of(post(&url, &[], &json!({"messages": user("hi")})).await).await;
    assert_eq!(s, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("model"));
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let (s, _) = json_of(post(&url, &[], &json!({"model": "m", "messages": []})).await).await;
    assert_eq!(s, 400);
    let (s, _) = json_of(post(&url, &[], &json!({"model": "m"})).await).await;
    assert_eq!(s, 400);
    let orphan = json!({"model": "m", "messages": [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "c1", "content": "r"}]});
    let (s, v) = json_of(post(&url, &[], &orphan).await).await;
    assert_eq!(s, 400, "{v}");
    let r = reqwest::get(format!("{}/models", emu.base_url())).await.unwrap();
    let (s, v) = json_of(r).await;
    assert_eq!(s, 200);
    assert_eq!(v["object"], "list");
    assert_eq!(emu.request_count(), 5);
    let recorded = emu.requests();
    assert_eq!(recorded[4].method, "GET");
    assert_eq!(recorded[4].path, "/v1/models");
    assert_eq!(recorded[0].body["messages"][0]["content"], "hi");
}

#[tokio::test]
async fn openai_default_answer_and_usage() {
    let emu = Emulator::start(Wire::OpenAi).await.unwrap();
    let url = format!("{}/chat/completions", emu.base_url());
    let body = json!({"model": "gpt-x", "messages": [
        {"role": "system", "content": "Be nice"},
        {"role": "user", "content": [{"type": "text", "text": "one two three"}]},
    ]});
    let (s, v) = json_of(post(&url, &[], &body).await).await;
    assert_eq!(s, 200);
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-x");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from the OpenAI emulator.");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 10);
    assert_eq!(v["usage"]["completion_tokens"], 5);
    assert_eq!(v["usage"]["total_tokens"], 15);

    let body = json!({"model": "m", "messages": user("x [emu:usage=100,7] [emu:cached=40]")});
    let (_, v) = json_of(post(&url, &[], &body).await).await;
    assert_eq!(v["usage"]["prompt_tokens"], 100);
    assert_eq!(v["usage"]["completion_tokens"], 7);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 40);
}

#[tokio::test]
async fn openai_stream_shapes() {
    let emu = Emulator::start(Wire::OpenAi).await.unwrap();
    let url = format!("{}/chat/completions", emu.base_url());
    let body = json!({"model": "m", "messages": user("hi"), "stream": true, "stream_options": {"include_usage": true}});
    let r = post(&url, &[], &body).await;
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let events = sse(&r.text().await.unwrap());
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let usage: Value = serde_json::from_str(&events[events.len() - 2].1).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 5);
    let chunks: Vec<Value> = events[..events.len() - 2].iter().map(|e| serde_json::from_str(&e.1).unwrap()).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(chunks.iter().all(|c| c["usage"].is_null() && c.get("usage").is_some()));
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "Hello from the OpenAI emulator.");
    assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "stop");

    // Without include_usage: no usage chunk at all.
    let body = json!({"model": "m", "messages": user("hi"), "stream": true});
    let events = sse(&post(&url, &[], &body).await.text().await.unwrap());
    assert!(events.iter().all(|e| !e.1.contains("\"usage\"")));

    // Tool calls stream as deltas.
    let body = json!({"model": "m", "messages": user("[emu:tool]"), "stream": true,
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]});
    let events = sse(&post(&url, &[], &body).await.text().await.unwrap());
    let args: String = events
        .iter()
        .filter(|e| e.1 != "[DONE]")
        .map(|e| serde_json::from_str::<Value>(&e.1).unwrap())
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str().map(str::to_string))
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&args).unwrap(), json!({"city": "Paris"}));
    assert!(events[0].1.contains("get_weather"));
}

#[tokio::test]
async fn scripted_errors_carry_retry_after() {
    for wire in [Wire::OpenAi, Wire::Anthropic, Wire::Gemini] {
        let emu = Emulator::start(wire).await.unwrap();
        for status in [400u16, 429, 500, 503] {
            let marker = format!("go [emu:error={status}]");
            let r = match wire {
                Wire::OpenAi => {
                    let body = json!({"model": "m", "messages": user(&marker)});
                    post(&format!("{}/chat/completions", emu.base_url()), &[], &body).await
                }
                Wire::Anthropic => {
                    let body = json!({"model": "m", "max_tokens": 5, "messages": user(&marker)});
                    post(
                        &format!("{}/messages", emu.base_url()),
                        &[("x-api-key", "k"), ("anthropic-version", "2023-06-01")],
                        &body,
                    )
                    .await
                }
                Wire::Gemini => {
                    let body = json!({"contents": [{"role": "user", "parts": [{"text": marker}]}]});
                    post(&format!("{}/models/g:generateContent", emu.base_url()), &[("x-goog-api-key", "k")], &body)
                        .await
                }
            };
            let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
            let (s, v) = json_of(r).await;
            assert_eq!(s, status);
            assert_eq!(retry.as_deref(), (status == 429 || status == 503).then_some("1"), "{wire:?} {status}");
            assert_eq!(v["error"]["message"], format!("emulated error {status}"), "{wire:?}: {v}");
            match wire {
                Wire::Anthropic => assert_eq!(v["type"], "error"),
                Wire::Gemini => assert_eq!(v["error"]["code"], status),
                Wire::OpenAi => assert!(v["error"].get("type").is_some()),
            }
        }
    }
}

#[tokio::test]
async fn break_really_breaks_the_body() {
    let emu = Emulator::start(Wire::OpenAi).await.unwrap();
    let url = format!("{}/chat/completions", emu.base_url());
    let body = json!({"model": "m", "messages": user("[emu:break]"), "stream": true});
    let r = post(&url, &[], &body).await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().await.is_err(), "the body must fail, not end cleanly");
}

#[tokio::test]
async fn stall_delays_the_answer() {
    let emu = Emulator::start(Wire::OpenAi).await.unwrap();
    let url = format!("{}/chat/completions", emu.base_url());
    let started = std::time::Instant::now();
    let body = json!({"model": "m", "messages": user("[emu:stall_ms=150]")});
    let (s, _) = json_of(post(&url, &[], &body).await).await;
    assert_eq!(s, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

// ---------------------------------------------------------------------------
// Anthropic
// ---------------------------------------------------------------------------

const ANTHROPIC_HEADERS: [(&str, &str); 2] = [("x-api-key", "k"), ("anthropic-version", "2023-06-01")];

#[tokio::test]
async fn anthropic_validation() {
    let emu = Emulator::start(Wire::Anthropic).await.unwrap();
    let url = format!("{}/messages", emu.base_url());
    let ok = json!({"model": "c", "max_tokens": 10, "messages": user("hi")});
    let (s, v) = json_of(post(&url, &[("anthropic-version", "2023-06-01")], &ok).await).await;
    assert_eq!((s, v["error"]["type"].as_str()), (401, Some("authentication_error")));
    let (s, _) = json_of(post(&url, &[("x-api-key", "k")], &ok).await).await;
    assert_eq!(s, 400);
    let (s, v) = json_of(post(&url, &ANTHROPIC_HEADERS, &ok).await).await;
    assert_eq!(s, 200, "{v}");

    let bad = [
        json!({"model": "c", "messages": user("hi")}),
        json!({"model": "c", "max_tokens": 10, "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]}),
        json!({"model": "c", "max_tokens": 10, "messages": [{"role": "assistant", "content": "a"}]}),
        json!({"model": "c", "max_tokens": 10, "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}),
        json!({"model": "c", "max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]}),
        json!({"model": "c", "max_tokens": 10, "messages": [{"role": "user", "content": "q"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t2", "content": "r"}]}]}),
        json!({"model": "c", "max_tokens": 10, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/tiff", "data": "AA"}}]}]}),
    ];
    for b in bad {
        let (s, v) = json_of(post(&url, &ANTHROPIC_HEADERS, &b).await).await;
        assert_eq!(s, 400, "{b} → {v}");
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
    let good_tools = json!({"model": "c", "max_tokens": 10, "messages": [{"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "r"}]}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}]});
    let (s, v) = json_of(post(&url, &ANTHROPIC_HEADERS, &good_tools).await).await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn anthropic_shapes() {
    let emu = Emulator::start(Wire::Anthropic).await.unwrap();
    let url = format!("{}/messages", emu.base_url());
    let body = json!({"model": "claude-x", "max_tokens": 10, "system": "Be nice", "messages": user("hi [emu:usage=100,9] [emu:cached=60]")});
    let (s, v) = json_of(post(&url, &ANTHROPIC_HEADERS, &body).await).await;
    assert_eq!(s, 200);
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"][0]["text"], "Hello from the Anthropic emulator.");
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"]["input_tokens"], 40);
    assert_eq!(v["usage"]["cache_read_input_tokens"], 60);
    assert_eq!(v["usage"]["output_tokens"], 9);

    let mut body = json!({"model": "claude-x", "max_tokens": 10, "messages": user("hi"), "stream": true});
    let events = sse(&post(&url, &ANTHROPIC_HEADERS, &body).await.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    for (name, data) in &events {
        let v: Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["type"], name.as_str());
    }
    let start: Value = serde_json::from_str(&events[0].1).unwrap();
    assert_eq!(start["message"]["usage"]["input_tokens"], 6);
    let delta: Value = serde_json::from_str(&events[9].1).unwrap();
    assert_eq!(delta["usage"]["output_tokens"], 5);
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");

    body["messages"] = user("[emu:tool]");
    body["tools"] = json!([{"name": "get_weather", "input_schema": {"type": "object"}}]);
    let events = sse(&post(&url, &ANTHROPIC_HEADERS, &body).await.text().await.unwrap());
    let json: String = events
        .iter()
        .map(|e| serde_json::from_str::<Value>(&e.1).unwrap())
        .filter_map(|v| v["delta"]["partial_json"].as_str().map(str::to_string))
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), json!({"city": "Paris"}));
    assert!(events.iter().any(|e| e.1.contains("\"tool_use\"") && e.1.contains("get_weather")));
}

// ---------------------------------------------------------------------------
// Gemini
// ---------------------------------------------------------------------------

#[tokio::test]
async fn gemini_validation_and_shapes() {
    let emu = Emulator::start(Wire::Gemini).await.unwrap();
    let url = format!("{}/models/gemini-x:generateContent", emu.base_url());
    let body = json!({"systemInstruction": {"parts": [{"text": "Be nice"}]},
                      "contents": [{"role": "user", "parts": [{"text": "hi there"}]}]});
    let (s, v) = json_of(post(&url, &[], &body).await).await;
    assert_eq!((s, v["error"]["status"].as_str()), (403, Some("PERMISSION_DENIED")));
    let (s, v) = json_of(post(&format!("{url}?key=abc"), &[], &body).await).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = json_of(post(&url, &[("x-goog-api-key", "k")], &body).await).await;
    assert_eq!(s, 200);
    assert_eq!(v["candidates"][0]["content"]["parts"][0]["text"], "Hello from the Gemini emulator.");
    assert_eq!(v["candidates"][0]["content"]["role"], "model");
    assert_eq!(v["candidates"][0]["finishReason"], "STOP");
    assert_eq!(v["usageMetadata"]["promptTokenCount"], 9);
    assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 5);
    assert_eq!(v["modelVersion"], "gemini-x");

    for bad in [
        json!({"contents": []}),
        json!({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}),
        json!({"contents": [{"role": "user", "parts": []}]}),
        json!({"contents": [{"role": "user", "parts": [{"functionResponse": {"name": "f", "response": "text"}}]}]}),
    ] {
        let (s, v) = json_of(post(&url, &[("x-goog-api-key", "k")], &bad).await).await;
        assert_eq!(s, 400, "{bad}");
        assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
    }
    let r = post(&format!("{}/models/gemini-x:predictLongRunning", emu.base_url()), &[("x-goog-api-key", "k")], &body)
        .await;
    assert_eq!(r.status().as_u16(), 404);

    let safety = json!({"contents": [{"parts": [{"text": "[emu:safety]"}]}]});
    let (s, v) = json_of(post(&url, &[("x-goog-api-key", "k")], &safety).await).await;
    assert_eq!(s, 200);
    assert_eq!(v["promptFeedback"]["blockReason"], "SAFETY");
    assert!(v.get("candidates").is_none());
}

#[tokio::test]
async fn gemini_streams() {
    let emu = Emulator::start(Wire::Gemini).await.unwrap();
    let url = format!("{}/models/gemini-x:streamGenerateContent", emu.base_url());
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi [emu:cached=2]"}]}]});
    let r = post(&format!("{url}?alt=sse"), &[("x-goog-api-key", "k")], &body).await;
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let events = sse(&r.text().await.unwrap());
    let chunks: Vec<Value> = events.iter().map(|e| serde_json::from_str(&e.1).unwrap()).collect();
    assert_eq!(chunks.len(), 5);
    let text: String =
        chunks.iter().filter_map(|c| c["candidates"][0]["content"]["parts"][0]["text"].as_str()).collect();
    assert_eq!(text, "Hello from the Gemini emulator.");
    assert!(chunks[..4].iter().all(|c| c["candidates"][0].get("finishReason").is_none()));
    let last = chunks.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["candidatesTokenCount"], 5);
    assert_eq!(last["usageMetadata"]["cachedContentTokenCount"], 2);

    // Without alt=sse: one JSON array.
    let r = post(&url, &[("x-goog-api-key", "k")], &body).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v.as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn drop_stops_the_server() {
    let emu = Emulator::start(Wire::OpenAi).await.unwrap();
    let url = format!("{}/models", emu.base_url());
    assert!(reqwest::get(&url).await.is_ok());
    drop(emu);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    assert!(client.get(&url).send().await.is_err());
}

#[tokio::test]
async fn openai_embeddings_shapes_and_validation() {
    let emu = Emulator::start(Wire::OpenAi).await.unwrap();
    let url = format!("{}/embeddings", emu.base_url());
    let (s, v) =
        json_of(post(&url, &[], &json!({"model": "text-embedding-3-small", "input": ["a b", "c"]})).await).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["object"], "list");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!((data[1]["index"].as_u64(), data[1]["object"].as_str()), (Some(1), Some("embedding")));
    assert_eq!(data[0]["embedding"].as_array().unwrap().len(), 1536);
    assert_eq!(v["usage"], json!({"prompt_tokens": 13, "total_tokens": 13}));
    // The same text, the same vector; dimensions and base64 honoured.
    let (_, again) = json_of(post(&url, &[], &json!({"model": "m", "input": "a b", "dimensions": 4})).await).await;
    assert_eq!(again["data"][0]["embedding"].as_array().unwrap().len(), 4);
    let (_, b64) = json_of(
        post(&url, &[], &json!({"model": "m", "input": "a b", "dimensions": 4, "encoding_format": "base64"})).await,
    )
    .await;
    assert_eq!(b64["data"][0]["embedding"].as_str().unwrap().len(), 24, "16 bytes in base64");
    // Token arrays count their tokens.
    let (_, t) = json_of(post(&url, &[], &json!({"model": "m", "input": [[1, 2, 3], [4]]})).await).await;
    assert_eq!(t["usage"]["prompt_tokens"], 4);
    for (body, param) in [
        (json!({"model": "m"}), "input"),
        (json!({"model": "m", "input": ""}), "input"),
        (json!({"model": "m", "input": "x", "dimensions": 0}), "dimensions"),
        (json!({"model": "m", "input": "x", "encoding_format": "int8"}), "encoding_format"),
        (json!({"input": "x"}), "model"),
    ] {
        let (s, e) = json_of(post(&url, &[], &body).await).await;
        assert_eq!((s, e["error"]["param"].as_str()), (400, Some(param)), "{body}: {e}");
    }
    let (s, _) = json_of(post(&url, &[], &json!({"model": "m", "input": "x [emu:error=503]"})).await).await;
    assert_eq!(s, 503);
}

#[tokio::test]
async fn gemini_embeddings_single_and_batch() {
    let emu = Emulator::start(Wire::Gemini).await.unwrap();
    let base = emu.base_url();
    let one = json!({"content": {"parts": [{"text": "a b"}]}, "outputDimensionality": 8});
    let (s, v) = json_of(post(&format!("{base}/models/gemini-embedding-001:embedContent"), &[], &one).await).await;
    assert_eq!(s, 200, "{v}");
    let single = v["embedding"]["values"].as_array().unwrap().clone();
    assert_eq!(single.len(), 8);
    let batch = json!({"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a b"}]}, "outputDimensionality": 8},
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "c"}]}},
    ]});
    let url = format!("{base}/models/gemini-embedding-001:batchEmbedContents");
    let (s, v) = json_of(post(&url, &[], &batch).await).await;
    assert_eq!(s, 200, "{v}");
    let e = v["embeddings"].as_array().unwrap();
    assert_eq!(e[0]["values"].as_array().unwrap(), &single, "the same text, the same vector");
    assert_eq!(e[1]["values"].as_array().unwrap().len(), 3072);
    let wrong = json!({"requests": [{"model": "models/other", "content": {"parts": [{"text": "x"}]}}]});
    let (s, v) = json_of(post(&url, &[], &wrong).await).await;
    assert_eq!((s, v["error"]["status"].as_str()), (400, Some("INVALID_ARGUMENT")), "{v}");
    let (s, _) = json_of(post(&url, &[], &json!({"requests": []})).await).await;
    assert_eq!(s, 400);
}
