//! `POST /v1/messages` (Anthropic Messages) and `POST /v1/responses` (OpenAI
//! Responses) on the one request path: the
//! request translated at the edge, the answer and its event stream
//! translated back, errors in Anthropic's shape, usage billed once.

use reqwest::StatusCode;
use serde_json::{json, Value};
use sheepdog_emulators::{Emulator, Wire};
use sheepdog_testkit::*;

#[allow(clippy::unwrap_used)]
async fn gateway_on(wire: Wire) -> (TestGateway, Emulator) {
    let emu = Emulator::start(wire).await.unwrap();
    let provider = emulated_provider(&emu, wire);
    let gw = TestGateway::start_with(Db::Sqlite, move |c| {
        c.providers.insert("up".into(), provider);
        c.models.insert("claude-test".into(), model("up", "upstream-model-1", "2", "8"));
    })
    .await;
    (gw, emu)
}

fn post(gw: &TestGateway, path: &str, key: &str, body: &Value) -> reqwest::RequestBuilder {
    gw.client
        .post(format!("{}{path}", gw.url))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(body)
}

#[tokio::test]
#[allow(clippy::unwrap_used)]
async fn messages_answer_in_anthropics_shape_on_every_upstream_kind() {
    for wire in [Wire::OpenAi, Wire::Anthropic, Wire::Gemini] {
        let (gw, _emu) = gateway_on(wire).await;
        let (t, k) = gw.tenant_with_key("m").await;
        let body = json!({"model": "claude-test", "max_tokens": 100, "system": "Be brief.",
            "messages": [{"role": "user", "content": "Hello, world"}]});
        let r = post(&gw, "/v1/messages", &k, &body).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{wire:?}");
        let m: Value = r.json().await.unwrap();
        assert_eq!((m["type"].as_str(), m["role"].as_str()), (Some("message"), Some("assistant")), "{m}");
        assert!(m["id"].as_str().unwrap().starts_with("msg_"));
        assert_eq!(m["content"][0]["type"], "text");
        assert!(m["content"][0]["text"].as_str().unwrap().contains("emulator"), "{m}");
        assert_eq!(m["stop_reason"], "end_turn");
        let (input, output) =
            (m["usage"]["input_tokens"].as_u64().unwrap(), m["usage"]["output_tokens"].as_u64().unwrap());
        assert!(input > 0 && output > 0, "{m}");
        // Billed once, for what the upstream reported.
        gw.state.accountant().flush().await;
        let records = gw.state.store().usage_records(&t).await.unwrap();
        assert_eq!(records.len(), 1, "{wire:?}");
        assert_eq!((records[0].output_tokens as u64, records[0].cost_nanos > 0), (output, true));
        gw.stop().await;
    }
}

#[tokio::test]
#[allow(clippy::unwrap_used)]
async fn tools_and_the_event_stream() {
    let (gw, _emu) = gateway_on(Wire::OpenAi).await;
    let (_, k) = gw.tenant_with_key("m").await;
    let tools = json!([{"name": "get_weather", "description": "Weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    let body = json!({"model": "claude-test", "max_tokens": 100, "tools": tools,
        "messages": [{"role": "user", "content": "Weather in Paris? [emu:tool]"}]});
    let m: Value = post(&gw, "/v1/messages", &k, &body).send().await.unwrap().json().await.unwrap();
    assert_eq!(m["stop_reason"], "tool_use", "{m}");
    let call = m["content"].as_array().unwrap().iter().find(|b| b["type"] == "tool_use").unwrap().clone();
    assert_eq!((call["name"].as_str(), call["input"].clone()), (Some("get_weather"), json!({"city": "Paris"})));

    let body = json!({"model": "claude-test", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": "Hello"}]});
    let r = post(&gw, "/v1/messages", &k, &body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let text = r.text().await.unwrap();
    let names: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(names[..3], ["message_start", "ping", "content_block_start"], "{text}");
    assert_eq!(names[names.len() - 3..], ["content_block_stop", "message_delta", "message_stop"], "{text}");
    assert!(names[3..names.len() - 3].iter().all(|n| *n == "content_block_delta"), "{text}");
    let data: Vec<Value> =
        text.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect();
    let streamed: String = data.iter().filter_map(|d| d.pointer("/delta/text").and_then(Value::as_str)).collect();
    assert!(streamed.contains("emulator"), "{streamed}");
    let delta = data.iter().find(|d| d["type"] == "message_delta").unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert!(delta["usage"]["output_tokens"].as_u64().unwrap() > 0, "{delta}");
    gw.stop().await;
}

#[tokio::test]
#[allow(clippy::unwrap_used)]
async fn errors_in_anthropics_shape_and_count_tokens() {
    let (gw, _emu) = gateway_on(Wire::OpenAi).await;
    let (_, k) = gw
        .tenant_and_key(json!({"name": "m", "tier": "shared",
        "limits": {"requests_per_minute": 2, "tokens_per_minute": 1000000}}))
        .await;
    let ok = json!({"model": "claude-test", "max_tokens": 10, "messages": [{"role": "user", "content": "Hi"}]});
    let error = |r: Value| (r["type"].clone(), r["error"]["type"].clone());
    let r = post(&gw, "/v1/messages", "sk-wrong", &ok).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error(r.json().await.unwrap()), (json!("error"), json!("authentication_error")));
    let r = post(&gw, "/v1/messages", &k, &json!({"model": "claude-test", "messages": []})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(error(v.clone()), (json!("error"), json!("invalid_request_error")));
    assert!(v["error"]["message"].as_str().unwrap().contains("max_tokens"), "{v}");
    // count_tokens counts and bills nothing, takes no request of the minute.
    let count = json!({"model": "claude-test", "messages": [{"role": "user", "content": "Hello there"}]});
    let r = post(&gw, "/v1/messages/count_tokens", &k, &count).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let counted: Value = r.json().await.unwrap();
    assert!(counted["input_tokens"].as_u64().unwrap() > 0, "{counted}");
    let r = post(&gw, "/v1/messages/count_tokens", "sk-wrong", &count).send().await.unwrap();
    assert_eq!(error(r.json().await.unwrap()), (json!("error"), json!("authentication_error")));
    // An unknown model (refused after the cheap limits, which it gives back).
    let r = post(
        &gw,
        "/v1/messages",
        &k,
        &json!({"model": "nope", "max_tokens": 1,
        "messages": [{"role": "user", "content": "x"}]}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error(r.json().await.unwrap()), (json!("error"), json!("not_found_error")));
    // Bearer works too; the next request of the minute is refused.
    for _ in 0..2 {
        let r = gw.client.post(format!("{}/v1/messages", gw.url)).bearer_auth(&k).json(&ok).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = post(&gw, "/v1/messages", &k, &ok).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(error(r.json().await.unwrap()), (json!("error"), json!("rate_limit_error")));
    gw.stop().await;
}

/// A client that leaves a Messages stream is billed for what it was sent,
/// as on Chat Completions.
#[tokio::test]
#[allow(clippy::unwrap_used)]
async fn a_cut_messages_stream_is_billed() {
    let gw = TestGateway::start_with(Db::Sqlite, |c| {
        let mut slow = simulated_provider();
        slow.chunk_interval_ms = 50;
        c.providers.insert("slow".into(), slow);
        c.models.insert("slow".into(), model("slow", "slow", "2", "8"));
    })
    .await;
    let (t, k) = gw.tenant_with_key("t").await;
    let body = json!({"model": "slow", "max_tokens": 500, "stream": true,
        "messages": [{"role": "user", "content": "long [sim:tokens=200]"}]});
    let mut r = post(&gw, "/v1/messages", &k, &body).header("X-Request-ID", "cut-me").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Leave once some text has arrived.
    let mut seen = String::new();
    while !seen.contains("text_delta") {
        seen.push_str(&String::from_utf8_lossy(&r.chunk().await.unwrap().unwrap()));
    }
    drop(r);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let cut = loop {
        gw.state.accountant().flush().await;
        let records = gw.state.store().usage_records(&t).await.unwrap();
        if let Some(c) = records.into_iter().find(|r| r.request_id == "cut-me") {
            break c;
        }
        assert!(std::time::Instant::now() < deadline, "no record for the cut stream");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!((cut.outcome.as_str(), cut.status_code), ("client_cancelled", 499));
    assert!(cut.input_tokens > 0 && cut.output_tokens > 0 && cut.cost_nanos > 0, "{cut:?}");
    assert!(cut.output_tokens < 200, "billed for what was sent, not the whole answer: {cut:?}");
    gw.stop().await;
}

/// `POST /v1/responses` on the same path, on every upstream kind.
#[tokio::test]
#[allow(clippy::unwrap_used)]
async fn responses_on_every_upstream_kind() {
    for wire in [Wire::OpenAi, Wire::Anthropic, Wire::Gemini] {
        let (gw, _emu) = gateway_on(wire).await;
        let (t, k) = gw.tenant_with_key("r").await;
        let url = format!("{}/v1/responses", gw.url);
        let r = gw
            .client
            .post(&url)
            .bearer_auth(&k)
            .json(&json!({"model": "claude-test", "instructions": "Be brief.", "input": "Hello"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{wire:?}");
        let v: Value = r.json().await.unwrap();
        assert_eq!((v["object"].as_str(), v["status"].as_str()), (Some("response"), Some("completed")), "{v}");
        assert!(v["output"][0]["content"][0]["text"].as_str().unwrap().contains("emulator"), "{v}");
        let stream = gw
            .client
            .post(&url)
            .bearer_auth(&k)
            .json(&json!({"model": "claude-test", "input": "Hello", "stream": true}))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let kinds: Vec<&str> = stream.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
        assert_eq!(kinds.first(), Some(&"response.created"), "{stream}");
        assert_eq!(kinds.last(), Some(&"response.completed"), "{stream}");
        gw.state.accountant().flush().await;
        assert_eq!(gw.state.store().usage_records(&t).await.unwrap().len(), 2, "{wire:?}: one record per request");
        // Errors keep the Chat Completions shape.
        let r = gw
            .client
            .post(&url)
            .bearer_auth("sk-wrong")
            .json(&json!({"model": "claude-test", "input": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "invalid_api_key");
        gw.stop().await;
    }
}

/// A canary rollout applies to every format: Messages and Responses
/// requests go to the rollout's side and count in its report.
#[tokio::test]
#[allow(clippy::unwrap_used)]
async fn rollouts_route_every_format() {
    let old = Emulator::start(Wire::OpenAi).await.unwrap();
    let new = Emulator::start(Wire::Anthropic).await.unwrap();
    let (po, pn) = (emulated_provider(&old, Wire::OpenAi), emulated_provider(&new, Wire::Anthropic));
    let gw = TestGateway::start_with(Db::Sqlite, move |c| {
        c.providers.insert("old".into(), po);
        c.providers.insert("new".into(), pn);
        c.models.insert("m".into(), model("old", "gpt-old", "2", "8"));
    })
    .await;
    let (_, k) = gw.tenant_with_key("t").await;
    let (s, ro) = gw
        .admin(
            reqwest::Method::POST,
            "/admin/v1/rollouts",
            Some(json!({"model": "m", "phase": "canary", "to": {"provider": "new", "upstream_model": "claude-new"},
                "plan": {"initial_percent": 100, "manual": true},
                "guard": {"max_p99_ratio": 100, "max_error_rate_percent": 100}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ro}");
    let messages = json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let r = post(&gw, "/v1/messages", &k, &messages).send().await.unwrap();
    assert_eq!(r.headers()["x-sheepdog-provider"], "new");
    assert_eq!(r.json::<Value>().await.unwrap()["type"], "message");
    let r = gw
        .client
        .post(format!("{}/v1/responses", gw.url))
        .bearer_auth(&k)
        .json(&json!({"model": "m", "input": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-sheepdog-provider"], "new");
    assert_eq!(r.json::<Value>().await.unwrap()["object"], "response");
    assert_eq!(new.request_count(), 2);
    assert_eq!(old.request_count(), 0);
    let (_, rep) =
        gw.admin(reqwest::Method::GET, &format!("/admin/v1/rollouts/{}", ro["id"].as_str().unwrap()), None).await;
    assert_eq!(rep["to_stats"]["total_requests"], 2, "{rep}");
    gw.stop().await;
}

/// Anthropic upstreams get a Messages request as the client sent it (its
/// members and its `anthropic-version` / `anthropic-beta`, only `model`
/// rewritten) and the client gets the upstream's answer and events as they
/// came; usage is still read, billed once and recorded as `messages`.
#[tokio::test]
#[allow(clippy::unwrap_used)]
async fn anthropic_upstreams_get_messages_passed_through() {
    let (gw, emu) = gateway_on(Wire::Anthropic).await;
    let (t, k) = gw.tenant_with_key("native").await;
    let body = json!({"model": "claude-test", "max_tokens": 100, "top_k": 5,
        "metadata": {"user_id": "user-7"}, "system": [{"type": "text", "text": "Be brief.",
        "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "Hello there [emu:usage=40,6]"}]});
    let r = post(&gw, "/v1/messages", &k, &body)
        .header("anthropic-beta", "prompt-caching-2024-07-31")
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let m: Value = r.json().await.unwrap();
    let sent = emu.requests().into_iter().last().unwrap();
    assert_eq!(sent.header("anthropic-beta"), Some("prompt-caching-2024-07-31"));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    let mut expected = body.clone();
    expected["model"] = json!("upstream-model-1");
    assert_eq!(sent.body, expected, "the client's own request, only `model` rewritten");
    // The emulator's own answer: its id and model, not a rebuilt message.
    assert_eq!(m["model"], "upstream-model-1", "{m}");
    assert!(m["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!((m["usage"]["input_tokens"].as_u64(), m["usage"]["output_tokens"].as_u64()), (Some(40), Some(6)));

    // Streamed: the upstream's events, in its order, as they came.
    let stream_body = json!({"model": "claude-test", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": "Hello [emu:usage=30,5]"}]});
    let text = post(&gw, "/v1/messages", &k, &stream_body).send().await.unwrap().text().await.unwrap();
    let direct = gw
        .client
        .post(format!("{}/messages", emu.base_url()))
        .header("x-api-key", "k")
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "upstream-model-1", "max_tokens": 100, "stream": true,
            "messages": [{"role": "user", "content": "Hello [emu:usage=30,5]"}]}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let names = |t: &str| t.lines().filter_map(|l| l.strip_prefix("event: ")).map(str::to_string).collect::<Vec<_>>();
    assert_eq!(names(&text), names(&direct), "{text}");
    assert!(!text.contains("[DONE]"));
    gw.state.accountant().flush().await;
    let records = gw.state.store().usage_records(&t).await.unwrap();
    let billed: Vec<(i64, i64, &str)> =
        records.iter().map(|r| (r.input_tokens, r.output_tokens, r.ingress.as_str())).collect();
    assert_eq!(billed, vec![(40, 6, "messages"), (30, 5, "messages")]);
    // An upstream error mid-way keeps Anthropic's shape.
    let failing = json!({"model": "claude-test", "max_tokens": 10,
        "messages": [{"role": "user", "content": "x [emu:error=400]"}]});
    let r = post(&gw, "/v1/messages", &k, &failing).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["type"].as_str(), v["error"]["type"].as_str()), (Some("error"), Some("invalid_request_error")));
    gw.stop().await;
}
