//! `POST /v1/embeddings` on the one request path: OpenAI-kind upstreams
//! passed through, Gemini through `batchEmbedContents` (in batches of 100,
//! order kept), the simulator; billed on input tokens with the ingress
//! recorded; a model serves only its mode; limits and rollouts apply.

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sheepdog_emulators::{Emulator, Wire};
use sheepdog_gateway::config::{ModelConfig, ModelMode, PriceValue, ProviderConfig, ProviderKind};
use sheepdog_testkit::*;

/// `embed` (an embedding model at $0.02 / 1M input tokens) and `chat` on
/// one provider.
fn embedding_model(provider: &str, upstream: &str) -> ModelConfig {
    ModelConfig {
        provider: provider.into(),
        upstream_model: Some(upstream.into()),
        input_per_mtok: Some(PriceValue::Text("0.02".into())),
        mode: ModelMode::Embedding,
        ..ModelConfig::default()
    }
}

#[allow(clippy::unwrap_used)]
async fn gateway(provider: ProviderConfig) -> TestGateway {
    TestGateway::start_with(Db::Sqlite, move |c| {
        c.providers.insert("up".into(), provider);
        c.models.insert("embed".into(), embedding_model("up", "text-embedding-3-small"));
        c.models.insert("chat".into(), model("up", "chat-model", "2", "8"));
    })
    .await
}

fn embed(gw: &TestGateway, key: &str, body: &Value) -> reqwest::RequestBuilder {
    gw.client.post(format!("{}/v1/embeddings", gw.url)).bearer_auth(key).json(body)
}

fn floats(e: &Value) -> Vec<f32> {
    match e {
        Value::Array(a) => a.iter().map(|f| f.as_f64().unwrap_or(f64::NAN) as f32).collect(),
        Value::String(s) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .unwrap_or_default()
            .chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        _ => Vec::new(),
    }
}

fn simulated() -> ProviderConfig {
    ProviderConfig { kind: ProviderKind::Simulated, ..ProviderConfig::default() }
}

#[tokio::test]
#[allow(clippy::unwrap_used)]
async fn embeddings_on_every_upstream_kind_billed_on_input() {
    for wire in [Some(Wire::OpenAi), Some(Wire::Gemini), None] {
        let emu = match wire {
            Some(w) => Some(Emulator::start(w).await.unwrap()),
            None => None,
        };
        let provider = match (&emu, wire) {
            (Some(e), Some(w)) => emulated_provider(e, w),
            _ => simulated(),
        };
        let gw = gateway(provider).await;
        let (t, k) = gw.tenant_with_key("e").await;
        for format in ["float", "base64"] {
            let body = json!({"model": "embed", "input": ["The food was delicious", "and the waiter kind"],
                "dimensions": 8, "encoding_format": format});
            let r = embed(&gw, &k, &body).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{wire:?}");
            assert_eq!(r.headers()["x-sheepdog-model"], "embed");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["object"], "list", "{wire:?} {v}");
            let data = v["data"].as_array().unwrap();
            assert_eq!(data.len(), 2);
            for (i, d) in data.iter().enumerate() {
                assert_eq!((d["object"].as_str(), d["index"].as_u64()), (Some("embedding"), Some(i as u64)));
                assert_eq!(d["embedding"].is_string(), format == "base64", "{wire:?}");
                let f = floats(&d["embedding"]);
                assert_eq!(f.len(), 8, "{wire:?} {format}");
                let norm: f32 = f.iter().map(|x| x * x).sum();
                assert!((norm - 1.0).abs() < 1e-3, "{wire:?}: a unit vector, {norm}");
            }
            assert_eq!(floats(&data[0]["embedding"]).len(), 8);
            assert_ne!(floats(&data[0]["embedding"]), floats(&data[1]["embedding"]));
            assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
        }
        // One record per request: input tokens only, at the input price, the ingress named.
        gw.state.accountant().flush().await;
        let records = gw.state.store().usage_records(&t).await.unwrap();
        assert_eq!(records.len(), 2, "{wire:?}");
        for r in &records {
            assert_eq!((r.ingress.as_str(), r.output_tokens, r.stream), ("embeddings", 0, false), "{wire:?}");
            assert!(r.input_tokens > 0);
            assert_eq!(r.cost_nanos, r.input_tokens * 20, "{wire:?}: 0.02 USD / 1M = 20 nano-USD a token");
        }
        if let (Some(e), Some(Wire::OpenAi)) = (&emu, wire) {
            // Passed through: the client's members, `model` rewritten.
            let sent = e.requests().into_iter().find(|r| r.path == "/v1/embeddings").unwrap();
            assert_eq!(sent.body["model"], "text-embedding-3-small");
            assert_eq!(
                (sent.body["dimensions"].as_u64(), sent.body["input"][1].as_str()),
                (Some(8), Some("and the waiter kind"))
            );
            // The emulator's own count (words + 5 per input) is what is billed.
            assert_eq!(records[0].input_tokens, 4 + 5 + 4 + 5);
        }
        if let (Some(e), Some(Wire::Gemini)) = (&emu, wire) {
            let sent = e.requests().into_iter().find(|r| r.path.ends_with(":batchEmbedContents")).unwrap();
            assert!(sent.path.ends_with("/models/text-embedding-3-small:batchEmbedContents"), "{}", sent.path);
            assert_eq!(sent.body["requests"][0]["outputDimensionality"], 8);
            assert_eq!(sent.body["requests"][1]["content"]["parts"][0]["text"], "and the waiter kind");
        }
        gw.stop().await;
    }
}

/// More than 100 inputs go to Gemini in several calls; the answer keeps
/// the inputs' order.
#[tokio::test]
#[allow(clippy::unwrap_used)]
async fn gemini_batches_keep_the_order() {
    let emu = Emulator::start(Wire::Gemini).await.unwrap();
    let gw = gateway(emulated_provider(&emu, Wire::Gemini)).await;
    let (_, k) = gw.tenant_with_key("e").await;
    let inputs: Vec<String> = (0..150).map(|i| format!("text number {i}")).collect();
    let r = embed(&gw, &k, &json!({"model": "embed", "input": inputs, "dimensions": 4})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let all: Value = r.json().await.unwrap();
    assert_eq!(all["data"].as_array().unwrap().len(), 150);
    let batches: Vec<usize> = emu
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(":batchEmbedContents"))
        .map(|r| r.body["requests"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(batches, vec![100, 50]);
    for i in [0usize, 99, 100, 149] {
        let one: Value = embed(&gw, &k, &json!({"model": "embed", "input": inputs[i], "dimensions": 4}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(all["data"][i]["embedding"], one["data"][0]["embedding"], "input {i}");
        assert_eq!(all["data"][i]["index"], i);
    }
    // Gemini embeds text only: token arrays are the client's error, not a fallback.
    let r = embed(&gw, &k, &json!({"model": "embed", "input": [[1, 2, 3]]})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("token arrays"), "{v}");
    gw.stop().await;
}

#[tokio::test]
#[allow(clippy::unwrap_used)]
async fn modes_bad_input_and_limits() {
    let gw = gateway(simulated()).await;
    let (t, k) = gw
        .tenant_and_key(json!({"name": "e", "tier": "shared",
            "limits": {"requests_per_minute": 3, "tokens_per_minute": 1000000}}))
        .await;
    // `GET /v1/models` says which endpoint serves each model.
    let models: Value =
        gw.client.get(format!("{}/v1/models", gw.url)).bearer_auth(&k).send().await.unwrap().json().await.unwrap();
    let mode = |id: &str| {
        models["data"].as_array().unwrap().iter().find(|m| m["id"] == id).map(|m| m["mode"].clone()).unwrap()
    };
    assert_eq!((mode("embed"), mode("chat")), (json!("embedding"), json!("chat")));
    // A chat model does not embed, an embedding model does not chat.
    let r = embed(&gw, &k, &json!({"model": "chat", "input": "x"})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["error"]["code"].as_str(), v["error"]["param"].as_str()),
        (Some("invalid_request_error"), Some("model"))
    );
    let r = gw.chat(&k).json(&chat_body("embed", "hi")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("/v1/embeddings"), "{v}");
    // Bad input: a clear 400 naming the parameter.
    for (body, param) in [
        (json!({"model": "embed"}), "input"),
        (json!({"model": "embed", "input": []}), "input"),
        (json!({"model": "embed", "input": "x", "encoding_format": "int8"}), "encoding_format"),
        (json!({"model": "embed", "input": "x", "dimensions": -3}), "dimensions"),
    ] {
        let r = embed(&gw, &k, &body).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["param"], param, "{v}");
    }
    let r = embed(&gw, "sk-wrong", &json!({"model": "embed", "input": "x"})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The tenant's requests/min count embeddings like any request (the
    // refusals above gave back what they took).
    for _ in 0..3 {
        assert_eq!(
            embed(&gw, &k, &json!({"model": "embed", "input": "x"})).send().await.unwrap().status(),
            StatusCode::OK
        );
    }
    let r = embed(&gw, &k, &json!({"model": "embed", "input": "x"})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["x-ratelimit-limit-requests"], "3");
    // Nothing refused was billed.
    gw.state.accountant().flush().await;
    let records = gw.state.store().usage_records(&t).await.unwrap();
    assert!(records.iter().all(|r| r.ingress == "embeddings" && r.outcome == "ok"), "{records:?}");
    gw.stop().await;
}

/// Shadow works for every client format: each request in `from`'s format
/// is mirrored to `to` and compared (embeddings by their shape).
#[tokio::test]
#[allow(clippy::unwrap_used)]
async fn shadow_mirrors_every_format() {
    let old = Emulator::start(Wire::OpenAi).await.unwrap();
    let new = Emulator::start(Wire::Gemini).await.unwrap();
    let (po, pn) = (emulated_provider_plain(&old, Wire::OpenAi), emulated_provider_plain(&new, Wire::Gemini));
    let gw = TestGateway::start_with(Db::Sqlite, move |c| {
        c.providers.insert("old".into(), po);
        c.providers.insert("new".into(), pn);
        c.models.insert("m".into(), model("old", "gpt-old", "2", "8"));
        c.models.insert("embed".into(), embedding_model("old", "text-embedding-3-small"));
    })
    .await;
    let (_, k) = gw.tenant_with_key("t").await;
    let mut ids = Vec::new();
    for model in ["m", "embed"] {
        let (s, ro) = gw
            .admin(
                Method::POST,
                "/admin/v1/rollouts",
                Some(json!({"model": model, "to": {"provider": "new", "upstream_model": "new-model",
                    "input_per_mtok": 1, "output_per_mtok": 1}})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{ro}");
        assert_eq!(ro["phase"], "shadow");
        ids.push(ro["id"].as_str().unwrap().to_string());
    }
    let post = |path: &str, body: Value| gw.client.post(format!("{}{path}", gw.url)).bearer_auth(&k).json(&body);
    let msg = json!({"model": "m", "max_tokens": 20, "messages": [{"role": "user", "content": "hello"}]});
    let resp = json!({"model": "m", "input": "hello"});
    let chat = chat_body("m", "hello");
    for (path, body) in [("/v1/messages", &msg), ("/v1/responses", &resp), ("/v1/chat/completions", &chat)] {
        let r = post(path, body.clone()).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(r.headers()["x-sheepdog-provider"], "old", "{path}: served by from");
    }
    for _ in 0..2 {
        let r = post("/v1/embeddings", json!({"model": "embed", "input": ["a b", "c d"], "dimensions": 16}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let pairs = |id: String| {
        let gw = &gw;
        async move {
            for _ in 0..100 {
                let (_, rep) = gw.admin(Method::GET, &format!("/admin/v1/rollouts/{id}"), None).await;
                if rep["shadow"]["pairs"].as_u64() >= Some(2) {
                    return rep;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            gw.admin(Method::GET, &format!("/admin/v1/rollouts/{id}"), None).await.1
        }
    };
    let chat_rep = pairs(ids[0].clone()).await;
    assert_eq!(chat_rep["shadow"]["pairs"], 3, "one pair per format: {chat_rep}");
    let embed_rep = pairs(ids[1].clone()).await;
    assert_eq!(embed_rep["shadow"]["pairs"], 2, "{embed_rep}");
    // Both sides answered two 16-dimension vectors: the same shape.
    assert_eq!(embed_rep["shadow"]["diff_rate_percent"], 0.0, "{embed_rep}");
    assert!(new.requests().iter().any(|r| r.path.ends_with("/models/new-model:batchEmbedContents")));
    gw.stop().await;
}
