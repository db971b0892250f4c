//! Accounting: exact costs per tenant and cost center, hourly metrics,
//! nothing lost on shutdown, client cuts billed — on SQLite and Postgres.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sheepdog_emulators::{Emulator, Wire};

use sheepdog_testkit::*;

/// N requests with known token counts sum to exactly the expected nano-USD.
#[tokio::test]
async fn costs_are_exact_per_tenant_and_cost_center() {
    on_both(|db| async move {
        let emu = Emulator::start(Wire::OpenAi).await.unwrap();
        let provider = emulated_provider(&emu, Wire::OpenAi);
        let gw = TestGateway::start_with(db, move |c| {
            c.providers.insert("up".into(), provider);
            // $0.10 / $0.42 per 1M tokens → 100 / 420 nano-USD per token.
            c.models.insert("cheap".into(), model("up", "deepseek-chat", "0.10", "0.42"));
            // $0.30 / $2.50 → 300 / 2500.
            c.models.insert("flash".into(), model("up", "flash", "0.30", "2.50"));
        })
        .await;
        let (ta, ka) = gw.tenant_with_key("a").await;
        let (tb, kb) = gw.tenant_with_key("b").await;
        let mut expected: std::collections::HashMap<(String, String), (i64, i64)> = Default::default();
        let centers = ["search", "chat", "batch"];
        let mut handles = Vec::new();
        for i in 0..60u64 {
            let (tenant, key) = if i % 3 == 0 { (tb.clone(), kb.clone()) } else { (ta.clone(), ka.clone()) };
            let center = centers[(i % 3) as usize].to_string();
            let (model, pin, pout) = if i % 2 == 0 { ("cheap", 100, 420) } else { ("flash", 300, 2500) };
            let (input, output) = (17 + i * 13, 3 + i * 7);
            let e = expected.entry((tenant.clone(), center.clone())).or_default();
            e.0 += 1;
            e.1 += (input as i64) * pin + (output as i64) * pout;
            let stream = i % 4 == 1;
            let req = gw
                .chat(&key)
                .header("X-Cost-Center", center.clone())
                .json(&json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": format!("n{i} [emu:usage={input},{output}]")}]}));
            handles.push(tokio::spawn(async move {
                let r = req.send().await.unwrap();
                assert_eq!(r.status(), StatusCode::OK);
                r.bytes().await.unwrap();
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        for tenant in [&ta, &tb] {
            let (s, usage) = gw.admin(Method::GET, &format!("/admin/v1/usage?group_by=cost_center&tenant_id={tenant}"), None).await;
            assert_eq!(s, StatusCode::OK);
            let mut total = 0;
            for row in usage["data"].as_array().unwrap() {
                let want = expected[&(tenant.to_string(), row["key"].as_str().unwrap().to_string())];
                assert_eq!(row["requests"].as_i64().unwrap(), want.0, "{db:?}");
                assert_eq!(row["cost_nanos"].as_i64().unwrap(), want.1, "{db:?} {row}");
                total += want.1;
            }
            let (_, by_tenant) = gw.admin(Method::GET, "/admin/v1/usage?group_by=tenant", None).await;
            let row = by_tenant["data"].as_array().unwrap().iter().find(|r| r["key"] == tenant.as_str()).unwrap().clone();
            assert_eq!(row["cost_nanos"].as_i64().unwrap(), total);
            assert_eq!(row["cost_usd"].as_str().unwrap(), sheepdog_types::format_usd(total));
        }
        // Records carry what billing needs.
        let records = gw.state.store().usage_records(&ta).await.unwrap();
        assert_eq!(records.len(), 40);
        assert!(records.iter().all(|r| r.outcome == "ok" && r.provider.as_deref() == Some("up") && r.key_id.is_some()));
        assert!(records.iter().filter(|r| r.stream).all(|r| r.ttft_ms.is_some()));

        // The hourly metrics agree with the records.
        let (s, m) = gw.admin(Method::GET, &format!("/admin/v1/tenants/{ta}/metrics?period=24h&granularity=1h"), None).await;
        assert_eq!(s, StatusCode::OK);
        let buckets = m["buckets"].as_array().unwrap();
        assert_eq!(buckets.len(), 24);
        let last = buckets.last().unwrap();
        assert_eq!(last["request_count"], 40);
        assert_eq!(last["error_count"], 0);
        let cost: i64 = records.iter().map(|r| r.cost_nanos).sum();
        assert_eq!(last["cost_usd"], sheepdog_types::format_usd(cost));
        assert_eq!(last["input_tokens"].as_i64().unwrap(), records.iter().map(|r| r.input_tokens).sum::<i64>());
        assert!(last["p99_latency_ms"].as_f64().unwrap() >= last["avg_latency_ms"].as_f64().unwrap() * 0.9);
        gw.stop().await;
    })
    .await;
}

/// Upstream errors are recorded (not billed), and counted as errors.
#[tokio::test]
async fn errors_are_recorded_and_counted() {
    let gw = TestGateway::start(Db::Sqlite).await;
    let (t, k) = gw.tenant_with_key("t").await;
    let r = gw.chat(&k).json(&chat_body("gpt-4.1", "boom [sim:error=500]")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let r = gw.chat(&k).json(&chat_body("gpt-4.1", "fine")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (_, m) = gw.admin(Method::GET, &format!("/admin/v1/tenants/{t}/metrics"), None).await;
    let last = m["buckets"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["request_count"].as_i64(), last["error_count"].as_i64()), (Some(2), Some(1)));
    let records = gw.state.store().usage_records(&t).await.unwrap();
    let failed = records.iter().find(|r| r.outcome == "upstream_error").unwrap();
    assert_eq!((failed.status_code, failed.cost_nanos), (502, 0));
    gw.stop().await;
}

/// Graceful shutdown writes everything queued; a client cut mid-stream is billed.
#[tokio::test]
async fn nothing_is_lost_on_shutdown_and_cuts_are_billed() {
    on_both(|db| async move {
        let mut gw = TestGateway::start_with(db, |c| {
            // A long flush interval: records sit in memory until shutdown.
            c.accounting.flush_interval_ms = 60_000;
            c.accounting.batch_size = 100_000;
            let mut slow = simulated_provider();
            slow.chunk_interval_ms = 50;
            c.providers.insert("slow".into(), slow);
            c.providers.insert("simulated".into(), simulated_provider());
            c.models.insert("gpt-4.1".into(), model("simulated", "gpt-4.1", "2", "8"));
            c.models.insert("slow".into(), model("slow", "slow", "2", "8"));
        })
        .await;
        let (t, k) = gw.tenant_with_key("t").await;
        for i in 0..25 {
            let r = gw.chat(&k).json(&chat_body("gpt-4.1", &format!("n{i} [sim:tokens=5]"))).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
        }
        // A stream the client abandons after the first chunks.
        let mut r = gw
            .chat(&k)
            .header("X-Request-ID", "cut-me")
            .json(&json!({"model": "slow", "stream": true, "messages": [{"role": "user", "content": "long [sim:tokens=200]"}]}))
            .send()
            .await
            .unwrap();
        let _ = r.chunk().await.unwrap();
        let _ = r.chunk().await.unwrap();
        drop(r);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let url = gw.shutdown().await;
        let store = sheepdog_gateway::store::Store::connect_url(&url, 1).await.unwrap();
        let records = store.usage_records(&t).await.unwrap();
        store.close().await;
        assert_eq!(records.len(), 26, "{db:?}");
        assert_eq!(records.iter().filter(|r| r.outcome == "ok").map(|r| r.output_tokens).sum::<i64>(), 125);
        let cut = records.iter().find(|r| r.request_id == "cut-me").unwrap();
        assert_eq!(cut.outcome, "client_cancelled");
        assert_eq!(cut.status_code, 499);
        assert!(cut.input_tokens > 0 && cut.cost_nanos > 0, "{cut:?}");
        gw.stop().await;
    })
    .await;
}

/// Graceful shutdown lets requests in flight finish (a completion and a
/// stream, both still waiting on the upstream when it starts), bills them,
/// and takes no new connection.
#[tokio::test]
async fn in_flight_requests_finish_on_graceful_shutdown() {
    let mut gw = TestGateway::start_with(Db::Sqlite, |c| {
        let mut slow = simulated_provider();
        slow.latency_ms = 600;
        slow.ttft_ms = 300;
        slow.chunk_interval_ms = 30;
        c.providers.insert("slow".into(), slow);
        c.models.insert("slow".into(), model("slow", "slow", "2", "8"));
    })
    .await;
    let (t, k) = gw.tenant_with_key("t").await;
    let complete = gw.chat(&k).json(&chat_body("slow", "wait [sim:tokens=5]")).send();
    let stream = gw
        .chat(&k)
        .json(
            &json!({"model": "slow", "stream": true, "messages": [{"role": "user", "content": "wait [sim:tokens=8]"}]}),
        )
        .send();
    let (complete, stream) = (tokio::spawn(complete), tokio::spawn(stream));
    // Both requests are with the upstream when the shutdown starts.
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let url = gw.url.clone();
    let stopping = tokio::spawn(async move {
        let db_url = gw.shutdown().await;
        (gw, db_url)
    });
    let complete = complete.await.unwrap().unwrap();
    assert_eq!(complete.status(), StatusCode::OK);
    let body: Value = complete.json().await.unwrap();
    assert_eq!(body["usage"]["completion_tokens"], 5, "{body}");
    let stream = stream.await.unwrap().unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let text = stream.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let (gw, db_url) = stopping.await.unwrap();
    // Stopped: the port takes no connection any more.
    let refused = reqwest::Client::new().get(format!("{url}/healthz")).send().await;
    assert!(refused.is_err(), "a new connection after shutdown: {refused:?}");
    let store = sheepdog_gateway::store::Store::connect_url(&db_url, 1).await.unwrap();
    let records = store.usage_records(&t).await.unwrap();
    store.close().await;
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(records.iter().all(|r| r.outcome == "ok" && r.cost_nanos > 0), "{records:?}");
    gw.stop().await;
}

/// `/metrics` is Prometheus text and reflects traffic.
#[tokio::test]
async fn prometheus_metrics() {
    let gw = TestGateway::start(Db::Sqlite).await;
    let (_, k) = gw.tenant_with_key("t").await;
    gw.chat(&k).json(&chat_body("gpt-4.1", "x")).send().await.unwrap().bytes().await.unwrap();
    gw.chat("sk-sd-nope").json(&chat_body("gpt-4.1", "x")).send().await.unwrap();
    let r = gw.client.get(format!("{}/metrics", gw.url)).send().await.unwrap();
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = r.text().await.unwrap();
    assert!(
        text.contains("sheepdog_requests_total{model=\"gpt-4.1\",provider=\"simulated\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(text.contains("sheepdog_rejected_requests_total{code=\"invalid_api_key\"} 1"));
    let health: Value = gw.client.get(format!("{}/healthz", gw.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    let ready = gw.client.get(format!("{}/readyz", gw.url)).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    gw.stop().await;
}
