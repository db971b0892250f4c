//! Credit pools (pooled tier): the admin API, the append-only ledger, exact
//! balances in nano-USD, pooled tenants drawing on their pool, and a hard
//! pool never going negative under concurrency — on SQLite and Postgres.
// Helpers outside #[test] functions, which clippy.toml's test allowances do not reach.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sheepdog_gateway::admission::tokens;
use sheepdog_types::parse_usd;

use sheepdog_testkit::*;

/// gpt-4.1 in the default price table: 2 / 8 USD per 1M tokens.
const IN_NANOS: i64 = 2_000;
const OUT_NANOS: i64 = 8_000;

fn usd(v: &Value) -> i64 {
    parse_usd(v.as_str().unwrap_or_else(|| panic!("not a USD string: {v}"))).unwrap()
}

async fn create_pool(gw: &TestGateway, body: Value) -> Value {
    let (s, p) = gw.admin(Method::POST, "/admin/v1/pools", Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    p
}

async fn pool(gw: &TestGateway, id: &str) -> Value {
    let (s, p) = gw.admin(Method::GET, &format!("/admin/v1/pools/{id}"), None).await;
    assert_eq!(s, StatusCode::OK, "{p}");
    p
}

async fn credit(gw: &TestGateway, pool: &str, body: Value) -> Value {
    let (s, e) = gw.admin(Method::POST, &format!("/admin/v1/pools/{pool}/credits"), Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    e
}

async fn ledger(gw: &TestGateway, pool: &str) -> Vec<Value> {
    let (s, l) = gw.admin(Method::GET, &format!("/admin/v1/pools/{pool}/ledger?limit=1000"), None).await;
    assert_eq!(s, StatusCode::OK, "{l}");
    l["data"].as_array().unwrap().clone()
}

async fn create_tenant(gw: &TestGateway, body: Value) -> Value {
    let (s, t) = gw.admin(Method::POST, "/admin/v1/tenants", Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    t
}

/// A request whose output is exactly 100 tokens, also its worst case.
fn hundred_tokens(i: usize) -> Value {
    json!({"model": "gpt-4.1", "max_tokens": 100,
           "messages": [{"role": "user", "content": format!("request {i} [sim:tokens=100]")}]})
}

/// What admission reserves for `body`: the worst-case cost.
fn worst_case(body: &Value) -> i64 {
    let chat = sheepdog_gateway::request::parse_chat(body.to_string().into()).unwrap();
    let input = tokens::reserve_prompt_tokens(chat.prompt_tokens) as i64;
    input * IN_NANOS + 100 * OUT_NANOS
}

async fn error_code(r: reqwest::Response) -> (StatusCode, String, String) {
    let s = r.status();
    let v: Value = r.json().await.unwrap();
    (s, v["error"]["code"].as_str().unwrap_or("").to_string(), v["error"]["message"].as_str().unwrap_or("").to_string())
}

#[tokio::test]
async fn pools_credits_signup_and_ledger() {
    on_both(|db| async move {
        let gw = TestGateway::start(db).await;
        // Create, read, list.
        let a = create_pool(&gw, json!({"name": "Team A"})).await;
        assert_eq!(a["name"], "Team A");
        assert_eq!(a["hard"], true);
        for f in ["balance_usd", "credited_usd", "debited_usd", "available_usd"] {
            assert_eq!(a[f], "0.000000000", "{f}");
        }
        assert!(a["created_at"].as_str().unwrap().ends_with('Z'));
        let a_id = a["id"].as_str().unwrap().to_string();
        let soft = create_pool(&gw, json!({"name": "Soft", "hard": false})).await;
        assert_eq!(soft["hard"], false);
        assert_eq!(pool(&gw, &a_id).await, a);
        let (_, list) = gw.admin(Method::GET, "/admin/v1/pools", None).await;
        let ids: Vec<&str> = list["data"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
        assert_eq!(ids, vec![a_id.as_str(), soft["id"].as_str().unwrap()]);

        // Top-ups and grants, exact to the nano-USD.
        let t = create_tenant(&gw, json!({"name": "Acme", "tier": "shared", "aliases": ["acme"]})).await;
        let t_id = t["id"].as_str().unwrap().to_string();
        let e1 = credit(&gw, &a_id, json!({"amount_usd": "10.5", "kind": "topup", "note": "invoice 42"})).await;
        assert_eq!(
            (e1["kind"].as_str(), e1["amount_usd"].as_str(), e1["amount_nanos"].as_i64()),
            (Some("topup"), Some("10.500000000"), Some(10_500_000_000))
        );
        assert_eq!(e1["note"], "invoice 42");
        assert_eq!(e1["pool_id"], a_id.as_str());
        assert!(e1["tenant_id"].is_null() && e1["request_id"].is_null());
        let e2 = credit(&gw, &a_id, json!({"amount_usd": "0.000000001", "kind": "grant", "tenant_id": "acme"})).await;
        assert_eq!(e2["tenant_id"], t_id.as_str(), "an alias is resolved to the tenant id");
        assert_eq!(e2["amount_nanos"], 1);
        let e3 = credit(&gw, &a_id, json!({"amount_usd": 2.25, "kind": "grant"})).await;
        assert_eq!(e3["amount_usd"], "2.250000000");
        let p = pool(&gw, &a_id).await;
        assert_eq!(p["balance_usd"], "12.750000001");
        assert_eq!(p["credited_usd"], "12.750000001");
        assert_eq!(p["debited_usd"], "0.000000000");
        assert_eq!(p["available_usd"], "12.750000001", "credits count in admission at once");

        // The ledger, newest first, with a limit.
        let entries = ledger(&gw, &a_id).await;
        let kinds: Vec<&str> = entries.iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds.len(), 3);
        let total: i64 = entries.iter().map(|e| e["amount_nanos"].as_i64().unwrap()).sum();
        assert_eq!(total, 12_750_000_001);
        let ms: Vec<&str> = entries.iter().map(|e| e["created_at"].as_str().unwrap()).collect();
        assert!(ms.windows(2).all(|w| w[0] >= w[1]), "newest first: {ms:?}");
        let (_, two) = gw.admin(Method::GET, &format!("/admin/v1/pools/{a_id}/ledger?limit=2"), None).await;
        assert_eq!(two["data"].as_array().unwrap().len(), 2);

        // A pooled tenant without a pool gets its own, named after it, with its signup credit.
        let p1 = create_tenant(&gw, json!({"name": "Solo", "tier": "pooled", "signup_credit_usd": "5"})).await;
        let p1_id = p1["id"].as_str().unwrap();
        let own = p1["pool_id"].as_str().unwrap().to_string();
        assert_ne!(own, a_id);
        let own_pool = pool(&gw, &own).await;
        assert_eq!((own_pool["name"].as_str(), own_pool["hard"].as_bool()), (Some("Solo"), Some(true)));
        assert_eq!(own_pool["balance_usd"], "5.000000000");
        assert_eq!(own_pool["available_usd"], "5.000000000");
        let own_ledger = ledger(&gw, &own).await;
        assert_eq!(own_ledger.len(), 1);
        assert_eq!(own_ledger[0]["kind"], "signup");
        assert_eq!(own_ledger[0]["tenant_id"], p1_id);
        // A pooled tenant joining a shared pool, with a signup credit to it.
        let p2 =
            create_tenant(&gw, json!({"name": "Joiner", "tier": "pooled", "pool_id": a_id, "signup_credit_usd": 0.75}))
                .await;
        assert_eq!(p2["pool_id"], a_id.as_str());
        assert_eq!(pool(&gw, &a_id).await["balance_usd"], "13.500000001");
        let newest = &ledger(&gw, &a_id).await[0];
        assert_eq!((newest["kind"].as_str(), newest["tenant_id"].as_str()), (Some("signup"), p2["id"].as_str()));
        // Without signup credit and a pool, nothing is added; shared tenants get no pool.
        assert!(t["pool_id"].is_null());
        let p3 = create_tenant(&gw, json!({"name": "Zero", "tier": "pooled"})).await;
        assert_eq!(ledger(&gw, p3["pool_id"].as_str().unwrap()).await.len(), 0);

        // PATCH moves a tenant to another pool.
        let (s, moved) =
            gw.admin(Method::PATCH, &format!("/admin/v1/tenants/{p1_id}"), Some(json!({"pool_id": a_id}))).await;
        assert_eq!(s, StatusCode::OK, "{moved}");
        assert_eq!(moved["pool_id"], a_id.as_str());
        let (_, read) = gw.admin(Method::GET, &format!("/admin/v1/tenants/{p1_id}"), None).await;
        assert_eq!(read["pool_id"], a_id.as_str());

        // Every change is audited.
        let (_, audit) = gw.admin(Method::GET, "/admin/v1/audit?limit=100", None).await;
        let actions: Vec<&str> =
            audit["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions.iter().filter(|a| **a == "pool.create").count(), 4, "{actions:?}");
        assert_eq!(actions.iter().filter(|a| **a == "pool.credit").count(), 5, "{actions:?}");
        gw.stop().await;
    })
    .await;
}

#[tokio::test]
async fn pool_bad_input_is_refused_and_changes_nothing() {
    on_both(|db| async move {
        let gw = TestGateway::start(db).await;
        let a = create_pool(&gw, json!({"name": "A"})).await;
        let a_id = a["id"].as_str().unwrap().to_string();
        credit(&gw, &a_id, json!({"amount_usd": "1", "kind": "topup"})).await;
        let t = create_tenant(&gw, json!({"name": "T", "tier": "pooled", "aliases": ["taken"], "pool_id": a_id})).await;
        let t_id = t["id"].as_str().unwrap().to_string();
        let credits = format!("/admin/v1/pools/{a_id}/credits");
        let bad: Vec<(Method, String, Value, StatusCode, &str)> = vec![
            (Method::POST, "/admin/v1/pools".into(), json!({}), StatusCode::BAD_REQUEST, "name"),
            (Method::POST, "/admin/v1/pools".into(), json!({"name": "  "}), StatusCode::BAD_REQUEST, "`name`"),
            (
                Method::POST,
                "/admin/v1/pools".into(),
                json!({"name": "x", "hard": "yes"}),
                StatusCode::BAD_REQUEST,
                "hard",
            ),
            (
                Method::POST,
                "/admin/v1/pools".into(),
                json!({"name": "x", "size": 1}),
                StatusCode::BAD_REQUEST,
                "unknown field",
            ),
            (
                Method::POST,
                credits.clone(),
                json!({"amount_usd": -1, "kind": "topup"}),
                StatusCode::BAD_REQUEST,
                "greater than zero",
            ),
            (
                Method::POST,
                credits.clone(),
                json!({"amount_usd": "0", "kind": "topup"}),
                StatusCode::BAD_REQUEST,
                "greater than zero",
            ),
            (
                Method::POST,
                credits.clone(),
                json!({"amount_usd": "1.0000000001", "kind": "grant"}),
                StatusCode::BAD_REQUEST,
                "decimal places",
            ),
            (
                Method::POST,
                credits.clone(),
                json!({"amount_usd": true, "kind": "grant"}),
                StatusCode::BAD_REQUEST,
                "amount_usd",
            ),
            (
                Method::POST,
                credits.clone(),
                json!({"amount_usd": "ten", "kind": "grant"}),
                StatusCode::BAD_REQUEST,
                "amount_usd",
            ),
            (
                Method::POST,
                credits.clone(),
                json!({"amount_usd": "2000000000", "kind": "grant"}),
                StatusCode::BAD_REQUEST,
                "at most",
            ),
            (
                Method::POST,
                credits.clone(),
                json!({"amount_usd": "1", "kind": "gift"}),
                StatusCode::BAD_REQUEST,
                "kind",
            ),
            (
                Method::POST,
                credits.clone(),
                json!({"amount_usd": "1", "kind": "usage"}),
                StatusCode::BAD_REQUEST,
                "kind",
            ),
            (Method::POST, credits.clone(), json!({"amount_usd": "1"}), StatusCode::BAD_REQUEST, "kind"),
            (Method::POST, credits.clone(), json!({"kind": "topup"}), StatusCode::BAD_REQUEST, "amount_usd"),
            (
                Method::POST,
                credits.clone(),
                json!({"amount_usd": "1", "kind": "topup", "tenant_id": "nobody"}),
                StatusCode::BAD_REQUEST,
                "nobody",
            ),
            (
                Method::POST,
                credits.clone(),
                json!({"amount_usd": "1", "kind": "topup", "extra": 1}),
                StatusCode::BAD_REQUEST,
                "unknown field",
            ),
            (
                Method::POST,
                "/admin/v1/pools/no-such-pool/credits".into(),
                json!({"amount_usd": "1", "kind": "topup"}),
                StatusCode::NOT_FOUND,
                "no-such-pool",
            ),
            (Method::GET, "/admin/v1/pools/no-such-pool".into(), Value::Null, StatusCode::NOT_FOUND, "no-such-pool"),
            (
                Method::GET,
                "/admin/v1/pools/no-such-pool/ledger".into(),
                Value::Null,
                StatusCode::NOT_FOUND,
                "no-such-pool",
            ),
            (
                Method::GET,
                format!("/admin/v1/pools/{a_id}/ledger?limit=0"),
                Value::Null,
                StatusCode::BAD_REQUEST,
                "limit",
            ),
            (
                Method::GET,
                format!("/admin/v1/pools/{a_id}/ledger?limit=many"),
                Value::Null,
                StatusCode::BAD_REQUEST,
                "limit",
            ),
            (
                Method::POST,
                "/admin/v1/tenants".into(),
                json!({"name": "x", "tier": "pooled", "pool_id": "ghost-pool"}),
                StatusCode::BAD_REQUEST,
                "ghost-pool",
            ),
            (
                Method::POST,
                "/admin/v1/tenants".into(),
                json!({"name": "x", "tier": "pooled", "signup_credit_usd": -5}),
                StatusCode::BAD_REQUEST,
                "signup_credit_usd",
            ),
            (
                Method::POST,
                "/admin/v1/tenants".into(),
                json!({"name": "x", "tier": "pooled", "signup_credit_usd": "0"}),
                StatusCode::BAD_REQUEST,
                "signup_credit_usd",
            ),
            (
                Method::POST,
                "/admin/v1/tenants".into(),
                json!({"name": "x", "tier": "pooled", "signup_credit_usd": "0.0000000001"}),
                StatusCode::BAD_REQUEST,
                "decimal places",
            ),
            (
                Method::POST,
                "/admin/v1/tenants".into(),
                json!({"name": "x", "tier": "pooled", "signup_credit_usd": [1]}),
                StatusCode::BAD_REQUEST,
                "signup_credit_usd",
            ),
            (
                Method::POST,
                "/admin/v1/tenants".into(),
                json!({"name": "x", "tier": "shared", "signup_credit_usd": "1"}),
                StatusCode::BAD_REQUEST,
                "pool",
            ),
            (
                Method::POST,
                "/admin/v1/tenants".into(),
                json!({"name": "x", "tier": "pooled", "pool_id": 7}),
                StatusCode::BAD_REQUEST,
                "pool_id",
            ),
            // A conflict after the tenant's new pool was made: the pool is removed again.
            (
                Method::POST,
                "/admin/v1/tenants".into(),
                json!({"name": "x", "tier": "pooled", "aliases": ["taken"], "signup_credit_usd": "3"}),
                StatusCode::CONFLICT,
                "taken",
            ),
            (
                Method::POST,
                "/admin/v1/tenants".into(),
                json!({"name": "x", "tier": "pooled", "id": t_id}),
                StatusCode::CONFLICT,
                "already exists",
            ),
            (
                Method::PATCH,
                format!("/admin/v1/tenants/{t_id}"),
                json!({"pool_id": "ghost-pool"}),
                StatusCode::BAD_REQUEST,
                "ghost-pool",
            ),
            (
                Method::PATCH,
                format!("/admin/v1/tenants/{t_id}"),
                json!({"pool_id": false}),
                StatusCode::BAD_REQUEST,
                "pool_id",
            ),
        ];
        for (method, path, body, status, text) in bad {
            let body = (!body.is_null()).then_some(body);
            let (s, v) = gw.admin(method.clone(), &path, body.clone()).await;
            assert_eq!(s, status, "{db:?} {method} {path} {body:?}: {v}");
            let msg = v["error"]["message"].as_str().unwrap_or("");
            assert!(msg.contains(text), "{method} {path}: {msg:?} should mention {text:?}");
        }
        // Nothing changed: one pool, one tenant, one ledger entry, the same balance.
        let (_, pools) = gw.admin(Method::GET, "/admin/v1/pools", None).await;
        assert_eq!(pools["data"].as_array().unwrap().len(), 1, "{pools}");
        assert_eq!(pools["data"][0]["balance_usd"], "1.000000000");
        assert_eq!(pools["data"][0]["available_usd"], "1.000000000");
        assert_eq!(ledger(&gw, &a_id).await.len(), 1);
        let (_, tenants) = gw.admin(Method::GET, "/admin/v1/tenants", None).await;
        assert_eq!(tenants["data"].as_array().unwrap().len(), 1);
        let (_, after) = gw.admin(Method::GET, &format!("/admin/v1/tenants/{t_id}"), None).await;
        assert_eq!(after, t);
        gw.stop().await;
    })
    .await;
}

/// A pooled tenant's requests debit its pool exactly; an exhausted hard pool
/// refuses with 429 insufficient_quota; a top-up works at once; the balance
/// survives a restart; the monthly budget caps the tenant's share.
#[tokio::test]
async fn pooled_tenant_draws_on_its_pool() {
    on_both(|db| async move {
        let mut gw = TestGateway::start(db).await;
        let worst = worst_case(&hundred_tokens(0));
        // Room for two worst cases and a half.
        let signup = 2 * worst + worst / 2;
        let (t_id, key) = gw
            .tenant_and_key(
                json!({"name": "Drawer", "tier": "pooled", "signup_credit_usd": sheepdog_types::format_usd(signup)}),
            )
            .await;
        let (_, t) = gw.admin(Method::GET, &format!("/admin/v1/tenants/{t_id}"), None).await;
        let pool_id = t["pool_id"].as_str().unwrap().to_string();
        let mut ok = 0;
        let refusal = loop {
            let r = gw.chat(&key).json(&hundred_tokens(ok)).send().await.unwrap();
            if r.status() != StatusCode::OK {
                break error_code(r).await;
            }
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["usage"]["completion_tokens"], 100);
            ok += 1;
            assert!(ok < 100, "the pool never ran out");
        };
        assert_eq!(
            (refusal.0, refusal.1.as_str()),
            (StatusCode::TOO_MANY_REQUESTS, "insufficient_quota"),
            "{}",
            refusal.2
        );
        assert!(refusal.2.contains("pool"), "{}", refusal.2);
        assert!(ok >= 2, "{ok}");

        // The ledger's usage debits are exactly the tenant's usage cost.
        let p = pool(&gw, &pool_id).await; // flushes the accounting queue
        let records = gw.state.store().usage_records(&t_id).await.unwrap();
        assert_eq!(records.len(), ok, "refused requests are not billed");
        assert!(records.iter().all(|r| r.pool_id.as_deref() == Some(pool_id.as_str())));
        let cost: i64 = records.iter().map(|r| r.cost_nanos).sum();
        assert_eq!(cost, records.iter().map(|r| r.input_tokens * IN_NANOS + r.output_tokens * OUT_NANOS).sum::<i64>());
        let entries = ledger(&gw, &pool_id).await;
        let usage: Vec<&Value> = entries.iter().filter(|e| e["kind"] == "usage").collect();
        assert_eq!(usage.len(), ok);
        assert_eq!(usage.iter().map(|e| e["amount_nanos"].as_i64().unwrap()).sum::<i64>(), -cost);
        for e in &usage {
            assert_eq!(e["tenant_id"], t_id.as_str());
            let rid = e["request_id"].as_str().unwrap();
            let rec = records.iter().find(|r| r.request_id == rid).unwrap();
            assert_eq!(e["amount_nanos"].as_i64().unwrap(), -rec.cost_nanos);
            assert_eq!(usd(&e["amount_usd"]), -rec.cost_nanos);
        }
        assert_eq!(usd(&p["balance_usd"]), signup - cost);
        assert_eq!(usd(&p["debited_usd"]), cost);
        assert_eq!(usd(&p["credited_usd"]), signup);
        assert_eq!(usd(&p["available_usd"]), signup - cost, "nothing in flight");
        assert!(usd(&p["balance_usd"]) >= 0 && usd(&p["balance_usd"]) < worst);

        // A top-up takes effect at once.
        credit(&gw, &pool_id, json!({"amount_usd": "1", "kind": "topup"})).await;
        let r = gw.chat(&key).json(&hundred_tokens(1000)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.bytes().await.unwrap();

        // The per-tenant cap is the monthly budget: a hard budget below one request refuses it
        // though the pool has credit.
        let (s, _) = gw
            .admin(
                Method::PUT,
                &format!("/admin/v1/tenants/{t_id}/budget"),
                Some(json!({"monthly_limit_usd": "0.000001", "hard": true})),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let (status, code, message) = error_code(gw.chat(&key).json(&hundred_tokens(1001)).send().await.unwrap()).await;
        assert_eq!((status, code.as_str()), (StatusCode::TOO_MANY_REQUESTS, "insufficient_quota"));
        assert!(message.contains("budget"), "{message}");
        let before = pool(&gw, &pool_id).await;

        // After a restart the pool's balance is loaded into admission.
        let url = gw.shutdown().await;
        let again = TestGateway::start_with(db, |c| c.database.url = url.clone()).await;
        let p2 = pool(&again, &pool_id).await;
        assert_eq!(p2, before);
        assert_eq!(p2["available_usd"], p2["balance_usd"]);
        again.stop().await;
        gw.stop().await;
    })
    .await;
}

/// A soft pool never refuses: its balance may go below zero.
#[tokio::test]
async fn soft_pool_may_go_negative() {
    on_both(|db| async move {
        let gw = TestGateway::start(db).await;
        let p = create_pool(&gw, json!({"name": "Soft", "hard": false})).await;
        let pool_id = p["id"].as_str().unwrap().to_string();
        let (t_id, key) = gw.tenant_and_key(json!({"name": "S", "tier": "pooled", "pool_id": pool_id})).await;
        for i in 0..3 {
            let r = gw.chat(&key).json(&hundred_tokens(i)).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.bytes().await.unwrap();
        }
        gw.state.accountant().flush().await;
        let records = gw.state.store().usage_records(&t_id).await.unwrap();
        let cost: i64 = records.iter().map(|r| r.cost_nanos).sum();
        let p = pool(&gw, &pool_id).await;
        assert_eq!(usd(&p["balance_usd"]), -cost);
        assert!(cost > 0);
        gw.stop().await;
    })
    .await;
}

/// 64 concurrent requests against a hard pool that fits about 10: at most
/// what fits succeed, the rest get 429 insufficient_quota, and the balance
/// ends at credits − usage, never below zero.
#[tokio::test]
async fn hard_pool_never_goes_negative() {
    on_both(|db| async move {
        let gw = TestGateway::start(db).await;
        let p = create_pool(&gw, json!({"name": "Tight"})).await;
        let pool_id = p["id"].as_str().unwrap().to_string();
        let (t_id, key) = gw.tenant_and_key(json!({"name": "Burst", "tier": "pooled", "pool_id": pool_id})).await;
        // Every request has the same prompt length, so the same worst case.
        let worst = (0..64).map(|i| worst_case(&hundred_tokens(10 + i))).max().unwrap();
        let credits = 10 * worst + worst / 2;
        credit(&gw, &pool_id, json!({"amount_usd": sheepdog_types::format_usd(credits), "kind": "topup"})).await;

        let barrier = Arc::new(tokio::sync::Barrier::new(64));
        let mut handles = Vec::new();
        for i in 0..64 {
            let req = gw.chat(&key).json(&hundred_tokens(10 + i));
            let barrier = barrier.clone();
            handles.push(tokio::spawn(async move {
                barrier.wait().await;
                let r = req.send().await.unwrap();
                let status = r.status();
                let v: Value = r.json().await.unwrap();
                (status, v)
            }));
        }
        let mut ok = 0;
        let mut refused = 0;
        for h in handles {
            let (status, v) = h.await.unwrap();
            match status {
                StatusCode::OK => {
                    assert_eq!(v["usage"]["completion_tokens"], 100);
                    ok += 1;
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    assert_eq!(v["error"]["code"], "insufficient_quota", "{v}");
                    refused += 1;
                }
                other => panic!("unexpected {other}: {v}"),
            }
        }
        assert_eq!(ok + refused, 64);
        gw.state.accountant().flush().await;
        let records = gw.state.store().usage_records(&t_id).await.unwrap();
        assert_eq!(records.len(), ok);
        let cost: i64 = records.iter().map(|r| r.cost_nanos).sum();
        let cheapest = records.iter().map(|r| r.cost_nanos).min().unwrap();
        // At most what fits; and every worst case that fit was admitted.
        assert!(ok as i64 <= credits / cheapest, "{db:?}: {ok} succeeded, only {} fit", credits / cheapest);
        assert!(ok >= 10, "{db:?}: only {ok} succeeded though 10 worst cases fit");
        let p = pool(&gw, &pool_id).await;
        let balance = usd(&p["balance_usd"]);
        assert!(balance >= 0, "{db:?}: the hard pool went negative: {balance}");
        assert_eq!(balance, credits - cost);
        assert_eq!(usd(&p["available_usd"]), balance);
        let usage: i64 = ledger(&gw, &pool_id)
            .await
            .iter()
            .filter(|e| e["kind"] == "usage")
            .map(|e| e["amount_nanos"].as_i64().unwrap())
            .sum();
        assert_eq!(usage, -cost);
        gw.stop().await;
    })
    .await;
}

#[tokio::test]
async fn openapi_lists_pool_paths() {
    let gw = TestGateway::start(Db::Sqlite).await;
    let (s, doc) = gw.admin(Method::GET, "/admin/v1/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for (p, method) in [
        ("/admin/v1/pools", "post"),
        ("/admin/v1/pools", "get"),
        ("/admin/v1/pools/{id}", "get"),
        ("/admin/v1/pools/{id}/credits", "post"),
        ("/admin/v1/pools/{id}/ledger", "get"),
    ] {
        assert!(paths.get(p).and_then(|m| m.get(method)).is_some(), "{method} {p} missing from the OpenAPI document");
    }
    for s in ["Pool", "PoolLedgerEntry", "CreditInput", "CreatePool"] {
        assert!(doc["components"]["schemas"][s].is_object(), "schema {s} missing");
    }
    assert!(doc["components"]["schemas"]["Tenant"]["properties"]["pool_id"].is_object());
    assert!(doc["components"]["schemas"]["CreateTenant"]["properties"]["signup_credit_usd"].is_object());
    gw.stop().await;
}
