//! Admission end to end: rate limits with their headers, limit changes at
//! once, concurrency limits, hard budgets under a real race, and the
//! noisy-neighbour proof (fair share of a saturated upstream, dedicated
//! capacity kept).

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use sheepdog_testkit::*;

#[allow(clippy::unwrap_used)]
fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers().get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

#[tokio::test]
async fn request_limits_headers_and_changes_at_once() {
    let gw = TestGateway::start(Db::Sqlite).await;
    let (t, k) = gw
        .tenant_and_key(json!({"name": "limited", "tier": "shared",
        "limits": {"requests_per_minute": 3, "tokens_per_minute": 100000}}))
        .await;
    let body = chat_body("deepseek-v3.2", "hi [sim:tokens=5]");
    for remaining in ["2", "1", "0"] {
        let r = gw.chat(&k).json(&body).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "x-ratelimit-limit-requests"), "3");
        assert_eq!(header(&r, "x-ratelimit-remaining-requests"), remaining);
        assert_eq!(header(&r, "x-ratelimit-limit-tokens"), "100000");
        assert!(!header(&r, "x-ratelimit-reset-requests").is_empty());
        assert!(!header(&r, "x-ratelimit-remaining-tokens").is_empty());
        assert!(!header(&r, "x-ratelimit-reset-tokens").is_empty());
    }
    let r = gw.chat(&k).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = header(&r, "retry-after").parse().unwrap();
    assert!((55..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(header(&r, "x-ratelimit-remaining-requests"), "0");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");

    // Raising the limit takes effect on the very next request.
    let (s, _) = gw
        .admin(
            Method::PUT,
            &format!("/admin/v1/tenants/{t}/limits"),
            Some(json!({"requests_per_minute": 10, "tokens_per_minute": 100000})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let r = gw.chat(&k).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "x-ratelimit-remaining-requests"), "6");
    // Lowering it too.
    gw.admin(
        Method::PUT,
        &format!("/admin/v1/tenants/{t}/limits"),
        Some(json!({"requests_per_minute": 4, "tokens_per_minute": 100000})),
    )
    .await;
    assert_eq!(gw.chat(&k).json(&body).send().await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);

    // Bad input is refused before admission but still carries the headers.
    let r = gw.chat(&k).json(&json!({"model": 1})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(header(&r, "x-ratelimit-limit-requests"), "4");

    // Both refusals are counted in the tenant's metrics.
    let (_, m) = gw.admin(Method::GET, &format!("/admin/v1/tenants/{t}/metrics"), None).await;
    let last = m["buckets"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["rate_limit_hits"], 2, "{last}");
    assert_eq!(last["request_count"], 4);
    gw.stop().await;
}

#[tokio::test]
async fn token_limits_use_a_real_tokenizer_and_settle_to_actual_usage() {
    let gw = TestGateway::start(Db::Sqlite).await;
    let (_, k) = gw
        .tenant_and_key(json!({"name": "tpm", "tier": "shared",
        "limits": {"requests_per_minute": 1000, "tokens_per_minute": 2000}}))
        .await;
    // ~1000 words ≈ 1000 prompt tokens + max_tokens 500 fits once, not twice at the same time.
    let big = json!({"model": "gpt-4.1", "max_tokens": 500,
        "messages": [{"role": "user", "content": format!("{} [sim:tokens=10]", "word ".repeat(1000))}]});
    let r = gw.chat(&k).json(&big).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let used: u64 = {
        let v: Value = r.json().await.unwrap();
        v["usage"]["total_tokens"].as_u64().unwrap()
    };
    // Settled to the actual usage: the 500 reserved completion tokens came back.
    let r = gw.chat(&k).json(&chat_body("gpt-4.1", "small")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let remaining: u64 = header(&r, "x-ratelimit-remaining-tokens").parse().unwrap();
    assert!(remaining >= 2000 - used - 40 && remaining < 2000 - used, "remaining {remaining}, used {used}");
    // A single request larger than the whole limit is refused with a clear message.
    let huge = json!({"model": "gpt-4.1", "messages": [{"role": "user", "content": "word ".repeat(3000)}]});
    let r = gw.chat(&k).json(&huge).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("more than this tenant's limit"), "{v}");
    gw.stop().await;
}

#[tokio::test]
async fn max_concurrency_per_tenant() {
    let gw = TestGateway::start_with(Db::Sqlite, |c| {
        let mut slow = simulated_provider();
        slow.latency_ms = 300;
        c.providers.insert("slow".into(), slow);
        c.models.insert("slow".into(), model("slow", "slow", "2", "8"));
    })
    .await;
    let (_, k) = gw
        .tenant_and_key(json!({"name": "c", "tier": "shared",
        "limits": {"requests_per_minute": 1000, "tokens_per_minute": 1000000, "max_concurrency": 2}}))
        .await;
    let body = chat_body("slow", "hi");
    let sends: Vec<_> = (0..3).map(|_| gw.chat(&k).json(&body).send()).collect();
    let statuses: Vec<_> = futures::future::join_all(sends).await.into_iter().map(|r| r.unwrap().status()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 2, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count(), 1);
    // Released afterwards.
    assert_eq!(gw.chat(&k).json(&body).send().await.unwrap().status(), StatusCode::OK);
    gw.stop().await;
}

/// 64 requests released together by a barrier against a hard budget that
/// fits about 10 of them: the budget is never overspent, and the settled
/// total equals the sum of the usage records.
#[tokio::test]
async fn hard_budget_is_never_overspent_under_a_race() {
    on_both(|db| async move {
        let gw = Arc::new(TestGateway::start(db).await);
        // gpt-4.1 at 2/8 USD per 1M: 100 completion tokens cost 800,000 nano-USD;
        // the worst case adds the prompt estimate with its margin (~0.1 ¢ in all).
        let (t, k) = gw
            .tenant_and_key(json!({"name": "budget", "tier": "shared",
            "budget": {"monthly_limit_usd": "0.0090", "hard": true}}))
            .await;
        let ok = budget_race(std::slice::from_ref(&gw), &k, 64).await;
        assert!((5..=10).contains(&ok), "{db:?}: {ok} requests fit");
        gw.state.accountant().flush().await;
        let records = gw.state.store().usage_records(&t).await.unwrap();
        let spent: i64 = records.iter().map(|r| r.cost_nanos).sum();
        assert_eq!(records.len(), ok, "only admitted requests are recorded");
        assert!(spent <= 9_000_000, "{db:?}: spent {spent} nano-USD of a 9,000,000 budget");
        assert_eq!(gw.state.admission().month_spend(&t), spent, "settled total = sum of usage records");
        // Reported by the usage API too.
        let (_, u) = gw.admin(Method::GET, &format!("/admin/v1/usage?tenant_id={t}"), None).await;
        assert_eq!(u["data"][0]["cost_nanos"].as_i64().unwrap(), spent);
        Arc::try_unwrap(gw).ok().unwrap().stop().await;
    })
    .await;
}

#[tokio::test]
async fn soft_budgets_only_alert() {
    let gw = TestGateway::start(Db::Sqlite).await;
    let (_, k) = gw
        .tenant_and_key(json!({"name": "soft", "tier": "shared",
        "budget": {"monthly_limit_usd": "0.000001", "hard": false}}))
        .await;
    for _ in 0..3 {
        assert_eq!(gw.chat(&k).json(&chat_body("gpt-4.1", "hi")).send().await.unwrap().status(), StatusCode::OK);
    }
    gw.stop().await;
}
