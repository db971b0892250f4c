use serde_json::{json, Map, Value};

use super::*;
use crate::providers::http::StreamTranslate;
use crate::providers::sse::SseEvent;
use crate::providers::types::{StreamEvent, UpstreamError, UpstreamErrorKind, Usage};

fn body(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

#[test]
fn huge_upstream_counts_saturate() {
    let answer = json!({"candidates": [{"content": {"parts": [{"text": "x"}]}}],
        "usageMetadata": {"candidatesTokenCount": u64::MAX, "thoughtsTokenCount": 5}});
    let (v, usage) = from_gemini("g", answer.to_string().as_bytes(), "m").unwrap();
    assert_eq!(usage.map(|u| u.output_tokens), Some(u64::MAX));
    assert_eq!(v["usage"]["total_tokens"], u64::MAX);
}

#[test]
fn urls() {
    let g = "https://generativelanguage.googleapis.com";
    assert_eq!(
        model_url(g, "gemini-2.5-flash", "generateContent"),
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(
        model_url("http://h/v1", "m", "streamGenerateContent?alt=sse"),
        "http://h/v1/models/m:streamGenerateContent?alt=sse"
    );
    assert_eq!(model_url("http://h/v1alpha/", "m", "x"), "http://h/v1alpha/models/m:x");
    assert_eq!(model_url("http://h/v1beta", "tunedModels/t", "x"), "http://h/v1beta/tunedModels/t:x");
}

#[test]
fn request_roles_system_and_config() {
    let b = body(json!({
        "model": "alias",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": "Use French."},
            {"role": "user", "content": "Hi"},
            {"role": "user", "content": [{"type": "text", "text": "there"}]},
            {"role": "assistant", "content": "Bonjour"},
            {"role": "user", "content": "Again"},
        ],
        "temperature": 0.5, "top_p": 0.9, "max_tokens": 7, "stop": "END", "n": 2, "seed": 3,
        "response_format": {"type": "json_object"}, "logit_bias": {"1": 2}, "user": "u",
    }));
    let out = to_gemini(&b);
    assert_eq!(out["systemInstruction"], json!({"parts": [{"text": "Be brief.\n\nUse French."}]}));
    assert_eq!(
        out["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Hi"}, {"text": "there"}]},
            {"role": "model", "parts": [{"text": "Bonjour"}]},
            {"role": "user", "parts": [{"text": "Again"}]},
        ])
    );
    let g = &out["generationConfig"];
    assert_eq!(g["temperature"], 0.5);
    assert_eq!(g["topP"], 0.9);
    assert_eq!(g["maxOutputTokens"], 7);
    assert_eq!(g["stopSequences"], json!(["END"]));
    assert_eq!(g["candidateCount"], 2);
    assert_eq!(g["seed"], 3);
    assert_eq!(g["responseMimeType"], "application/json");
    for k in ["logit_bias", "user", "model", "messages"] {
        assert!(out.get(k).is_none(), "{k} leaked");
    }

    let b = body(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 9,
        "max_tokens": 1, "stop": ["a", "b"],
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}}}));
    let g = to_gemini(&b)["generationConfig"].clone();
    assert_eq!(g["maxOutputTokens"], 9);
    assert_eq!(g["stopSequences"], json!(["a", "b"]));
    assert_eq!(g["responseSchema"]["properties"]["a"]["type"], "string");
    let b = body(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}));
    assert!(to_gemini(&b).get("generationConfig").is_none());
}

#[test]
fn request_images() {
    let b = body(json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What?"},
        {"type": "image_url", "image_url": {"url": "data:image/webp;base64,UklGR"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/a/cat.PNG?size=2"}},
        {"type": "image_url", "image_url": {"url": "gs://bucket/photo"}},
    ]}]}));
    let parts = to_gemini(&b)["contents"][0]["parts"].clone();
    assert_eq!(parts[1], json!({"inlineData": {"mimeType": "image/webp", "data": "UklGR"}}));
    assert_eq!(parts[2], json!({"fileData": {"mimeType": "image/png", "fileUri": "https://x.test/a/cat.PNG?size=2"}}));
    assert_eq!(parts[3], json!({"fileData": {"mimeType": "image/jpeg", "fileUri": "gs://bucket/photo"}}));
}

#[test]
fn request_tools_calls_and_results() {
    let b = body(json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_0", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_1", "type": "function", "function": {"name": "time", "arguments": "{}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_0", "content": "{\"temp\": 21}"},
            {"role": "tool", "tool_call_id": "call_1", "content": "noon"},
            {"role": "assistant", "content": "Noted.", "tool_calls": [
                {"id": "call_0", "type": "function", "function": {"name": "news", "arguments": "{}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_0", "content": "[1, 2]"},
        ],
        "tools": [
            {"type": "function", "function": {"name": "weather", "description": "Get weather",
             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
            {"type": "function", "function": {"name": "time", "parameters": {"type": "object", "properties": {}}}},
        ],
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
    }));
    let out = to_gemini(&b);
    let contents = out["contents"].as_array().unwrap();
    assert_eq!(contents.len(), 5);
    assert_eq!(contents[1]["role"], "model");
    assert_eq!(contents[1]["parts"][0], json!({"functionCall": {"name": "weather", "args": {"city": "Paris"}}}));
    assert_eq!(contents[1]["parts"][1], json!({"functionCall": {"name": "time", "args": {}}}));
    assert_eq!(contents[2]["role"], "user");
    assert_eq!(contents[2]["parts"][0], json!({"functionResponse": {"name": "weather", "response": {"temp": 21}}}));
    assert_eq!(contents[2]["parts"][1], json!({"functionResponse": {"name": "time", "response": {"result": "noon"}}}));
    assert_eq!(contents[3]["parts"][0], json!({"text": "Noted."}));
    // A reused id resolves to the nearest preceding call.
    assert_eq!(
        contents[4]["parts"][0],
        json!({"functionResponse": {"name": "news", "response": {"result": "[1, 2]"}}})
    );
    let decls = &out["tools"][0]["functionDeclarations"];
    assert_eq!(decls[0]["name"], "weather");
    assert_eq!(decls[0]["description"], "Get weather");
    assert_eq!(decls[0]["parameters"]["required"], json!(["city"]));
    assert_eq!(decls[1], json!({"name": "time"}));
    assert_eq!(
        out["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}})
    );

    let mode = |c: &str| {
        let b = body(json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": c}));
        to_gemini(&b)["toolConfig"]["functionCallingConfig"]["mode"].clone()
    };
    assert_eq!(mode("auto"), "AUTO");
    assert_eq!(mode("none"), "NONE");
    assert_eq!(mode("required"), "ANY");
}

#[test]
fn response_text_tools_usage() {
    let answer = json!({
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "thinking...", "thought": true},
            {"text": "Hello "}, {"text": "world"},
        ]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 50, "candidatesTokenCount": 5, "thoughtsTokenCount": 3,
                          "cachedContentTokenCount": 20, "totalTokenCount": 58},
        "modelVersion": "gemini-x",
    });
    let (v, usage) = from_gemini("g", answer.to_string().as_bytes(), "gemini-x").unwrap();
    assert_eq!(usage, Some(Usage { input_tokens: 50, output_tokens: 8, cached_tokens: 20 }));
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gemini-x");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["choices"][0]["message"]["content"], "Hello world");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["completion_tokens"], 8);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 20);

    let answer = json!({"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "weather", "args": {"city": "Paris"}}},
        {"functionCall": {"name": "time"}},
    ]}, "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1}});
    let (v, _) = from_gemini("g", answer.to_string().as_bytes(), "m").unwrap();
    let m = &v["choices"][0]["message"];
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert!(m["content"].is_null());
    assert_eq!(m["tool_calls"][0]["id"], "call_0");
    assert_eq!(m["tool_calls"][0]["function"]["name"], "weather");
    let args: Value = serde_json::from_str(m["tool_calls"][0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris"}));
    assert_eq!(m["tool_calls"][1]["id"], "call_1");
    assert_eq!(m["tool_calls"][1]["function"]["arguments"], "{}");

    for (reason, finish) in [
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("SPII", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("OTHER", "stop"),
    ] {
        let a = json!({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]});
        let (v, u) = from_gemini("g", a.to_string().as_bytes(), "m").unwrap();
        assert_eq!(v["choices"][0]["finish_reason"], finish, "{reason}");
        assert!(u.is_none() && v.get("usage").is_none());
    }
}

#[test]
fn response_prompt_blocked() {
    let a = json!({"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
                   "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}});
    let e = from_gemini("g", a.to_string().as_bytes(), "m").unwrap_err();
    assert_eq!(e.kind, UpstreamErrorKind::ContentBlocked);
    assert!(e.message.contains("SAFETY") && e.message.contains("blocked"), "{}", e.message);
    assert_eq!(from_gemini("g", b"{}", "m").unwrap_err().kind, UpstreamErrorKind::Protocol);
    assert_eq!(from_gemini("g", b"[", "m").unwrap_err().kind, UpstreamErrorKind::Protocol);
}

fn ev(v: Value) -> SseEvent {
    SseEvent { event: String::new(), data: v.to_string() }
}

fn text_chunk(text: &str, finish: Option<&str>, candidates_tokens: u64) -> Value {
    let mut c = json!({"content": {"role": "model", "parts": [{"text": text}]}, "index": 0});
    if let Some(f) = finish {
        c["finishReason"] = json!(f);
    }
    json!({"candidates": [c], "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": candidates_tokens,
           "cachedContentTokenCount": 4, "thoughtsTokenCount": 2}})
}

fn run(t: &mut StreamTranslator, events: &[Value]) -> (Vec<Value>, Vec<Usage>, Option<UpstreamError>, bool) {
    let mut chunks = Vec::new();
    let mut usages = Vec::new();
    let mut err = None;
    let mut items = Vec::new();
    let mut done = false;
    for e in events {
        let step = t.event(&ev(e.clone()));
        items.extend(step.events);
        if step.done {
            done = true;
            break;
        }
    }
    if !done {
        items.extend(t.end());
    }
    for i in items {
        match i {
            Ok(StreamEvent::Chunk(b)) => chunks.push(serde_json::from_slice(&b).unwrap()),
            Ok(StreamEvent::Usage { usage, .. }) => usages.push(usage),
            Ok(StreamEvent::Raw(_)) => panic!("a translated stream passes no raw event"),
            Err(e) => err = Some(e),
        }
    }
    (chunks, usages, err, done)
}

#[test]
fn stream_text_and_usage() {
    let mut t = StreamTranslator::new("g", "gemini-x");
    let (chunks, usages, err, _) = run(
        &mut t,
        &[text_chunk("Hello", None, 1), text_chunk(" there", None, 2), text_chunk(" friend.", Some("STOP"), 3)],
    );
    assert!(err.is_none(), "{err:?}");
    assert_eq!(usages, vec![Usage { input_tokens: 9, output_tokens: 5, cached_tokens: 4 }]);
    assert_eq!(chunks[0]["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "Hello there friend.");
    assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "stop");
    assert!(chunks.iter().all(|c| c["model"] == "gemini-x" && c["object"] == "chat.completion.chunk"));
}

#[test]
fn stream_tool_call() {
    let mut t = StreamTranslator::new("g", "m");
    let e = json!({"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "weather", "args": {"city": "Paris"}}}]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 10}});
    let (chunks, usages, err, _) = run(&mut t, &[e]);
    assert!(err.is_none());
    assert_eq!(usages.len(), 1);
    let call = &chunks[1]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(call["index"], 0);
    assert_eq!(call["id"], "call_0");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "weather");
    assert_eq!(call["function"]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn stream_cut_blocked_and_errors() {
    // Closed before any finishReason.
    let mut t = StreamTranslator::new("g", "m");
    let (chunks, usages, err, _) = run(&mut t, &[text_chunk("Hel", None, 1)]);
    assert_eq!(chunks.len(), 2);
    assert!(usages.is_empty());
    assert!(err.unwrap().message.contains("finishReason"));
    let mut t = StreamTranslator::new("g", "m");
    assert!(matches!(&t.end()[..], [Err(_)]));

    // Prompt blocked.
    let mut t = StreamTranslator::new("g", "m");
    let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}});
    let (chunks, _, err, done) = run(&mut t, &[blocked]);
    assert!(chunks.is_empty() && done);
    assert_eq!(err.unwrap().kind, UpstreamErrorKind::ContentBlocked);

    // Answer stopped by safety mid-stream: usage, then the error.
    let mut t = StreamTranslator::new("g", "m");
    let (chunks, usages, err, done) = run(&mut t, &[text_chunk("Some", None, 1), text_chunk("", Some("SAFETY"), 1)]);
    assert!(done);
    assert_eq!(chunks.len(), 2);
    assert_eq!(usages.len(), 1);
    let err = err.unwrap();
    assert_eq!(err.kind, UpstreamErrorKind::ContentBlocked);
    assert!(err.message.contains("SAFETY"));

    // Malformed data and error objects.
    let mut t = StreamTranslator::new("g", "m");
    let step = t.event(&SseEvent { event: String::new(), data: "{\"candidates\": [".into() });
    assert!(step.done && matches!(&step.events[..], [Err(e)] if e.kind == UpstreamErrorKind::Protocol));
    let mut t = StreamTranslator::new("g", "m");
    let step = t.event(&ev(json!({"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}})));
    assert!(matches!(&step.events[..], [Err(e)] if e.message.contains("overloaded")));
}

/// Gemini's documented `batchEmbedContents` request and response shapes.
#[test]
fn embeddings_batch_request_and_answer() {
    let body: Value =
        serde_json::from_slice(&embed_body("gemini-embedding-001", &["a".into(), "b c".into()], Some(8))).unwrap();
    assert_eq!(
        body,
        json!({"requests": [
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 8},
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b c"}]}, "outputDimensionality": 8},
        ]})
    );
    let without: Value = serde_json::from_slice(&embed_body("tunedModels/x", &["a".into()], None)).unwrap();
    assert_eq!(without["requests"][0]["model"], "tunedModels/x");
    assert!(without["requests"][0].get("outputDimensionality").is_none());
    let answer = br#"{"embeddings": [{"values": [0.25, -0.5]}, {"values": [1.0]}]}"#;
    assert_eq!(embed_vectors("g", answer, 2).unwrap(), vec![vec![0.25, -0.5], vec![1.0]]);
    assert!(embed_vectors("g", answer, 3).unwrap_err().message.contains("2 embeddings for 3 inputs"));
    assert!(embed_vectors("g", b"<html>", 1).is_err());
}
