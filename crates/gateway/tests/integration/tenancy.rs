//! Keys, tenants and the SPEC §3 headers.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use sheepdog_testkit::*;

#[allow(clippy::unwrap_used)]
async fn code(resp: reqwest::Response) -> (StatusCode, String) {
    let status = resp.status();
    let v: Value = resp.json().await.unwrap();
    (status, v["error"]["code"].as_str().unwrap_or("").to_string())
}

#[tokio::test]
async fn keys_tenants_and_headers() {
    let gw = TestGateway::start(Db::Sqlite).await;
    let (t1, k1) = gw.tenant_with_key("one").await;
    let (t2, _k2) = gw.tenant_with_key("two").await;
    let body = chat_body("gpt-4.1", "hello");

    // No key, unknown key, malformed header.
    let r = gw.client.post(format!("{}/v1/chat/completions", gw.url)).json(&body).send().await.unwrap();
    assert_eq!(code(r).await, (StatusCode::UNAUTHORIZED, "invalid_api_key".into()));
    let r = gw.chat("sk-sd-unknown").json(&body).send().await.unwrap();
    assert_eq!(code(r).await, (StatusCode::UNAUTHORIZED, "invalid_api_key".into()));

    // Tenant key: works alone, with its own id, refuses another tenant and junk.
    let r = gw.chat(&k1).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-sheepdog-provider"], "simulated");
    assert_eq!(r.headers()["x-sheepdog-model"], "gpt-4.1");
    assert_eq!(r.headers()["x-request-id"].to_str().unwrap().len(), 36);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["system_fingerprint"], "sheepdog-simulated");
    assert!(v["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let r = gw.chat(&k1).header("X-Tenant-ID", &t1).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = gw.chat(&k1).header("X-Tenant-ID", &t2).json(&body).send().await.unwrap();
    assert_eq!(code(r).await, (StatusCode::FORBIDDEN, "tenant_mismatch".into()));
    let r = gw.chat(&k1).header("X-Tenant-ID", "tenant-one-please").json(&body).send().await.unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!((status, v["error"]["code"].as_str().unwrap()), (StatusCode::FORBIDDEN, "invalid_tenant_id"));
    assert!(v["error"]["message"].as_str().unwrap().contains("UUID v4"));
    assert_eq!(v["error"]["param"], "X-Tenant-ID");

    // X-Request-ID echoed.
    let r = gw.chat(&k1).header("X-Request-ID", "req-42").json(&body).send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "req-42");

    // Platform keys: need a tenant, accept id or alias, respect their tenant list.
    let (s, _) = gw.admin(Method::PATCH, &format!("/admin/v1/tenants/{t1}"), Some(json!({"aliases": ["acme"]}))).await;
    assert_eq!(s, StatusCode::OK);
    let (s, p) = gw
        .admin(Method::POST, "/admin/v1/keys", Some(json!({"scope": "platform", "tenants": "*", "name": "platform"})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let pk = p["key"].as_str().unwrap().to_string();
    let r = gw.chat(&pk).json(&body).send().await.unwrap();
    assert_eq!(code(r).await, (StatusCode::BAD_REQUEST, "tenant_required".into()));
    let r = gw.chat(&pk).header("X-Tenant-ID", "acme").json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = gw.chat(&pk).header("X-Tenant-ID", &t2).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (_, p2) = gw.admin(Method::POST, "/admin/v1/keys", Some(json!({"scope": "platform", "tenants": [t2]}))).await;
    let pk2 = p2["key"].as_str().unwrap().to_string();
    let r = gw.chat(&pk2).header("X-Tenant-ID", &t1).json(&body).send().await.unwrap();
    assert_eq!(code(r).await, (StatusCode::FORBIDDEN, "tenant_mismatch".into()));

    // /v1/models lists the price table for a tenant key.
    let r = gw.client.get(format!("{}/v1/models", gw.url)).bearer_auth(&k1).send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    let ids: Vec<_> = v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, vec!["gpt-4.1", "claude-sonnet-4.5", "gemini-2.5-flash", "deepseek-v3.2"]);

    // Unknown model, and a model the tenant may not use.
    let r = gw.chat(&k1).json(&chat_body("gpt-9", "x")).send().await.unwrap();
    assert_eq!(code(r).await, (StatusCode::NOT_FOUND, "model_not_found".into()));
    let (s, _) = gw
        .admin(Method::PATCH, &format!("/admin/v1/tenants/{t1}"), Some(json!({"allowed_models": ["deepseek-v3.2"]})))
        .await;
    assert_eq!(s, StatusCode::OK);
    let r = gw.chat(&k1).json(&body).send().await.unwrap();
    assert_eq!(code(r).await, (StatusCode::NOT_FOUND, "model_not_found".into()));
    let r = gw.client.get(format!("{}/v1/models", gw.url)).bearer_auth(&k1).send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 1);

    gw.stop().await;
}

#[tokio::test]
async fn suspension_and_revocation_take_effect_at_once() {
    let gw = TestGateway::start(Db::Sqlite).await;
    let (t1, k1) = gw.tenant_with_key("one").await;
    let body = chat_body("deepseek-v3.2", "hi");
    assert_eq!(gw.chat(&k1).json(&body).send().await.unwrap().status(), StatusCode::OK);

    let (s, t) =
        gw.admin(Method::PATCH, &format!("/admin/v1/tenants/{t1}"), Some(json!({"status": "suspended"}))).await;
    assert_eq!((s, t["status"].as_str().unwrap()), (StatusCode::OK, "suspended"));
    let r = gw.chat(&k1).json(&body).send().await.unwrap();
    assert_eq!(code(r).await, (StatusCode::FORBIDDEN, "tenant_suspended".into()));
    gw.admin(Method::PATCH, &format!("/admin/v1/tenants/{t1}"), Some(json!({"status": "active"}))).await;
    assert_eq!(gw.chat(&k1).json(&body).send().await.unwrap().status(), StatusCode::OK);

    // DELETE suspends, never deletes.
    let (s, t) = gw.admin(Method::DELETE, &format!("/admin/v1/tenants/{t1}"), None).await;
    assert_eq!((s, t["status"].as_str().unwrap()), (StatusCode::OK, "suspended"));
    let (s, _) = gw.admin(Method::GET, &format!("/admin/v1/tenants/{t1}"), None).await;
    assert_eq!(s, StatusCode::OK);
    gw.admin(Method::PATCH, &format!("/admin/v1/tenants/{t1}"), Some(json!({"status": "active"}))).await;

    // Revocation: refused at once, still listed as revoked, no secret in the listing.
    let (_, keys) = gw.admin(Method::GET, &format!("/admin/v1/tenants/{t1}/keys"), None).await;
    let key_id = keys["data"][0]["id"].as_str().unwrap().to_string();
    let (s, k) = gw.admin(Method::DELETE, &format!("/admin/v1/keys/{key_id}"), None).await;
    assert_eq!((s, k["status"].as_str().unwrap()), (StatusCode::OK, "revoked"));
    let r = gw.chat(&k1).json(&body).send().await.unwrap();
    assert_eq!(code(r).await, (StatusCode::UNAUTHORIZED, "invalid_api_key".into()));
    let (_, keys) = gw.admin(Method::GET, &format!("/admin/v1/tenants/{t1}/keys"), None).await;
    assert_eq!(keys["data"][0]["status"], "revoked");
    let listing = keys.to_string();
    assert!(!listing.contains(&k1) && !listing.contains("hash"), "{listing}");
    gw.stop().await;
}

#[tokio::test]
async fn revocation_reaches_other_replicas_within_a_second() {
    // Two gateways on one database: the second learns of the revocation by polling.
    let mut a = TestGateway::start(Db::Sqlite).await;
    let url = a.state.settings().database.url.clone();
    let b = TestGateway::start_with(Db::Sqlite, |c| c.database.url = url.clone()).await;
    let (t, k) = a.tenant_with_key("shared-db").await;
    let body = chat_body("deepseek-v3.2", "hi");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        if b.chat(&k).json(&body).send().await.unwrap().status() == StatusCode::OK {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "replica b never learned the new key");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (_, keys) = a.admin(Method::GET, &format!("/admin/v1/tenants/{t}/keys"), None).await;
    let key_id = keys["data"][0]["id"].as_str().unwrap().to_string();
    a.admin(Method::DELETE, &format!("/admin/v1/keys/{key_id}"), None).await;
    let revoked_at = std::time::Instant::now();
    loop {
        if b.chat(&k).json(&body).send().await.unwrap().status() == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(revoked_at.elapsed() < std::time::Duration::from_secs(1), "replica b still accepts a revoked key");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    b.stop().await;
    a.shutdown().await;
    a.stop().await;
}
