//! End to end through each provider wire format: the gateway in front of a
//! local emulator (non-stream, stream, tool calls, 4xx/5xx, mid-stream break,
//! malformed streams), with exact usage recorded.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sheepdog_emulators::{Emulator, Wire};

use sheepdog_testkit::*;

const WIRES: [Wire; 3] = [Wire::OpenAi, Wire::Anthropic, Wire::Gemini];

async fn gateway_for(emu: &Emulator, wire: Wire) -> TestGateway {
    // This test is about how each failure is reported, not about breakers.
    let provider = emulated_provider_plain(emu, wire);
    TestGateway::start_with(Db::Sqlite, move |c| {
        c.providers.insert("up".into(), provider);
        c.models.insert("m".into(), model("up", "upstream-model-1", "2", "8"));
    })
    .await
}

fn content_of(datas: &[String]) -> String {
    datas
        .iter()
        .filter(|d| d.as_str() != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn every_wire_format_end_to_end() {
    for wire in WIRES {
        let emu = Emulator::start(wire).await.unwrap();
        let gw = gateway_for(&emu, wire).await;
        let (tenant, key) = gw.tenant_with_key("t").await;
        let hello = format!("Hello from the {} emulator.", wire.display_name());

        // Non-stream, exact usage and cost.
        let r = gw
            .chat(&key)
            .header("X-Cost-Center", "search")
            .json(&json!({"model": "m", "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi [emu:usage=1000,250]"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{wire:?}");
        assert_eq!(r.headers()["x-sheepdog-provider"], "up");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], hello.as_str(), "{wire:?}: {v}");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["usage"]["prompt_tokens"], 1000, "{wire:?}: {v}");
        assert_eq!(v["usage"]["completion_tokens"], 250);
        assert_eq!(v["usage"]["total_tokens"], 1250);
        let rec = emu.requests();
        let last = rec.last().unwrap();
        match wire {
            Wire::OpenAi => {
                assert_eq!(last.body["model"], "upstream-model-1");
                assert_eq!(last.header("authorization"), Some("Bearer upstream-secret-key"));
            }
            Wire::Anthropic => {
                assert_eq!(last.body["system"], "be brief");
                assert_eq!(last.header("x-api-key"), Some("upstream-secret-key"));
            }
            Wire::Gemini => {
                assert!(last.path.contains("upstream-model-1:generateContent"), "{}", last.path);
                assert_eq!(last.header("x-goog-api-key"), Some("upstream-secret-key"));
            }
        }

        // Stream without include_usage: content, no usage chunk, [DONE].
        let r = gw
            .chat(&key)
            .json(&json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi [emu:usage=10,7]"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        let datas = sse_data(r).await;
        assert_eq!(datas.last().unwrap(), "[DONE]", "{wire:?}");
        assert_eq!(content_of(&datas), hello, "{wire:?}");
        assert!(!datas.iter().any(|d| d.contains("\"usage\":{")), "{wire:?}: usage shown unasked: {datas:?}");

        // Stream with include_usage: the usage chunk comes last before [DONE].
        let r = gw
            .chat(&key)
            .json(&json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
                          "messages": [{"role": "user", "content": "hi [emu:usage=10,7]"}]}))
            .send()
            .await
            .unwrap();
        let datas = sse_data(r).await;
        let usage: Value = serde_json::from_str(&datas[datas.len() - 2]).unwrap();
        assert_eq!(usage["usage"]["prompt_tokens"], 10, "{wire:?}: {datas:?}");
        assert_eq!(usage["usage"]["completion_tokens"], 7);
        assert_eq!(usage["choices"], json!([]));

        // Tool calls, non-stream and stream.
        let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "w",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
        let r = gw
            .chat(&key)
            .json(&json!({"model": "m", "tools": tools, "messages": [{"role": "user", "content": "weather? [emu:tool]"}]}))
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        let call = &v["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "get_weather", "{wire:?}: {v}");
        let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"city": "Paris"}));
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        let r = gw
            .chat(&key)
            .json(&json!({"model": "m", "stream": true, "tools": tools, "messages": [{"role": "user", "content": "weather? [emu:tool]"}]}))
            .send()
            .await
            .unwrap();
        let datas = sse_data(r).await;
        let mut name = String::new();
        let mut arguments = String::new();
        for d in datas.iter().filter(|d| d.as_str() != "[DONE]") {
            let v: Value = serde_json::from_str(d).unwrap();
            if let Some(tc) = v["choices"][0]["delta"]["tool_calls"].get(0) {
                name.push_str(tc["function"]["name"].as_str().unwrap_or(""));
                arguments.push_str(tc["function"]["arguments"].as_str().unwrap_or(""));
            }
        }
        assert_eq!(name, "get_weather", "{wire:?}: {datas:?}");
        assert_eq!(serde_json::from_str::<Value>(&arguments).unwrap(), json!({"city": "Paris"}));

        // Upstream errors: 4xx is the client's (400), 5xx and 429 are ours (502).
        for (marker, status, code) in [
            ("[emu:error=400]", StatusCode::BAD_REQUEST, "invalid_request_error"),
            ("[emu:error=500]", StatusCode::BAD_GATEWAY, "upstream_error"),
            ("[emu:error=503]", StatusCode::BAD_GATEWAY, "upstream_error"),
            ("[emu:error=429]", StatusCode::BAD_GATEWAY, "upstream_error"),
        ] {
            for stream in [false, true] {
                let r = gw
                    .chat(&key)
                    .json(&json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": marker}]}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), status, "{wire:?} {marker} stream={stream}");
                let v: Value = r.json().await.unwrap();
                assert_eq!(v["error"]["code"], code);
                let msg = v["error"]["message"].as_str().unwrap();
                assert!(msg.contains("emulated error"), "{wire:?}: upstream message kept: {msg}");
                assert!(!msg.contains("upstream-secret-key"));
            }
        }

        // A stream that breaks mid-way ends with an error event, never [DONE].
        for marker in ["[emu:break]", "[emu:malformed]"] {
            let r = gw
                .chat(&key)
                .json(&json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": marker}]}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let datas = sse_data(r).await;
            assert_ne!(datas.last().map(String::as_str), Some("[DONE]"), "{wire:?} {marker}: {datas:?}");
            let last: Value = serde_json::from_str(datas.last().unwrap()).unwrap();
            assert_eq!(last["error"]["code"], "upstream_error", "{wire:?} {marker}: {datas:?}");
        }

        // Upstream timeout → 504.
        let r = gw
            .chat(&key)
            .json(&json!({"model": "m", "messages": [{"role": "user", "content": "[emu:stall_ms=3000]"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT, "{wire:?}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "upstream_timeout");

        // Exactly the first request's usage is billed at 2/8 USD per 1M tokens.
        let (_, usage) =
            gw.admin(Method::GET, &format!("/admin/v1/usage?group_by=cost_center&tenant_id={tenant}"), None).await;
        let search = usage["data"].as_array().unwrap().iter().find(|r| r["key"] == "search").unwrap();
        assert_eq!(search["requests"], 1);
        assert_eq!(search["cost_nanos"], 1000 * 2000 + 250 * 8000, "{wire:?}: {usage}");
        assert_eq!(search["cost_usd"], "0.004000000");
        gw.stop().await;
    }
}

#[tokio::test]
async fn gemini_safety_block_is_a_clear_error() {
    let emu = Emulator::start(Wire::Gemini).await.unwrap();
    let gw = gateway_for(&emu, Wire::Gemini).await;
    let (_, key) = gw.tenant_with_key("t").await;
    let r = gw.chat(&key).json(&chat_body("m", "something [emu:safety]")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().to_lowercase().contains("safety"), "{v}");
    gw.stop().await;
}
