//! Staged provider migration end to end: shadow with diffs, canary with
//! sticky assignment, the step plan on controlled time, the guard's
//! automatic rollback (error rate and p99), operator rollback at once, and
//! every transition recorded with its reason.

use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sheepdog_emulators::{Emulator, Script, Wire};

use sheepdog_testkit::*;

/// Model `m` on an OpenAI emulator ("old"); an Anthropic emulator ("new") as the target.
#[allow(clippy::unwrap_used)]
async fn setup() -> (TestGateway, Emulator, Emulator, String, String) {
    let old = Emulator::start(Wire::OpenAi).await.unwrap();
    let new = Emulator::start(Wire::Anthropic).await.unwrap();
    let (po, pn) = (emulated_provider_plain(&old, Wire::OpenAi), emulated_provider_plain(&new, Wire::Anthropic));
    let gw = TestGateway::start_with(Db::Sqlite, move |c| {
        c.providers.insert("old".into(), po);
        c.providers.insert("new".into(), pn);
        c.models.insert("m".into(), model("old", "gpt-old", "2", "8"));
    })
    .await;
    let (t, k) = gw.tenant_with_key("t").await;
    (gw, old, new, t, k)
}

async fn create(gw: &TestGateway, body: Value) -> Value {
    let (s, r) = gw.admin(Method::POST, "/admin/v1/rollouts", Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    r
}

async fn report(gw: &TestGateway, id: &str) -> Value {
    let (s, r) = gw.admin(Method::GET, &format!("/admin/v1/rollouts/{id}"), None).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    r
}

#[tokio::test]
async fn shadow_mirrors_compares_and_never_bills_the_tenant() {
    let (gw, old, new, t, k) = setup().await;
    let ro = create(&gw, json!({"model": "m", "to": {"provider": "new", "upstream_model": "claude-new", "input_per_mtok": 3, "output_per_mtok": 15}})).await;
    let id = ro["id"].as_str().unwrap().to_string();
    assert_eq!((ro["phase"].as_str(), ro["from"]["provider"].as_str()), (Some("shadow"), Some("old")));
    for i in 0..6 {
        let r = gw.chat(&k).json(&chat_body("m", &format!("n{i} [emu:usage=100,10]"))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["x-sheepdog-provider"], "old", "shadow: served by from");
    }
    // Streamed too (TTFT on both sides).
    let r = gw
        .chat(&k)
        .json(&json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "s [emu:usage=100,10]"}]}))
        .send()
        .await
        .unwrap();
    r.text().await.unwrap();
    // Pairs complete off the request path.
    let mut rep = report(&gw, &id).await;
    for _ in 0..50 {
        if rep["shadow"]["pairs"] == 7 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        rep = report(&gw, &id).await;
    }
    assert_eq!(rep["shadow"]["pairs"], 7, "{rep}");
    assert_eq!(new.request_count(), 7);
    assert_eq!(old.request_count(), 7);
    // "Hello from the OpenAI emulator." vs "... Anthropic ...": every pair differs, but similarly.
    assert_eq!(rep["shadow"]["diff_rate_percent"], 100.0);
    let sample = &rep["differing_samples"][0];
    assert!(sample["similarity_percent"].as_i64().unwrap() > 40, "{sample}");
    assert!(sample["from_text"].as_str().unwrap().contains("OpenAI"));
    assert!(sample["to_text"].as_str().unwrap().contains("Anthropic"));
    assert!(sample["to_latency_ms"].is_i64() && sample["from_latency_ms"].is_i64());
    // Shadow spend: 100 × 3000 + 10 × 15000 = 450,000 nano-USD per pair, never billed to the tenant.
    assert_eq!(rep["shadow"]["shadow_spend_usd"], sheepdog_types::format_usd(7 * 450_000));
    // Side by side, `to` costs what its shadow calls cost (never billed to the tenant).
    assert_eq!(rep["to_stats"]["cost_per_1k_requests_usd"], sheepdog_types::format_usd(450_000 * 1000));
    assert_eq!(
        rep["from_stats"]["cost_per_1k_requests_usd"],
        sheepdog_types::format_usd((100 * 2000 + 10 * 8000) * 1000)
    );
    gw.state.accountant().flush().await;
    let billed: i64 = gw.state.store().usage_records(&t).await.unwrap().iter().map(|r| r.cost_nanos).sum();
    assert_eq!(billed, 7 * (100 * 2000 + 10 * 8000));
    // The time series (the console's live charts) adds up to the same numbers.
    let (s, series) = gw.admin(Method::GET, &format!("/admin/v1/rollouts/{id}/series"), None).await;
    assert_eq!(s, StatusCode::OK, "{series}");
    assert_eq!(series["bucket_secs"], 10);
    let points = series["points"].as_array().unwrap();
    assert!(!points.is_empty() && points.len() <= 90, "{series}");
    assert_eq!(points.last().unwrap()["complete"], false, "the last bucket is still filling");
    let sum = |f: &dyn Fn(&Value) -> i64| points.iter().map(f).sum::<i64>();
    assert_eq!(sum(&|p| p["from"]["requests"].as_i64().unwrap()), 7);
    assert_eq!(sum(&|p| p["to"]["requests"].as_i64().unwrap()), 7);
    assert_eq!(sum(&|p| p["shadow_pairs"].as_i64().unwrap()), 7);
    assert_eq!(sum(&|p| p["shadow_differing"].as_i64().unwrap()), 7);
    assert_eq!(sum(&|p| p["from"]["cost_nanos"].as_i64().unwrap()), billed);
    assert_eq!(sum(&|p| p["to"]["cost_nanos"].as_i64().unwrap()), 7 * 450_000, "shadow calls' cost on `to`");
    let busy = points.iter().find(|p| p["from"]["requests"].as_i64().unwrap() > 0).unwrap();
    assert!(busy["from"]["p99_ms"].is_u64() && busy["from"]["cost_per_1k_requests_usd"].is_string(), "{busy}");
    let compared = points.iter().find(|p| p["shadow_pairs"].as_i64().unwrap() > 0).unwrap();
    assert_eq!(compared["diff_rate_percent"], 100.0);
    // The report carries the same series (a bucket later at most).
    let rep = report(&gw, &id).await;
    let n = rep["series"]["points"].as_array().unwrap().len();
    assert!(n == points.len() || n == points.len() + 1, "{n} vs {}", points.len());
    // Tool-call comparison.
    let (_, samples) =
        gw.admin(Method::GET, &format!("/admin/v1/rollouts/{id}/samples?differing=true&limit=3"), None).await;
    assert_eq!(samples["data"].as_array().unwrap().len(), 3);
    // A second active rollout for the same model is refused.
    let (s, _) = gw
        .admin(
            Method::POST,
            "/admin/v1/rollouts",
            Some(json!({"model": "m", "to": {"provider": "new", "upstream_model": "x"}})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    gw.stop().await;
}

#[tokio::test]
async fn canary_is_sticky_follows_its_plan_and_rolls_back_at_once() {
    let (gw, _old, _new, _t, k) = setup().await;
    let ro = create(
        &gw,
        json!({"model": "m", "phase": "canary", "to": {"provider": "new", "upstream_model": "claude-new"},
        "plan": {"initial_percent": 50, "step_percent": 25, "step_interval_secs": 86400},
        // About assignment and the plan only: latency noise between two
        // emulators on a loaded machine must not let the guard roll back.
        "guard": {"max_p99_ratio": 100, "max_error_rate_percent": 100}}),
    )
    .await;
    let id = ro["id"].as_str().unwrap().to_string();
    assert_eq!(ro["percent"], 50.0);
    // Sticky: one session always lands on the same side; many sessions split.
    let mut sides = HashSet::new();
    for s in 0..40 {
        let mut seen = HashSet::new();
        for _ in 0..3 {
            let r = gw
                .chat(&k)
                .header("X-Session-ID", format!("session-{s}"))
                .json(&chat_body("m", "hi"))
                .send()
                .await
                .unwrap();
            seen.insert(r.headers()["x-sheepdog-provider"].to_str().unwrap().to_string());
        }
        assert_eq!(seen.len(), 1, "session {s} flipped between providers");
        sides.extend(seen);
    }
    assert_eq!(sides.len(), 2, "both sides serve at 50 %");

    // The step plan, on controlled time: one day later 75 %, two days later complete.
    let day = 86_400_000;
    let now = sheepdog_gateway::time::now_ms();
    let steps = gw.state.rollouts().tick(now + day + 1_000);
    assert_eq!(steps.len(), 1);
    assert!(steps[0].1.reason.contains("75 %"), "{}", steps[0].1.reason);
    let steps = gw.state.rollouts().tick(now + 2 * day + 1_000);
    assert_eq!(steps[0].0.phase, "complete");
    assert!(gw.state.rollouts().tick(now + 3 * day).is_empty());

    // Operator rollback takes effect on the very next request.
    let (s, r) = gw
        .admin(
            Method::POST,
            &format!("/admin/v1/rollouts/{id}/rollback"),
            Some(json!({"reason": "customer complaint"})),
        )
        .await;
    assert_eq!((s, r["phase"].as_str()), (StatusCode::OK, Some("rolled_back")));
    // The history names who did it (here the admin token; the console sends its user).
    let (_, d) = gw.admin(Method::GET, &format!("/admin/v1/rollouts/{id}"), None).await;
    let last = d["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["actor"].as_str(), last["reason"].as_str()),
        (Some("admin-token"), Some("customer complaint")),
        "{d}"
    );
    for s in 0..10 {
        let r = gw
            .chat(&k)
            .header("X-Session-ID", format!("session-{s}"))
            .json(&chat_body("m", "hi"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-sheepdog-provider"], "old");
    }
    let (_, events) = gw.admin(Method::GET, &format!("/admin/v1/rollouts/{id}/events"), None).await;
    let reasons: Vec<&str> = events["data"].as_array().unwrap().iter().map(|e| e["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons.first(), Some(&"created"));
    assert_eq!(reasons.last(), Some(&"customer complaint"), "{reasons:?}");
    let (s, _) = gw.admin(Method::POST, &format!("/admin/v1/rollouts/{id}/advance"), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "a rolled-back rollout cannot advance");
    gw.stop().await;
}

#[tokio::test]
async fn guard_rolls_back_on_errors_by_itself() {
    let (gw, _old, new, _t, k) = setup().await;
    let ro = create(
        &gw,
        json!({"model": "m", "phase": "canary", "to": {"provider": "new", "upstream_model": "claude-new"},
        "plan": {"initial_percent": 100, "manual": true}, "guard": {"min_samples": 5, "window_secs": 60}}),
    )
    .await;
    let id = ro["id"].as_str().unwrap().to_string();
    new.set_script(Some(Script { error: Some(500), ..Script::default() }));
    let mut failed = 0;
    for i in 0..20 {
        let r = gw.chat(&k).json(&chat_body("m", &format!("n{i}"))).send().await.unwrap();
        if r.status() != StatusCode::OK {
            failed += 1;
        } else {
            assert_eq!(r.headers()["x-sheepdog-provider"], "old", "after the rollback `from` serves");
        }
    }
    assert_eq!(failed, 5, "the guard acts on the 5th sample (minimum sample size)");
    let rep = report(&gw, &id).await;
    assert_eq!(rep["phase"], "rolled_back");
    let last = rep["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["actor"], "guard");
    assert!(last["reason"].as_str().unwrap().contains("error rate of `to` 100.00 %"), "{last}");
    let metrics = gw.client.get(format!("{}/metrics", gw.url)).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(&format!("sheepdog_rollout_rollbacks_total{{rollout=\"{id}\",by=\"guard\"}} 1")),
        "{metrics}"
    );
    // The audit log says so too (written off the request path).
    let mut found = false;
    for _ in 0..50 {
        let (_, audit) = gw.admin(Method::GET, "/admin/v1/audit?limit=20", None).await;
        found = audit["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "rollout.rollback" && e["actor"] == "guard");
        if found {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(found, "guard rollback audited");
    gw.stop().await;
}

#[tokio::test]
async fn guard_rolls_back_on_p99_twice_from() {
    let (gw, _old, new, _t, k) = setup().await;
    let ro = create(
        &gw,
        json!({"model": "m", "to": {"provider": "new", "upstream_model": "claude-new"},
        "guard": {"min_samples": 5, "max_p99_ratio": 2}}),
    )
    .await;
    let id = ro["id"].as_str().unwrap().to_string();
    new.set_script(Some(Script { stall_ms: Some(150), ..Script::default() }));
    for i in 0..12 {
        let r = gw.chat(&k).json(&chat_body("m", &format!("n{i}"))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "shadow never affects the client");
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    let mut rep = report(&gw, &id).await;
    for _ in 0..50 {
        if rep["phase"] == "rolled_back" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        rep = report(&gw, &id).await;
    }
    assert_eq!(rep["phase"], "rolled_back", "{rep}");
    let reason = rep["events"].as_array().unwrap().last().unwrap()["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("p99 latency of `to`"), "{reason}");
    gw.stop().await;
}

#[tokio::test]
async fn rollout_api_validates_input() {
    let (gw, _old, _new, _t, _k) = setup().await;
    let bad = [
        (json!({"model": "nope", "to": {"provider": "new", "upstream_model": "x"}}), "model"),
        (json!({"model": "m", "to": {"provider": "nowhere", "upstream_model": "x"}}), "to.provider"),
        (json!({"model": "m", "to": {"provider": "old", "upstream_model": "gpt-old"}}), "same route"),
        (json!({"model": "m", "to": {"provider": "new", "upstream_model": "x"}, "phase": "complete"}), "phase"),
        (
            json!({"model": "m", "to": {"provider": "new", "upstream_model": "x"}, "plan": {"initial_percent": 150}}),
            "initial_percent",
        ),
        (
            json!({"model": "m", "to": {"provider": "new", "upstream_model": "x"}, "guard": {"max_p99_ratio": 0.5}}),
            "max_p99_ratio",
        ),
        (json!({"model": "m", "to": {"provider": "new", "upstream_model": "x"}, "tenant_id": "nobody"}), "tenant_id"),
        (json!({"model": "m", "to": {"provider": "new", "upstream_model": "x", "input_per_mtok": 1}}), "both"),
        (json!({"model": "m"}), "to"),
    ];
    for (body, text) in bad {
        let (s, v) = gw.admin(Method::POST, "/admin/v1/rollouts", Some(body.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(text), "{body}: {v}");
    }
    let (_, list) = gw.admin(Method::GET, "/admin/v1/rollouts", None).await;
    assert_eq!(list["data"], json!([]), "nothing was created");
    let (s, _) = gw.admin(Method::GET, "/admin/v1/rollouts/ro_missing", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, doc) = gw.admin(Method::GET, "/admin/v1/openapi.json", None).await;
    for p in [
        "/admin/v1/rollouts",
        "/admin/v1/rollouts/{id}/rollback",
        "/admin/v1/rollouts/{id}/series",
        "/admin/v1/upstreams",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} missing from OpenAPI");
    }
    for schema in ["SeriesView", "SeriesPointView", "SeriesSideView"] {
        assert!(doc["components"]["schemas"].get(schema).is_some(), "{schema} missing from OpenAPI");
    }
    let report = &doc["components"]["schemas"]["RolloutReport"];
    assert!(report.to_string().contains("series"), "RolloutReport documents `series`: {report}");
    gw.stop().await;
}

#[tokio::test]
async fn other_replicas_follow_within_a_second() {
    let (mut a, _old, _new, _t, k) = setup().await;
    let url = a.state.settings().database.url.clone();
    let providers = a.state.settings().providers.clone();
    let b = TestGateway::start_with(Db::Sqlite, |c| {
        c.database.url = url.clone();
        for p in &providers {
            let mut cfg = simulated_provider();
            cfg.kind = p.kind;
            cfg.base_url = Some(p.base_url.clone());
            cfg.api_key_env = Some("TEST_UPSTREAM_KEY".into());
            c.providers.insert(p.name.clone(), cfg);
        }
        c.models.insert("m".into(), model("old", "gpt-old", "2", "8"));
    })
    .await;
    let ro = create(
        &a,
        json!({"model": "m", "phase": "canary", "to": {"provider": "new", "upstream_model": "claude-new"},
        "plan": {"initial_percent": 100, "manual": true}, "guard": {"max_p99_ratio": 100, "max_error_rate_percent": 100}}),
    )
    .await;
    let id = ro["id"].as_str().unwrap().to_string();
    let wait_for = |want: &'static str| {
        let (b, k) = (&b, k.clone());
        async move {
            let start = std::time::Instant::now();
            loop {
                let r = b.chat(&k).json(&chat_body("m", "hi")).send().await.unwrap();
                if r.headers()["x-sheepdog-provider"] == want {
                    return start.elapsed();
                }
                assert!(
                    start.elapsed() < std::time::Duration::from_millis(2_500),
                    "replica b never switched to {want}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    wait_for("new").await;
    a.admin(Method::POST, &format!("/admin/v1/rollouts/{id}/rollback"), None).await;
    let took = wait_for("old").await;
    assert!(took < std::time::Duration::from_millis(1_500), "rollback reached the other replica in {took:?}");
    b.stop().await;
    a.shutdown().await;
    a.stop().await;
}
