//! Small holes closed: bounded simulator markers, strict admin query
//! strings, a protected or separate `/metrics`, and `tenant.max_keys`.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use sheepdog_testkit::raw::RawRequest;
use sheepdog_testkit::*;

#[tokio::test]
async fn simulator_markers_beyond_their_bounds_are_refused() {
    let gw = TestGateway::start(Db::Sqlite).await;
    let (_, key) = gw.tenant_with_key("sim").await;
    for stream in [false, true] {
        for text in ["[sim:tokens=32769]", "[sim:tokens=18446744073709551615]", "[sim:tokens=1e9]", "[sim:error=7]"] {
            let body = json!({"model": "gpt-4.1", "stream": stream, "messages": [{"role": "user", "content": text}]});
            let r = gw.chat(&key).json(&body).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{text} stream={stream}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"]["code"], "invalid_request_error", "{v}");
            assert!(v["error"]["message"].as_str().unwrap().contains("must be"), "{v}");
        }
    }
    // At the bound: answered in full.
    let r = gw.chat(&key).json(&chat_body("gpt-4.1", "[sim:tokens=32768]")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["usage"]["completion_tokens"], 32768);
    let r = gw.client.get(format!("{}/healthz", gw.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    gw.stop().await;
}

/// Sends one raw HTTP/1.1 request (the path exactly as given) and returns the
/// status and body: nothing normalises the bytes on the way.
fn raw_get(base: &str, path: &str) -> (u16, Value) {
    let answer = RawRequest::new(base.trim_start_matches("http://"), "GET", path)
        .bearer(ADMIN_TOKEN)
        .timeout(Duration::from_secs(20))
        .send();
    // Bodies of these answers are small and sent with Content-Length.
    (answer.status, answer.json())
}

#[tokio::test]
async fn malformed_query_strings_and_paths_are_400s() {
    on_both(|db| async move {
        let gw = TestGateway::start(db).await;
        let (t, _) = gw.tenant_with_key("q").await;
        let m = format!("/admin/v1/tenants/{t}/metrics");
        let long = format!("/admin/v1/audit?actor={}", "a".repeat(9000));
        let bad: Vec<String> = vec![
            format!("{m}?period=1%C3%A9"),
            format!("{m}?period=%C3%A9"),
            format!("{m}?period=%E2%82%AC"),
            format!("{m}?period=%FF"),
            format!("{m}?period="),
            format!("{m}?period=h"),
            format!("{m}?period=99999999999999999999h"),
            format!("{m}?period=9223372036854775807d"),
            format!("{m}?period=-1h"),
            format!("{m}?period=+1h"),
            format!("{m}?period=91d"),
            format!("{m}?period=24h&period=7d"),
            format!("{m}?granularity=%FF"),
            format!("{m}?granularity=1%C3%A9"),
            "/admin/v1/usage?from=%FF".into(),
            "/admin/v1/usage?from=".into(),
            "/admin/v1/usage?from=1%".into(),
            "/admin/v1/usage?from=%zz".into(),
            "/admin/v1/usage?to=99999999999999999999".into(),
            "/admin/v1/usage?group_by=%C3%A9".into(),
            "/admin/v1/usage?tenant_id=%00".into(),
            "/admin/v1/usage/series?bucket=%C3%A9".into(),
            "/admin/v1/usage/series?from=1900-01-01T00:00:00Z&to=2900-01-01T00:00:00Z".into(),
            "/admin/v1/overview?hours=1e3".into(),
            "/admin/v1/overview?hours=99999999999999999999999".into(),
            "/admin/v1/audit?limit=99999999999999999999999".into(),
            "/admin/v1/audit?actor=%00".into(),
            "/admin/v1/audit?action=%FF%FE".into(),
            "/admin/v1/audit?target=%C3".into(),
            "/admin/v1/audit?from=%E2%82".into(),
            "/admin/v1/audit?%FF=1".into(),
            long,
            "/admin/v1/rollouts/x/samples?limit=%FF".into(),
            "/admin/v1/pools/x/ledger?limit=%00".into(),
            "/admin/v1/tenants/%00".into(),
            "/admin/v1/tenants/%FF/keys".into(),
            "/admin/v1/pools/%C3".into(),
        ];
        for path in &bad {
            let base = gw.url.clone();
            let p = path.clone();
            let (status, body) = tokio::task::spawn_blocking(move || raw_get(&base, &p)).await.unwrap();
            assert_eq!(status, 400, "{db:?} {path}: {body}");
            assert_eq!(body["error"]["code"], "invalid_request_error", "{db:?} {path}: {body}");
            assert_eq!(body["error"]["type"], "invalid_request_error", "{db:?} {path}: {body}");
            assert!(!body["error"]["message"].as_str().unwrap_or("").is_empty(), "{path}");
        }
        // Well-formed multi-byte values still work.
        for path in [
            format!("{m}?period=7d&granularity=1h"),
            "/admin/v1/audit?actor=caf%C3%A9&action=%E2%82%AC+x".into(),
            "/admin/v1/usage?group_by=model&".into(),
            format!("/admin/v1/tenants/{t}"),
        ] {
            let base = gw.url.clone();
            let p = path.clone();
            let (status, body) = tokio::task::spawn_blocking(move || raw_get(&base, &p)).await.unwrap();
            assert_eq!(status, 200, "{db:?} {path}: {body}");
        }
        // The tenant is unchanged and the gateway healthy.
        let (s, _) = gw.admin(Method::GET, &format!("/admin/v1/tenants/{t}"), None).await;
        assert_eq!(s, StatusCode::OK);
        gw.stop().await;
    })
    .await;
}

#[tokio::test]
async fn tenant_key_limit_is_enforced_and_a_revocation_frees_a_slot() {
    on_both(|db| async move {
        let gw = TestGateway::start_with(db, |c| c.tenant.max_keys = 3).await;
        let (t, _first) = gw.tenant_with_key("limited").await;
        let keys = format!("/admin/v1/tenants/{t}/keys");
        let mut ids = Vec::new();
        for _ in 0..2 {
            let (s, k) = gw.admin(Method::POST, &keys, Some(json!({"name": "k"}))).await;
            assert_eq!(s, StatusCode::CREATED, "{k}");
            ids.push(k["id"].as_str().unwrap().to_string());
        }
        let (s, e) = gw.admin(Method::POST, &keys, Some(json!({"name": "one too many"}))).await;
        assert_eq!(s, StatusCode::CONFLICT, "{db:?} {e}");
        assert_eq!(e["error"]["code"], "key_limit_reached", "{e}");
        assert!(e["error"]["message"].as_str().unwrap().contains("tenant.max_keys = 3"), "{e}");
        let (_, list) = gw.admin(Method::GET, &keys, None).await;
        assert_eq!(list["data"].as_array().unwrap().len(), 3, "nothing was stored: {list}");
        let (_, audit) = gw.admin(Method::GET, "/admin/v1/audit?action=key.create", None).await;
        assert_eq!(audit["data"].as_array().unwrap().len(), 3, "{audit}");
        // Platform keys are not a tenant's.
        let (s, p) = gw.admin(Method::POST, "/admin/v1/keys", Some(json!({"scope": "platform", "tenants": "*"}))).await;
        assert_eq!(s, StatusCode::CREATED, "{p}");
        // Revoking one frees a slot, for one key.
        let (s, _) = gw.admin(Method::DELETE, &format!("/admin/v1/keys/{}", ids[0]), None).await;
        assert_eq!(s, StatusCode::OK);
        let (s, k) = gw.admin(Method::POST, &keys, Some(json!({}))).await;
        assert_eq!(s, StatusCode::CREATED, "{k}");
        let r = gw.chat(k["key"].as_str().unwrap()).json(&chat_body("gpt-4.1", "hi")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let (s, _) = gw.admin(Method::POST, &keys, Some(json!({}))).await;
        assert_eq!(s, StatusCode::CONFLICT);

        // Concurrent creations cannot race past the limit: 8 at once, 2 slots free.
        let (t2, _) = gw.tenant_with_key("racing").await;
        let keys2 = format!("/admin/v1/tenants/{t2}/keys");
        let results = futures::future::join_all((0..8).map(|_| gw.admin(Method::POST, &keys2, Some(json!({}))))).await;
        let created = results.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
        let refused = results.iter().filter(|(s, _)| *s == StatusCode::CONFLICT).count();
        assert_eq!((created, refused), (2, 6), "{db:?} {results:?}");
        let (_, list) = gw.admin(Method::GET, &keys2, None).await;
        assert_eq!(list["data"].as_array().unwrap().len(), 3);
        gw.stop().await;
    })
    .await;
}

#[tokio::test]
async fn metrics_can_require_a_token_or_listen_elsewhere() {
    let db = TestDb::new(Db::Sqlite).await;
    // A token.
    let gw = TestGateway::builder_on_url(&db.url)
        .env("TEST_METRICS_TOKEN", "metrics-secret-1")
        .config(|c| c.gateway.metrics_token_env = Some("TEST_METRICS_TOKEN".into()))
        .start()
        .await;
    let url = format!("{}/metrics", gw.url);
    for auth in [None, Some("wrong"), Some("metrics-secret-")] {
        let mut rb = gw.client.get(&url);
        if let Some(a) = auth {
            rb = rb.bearer_auth(a);
        }
        let r = rb.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "invalid_metrics_token");
    }
    // Not the admin token either.
    let r = gw.client.get(&url).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = gw.client.get(&url).bearer_auth("metrics-secret-1").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("sheepdog_accounting_queue_depth"));
    gw.stop().await;

    // A variable named but unset: public, as by default.
    let gw = TestGateway::builder_on_url(&db.url)
        .config(|c| c.gateway.metrics_token_env = Some("UNSET_METRICS_TOKEN".into()))
        .start()
        .await;
    let r = gw.client.get(format!("{}/metrics", gw.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    gw.stop().await;

    // Another listener (with the token too): the data-plane port answers 404.
    let gw = TestGateway::builder_on_url(&db.url)
        .env("TEST_METRICS_TOKEN", "metrics-secret-1")
        .config(|c| {
            c.gateway.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
            c.gateway.metrics_token_env = Some("TEST_METRICS_TOKEN".into());
        })
        .start()
        .await;
    let r = gw.client.get(format!("{}/metrics", gw.url)).bearer_auth("metrics-secret-1").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = gw.client.get(format!("{}/healthz", gw.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let addr = gw.metrics_addr.expect("metrics_listen is bound");
    assert_ne!(format!("http://{addr}"), gw.url);
    let murl = format!("http://{addr}/metrics");
    let r = gw.client.get(&murl).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = gw.client.get(&murl).bearer_auth("metrics-secret-1").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("sheepdog_accounting_queue_depth"));
    // Only /metrics there.
    for path in ["/v1/models", "/admin/v1/tenants", "/healthz"] {
        let r = gw.client.get(format!("http://{addr}{path}")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    gw.stop().await;
    // The listener is closed with the gateway.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the metrics listener outlived the gateway");
    db.cleanup().await;
}
