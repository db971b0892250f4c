//! Resilience against fault-injecting upstreams: retries (Retry-After
//! honoured), fallbacks, circuit breakers, and every fault ends in a correct
//! answer or a clean OpenAI-shaped error — never a hang, never a truncated
//! stream presented as complete — with exact accounting.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sheepdog_emulators::{Emulator, Script, Wire};

use sheepdog_testkit::*;

/// Primary `m` on emulator `a`, falling back to `m2` on emulator `b`.
async fn two_upstreams(
    a: &Emulator,
    b: &Emulator,
    tune: impl Fn(&mut sheepdog_gateway::config::ProviderConfig),
) -> TestGateway {
    let (mut pa, mut pb) = (emulated_provider(a, Wire::OpenAi), emulated_provider(b, Wire::OpenAi));
    tune(&mut pa);
    tune(&mut pb);
    TestGateway::start_with(Db::Sqlite, move |c| {
        c.providers.insert("primary".into(), pa);
        c.providers.insert("backup".into(), pb);
        let mut m = model("primary", "up-1", "2", "8");
        m.fallbacks = vec!["m2".into()];
        c.models.insert("m".into(), m);
        c.models.insert("m2".into(), model("backup", "up-2", "0.10", "0.42"));
    })
    .await
}

fn error(status: u16) -> Script {
    Script { error: Some(status), ..Script::default() }
}

#[tokio::test]
async fn fallback_answers_and_says_which_model_did() {
    let (a, b) = (Emulator::start(Wire::OpenAi).await.unwrap(), Emulator::start(Wire::OpenAi).await.unwrap());
    let gw = two_upstreams(&a, &b, |p| p.max_retries = 1).await;
    let (t, k) = gw.tenant_with_key("t").await;
    a.set_script(Some(error(503)));
    for stream in [false, true] {
        let r = gw
            .chat(&k)
            .json(&json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": "hi [emu:usage=1000,100]"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "stream={stream}");
        assert_eq!(r.headers()["x-sheepdog-model"], "m2");
        assert_eq!(r.headers()["x-sheepdog-provider"], "backup");
        let text = r.text().await.unwrap();
        assert!(text.contains("Hello from the OpenAI emulator") || text.contains("Hello"), "{text}");
        if stream {
            assert!(text.trim_end().ends_with("data: [DONE]"));
        }
    }
    // Primary tried twice per request (one retry), backup once.
    assert_eq!(a.request_count(), 4);
    assert_eq!(b.request_count(), 2);
    // Billed at the model that answered: 1000 × 100 + 100 × 420 nano-USD each.
    gw.state.accountant().flush().await;
    let records = gw.state.store().usage_records(&t).await.unwrap();
    assert_eq!(records.len(), 2);
    for r in &records {
        assert_eq!((r.model_requested.as_str(), r.model_served.as_deref()), ("m", Some("m2")));
        assert_eq!(r.cost_nanos, 1000 * 100 + 100 * 420);
    }
    gw.stop().await;
}

#[tokio::test]
async fn retries_with_backoff_and_retry_after() {
    let (a, b) = (Emulator::start(Wire::OpenAi).await.unwrap(), Emulator::start(Wire::OpenAi).await.unwrap());
    let gw = two_upstreams(&a, &b, |p| p.max_retries = 2).await;
    let (_, k) = gw.tenant_with_key("t").await;
    // Two 500s, then fine: answered by the primary on its third try.
    a.push_script(error(500));
    a.push_script(error(500));
    let r = gw.chat(&k).json(&chat_body("m", "hi")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-sheepdog-model"], "m");
    assert_eq!((a.request_count(), b.request_count()), (3, 0));
    // A 429 with Retry-After: 1 is waited for, then retried.
    a.push_script(error(429));
    let started = Instant::now();
    let r = gw.chat(&k).json(&chat_body("m", "hi")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(950), "Retry-After honoured: {:?}", started.elapsed());
    assert_eq!(a.request_count(), 5);
    // The client's own bad request is neither retried nor sent to the fallback.
    a.push_script(error(400));
    let r = gw.chat(&k).json(&chat_body("m", "hi")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!((a.request_count(), b.request_count()), (6, 0));
    let (_, m) = (0, gw.client.get(format!("{}/metrics", gw.url)).send().await.unwrap().text().await.unwrap());
    assert!(m.contains("sheepdog_retries_total{provider=\"primary\"} 3"), "{m}");
    gw.stop().await;
}

#[tokio::test]
async fn breaker_skips_a_sick_upstream_and_probes_it_back() {
    let (a, b) = (Emulator::start(Wire::OpenAi).await.unwrap(), Emulator::start(Wire::OpenAi).await.unwrap());
    let gw = two_upstreams(&a, &b, |p| {
        p.max_retries = 0;
        p.breaker_failure_threshold = 3;
        p.breaker_open_ms = 300;
    })
    .await;
    let (_, k) = gw.tenant_with_key("t").await;
    a.set_script(Some(error(503)));
    for _ in 0..3 {
        assert_eq!(gw.chat(&k).json(&chat_body("m", "hi")).send().await.unwrap().status(), StatusCode::OK);
    }
    assert_eq!(a.request_count(), 3);
    let (_, ups) = gw.admin(Method::GET, "/admin/v1/upstreams", None).await;
    let primary = ups["data"].as_array().unwrap().iter().find(|u| u["provider"] == "primary").unwrap().clone();
    assert_eq!(primary["breaker"]["state"], "open", "{primary}");
    assert!(primary["breaker"]["last_reason"].as_str().unwrap().contains("3 consecutive failures"));
    // Open: the primary is skipped at once.
    for _ in 0..3 {
        let r = gw.chat(&k).json(&chat_body("m", "hi")).send().await.unwrap();
        assert_eq!(r.headers()["x-sheepdog-provider"], "backup");
    }
    assert_eq!(a.request_count(), 3, "no call to an open upstream");
    let metrics = gw.client.get(format!("{}/metrics", gw.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("sheepdog_breaker_state{provider=\"primary\"} 2"), "{metrics}");
    // The upstream recovers; after the open period one probe closes the breaker.
    a.set_script(None);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let r = gw.chat(&k).json(&chat_body("m", "hi")).send().await.unwrap();
    assert_eq!(r.headers()["x-sheepdog-provider"], "primary");
    let (_, ups) = gw.admin(Method::GET, "/admin/v1/upstreams", None).await;
    let primary = ups["data"].as_array().unwrap().iter().find(|u| u["provider"] == "primary").unwrap().clone();
    assert_eq!(primary["breaker"]["state"], "closed");
    gw.stop().await;
}

/// Every fault: a correct answer or a clean error within the timeouts.
#[tokio::test]
async fn faults_end_cleanly_and_never_hang() {
    let a = Emulator::start(Wire::OpenAi).await.unwrap();
    let mut p = emulated_provider_plain(&a, Wire::OpenAi);
    p.first_byte_timeout_ms = 500;
    p.stream_idle_timeout_ms = 400;
    p.total_timeout_ms = 1_500;
    let gw = TestGateway::start_with(Db::Sqlite, move |c| {
        c.providers.insert("up".into(), p);
        c.models.insert("m".into(), model("up", "up-1", "2", "8"));
    })
    .await;
    let (t, k) = gw.tenant_with_key("t").await;
    // (script, stream, expected status, expected code of the body or of the final SSE error event)
    let cases: Vec<(&str, Script, bool, StatusCode, &str)> = vec![
        ("5xx", error(502), false, StatusCode::BAD_GATEWAY, "upstream_error"),
        ("reset", Script { reset: true, ..Script::default() }, false, StatusCode::BAD_GATEWAY, "upstream_error"),
        ("reset stream", Script { reset: true, ..Script::default() }, true, StatusCode::BAD_GATEWAY, "upstream_error"),
        (
            "stall before first byte",
            Script { stall_ms: Some(2_000), ..Script::default() },
            false,
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
        ),
        (
            "stall before first byte, stream",
            Script { stall_ms: Some(2_000), ..Script::default() },
            true,
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
        ),
        (
            "stall mid-stream",
            Script { trickle_ms: Some(700), ..Script::default() },
            true,
            StatusCode::OK,
            "upstream_timeout",
        ),
        (
            "slow trickle past the total timeout",
            Script { trickle_ms: Some(300), usage: Some((5, 9)), ..Script::default() },
            true,
            StatusCode::OK,
            "upstream_timeout",
        ),
        ("malformed SSE", Script { malformed: true, ..Script::default() }, true, StatusCode::OK, "upstream_error"),
        ("broken stream", Script { break_stream: true, ..Script::default() }, true, StatusCode::OK, "upstream_error"),
    ];
    for (name, script, stream, status, code) in cases {
        a.push_script(script);
        let started = Instant::now();
        let send = gw
            .chat(&k)
            .json(&json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}))
            .send();
        let r = tokio::time::timeout(Duration::from_secs(5), send).await.expect("no hang").unwrap();
        assert_eq!(r.status(), status, "{name}");
        let text = tokio::time::timeout(Duration::from_secs(5), r.text()).await.expect("no hang").unwrap();
        assert!(started.elapsed() < Duration::from_millis(2_500), "{name}: took {:?}", started.elapsed());
        if status == StatusCode::OK {
            assert!(!text.contains("[DONE]"), "{name}: a broken stream must not look complete: {text}");
            let last = text.trim_end().rsplit("\n\n").next().unwrap().trim_start_matches("data: ");
            let v: Value = serde_json::from_str(last).unwrap();
            assert_eq!(v["error"]["code"], code, "{name}: {text}");
        } else {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["error"]["code"], code, "{name}: {text}");
        }
    }
    // One record per request; nothing billed for calls that produced nothing.
    gw.state.accountant().flush().await;
    let records = gw.state.store().usage_records(&t).await.unwrap();
    assert_eq!(records.len(), 9);
    for r in records.iter().filter(|r| r.ttft_ms.is_none()) {
        assert_eq!(r.cost_nanos, 0, "{r:?}");
    }
    gw.stop().await;
}
