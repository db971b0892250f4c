//! The provider adapters against local emulators of each wire format.
// Helpers outside #[test] functions, which clippy.toml's test allowances do not reach.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use sheepdog_emulators::{Emulator, Wire};
use sheepdog_gateway::config::{ProviderSettings, Secret};
use sheepdog_gateway::providers::{
    ChatRequest, Provider, RouteTarget, StreamEvent, UpstreamError, UpstreamErrorKind, Usage,
};
use sheepdog_testkit::provider_kind;

fn http_client() -> sheepdog_gateway::providers::http::HttpClient {
    sheepdog_gateway::providers::http::HttpClient::new(Duration::from_secs(10)).unwrap()
}

const KEY: &str = "sk-test-emulated";

fn model_of(wire: Wire) -> &'static str {
    match wire {
        Wire::OpenAi => "gpt-4o-mini",
        Wire::Anthropic => "claude-sonnet-4-5",
        Wire::Gemini => "gemini-2.5-flash",
    }
}

fn reply_of(wire: Wire) -> String {
    format!("Hello from the {} emulator.", wire.display_name())
}

fn settings(wire: Wire, emu: &Emulator) -> ProviderSettings {
    let mut s = ProviderSettings::simulated("x");
    s.kind = provider_kind(wire);
    s.base_url = emu.base_url();
    s.api_key = Some(Secret::new(KEY));
    s
}

async fn setup(wire: Wire) -> (Emulator, Provider, RouteTarget) {
    let emu = Emulator::start(wire).await.unwrap();
    let provider = Provider::new(&settings(wire, &emu), http_client());
    (emu, provider, RouteTarget { upstream_model: model_of(wire).to_string() })
}

fn request(body: Value, stream: bool) -> ChatRequest {
    let Value::Object(mut body) = body else { panic!("body must be an object") };
    if stream {
        body.insert("stream".into(), Value::Bool(true));
    }
    // As a client sent it: the OpenAI adapter forwards these bytes.
    sheepdog_gateway::request::parse_chat(serde_json::to_vec(&body).unwrap().into()).unwrap()
}

/// A system prompt (3 words) and a user message (3 words + the marker).
fn simple(user: &str) -> Value {
    json!({
        "model": "alias",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": format!("Say hello please {user}").trim().to_string()},
        ],
    })
}

fn tools() -> Value {
    json!([{"type": "function", "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }}])
}

struct Collected {
    chunks: Vec<Value>,
    usages: Vec<Usage>,
    usage_chunks: Vec<Value>,
    error: Option<UpstreamError>,
    /// Index of the error among all items (it must be the last).
    items: usize,
}

impl Collected {
    fn text(&self) -> String {
        self.chunks
            .iter()
            .flat_map(|c| c["choices"].as_array().cloned().unwrap_or_default())
            .filter_map(|ch| ch["delta"]["content"].as_str().map(str::to_string))
            .collect()
    }

    fn finish_reasons(&self) -> Vec<String> {
        self.chunks
            .iter()
            .flat_map(|c| c["choices"].as_array().cloned().unwrap_or_default())
            .filter_map(|ch| ch["finish_reason"].as_str().map(str::to_string))
            .collect()
    }

    /// Tool calls assembled from their deltas: index → (id, name, arguments).
    fn tool_calls(&self) -> BTreeMap<u64, (String, String, String)> {
        let mut calls: BTreeMap<u64, (String, String, String)> = BTreeMap::new();
        for c in &self.chunks {
            for ch in c["choices"].as_array().cloned().unwrap_or_default() {
                for tc in ch["delta"]["tool_calls"].as_array().cloned().unwrap_or_default() {
                    let e = calls.entry(tc["index"].as_u64().unwrap()).or_default();
                    if let Some(id) = tc["id"].as_str() {
                        e.0 = id.to_string();
                    }
                    if let Some(n) = tc["function"]["name"].as_str() {
                        e.1.push_str(n);
                    }
                    if let Some(a) = tc["function"]["arguments"].as_str() {
                        e.2.push_str(a);
                    }
                }
            }
        }
        calls
    }
}

async fn collect(provider: &Provider, req: &ChatRequest, target: &RouteTarget) -> Collected {
    let mut stream = provider.stream(req, target).await.unwrap();
    let mut out = Collected { chunks: vec![], usages: vec![], usage_chunks: vec![], error: None, items: 0 };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while let Some(item) = tokio::time::timeout_at(deadline, stream.next()).await.expect("stream hung") {
        out.items += 1;
        assert!(out.error.is_none(), "an item followed the error");
        match item {
            Ok(StreamEvent::Chunk(b)) => {
                assert!(out.usages.is_empty(), "a chunk followed the usage event");
                out.chunks.push(serde_json::from_slice(&b).unwrap());
            }
            Ok(StreamEvent::Usage { usage, chunk }) => {
                out.usages.push(usage);
                out.usage_chunks.push(serde_json::from_slice(&chunk).unwrap());
            }
            Ok(StreamEvent::Raw(_)) => panic!("a translated stream passes no raw event"),
            Err(e) => out.error = Some(e),
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Scenarios, run for each wire format
// ---------------------------------------------------------------------------

async fn non_stream(wire: Wire) {
    let (emu, provider, target) = setup(wire).await;
    let c = provider.complete(&request(simple(""), false), &target).await.unwrap();
    let v: Value = serde_json::from_slice(&c.body).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["message"]["content"], reply_of(wire));
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    // 6 words + 5; the reply has 5 words.
    let usage = Usage { input_tokens: 11, output_tokens: 5, cached_tokens: 0 };
    assert_eq!(c.usage, Some(usage));
    assert_eq!(v["usage"]["prompt_tokens"], 11);
    assert_eq!(v["usage"]["completion_tokens"], 5);
    assert_eq!(v["usage"]["total_tokens"], 16);
    assert_eq!(emu.request_count(), 1);
}

async fn stream(wire: Wire) {
    let (emu, provider, target) = setup(wire).await;
    let got = collect(&provider, &request(simple(""), true), &target).await;
    assert!(got.error.is_none(), "{:?}", got.error);
    assert_eq!(got.text(), reply_of(wire));
    assert!(got.chunks.len() >= 5, "one chunk per word expected, got {}", got.chunks.len());
    assert_eq!(got.chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(got.chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(got.finish_reasons(), vec!["stop"]);
    assert_eq!(got.usages, vec![Usage { input_tokens: 11, output_tokens: 5, cached_tokens: 0 }]);
    assert_eq!(got.usage_chunks[0]["choices"], json!([]));
    assert_eq!(got.usage_chunks[0]["usage"]["total_tokens"], 16);
    let recorded = emu.requests();
    assert_eq!(recorded.len(), 1);
    match wire {
        Wire::OpenAi => {
            assert_eq!(recorded[0].body["stream"], true);
            assert_eq!(recorded[0].body["stream_options"]["include_usage"], true);
        }
        Wire::Anthropic => assert_eq!(recorded[0].body["stream"], true),
        Wire::Gemini => {
            assert!(recorded[0].path.ends_with(":streamGenerateContent"), "{}", recorded[0].path);
            assert_eq!(recorded[0].query.as_deref(), Some("alt=sse"));
        }
    }
}

async fn exact_and_cached_usage(wire: Wire) {
    let (_emu, provider, target) = setup(wire).await;
    let want = Usage { input_tokens: 100, output_tokens: 20, cached_tokens: 30 };
    let body = simple("[emu:usage=100,20] [emu:cached=30]");
    let c = provider.complete(&request(body.clone(), false), &target).await.unwrap();
    assert_eq!(c.usage, Some(want));
    let v: Value = serde_json::from_slice(&c.body).unwrap();
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 30);
    let got = collect(&provider, &request(body, true), &target).await;
    assert!(got.error.is_none(), "{:?}", got.error);
    assert_eq!(got.usages, vec![want]);
}

async fn tool_calls(wire: Wire) {
    let (emu, provider, target) = setup(wire).await;
    let mut body = simple("[emu:tool]");
    body["tools"] = tools();
    body["tool_choice"] = json!("auto");

    let c = provider.complete(&request(body.clone(), false), &target).await.unwrap();
    let v: Value = serde_json::from_slice(&c.body).unwrap();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris"}));
    let call_id = call["id"].as_str().unwrap().to_string();
    assert!(!call_id.is_empty());

    let got = collect(&provider, &request(body.clone(), true), &target).await;
    assert!(got.error.is_none(), "{:?}", got.error);
    let calls = got.tool_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let (id, name, args) = &calls[&0];
    assert!(!id.is_empty());
    assert_eq!(name, "get_weather");
    assert_eq!(serde_json::from_str::<Value>(args).unwrap(), json!({"city": "Paris"}));
    assert_eq!(got.finish_reasons(), vec!["tool_calls"]);
    assert_eq!(got.usages.len(), 1);

    // The follow-up turn (assistant tool call + tool result) is accepted upstream.
    let mut follow = body.clone();
    let msgs = follow["messages"].as_array_mut().unwrap();
    msgs.push(json!({"role": "assistant", "content": null, "tool_calls": [
        {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}));
    msgs.push(json!({"role": "tool", "tool_call_id": call_id, "content": "{\"temp_c\": 21}"}));
    msgs.push(json!({"role": "user", "content": "Thanks!"}));
    let c = provider.complete(&request(follow, false), &target).await.unwrap();
    let v: Value = serde_json::from_slice(&c.body).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], reply_of(wire));

    let sent = &emu.requests()[2].body;
    match wire {
        Wire::OpenAi => assert_eq!(sent["tools"], tools()),
        Wire::Anthropic => {
            assert_eq!(sent["tools"][0]["name"], "get_weather");
            assert_eq!(sent["tools"][0]["input_schema"]["required"], json!(["city"]));
            assert_eq!(sent["tool_choice"], json!({"type": "auto"}));
            let last = sent["messages"].as_array().unwrap().last().unwrap().clone();
            assert_eq!(last["role"], "user");
            assert_eq!(last["content"][0]["type"], "tool_result");
            assert_eq!(last["content"][0]["tool_use_id"], call_id);
            assert_eq!(last["content"][1]["text"], "Thanks!");
        }
        Wire::Gemini => {
            assert_eq!(sent["tools"][0]["functionDeclarations"][0]["name"], "get_weather");
            assert_eq!(sent["toolConfig"]["functionCallingConfig"]["mode"], "AUTO");
            let last = sent["contents"].as_array().unwrap().last().unwrap().clone();
            assert_eq!(last["role"], "user");
            assert_eq!(
                last["parts"][0]["functionResponse"],
                json!({"name": "get_weather", "response": {"temp_c": 21}})
            );
            assert_eq!(last["parts"][1]["text"], "Thanks!");
        }
    }
}

async fn status_errors(wire: Wire) {
    let (_emu, provider, target) = setup(wire).await;
    for status in [400u16, 401, 404, 429, 500, 503] {
        let marker = format!("[emu:error={status}]");
        for streamed in [false, true] {
            let req = request(simple(&marker), streamed);
            let err = if streamed {
                match provider.stream(&req, &target).await {
                    Ok(_) => panic!("stream with {marker} should fail before streaming"),
                    Err(e) => e,
                }
            } else {
                provider.complete(&req, &target).await.unwrap_err()
            };
            assert_eq!(err.kind, UpstreamErrorKind::Status, "{err:?}");
            assert_eq!(err.status, Some(status));
            assert!(err.message.contains(&format!("emulated error {status}")), "{}", err.message);
            assert!(!err.message.contains(KEY));
            let want_retry = (status == 429 || status == 503).then(|| Duration::from_secs(1));
            assert_eq!(err.retry_after, want_retry, "status {status}");
        }
    }
}

async fn mid_stream_break(wire: Wire) {
    let (_emu, provider, target) = setup(wire).await;
    let got = collect(&provider, &request(simple("[emu:break]"), true), &target).await;
    let err = got.error.as_ref().expect("a broken stream must end with an error");
    assert_eq!(err.kind, UpstreamErrorKind::Connect, "{err:?}");
    assert!(got.usages.is_empty());
    assert!(got.finish_reasons().is_empty());
    let want: String = reply_of(wire).split(' ').take(2).collect::<Vec<_>>().join(" ");
    assert_eq!(got.text(), want, "the pieces sent before the break arrive");

    let err = provider.complete(&request(simple("[emu:break]"), false), &target).await.unwrap_err();
    assert!(matches!(err.kind, UpstreamErrorKind::Connect | UpstreamErrorKind::Protocol), "{err:?}");
}

async fn malformed(wire: Wire) {
    let (_emu, provider, target) = setup(wire).await;
    let got = collect(&provider, &request(simple("[emu:malformed]"), true), &target).await;
    let err = got.error.as_ref().expect("a malformed stream must end with an error");
    assert_eq!(err.kind, UpstreamErrorKind::Protocol, "{err:?}");
    assert!(got.usages.is_empty());
    let err = provider.complete(&request(simple("[emu:malformed]"), false), &target).await.unwrap_err();
    assert_eq!(err.kind, UpstreamErrorKind::Protocol, "{err:?}");
}

async fn first_byte_timeout(wire: Wire) {
    let emu = Emulator::start(wire).await.unwrap();
    let mut s = settings(wire, &emu);
    s.first_byte_timeout_ms = 100;
    let provider = Provider::new(&s, http_client());
    let target = RouteTarget { upstream_model: model_of(wire).to_string() };
    // Built first: validating it loads the tokenizer's tables once.
    let stalled = request(simple("[emu:stall_ms=2000]"), false);
    let started = std::time::Instant::now();
    let err = provider.complete(&stalled, &target).await.unwrap_err();
    assert_eq!(err.kind, UpstreamErrorKind::Timeout, "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(1500));
    // A short stall within the timeout is fine.
    s.first_byte_timeout_ms = 5_000;
    let provider = Provider::new(&s, http_client());
    provider.complete(&request(simple("[emu:stall_ms=50]"), false), &target).await.unwrap();
}

macro_rules! per_wire {
    ($($scenario:ident),* $(,)?) => {
        mod openai {
            $( #[tokio::test] async fn $scenario() { super::$scenario(super::Wire::OpenAi).await } )*
        }
        mod anthropic {
            $( #[tokio::test] async fn $scenario() { super::$scenario(super::Wire::Anthropic).await } )*
        }
        mod gemini {
            $( #[tokio::test] async fn $scenario() { super::$scenario(super::Wire::Gemini).await } )*
        }
    };
}

per_wire!(
    non_stream,
    stream,
    exact_and_cached_usage,
    tool_calls,
    status_errors,
    mid_stream_break,
    malformed,
    first_byte_timeout
);

// ---------------------------------------------------------------------------
// Wire-specific checks
// ---------------------------------------------------------------------------

#[tokio::test]
async fn openai_sends_bearer_key_and_upstream_model() {
    let (emu, provider, target) = setup(Wire::OpenAi).await;
    let mut body = simple("");
    body["logit_bias"] = json!({"42": 1});
    provider.complete(&request(body, false), &target).await.unwrap();
    let r = &emu.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.header("authorization"), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(r.body["model"], "gpt-4o-mini");
    assert_eq!(r.body["logit_bias"]["42"], 1);
}

#[tokio::test]
async fn anthropic_headers_and_body() {
    let (emu, provider, target) = setup(Wire::Anthropic).await;
    let body = json!({
        "model": "alias",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "One"},
            {"role": "user", "content": [{"type": "text", "text": "Two"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
            {"role": "assistant", "content": "Ok"},
            {"role": "user", "content": "Three"},
        ],
        "max_tokens": 64, "temperature": 0.2, "stop": ["END"], "user": "tenant-7", "presence_penalty": 0.5,
    });
    let c = provider.complete(&request(body, false), &target).await.unwrap();
    let r = &emu.requests()[0];
    assert_eq!(r.path, "/v1/messages");
    assert_eq!(r.header("x-api-key"), Some(KEY));
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
    assert!(r.header("authorization").is_none());
    assert_eq!(r.body["system"], "You are terse.");
    assert_eq!(r.body["max_tokens"], 64);
    assert_eq!(r.body["stop_sequences"], json!(["END"]));
    assert_eq!(r.body["metadata"]["user_id"], "tenant-7");
    assert!(r.body.get("presence_penalty").is_none());
    assert_eq!(r.body["messages"].as_array().unwrap().len(), 3);
    assert_eq!(r.body["messages"][0]["content"][2]["source"]["media_type"], "image/png");
    // "You are terse." + One + Two + Ok + Three = 7 words, + 5.
    assert_eq!(c.usage.unwrap().input_tokens, 12);

    // A configured version is sent as is.
    let mut s = settings(Wire::Anthropic, &emu);
    s.api_version = Some("2024-01-01".into());
    let p = Provider::new(&s, http_client());
    p.complete(&request(simple(""), false), &target).await.unwrap();
    assert_eq!(emu.requests()[1].header("anthropic-version"), Some("2024-01-01"));

    // Without a key the emulator answers like Anthropic does.
    s.api_key = None;
    let p = Provider::new(&s, http_client());
    let err = p.complete(&request(simple(""), false), &target).await.unwrap_err();
    assert_eq!(err.status, Some(401));
    assert!(err.message.contains("x-api-key"), "{}", err.message);
}

#[tokio::test]
async fn anthropic_base_url_without_v1() {
    let emu = Emulator::start(Wire::Anthropic).await.unwrap();
    let mut s = settings(Wire::Anthropic, &emu);
    s.base_url = format!("http://{}", emu.addr());
    let p = Provider::new(&s, http_client());
    let target = RouteTarget { upstream_model: "claude-x".into() };
    p.complete(&request(simple(""), false), &target).await.unwrap();
    assert_eq!(emu.requests()[0].path, "/v1/messages");
}

#[tokio::test]
async fn gemini_key_path_and_config() {
    let (emu, provider, target) = setup(Wire::Gemini).await;
    let mut body = simple("");
    body["max_completion_tokens"] = json!(33);
    body["response_format"] = json!({"type": "json_object"});
    provider.complete(&request(body, false), &target).await.unwrap();
    let r = &emu.requests()[0];
    assert_eq!(r.path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(r.header("x-goog-api-key"), Some(KEY));
    assert!(r.query.is_none());
    assert_eq!(r.body["systemInstruction"]["parts"][0]["text"], "You are terse.");
    assert_eq!(r.body["generationConfig"]["maxOutputTokens"], 33);
    assert_eq!(r.body["generationConfig"]["responseMimeType"], "application/json");

    // Without a key: Gemini's 403.
    let mut s = settings(Wire::Gemini, &emu);
    s.api_key = None;
    let p = Provider::new(&s, http_client());
    let err = p.complete(&request(simple(""), false), &target).await.unwrap_err();
    assert_eq!(err.status, Some(403));
}

#[tokio::test]
async fn gemini_safety_block() {
    let (_emu, provider, target) = setup(Wire::Gemini).await;
    let err = provider.complete(&request(simple("[emu:safety]"), false), &target).await.unwrap_err();
    assert_eq!(err.kind, UpstreamErrorKind::ContentBlocked);
    assert!(err.message.contains("SAFETY"), "{}", err.message);
    let got = collect(&provider, &request(simple("[emu:safety]"), true), &target).await;
    assert!(got.chunks.is_empty());
    assert_eq!(got.error.map(|e| e.kind), Some(UpstreamErrorKind::ContentBlocked));
    assert_eq!(got.items, 1);
}
