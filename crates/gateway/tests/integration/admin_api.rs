//! Admin API: validation (400/404/409 with clear messages, nothing changed),
//! auth, audit and the OpenAPI document.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use sheepdog_testkit::*;

#[tokio::test]
async fn admin_api_validates_and_changes_nothing_on_error() {
    on_both(|db| async move {
        let gw = TestGateway::start(db).await;
        // Auth.
        let r = gw.client.get(format!("{}/admin/v1/tenants", gw.url)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = gw.client.get(format!("{}/admin/v1/tenants", gw.url)).bearer_auth("wrong").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

        // Create with every field.
        let id = uuid::Uuid::new_v4().to_string();
        let (s, t) = gw
            .admin(
                Method::POST,
                "/admin/v1/tenants",
                Some(json!({
                "name": "Acme", "tier": "dedicated", "id": id, "aliases": ["acme", "acme-eu"],
                "limits": {"requests_per_minute": 60, "tokens_per_minute": 100000, "max_concurrency": 4},
                "budget": {"monthly_limit_usd": "250.5", "hard": true}})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{t}");
        assert_eq!(t["id"], id.as_str());
        assert_eq!(t["tier"], "dedicated");
        assert_eq!(t["status"], "active");
        assert_eq!(t["limits"], json!({"requests_per_minute": 60, "tokens_per_minute": 100000, "max_concurrency": 4}));
        assert_eq!(t["budget"], json!({"monthly_limit_usd": "250.500000000", "hard": true}));
        assert!(t["created_at"].as_str().unwrap().ends_with('Z'));
        let (s, d) =
            gw.admin(Method::POST, "/admin/v1/tenants", Some(json!({"name": "Defaults", "tier": "shared"}))).await;
        assert_eq!(s, StatusCode::CREATED);
        assert_eq!(d["limits"]["requests_per_minute"], 1000);
        assert_eq!(d["limits"]["tokens_per_minute"], 1000000);

        // Bad input → 400/404/409, nothing changed.
        let bad: Vec<(Method, String, Value, StatusCode, &str)> = vec![
            (
                Method::POST,
                "/admin/v1/tenants".into(),
                json!({"name": "x", "tier": "gold"}),
                StatusCode::BAD_REQUEST,
                "tier",
            ),
            (Method::POST, "/admin/v1/tenants".into(), json!({"tier": "shared"}), StatusCode::BAD_REQUEST, "name"),
            (
                Method::POST,
                "/admin/v1/tenants".into(),
                json!({"name": "x", "tier": "shared", "id": "123"}),
                StatusCode::BAD_REQUEST,
                "UUID v4",
            ),
            (
                Method::POST,
                "/admin/v1/tenants".into(),
                json!({"name": "x", "tier": "shared", "id": id}),
                StatusCode::CONFLICT,
                "already exists",
            ),
            (
                Method::POST,
                "/admin/v1/tenants".into(),
                json!({"name": "x", "tier": "shared", "aliases": ["acme"]}),
                StatusCode::CONFLICT,
                "acme",
            ),
            (
                Method::POST,
                "/admin/v1/tenants".into(),
                json!({"name": "x", "tier": "shared", "aliases": ["bad alias!"]}),
                StatusCode::BAD_REQUEST,
                "alias",
            ),
            (
                Method::POST,
                "/admin/v1/tenants".into(),
                json!({"name": "x", "tier": "shared", "colour": "red"}),
                StatusCode::BAD_REQUEST,
                "unknown field",
            ),
            (
                Method::PUT,
                format!("/admin/v1/tenants/{id}/limits"),
                json!({"requests_per_minute": -5, "tokens_per_minute": 10}),
                StatusCode::BAD_REQUEST,
                "-5",
            ),
            (
                Method::PUT,
                format!("/admin/v1/tenants/{id}/limits"),
                json!({"requests_per_minute": "fast", "tokens_per_minute": 10}),
                StatusCode::BAD_REQUEST,
                "invalid type",
            ),
            (
                Method::PUT,
                format!("/admin/v1/tenants/{id}/limits"),
                json!({"requests_per_minute": 0, "tokens_per_minute": 10}),
                StatusCode::BAD_REQUEST,
                "at least 1",
            ),
            (
                Method::PUT,
                "/admin/v1/tenants/no-such-tenant/limits".into(),
                json!({"requests_per_minute": 5, "tokens_per_minute": 10}),
                StatusCode::NOT_FOUND,
                "no-such-tenant",
            ),
            (
                Method::PUT,
                format!("/admin/v1/tenants/{id}/budget"),
                json!({"monthly_limit_usd": -1, "hard": true}),
                StatusCode::BAD_REQUEST,
                "negative",
            ),
            (
                Method::PUT,
                format!("/admin/v1/tenants/{id}/budget"),
                json!({"monthly_limit_usd": "1.0000000001", "hard": true}),
                StatusCode::BAD_REQUEST,
                "decimal places",
            ),
            (
                Method::PUT,
                format!("/admin/v1/tenants/{id}/budget"),
                json!({"monthly_limit_usd": 5}),
                StatusCode::BAD_REQUEST,
                "hard",
            ),
            (
                Method::PATCH,
                format!("/admin/v1/tenants/{id}"),
                json!({"status": "deleted"}),
                StatusCode::BAD_REQUEST,
                "status",
            ),
            (
                Method::PATCH,
                format!("/admin/v1/tenants/{id}"),
                json!({"allowed_models": ["gpt-9"]}),
                StatusCode::BAD_REQUEST,
                "gpt-9",
            ),
            (
                Method::POST,
                "/admin/v1/keys".into(),
                json!({"scope": "tenant", "tenants": "*"}),
                StatusCode::BAD_REQUEST,
                "platform",
            ),
            (
                Method::POST,
                "/admin/v1/keys".into(),
                json!({"scope": "platform", "tenants": ["nobody"]}),
                StatusCode::BAD_REQUEST,
                "nobody",
            ),
            (Method::POST, "/admin/v1/tenants/nobody/keys".into(), json!({}), StatusCode::NOT_FOUND, "nobody"),
            (Method::DELETE, "/admin/v1/keys/key_nope".into(), Value::Null, StatusCode::NOT_FOUND, "key_nope"),
            (Method::GET, "/admin/v1/usage?group_by=planet".into(), Value::Null, StatusCode::BAD_REQUEST, "group_by"),
            (Method::GET, "/admin/v1/usage?from=yesterday".into(), Value::Null, StatusCode::BAD_REQUEST, "RFC 3339"),
            (
                Method::GET,
                format!("/admin/v1/tenants/{id}/metrics?period=forever"),
                Value::Null,
                StatusCode::BAD_REQUEST,
                "period",
            ),
            (
                Method::GET,
                format!("/admin/v1/tenants/{id}/metrics?granularity=1m"),
                Value::Null,
                StatusCode::BAD_REQUEST,
                "granularity",
            ),
        ];
        for (method, path, body, status, text) in bad {
            let body = (!body.is_null()).then_some(body);
            let (s, v) = gw.admin(method.clone(), &path, body).await;
            assert_eq!(s, status, "{db:?} {method} {path}: {v}");
            let msg = v["error"]["message"].as_str().unwrap_or("");
            assert!(msg.contains(text), "{method} {path}: {msg:?} should mention {text:?}");
        }
        let (_, after) = gw.admin(Method::GET, &format!("/admin/v1/tenants/{id}"), None).await;
        assert_eq!(after, t, "a refused change changed nothing");
        let (_, list) = gw.admin(Method::GET, "/admin/v1/tenants", None).await;
        assert_eq!(list["data"].as_array().unwrap().len(), 2);

        // Valid changes, by id and by alias.
        let (s, t2) = gw
            .admin(
                Method::PUT,
                "/admin/v1/tenants/acme-eu/limits",
                Some(json!({"requests_per_minute": 5, "tokens_per_minute": 10})),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(t2["limits"], json!({"requests_per_minute": 5, "tokens_per_minute": 10, "max_concurrency": null}));
        let (s, t3) = gw
            .admin(
                Method::PUT,
                &format!("/admin/v1/tenants/{id}/budget"),
                Some(json!({"monthly_limit_usd": 0.1, "hard": false})),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(t3["budget"], json!({"monthly_limit_usd": "0.100000000", "hard": false}));
        let (_, t4) = gw
            .admin(
                Method::PATCH,
                &format!("/admin/v1/tenants/{id}"),
                Some(json!({"name": "Acme Corp", "tier": "pooled", "aliases": ["acme"]})),
            )
            .await;
        assert_eq!(
            (t4["name"].as_str(), t4["tier"].as_str(), t4["aliases"].clone()),
            (Some("Acme Corp"), Some("pooled"), json!(["acme"]))
        );

        // Every change is in the audit log with before → after.
        let (_, audit) = gw.admin(Method::GET, "/admin/v1/audit?limit=10", None).await;
        let first = &audit["data"][0];
        assert_eq!(first["action"], "tenant.update");
        assert_eq!(first["before"]["name"], "Acme");
        assert_eq!(first["after"]["name"], "Acme Corp");
        gw.stop().await;
    })
    .await;
}

#[tokio::test]
async fn openapi_document_lists_the_admin_api() {
    let gw = TestGateway::start(Db::Sqlite).await;
    let (s, doc) = gw.admin(Method::GET, "/admin/v1/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/admin/v1/tenants",
        "/admin/v1/tenants/{id}",
        "/admin/v1/tenants/{id}/limits",
        "/admin/v1/tenants/{id}/budget",
        "/admin/v1/tenants/{id}/keys",
        "/admin/v1/keys",
        "/admin/v1/keys/{key_id}",
        "/admin/v1/tenants/{id}/metrics",
        "/admin/v1/usage",
        "/admin/v1/auth/verify",
        "/admin/v1/admin-tokens/rotate",
    ] {
        assert!(paths.contains_key(p), "{p} missing from the OpenAPI document");
    }
    let verify = doc["paths"]["/admin/v1/auth/verify"]["post"]["description"].as_str().unwrap();
    assert!(verify.contains("before its password is hashed") && verify.contains("Retry-After"), "{verify}");
    // With an environment token (as here) rotation is refused and changes nothing.
    let (s, body) = gw.admin(Method::POST, "/admin/v1/admin-tokens/rotate", None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("SHEEPDOG_ADMIN_TOKEN"), "{body}");
    assert_eq!(gw.admin(Method::GET, "/admin/v1/tenants", None).await.0, StatusCode::OK);
    assert!(doc["components"]["schemas"]["Tenant"].is_object());
    gw.stop().await;
}
