//! The admin API contract: every endpoint's answer is exactly the
//! `sheepdog_types` type the console reads it as. Each answer is read as
//! that type and written back; the JSON must come back identical, so a field
//! the gateway adds, renames or drops that the type does not have (or the
//! reverse) fails here instead of showing as zero in the console. The
//! request bodies are the console's typed ones, serialized.

#![allow(clippy::unwrap_used, clippy::panic)] // the helpers below are not #[test] fns

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use sheepdog_analyze::synth::{self, Generator, SynthConfig};
use sheepdog_types::*;

use sheepdog_testkit::*;

/// `value` read as `T` and written back is `value` again, field for field.
#[track_caller]
fn same<T: DeserializeOwned + Serialize>(what: &str, value: &Value) -> T {
    let typed: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{what}: the answer is not a {}: {e}\n{value:#}", std::any::type_name::<T>()));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(&back, value, "{what}: {} does not carry the answer's fields exactly", std::any::type_name::<T>());
    typed
}

/// Calls the admin API with a typed body (or none) and checks the answer is `T`.
async fn call<T: DeserializeOwned + Serialize>(
    gw: &TestGateway,
    method: Method,
    path: &str,
    body: Option<&impl Serialize>,
    status: StatusCode,
) -> T {
    let body = body.map(|b| serde_json::to_value(b).unwrap());
    let what = format!("{method} {path}");
    let (s, v) = gw.admin(method, &format!("/admin/v1{path}"), body).await;
    assert_eq!(s, status, "{what}: {v}");
    same(&what, &v)
}

const NO_BODY: Option<&()> = None;

#[tokio::test]
async fn every_admin_answer_is_exactly_its_contract_type() {
    let gw = TestGateway::start(Db::Sqlite).await;
    let (ok, created) = (StatusCode::OK, StatusCode::CREATED);

    // Tenants, with the console's typed bodies.
    let create = CreateTenant {
        name: "Contract Co".into(),
        tier: Tier::Pooled,
        aliases: Some(vec!["contract".into()]),
        limits: Some(LimitsInput { requests_per_minute: 600, tokens_per_minute: 90_000, max_concurrency: Some(4) }),
        budget: Some(BudgetInput { monthly_limit_usd: Some(json!("100")), hard: false }),
        signup_credit_usd: Some(json!("5")),
        ..CreateTenant::default()
    };
    let tenant: Tenant = call(&gw, Method::POST, "/tenants", Some(&create), created).await;
    assert_eq!((tenant.tier, tenant.limits.max_concurrency), (Tier::Pooled, Some(4)));
    let id = tenant.id.clone();
    let _: TenantList = call(&gw, Method::GET, "/tenants", NO_BODY, ok).await;
    let _: Tenant = call(&gw, Method::GET, "/tenants/contract", NO_BODY, ok).await;
    let patch = PatchTenant { name: Some("Contract Company".into()), ..PatchTenant::default() };
    let t: Tenant = call(&gw, Method::PATCH, &format!("/tenants/{id}"), Some(&patch), ok).await;
    assert_eq!(t.name, "Contract Company");
    let limits = LimitsInput { requests_per_minute: 700, tokens_per_minute: 100_000, max_concurrency: None };
    let _: Tenant = call(&gw, Method::PUT, &format!("/tenants/{id}/limits"), Some(&limits), ok).await;
    let budget = BudgetInput { monthly_limit_usd: Some(json!("250.5")), hard: true };
    let t: Tenant = call(&gw, Method::PUT, &format!("/tenants/{id}/budget"), Some(&budget), ok).await;
    assert_eq!(t.budget.monthly_limit_usd.as_deref(), Some("250.500000000"));

    // Keys.
    let key: KeyCreated = call(
        &gw,
        Method::POST,
        &format!("/tenants/{id}/keys"),
        Some(&CreateTenantKey { name: Some("first".into()) }),
        created,
    )
    .await;
    let platform =
        CreatePlatformKey { name: None, scope: "platform".into(), tenants: TenantsSelector::All("*".into()) };
    let pk: KeyCreated = call(&gw, Method::POST, "/keys", Some(&platform), created).await;
    let _: KeyList = call(&gw, Method::GET, &format!("/tenants/{id}/keys"), NO_BODY, ok).await;
    let _: KeyList = call(&gw, Method::GET, "/keys", NO_BODY, ok).await;
    let revoked: KeyInfo = call(&gw, Method::DELETE, &format!("/keys/{}", pk.id), NO_BODY, ok).await;
    assert_eq!(revoked.status, KeyStatus::Revoked);

    // Rollouts (the console's typed body), then traffic for the reports and the rollout.
    let ro = CreateRollout {
        model: "gpt-4.1".into(),
        to: RouteInput { provider: "simulated".into(), upstream_model: "gpt-4.1-next".into(), ..RouteInput::default() },
        ..CreateRollout::default()
    };
    let rollout: RolloutView = call(&gw, Method::POST, "/rollouts", Some(&ro), created).await;
    for i in 0..4 {
        let r = gw.chat(&key.key).json(&chat_body("gpt-4.1", &format!("contract {i}"))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let rid = rollout.id.clone();
    let _: RolloutList = call(&gw, Method::GET, "/rollouts", NO_BODY, ok).await;
    let _: RolloutReport = call(&gw, Method::GET, &format!("/rollouts/{rid}"), NO_BODY, ok).await;
    let _: SeriesView = call(&gw, Method::GET, &format!("/rollouts/{rid}/series"), NO_BODY, ok).await;
    let _: SampleList = call(&gw, Method::GET, &format!("/rollouts/{rid}/samples"), NO_BODY, ok).await;
    let advance = AdvanceInput { percent: None, reason: Some("contract".into()) };
    let v: RolloutView = call(&gw, Method::POST, &format!("/rollouts/{rid}/advance"), Some(&advance), ok).await;
    assert_eq!(v.phase, "canary");
    let reason = ReasonInput { reason: Some("contract".into()) };
    let v: RolloutView = call(&gw, Method::POST, &format!("/rollouts/{rid}/pause"), Some(&reason), ok).await;
    assert!(v.paused);
    let _: RolloutView = call(&gw, Method::POST, &format!("/rollouts/{rid}/resume"), Some(&reason), ok).await;
    let _: RolloutView = call(&gw, Method::POST, &format!("/rollouts/{rid}/rollback"), Some(&reason), ok).await;
    let events: EventList = call(&gw, Method::GET, &format!("/rollouts/{rid}/events"), NO_BODY, ok).await;
    assert!(events.data.len() >= 4, "{events:?}");
    let _: UpstreamList = call(&gw, Method::GET, "/upstreams", NO_BODY, ok).await;

    // Reports.
    let m: TenantMetrics = call(&gw, Method::GET, &format!("/tenants/{id}/metrics?period=24h"), NO_BODY, ok).await;
    assert!(m.buckets.iter().map(|b| b.request_count).sum::<u64>() >= 4);
    let u: UsageReport = call(&gw, Method::GET, "/usage", NO_BODY, ok).await;
    assert!(!u.data.is_empty());
    let _: UsageReport = call(&gw, Method::GET, "/usage?group_by=model", NO_BODY, ok).await;
    let from = &u.from;
    let to = &u.to;
    let s: UsageSeries =
        call(&gw, Method::GET, &format!("/usage/series?from={from}&to={to}&bucket=day"), NO_BODY, ok).await;
    assert!(!s.series.is_empty());
    for top in [1, 2] {
        let q = format!("/usage/series?from={from}&to={to}&bucket=day&top={top}");
        let cut: UsageSeries = call(&gw, Method::GET, &q, NO_BODY, ok).await;
        assert_eq!(cut, s.clone().keep_top(top), "top={top}");
    }
    let o: Overview = call(&gw, Method::GET, "/overview", NO_BODY, ok).await;
    assert!(!o.top_tenants.is_empty() && !o.upstreams.is_empty());
    assert_eq!((o.bucket.as_str(), o.hourly.len()), ("hour", 24));
    // A fixed window beyond 48 hours: daily buckets, the same totals.
    let month: Overview = call(&gw, Method::GET, &format!("/overview?from={from}&to={to}"), NO_BODY, ok).await;
    assert_eq!(month.bucket, "day");
    assert_eq!((month.from.as_str(), month.to.as_str()), (from.as_str(), to.as_str()));
    assert!((28..=31).contains(&month.hourly.len()), "{}", month.hourly.len());
    assert_eq!(month.requests, o.requests);
    assert_eq!(month.hourly.iter().map(|b| b.requests).sum::<u64>(), month.requests);
    assert_eq!(month.hourly.iter().map(|b| b.cost_nanos).sum::<i64>(), month.cost_nanos);
    assert_eq!(month.cost_nanos, o.cost_nanos);
    for bad in ["/overview?from=yesterday", "/overview?to=2026-01-01T00:00:00Z", "/overview?from=2020-01-01T00:00:00Z"]
    {
        let (s, v) = gw.admin(Method::GET, &format!("/admin/v1{bad}"), None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }
    let audit: AuditList = call(&gw, Method::GET, "/audit", NO_BODY, ok).await;
    assert!(audit.data.iter().any(|e| e.before.is_some() && e.after.is_some()));

    // Pools.
    let pool: Pool =
        call(&gw, Method::POST, "/pools", Some(&CreatePool { name: "shared credit".into(), hard: None }), created)
            .await;
    let _: PoolList = call(&gw, Method::GET, "/pools", NO_BODY, ok).await;
    let _: Pool = call(&gw, Method::GET, &format!("/pools/{}", pool.id), NO_BODY, ok).await;
    let credit = CreditInput {
        amount_usd: json!("25"),
        kind: CreditKind::Grant,
        note: Some("contract".into()),
        tenant_id: None,
    };
    let _: PoolLedgerEntry =
        call(&gw, Method::POST, &format!("/pools/{}/credits", pool.id), Some(&credit), created).await;
    let tenant_pool = t.pool_id.clone().unwrap();
    let ledger: LedgerList = call(&gw, Method::GET, &format!("/pools/{tenant_pool}/ledger"), NO_BODY, ok).await;
    assert!(ledger.data.iter().any(|e| e.kind == "usage") && ledger.data.iter().any(|e| e.kind == "signup"));

    // Users and sign-in (password bodies are never serializable types: JSON).
    let body = json!({"email": "ops@contract.test", "role": "operator", "password": "a long enough password"});
    let (s, v) = gw.admin(Method::POST, "/admin/v1/users", Some(body)).await;
    assert_eq!(s, created, "{v}");
    let user: ConsoleUser = same("POST /users", &v);
    let _: UserList = call(&gw, Method::GET, "/users", NO_BODY, ok).await;
    let _: ConsoleUser = call(&gw, Method::GET, &format!("/users/{}", user.id), NO_BODY, ok).await;
    let patch = PatchUserRequest { disabled: Some(false), role: Some(Role::Viewer) };
    let _: ConsoleUser = call(&gw, Method::PATCH, &format!("/users/{}", user.id), Some(&patch), ok).await;
    let body = json!({"email": "ops@contract.test", "password": "a long enough password", "client_ip": "192.0.2.1"});
    let (s, v) = gw.admin(Method::POST, "/admin/v1/auth/verify", Some(body)).await;
    assert_eq!(s, ok, "{v}");
    let _: ConsoleUser = same("POST /auth/verify", &v);

    // Errors.
    let _: ErrorBody = call(&gw, Method::GET, "/tenants/no-such-tenant", NO_BODY, StatusCode::NOT_FOUND).await;
    let _: ErrorBody = call(&gw, Method::POST, "/tenants", Some(&json!({"name": "x"})), StatusCode::BAD_REQUEST).await;
    let _: ErrorBody = call(&gw, Method::POST, "/admin-tokens/rotate", NO_BODY, StatusCode::CONFLICT).await;

    // The analysis of an uploaded log: the whole report.
    let mut log = Vec::new();
    let cfg = SynthConfig { tenants: 3, mean_gap_ms: 200, jitter_ms: 1_000, ..SynthConfig::default() };
    for (i, r) in Generator::new(cfg).take(300).enumerate() {
        synth::write_jsonl(&mut log, &r, "prompt", "Done.", i as u64).unwrap();
    }
    let resp = gw
        .client
        .post(format!("{}/admin/v1/analyses?map=gpt-4.1%3Ddeepseek-v3.2", gw.url))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/octet-stream")
        .body(log)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), ok);
    let v: Value = resp.json().await.unwrap();
    let a: AnalysisResponse = same("POST /analyses", &v);
    assert_eq!(a.report.tenants.len(), 3);
    assert!(a.report.tenants.iter().all(|t| !t.models.is_empty()));

    gw.stop().await;
}

/// The console's request bodies are accepted as they serialize: the
/// gateway denies unknown fields, so a renamed field is a 400 here.
#[test]
fn typed_request_bodies_read_back_as_themselves() {
    let full = CreateTenant {
        name: "n".into(),
        tier: Tier::Dedicated,
        id: Some("0b7c1a8e-1111-4aaa-8bbb-000000000001".into()),
        aliases: Some(vec!["a".into()]),
        limits: Some(LimitsInput::default()),
        budget: Some(BudgetInput::default()),
        allowed_models: Some(vec![]),
        pool_id: Some("p".into()),
        signup_credit_usd: Some(json!("1")),
    };
    let v = serde_json::to_value(&full).unwrap();
    assert_eq!(same::<CreateTenant>("CreateTenant", &v), full);
    let ro = CreateRollout {
        model: "m".into(),
        plan: Some(PlanInput::default()),
        guard: Some(GuardInput::default()),
        ..CreateRollout::default()
    };
    let v = serde_json::to_value(&ro).unwrap();
    assert_eq!(same::<CreateRollout>("CreateRollout", &v), ro);
}
