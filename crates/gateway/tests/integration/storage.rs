//! Storage on SQLite and Postgres: migrations, tenants, aliases, keys,
//! usage batches and additive hourly buckets.

use std::collections::BTreeMap;

use sheepdog_gateway::store::{HourlyDelta, KeyRow, Store, StoreError, TenantRow, UsageGroup, UsageRecord};

use sheepdog_testkit::*;
use sheepdog_types::{TenantStatus, Tier};

fn tenant(id: &str, aliases: &[&str]) -> TenantRow {
    TenantRow {
        id: id.into(),
        name: format!("tenant {id}"),
        tier: Tier::Shared,
        status: TenantStatus::Active,
        requests_per_minute: 1000,
        tokens_per_minute: 1_000_000,
        max_concurrency: None,
        budget_monthly_nanos: Some(5_000_000_000),
        budget_hard: true,
        allowed_models: Some(vec!["gpt-4.1".into()]),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        created_at: "2026-11-25T10:00:00.000Z".into(),
        pool_id: None,
    }
}

fn record(tenant: &str, ms: i64, cost: i64, center: Option<&str>) -> UsageRecord {
    UsageRecord {
        id: uuid::Uuid::new_v4().to_string(),
        request_id: "r".into(),
        tenant_id: tenant.into(),
        key_id: Some("k".into()),
        cost_center: center.map(str::to_string),
        model_requested: "gpt-4.1".into(),
        model_served: Some("gpt-4.1".into()),
        provider: Some("openai".into()),
        input_tokens: 10,
        output_tokens: 5,
        cached_tokens: 0,
        cost_nanos: cost,
        latency_ms: 42,
        ttft_ms: None,
        status_code: 200,
        outcome: "ok".into(),
        error_code: None,
        stream: false,
        created_ms: ms,
        pool_id: None,
        ingress: "chat".into(),
    }
}

/// The migrations older than `version`: a database as it was before that one.
fn migrations_before(version: i64) -> sqlx::migrate::Migrator {
    sqlx::migrate::Migrator {
        migrations: sheepdog_gateway::store::MIGRATOR
            .migrations
            .iter()
            .filter(|m| m.version < version)
            .cloned()
            .collect::<Vec<_>>()
            .into(),
        ..sqlx::migrate::Migrator::DEFAULT
    }
}

#[tokio::test]
async fn storage_round_trips_on_both_databases() {
    on_both(|db| async move {
        let test_db = TestDb::new(db).await;
        let store = Store::connect_url(&test_db.url, 4).await.unwrap();
        store.migrate().await.unwrap();
        store.migrate().await.unwrap(); // idempotent

        let a = uuid::Uuid::new_v4().to_string();
        let b = uuid::Uuid::new_v4().to_string();
        let v0 = store.catalog_version().await.unwrap();
        store.insert_tenant(&tenant(&a, &["alpha", "alpha-2"])).await.unwrap();
        assert!(store.catalog_version().await.unwrap() > v0);
        assert!(matches!(store.insert_tenant(&tenant(&a, &[])).await, Err(StoreError::Conflict(_))));
        assert!(matches!(store.insert_tenant(&tenant(&b, &["alpha"])).await, Err(StoreError::Conflict(_))));
        assert!(store.get_tenant(&b).await.unwrap().is_none(), "{db:?}: refused insert left nothing behind");
        store.insert_tenant(&tenant(&b, &[])).await.unwrap();
        let got = store.get_tenant(&a).await.unwrap().unwrap();
        assert_eq!(got, tenant(&a, &["alpha", "alpha-2"]));
        assert_eq!(store.tenant_id_for_alias("alpha-2").await.unwrap().as_deref(), Some(a.as_str()));
        let mut changed = got.clone();
        changed.status = TenantStatus::Suspended;
        changed.aliases = vec!["alpha".into()];
        changed.budget_monthly_nanos = None;
        store.update_tenant(&changed).await.unwrap();
        assert_eq!(store.get_tenant(&a).await.unwrap().unwrap(), changed);
        assert_eq!(store.list_tenants().await.unwrap().len(), 2);

        let key = KeyRow {
            id: "key_1".into(),
            name: Some("ci".into()),
            prefix: "sk-sd-abcdef".into(),
            key_hash: "00".repeat(32),
            scope: "platform".into(),
            tenant_id: None,
            tenants: Some(vec![a.clone()]),
            created_at: "2026-11-25T10:00:00.000Z".into(),
            revoked_at: None,
        };
        store.insert_key(&key).await.unwrap();
        assert!(matches!(store.insert_key(&key).await, Err(StoreError::Conflict(_))));
        let revoked = store.revoke_key("key_1", "2026-11-25T11:00:00.000Z").await.unwrap().unwrap();
        assert_eq!(revoked.revoked_at.as_deref(), Some("2026-11-25T11:00:00.000Z"));
        assert_eq!(store.list_keys(None).await.unwrap()[0].tenants, Some(vec![a.clone()]));
        assert!(store.revoke_key("nope", "x").await.unwrap().is_none());

        // Usage: two batches into the same hour add up.
        let hour = 1_764_064_800_000i64; // 2025-11-25T10:00:00Z
        let recs = vec![
            record(&a, hour + 1, 7, Some("search")),
            record(&a, hour + 2, 11, None),
            UsageRecord { ingress: "messages".into(), ..record(&b, hour + 3, 13, Some("search")) },
        ];
        let mut hourly = BTreeMap::new();
        hourly.insert(
            (a.clone(), hour),
            HourlyDelta {
                request_count: 2,
                latency_sum_ms: 84,
                cost_nanos: 18,
                latency: [(42, 2)].into(),
                ..Default::default()
            },
        );
        store.write_usage_batch(&recs, &hourly).await.unwrap();
        let mut hourly2 = BTreeMap::new();
        hourly2.insert(
            (a.clone(), hour),
            HourlyDelta {
                request_count: 1,
                error_count: 1,
                rate_limit_hits: 3,
                cost_nanos: 5,
                latency: [(42, 1), (120, 1)].into(),
                ..Default::default()
            },
        );
        store.write_usage_batch(&[], &hourly2).await.unwrap();
        let rows = store.hourly(&a, hour, hour + 3_600_000).await.unwrap();
        assert_eq!(rows.len(), 1);
        let d = &rows[0].delta;
        assert_eq!((d.request_count, d.error_count, d.rate_limit_hits, d.cost_nanos), (3, 1, 3, 23));
        assert_eq!(d.latency, [(42, 3), (120, 1)].into());
        // The totals over every tenant (one row per hour) follow, in the same transactions.
        let mut other = BTreeMap::new();
        other.insert(
            (b.clone(), hour),
            HourlyDelta { request_count: 4, cost_nanos: 100, latency: [(42, 4)].into(), ..Default::default() },
        );
        store.write_usage_batch(&[], &other).await.unwrap();
        let all = store.hourly_all(hour, hour + 3_600_000).await.unwrap();
        let t = &all[&hour];
        assert_eq!((t.request_count, t.error_count, t.rate_limit_hits, t.cost_nanos), (7, 1, 3, 123), "{db:?}");
        assert_eq!(t.latency, [(42, 7), (120, 1)].into(), "{db:?}");
        assert!(store.hourly_all(hour + 3_600_000, hour + 7_200_000).await.unwrap().is_empty());

        let by_center = store.usage(UsageGroup::CostCenter, hour, hour + 10, None).await.unwrap();
        let keys: Vec<_> = by_center.iter().map(|r| (r.key.as_str(), r.requests, r.cost_nanos)).collect();
        assert_eq!(keys, vec![("(none)", 1, 11), ("search", 2, 20)], "{db:?}");
        let by_day = store.usage(UsageGroup::Day, hour, hour + 10, Some(&a)).await.unwrap();
        assert_eq!((by_day[0].key.as_str(), by_day[0].cost_nanos), ("2025-11-25", 18));
        let by_tenant = store.usage(UsageGroup::Tenant, hour, hour + 10, None).await.unwrap();
        assert_eq!(by_tenant.len(), 2);
        assert_eq!(store.usage(UsageGroup::Model, hour + 10, hour + 20, None).await.unwrap(), vec![]);
        let by_ingress = store.usage(UsageGroup::Ingress, hour, hour + 10, None).await.unwrap();
        let keys: Vec<_> = by_ingress.iter().map(|r| (r.key.as_str(), r.requests, r.cost_nanos)).collect();
        assert_eq!(keys, vec![("chat", 2, 18), ("messages", 1, 13)], "{db:?}");
        assert_eq!(store.usage_records(&b).await.unwrap()[0].ingress, "messages");
        assert_eq!(store.usage_records(&a).await.unwrap().len(), 2);

        // Settings insert-if-absent is first-writer-wins.
        assert!(store.insert_setting_if_absent("x", "1").await.unwrap());
        assert!(!store.insert_setting_if_absent("x", "2").await.unwrap());
        assert_eq!(store.get_setting("x").await.unwrap().as_deref(), Some("1"));
        store.close().await;
        test_db.cleanup().await;
    })
    .await;
}

/// Writers that read before they write (insert_tenant checks for a
/// duplicate first) must wait for one another, not fail: on SQLite a
/// deferred transaction whose snapshot went stale fails at once with
/// SQLITE_BUSY_SNAPSHOT, which `Store::begin_write` avoids.
#[tokio::test]
async fn concurrent_read_then_write_transactions_all_succeed_on_both_databases() {
    on_both(|db| async move {
        let test_db = TestDb::new(db).await;
        let store = Store::connect_url(&test_db.url, 4).await.unwrap();
        store.migrate().await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..40 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let id = format!("00000000-0000-4000-8000-{i:012}");
                store.insert_tenant(&tenant(&id, &[&format!("alias-{i}")])).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(store.list_tenants().await.unwrap().len(), 40);
        store.close().await;
        test_db.cleanup().await;
    })
    .await;
}

/// The migration that narrowed `usage_records` (composite primary key, no
/// stored `created_at`) copies every row of a database written before it,
/// column for column, on both databases.
#[tokio::test]
async fn usage_records_survive_the_narrowing_migration() {
    on_both(|db| async move {
        let test_db = TestDb::new(db).await;
        let store = Store::connect_url(&test_db.url, 2).await.unwrap();
        let narrowing = 20261126000004;
        let before = migrations_before(narrowing);
        before.run(store.pool()).await.unwrap();
        let old_row = |id: &str, ms: i64, cost: i64, center: Option<&str>, ttft: Option<i64>| {
            sqlx::query(
                "INSERT INTO usage_records (id, request_id, tenant_id, key_id, cost_center, model_requested, model_served, \
                 provider, input_tokens, output_tokens, cached_tokens, cost_nanos, latency_ms, ttft_ms, status_code, outcome, \
                 error_code, stream, created_at, created_ms, pool_id) \
                 VALUES ($1, 'req', 'tenant-a', 'key', $2, 'gpt-4.1', NULL, 'openai', 10, 5, 2, $3, 42, $4, 502, \
                 'upstream_error', 'upstream_error', 1, $5, $6, 'pool')",
            )
            .bind(id.to_string())
            .bind(center.map(str::to_string))
            .bind(cost)
            .bind(ttft)
            .bind(sheepdog_gateway::time::ms_to_rfc3339(ms))
            .bind(ms)
        };
        let hour = 1_764_064_800_000i64;
        old_row("0193a000-0000-7000-8000-000000000002", hour + 5, 11, None, Some(3)).execute(store.pool()).await.unwrap();
        old_row("0193a000-0000-7000-8000-000000000001", hour + 1, 7, Some("search"), None)
            .execute(store.pool())
            .await
            .unwrap();
        store.migrate().await.unwrap();

        let got = store.usage_records("tenant-a").await.unwrap();
        let want = |id: &str, ms: i64, cost: i64, center: Option<&str>, ttft: Option<i64>| UsageRecord {
            id: id.into(),
            request_id: "req".into(),
            tenant_id: "tenant-a".into(),
            key_id: Some("key".into()),
            cost_center: center.map(str::to_string),
            model_requested: "gpt-4.1".into(),
            model_served: None,
            provider: Some("openai".into()),
            input_tokens: 10,
            output_tokens: 5,
            cached_tokens: 2,
            cost_nanos: cost,
            latency_ms: 42,
            ttft_ms: ttft,
            status_code: 502,
            outcome: "upstream_error".into(),
            error_code: Some("upstream_error".into()),
            stream: true,
            created_ms: ms,
            pool_id: Some("pool".into()),
            // Rows from before the column existed were Chat Completions.
            ingress: "chat".into(),
        };
        assert_eq!(
            got,
            vec![
                want("0193a000-0000-7000-8000-000000000001", hour + 1, 7, Some("search"), None),
                want("0193a000-0000-7000-8000-000000000002", hour + 5, 11, None, Some(3)),
            ],
            "{db:?}"
        );
        // The days are still grouped by the date of `created_ms`.
        let by_day = store.usage(UsageGroup::Day, hour, hour + 10, None).await.unwrap();
        let days: Vec<_> = by_day.iter().map(|r| (r.key.as_str(), r.requests, r.cost_nanos)).collect();
        assert_eq!(days, vec![("2025-11-25", 2, 18)], "{db:?}");
        // New rows go in beside the copied ones; the same (tenant, time, id) twice is refused.
        let again = record("tenant-a", hour + 1, 1, None);
        store.write_usage_batch(std::slice::from_ref(&again), &BTreeMap::new()).await.unwrap();
        assert_eq!(store.usage_records("tenant-a").await.unwrap().len(), 3);
        assert!(store.write_usage_batch(&[again], &BTreeMap::new()).await.is_err(), "{db:?}");
        store.close().await;
        test_db.cleanup().await;
    })
    .await;
}

#[tokio::test]
async fn replica_heartbeats_on_both_databases() {
    use sheepdog_gateway::store::replicas::ReplicaRow;
    on_both(|db| async move {
        let test_db = TestDb::new(db).await;
        let store = Store::connect_url(&test_db.url, 4).await.unwrap();
        store.migrate().await.unwrap();
        let row = |id: &str, seen: i64, in_flight: i64| ReplicaRow {
            id: id.into(),
            version: "0.1.0".into(),
            started_at: "2026-12-04T10:00:00.000Z".into(),
            last_seen_ms: seen,
            in_flight,
        };
        let now = 1_780_000_000_000i64;
        store.heartbeat(&row("a", now - 20_000, 1)).await.unwrap();
        store.heartbeat(&row("b", now - 1_000, 2)).await.unwrap();
        // A second heartbeat rewrites the row (the start time stays).
        let mut again = row("a", now, 5);
        again.started_at = "2030-01-01T00:00:00.000Z".into();
        store.heartbeat(&again).await.unwrap();
        let live = store.live_replicas(now - 10_000).await.unwrap();
        assert_eq!(live, vec![row("a", now, 5), row("b", now - 1_000, 2)], "{db:?}");
        assert_eq!(store.live_replicas(now - 500).await.unwrap().len(), 1);
        // Replicas gone for a day are forgotten by the next heartbeat.
        store.heartbeat(&row("c", now + 2 * 24 * 3600 * 1000, 0)).await.unwrap();
        assert_eq!(store.live_replicas(0).await.unwrap().len(), 1, "{db:?}");
        store.forget_replica("c").await.unwrap();
        assert!(store.live_replicas(0).await.unwrap().is_empty());
    })
    .await;
}

/// The console's lists page and filter in the database, the same on both:
/// tenants by name/alias/id prefix, tier and status; users by e-mail and
/// role; a tenant's keys newest first; the audit log with an offset.
#[tokio::test]
async fn lists_page_and_filter_on_both_databases() {
    use sheepdog_gateway::store::console::{AuditFilter, TenantFilter, UserFilter};
    use sheepdog_gateway::store::{AuditEntry, UserRow};
    on_both(|db| async move {
        let test_db = TestDb::new(db).await;
        let store = Store::connect_url(&test_db.url, 4).await.unwrap();
        store.migrate().await.unwrap();
        for i in 0..25 {
            let id = format!("00000000-0000-4000-8000-{i:012}");
            let mut t = tenant(&id, &[&format!("alias-{i}")]);
            t.name = if i % 5 == 0 { format!("Zeta_{i:02}%") } else { format!("Acme {i:02}") };
            t.tier = if i % 2 == 0 { Tier::Pooled } else { Tier::Shared };
            if i == 3 {
                t.status = TenantStatus::Suspended;
            }
            store.insert_tenant(&t).await.unwrap();
        }
        let all = TenantFilter::default();
        let page = store.list_tenants_page(&all, 10, 0).await.unwrap();
        assert_eq!((page.rows.len(), page.total), (10, 25), "{db:?}");
        assert_eq!(page.rows[0].name, "Acme 01", "{db:?}: ordered by name");
        assert_eq!(page.rows[0].aliases, vec!["alias-1"], "{db:?}: with aliases");
        let last = store.list_tenants_page(&all, 10, 20).await.unwrap();
        assert_eq!((last.rows.len(), last.total), (5, 25));
        assert_eq!(last.rows[4].name, "Zeta_20%");
        let f = |q: &str| TenantFilter { q: Some(q.into()), ..TenantFilter::default() };
        // Case-insensitive substring of the name; wildcards are literal.
        assert_eq!(store.list_tenants_page(&f("ZETA"), 50, 0).await.unwrap().total, 5, "{db:?}");
        assert_eq!(store.list_tenants_page(&f("_10"), 50, 0).await.unwrap().total, 1, "{db:?}: only Zeta_10%");
        assert_eq!(store.list_tenants_page(&f("%"), 50, 0).await.unwrap().total, 5, "{db:?}");
        // An alias anywhere, an id as a prefix.
        let by_alias = store.list_tenants_page(&f("ALIAS-7"), 50, 0).await.unwrap();
        assert_eq!(by_alias.rows.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), vec!["Acme 07"], "{db:?}");
        assert_eq!(store.list_tenants_page(&f("00000000-0000-4000-8000-00000000002"), 50, 0).await.unwrap().total, 5);
        let pooled = TenantFilter { tier: Some(Tier::Pooled), ..TenantFilter::default() };
        assert_eq!(store.list_tenants_page(&pooled, 50, 0).await.unwrap().total, 13);
        let suspended = TenantFilter { status: Some(TenantStatus::Suspended), ..TenantFilter::default() };
        let s = store.list_tenants_page(&suspended, 50, 0).await.unwrap();
        assert_eq!((s.total, s.rows[0].name.as_str()), (1, "Acme 03"));

        // Users.
        for (i, role) in ["admin", "operator", "viewer", "viewer"].iter().enumerate() {
            let user = UserRow {
                id: uuid::Uuid::new_v4().to_string(),
                email: format!("user{i}@Example.test"),
                role: role.to_string(),
                tenant_id: None,
                password_hash: "x".into(),
                disabled: false,
                created_at: "2026-11-25T10:00:00.000Z".into(),
            };
            store.insert_user(&user).await.unwrap();
        }
        let viewers = UserFilter { role: Some(sheepdog_types::Role::Viewer), ..UserFilter::default() };
        let v = store.list_users_page(&viewers, 1, 1).await.unwrap();
        assert_eq!((v.total, v.rows.len(), v.rows[0].email.as_str()), (2, 1, "user3@Example.test"), "{db:?}");
        let by_mail = UserFilter { q: Some("USER1@".into()), ..UserFilter::default() };
        assert_eq!(store.list_users_page(&by_mail, 50, 0).await.unwrap().total, 1, "{db:?}");

        // Keys of one tenant, newest first.
        let owner = "00000000-0000-4000-8000-000000000001";
        for i in 0..7 {
            let key = KeyRow {
                id: format!("key-{i}"),
                name: Some(format!("k{i}")),
                prefix: "sk-sd-x".into(),
                key_hash: format!("hash-{i}"),
                scope: "tenant".into(),
                tenant_id: Some(owner.into()),
                tenants: None,
                created_at: format!("2026-11-25T10:00:0{i}.000Z"),
                revoked_at: None,
            };
            store.insert_key(&key).await.unwrap();
        }
        let keys = store.list_tenant_keys_page(owner, 3, 3).await.unwrap();
        assert_eq!(keys.total, 7);
        assert_eq!(keys.rows.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(), vec!["key-3", "key-2", "key-1"]);

        // The audit log: newest first, an offset, a count.
        for i in 0..12 {
            let e = AuditEntry {
                id: format!("audit-{i:02}"),
                at: format!("2026-11-25T10:00:{i:02}.000Z"),
                actor: "admin-token".into(),
                action: if i % 3 == 0 { "key.revoke".into() } else { "tenant.update".into() },
                target: "t".into(),
                before_json: None,
                after_json: None,
            };
            store.insert_audit(&e).await.unwrap();
        }
        let filter = AuditFilter { action: Some("tenant.".into()), limit: 3, offset: 3, ..AuditFilter::default() };
        let rows = store.list_audit_filtered(&filter).await.unwrap();
        assert_eq!(rows.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), vec!["audit-07", "audit-05", "audit-04"]);
        assert_eq!(store.count_audit_filtered(&filter).await.unwrap(), 8);
        store.close().await;
        test_db.cleanup().await;
    })
    .await;
}

/// The migration that adds the totals over every tenant fills them from the
/// per-tenant hours written before it, on both databases.
#[tokio::test]
async fn hourly_totals_are_filled_from_earlier_hours_by_their_migration() {
    on_both(|db| async move {
        let test_db = TestDb::new(db).await;
        let store = Store::connect_url(&test_db.url, 2).await.unwrap();
        let totals = 20261206000007;
        let before = migrations_before(totals);
        before.run(store.pool()).await.unwrap();
        let hour = 1_764_064_800_000i64;
        for (tenant, h, requests, cost) in [("a", hour, 2, 30), ("b", hour, 5, 12), ("a", hour + 3_600_000, 1, 4)] {
            sqlx::query(
                "INSERT INTO usage_hourly (tenant_id, hour_ms, request_count, error_count, rate_limit_hits, \
                 latency_sum_ms, input_tokens, output_tokens, cost_nanos) VALUES ($1, $2, $3, 1, 0, 10, 100, 50, $4)",
            )
            .bind(tenant)
            .bind(h)
            .bind(requests as i64)
            .bind(cost as i64)
            .execute(store.pool())
            .await
            .unwrap();
            sqlx::query("INSERT INTO usage_hourly_latency (tenant_id, hour_ms, bucket, count) VALUES ($1, $2, 42, $3)")
                .bind(tenant)
                .bind(h)
                .bind(requests as i64)
                .execute(store.pool())
                .await
                .unwrap();
        }
        store.migrate().await.unwrap();
        let all = store.hourly_all(hour, hour + 7_200_000).await.unwrap();
        assert_eq!(all.len(), 2, "{db:?}");
        let first = &all[&hour];
        assert_eq!((first.request_count, first.error_count, first.input_tokens, first.cost_nanos), (7, 2, 200, 42));
        assert_eq!(first.latency, [(42, 7)].into(), "{db:?}");
        assert_eq!(all[&(hour + 3_600_000)].cost_nanos, 4);
        store.close().await;
        test_db.cleanup().await;
    })
    .await;
}

/// Inserts usage record `old-{i}` at `ms` with SQL alone, as a database
/// migrated only part of the way holds it: tenants, models, cost centers and
/// client formats vary with `i`.
async fn insert_old_record(store: &Store, i: i64, ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO usage_records (id, request_id, tenant_id, key_id, cost_center, model_requested, model_served, \
         provider, input_tokens, output_tokens, cached_tokens, cost_nanos, latency_ms, ttft_ms, status_code, outcome, \
         error_code, stream, created_ms, pool_id, ingress) \
         VALUES ($1, 'req', $2, 'key', $3, $4, NULL, 'openai', 10, 5, 0, $5, 42, NULL, 200, 'ok', NULL, 0, $6, NULL, $7)",
    )
    .bind(format!("old-{i}"))
    .bind(if i % 2 == 0 { "tenant-a" } else { "tenant-b" })
    .bind(if i % 4 == 0 { None } else { Some("search".to_string()) })
    .bind(if i % 3 == 0 { "gpt-4.1" } else { "claude-sonnet-4.5" })
    .bind(100 + i)
    .bind(ms)
    .bind(if i % 2 == 0 { "chat" } else { "messages" })
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Across tenants, on whole hours, usage series by model, cost center,
/// client format and tenant read the hourly rollups; they hold exactly what
/// the records hold, for records written before their migration (filled by
/// it) and after (kept by the usage batch), on both databases.
#[tokio::test]
async fn hourly_rollups_equal_the_records_they_sum() {
    use sheepdog_gateway::store::console::SeriesCell;
    on_both(|db| async move {
        let test_db = TestDb::new(db).await;
        let store = Store::connect_url(&test_db.url, 2).await.unwrap();
        let rollups = 20261206000008;
        let before = migrations_before(rollups);
        before.run(store.pool()).await.unwrap();
        let hour = 1_764_064_800_000i64;
        for i in 0..9 {
            insert_old_record(&store, i, hour + i * 1_000_000).await.unwrap();
        }
        store.migrate().await.unwrap();
        // And some through the usage batch, after the migration.
        let recs: Vec<UsageRecord> = (0..5)
            .map(|i| UsageRecord {
                ingress: "embeddings".into(),
                ..record("tenant-c", hour + 3_600_000 + i, 1_000 + i, if i % 2 == 0 { Some("ops") } else { None })
            })
            .collect();
        let mut hourly = BTreeMap::new();
        hourly.insert(
            ("tenant-c".to_string(), hour + 3_600_000),
            HourlyDelta {
                request_count: 5,
                input_tokens: 50,
                output_tokens: 25,
                cost_nanos: (0..5).map(|i| 1_000 + i).sum(),
                ..Default::default()
            },
        );
        store.write_usage_batch(&recs, &hourly).await.unwrap();
        // The per-tenant hours of the records written before: as the writer would have.
        for (tenant, parity) in [("tenant-a", 0), ("tenant-b", 1)] {
            let mut deltas: BTreeMap<i64, HourlyDelta> = BTreeMap::new();
            for i in (0..9).filter(|i| i % 2 == parity) {
                let ms = hour + i * 1_000_000;
                let d = deltas.entry(ms - ms.rem_euclid(3_600_000)).or_default();
                d.request_count += 1;
                d.input_tokens += 10;
                d.output_tokens += 5;
                d.cost_nanos += 100 + i;
            }
            let map = deltas.into_iter().map(|(h, d)| ((tenant.to_string(), h), d)).collect();
            store.write_usage_batch(&[], &map).await.unwrap();
        }
        let sorted = |mut v: Vec<SeriesCell>| {
            v.sort_by(|a, b| (a.bucket_ms, &a.key).cmp(&(b.bucket_ms, &b.key)));
            v
        };
        let (from, to) = (hour - 3_600_000, hour + 5 * 3_600_000);
        for group in [UsageGroup::Model, UsageGroup::CostCenter, UsageGroup::Ingress, UsageGroup::Tenant] {
            for bucket in [3_600_000, 86_400_000] {
                // Whole hours: the rollups. One millisecond earlier: the records.
                let rolled = sorted(store.usage_cells(group, bucket, from, to, None).await.unwrap());
                let records = sorted(store.usage_cells(group, bucket, from - 1, to, None).await.unwrap());
                assert!(!rolled.is_empty(), "{db:?} {group:?}");
                assert_eq!(rolled, records, "{db:?} {group:?} {bucket}");
            }
        }
        let centers = store.usage_cells(UsageGroup::CostCenter, 86_400_000, from, to, None).await.unwrap();
        assert!(centers.iter().any(|c| c.key == "(none)"), "{centers:?}");
        store.close().await;
        test_db.cleanup().await;
    })
    .await;
}

/// Across tenants, on whole UTC days, usage series by tenant, model, cost
/// center and client format read the daily rollups; they hold exactly what
/// the records hold, for records written before their migration (filled by
/// it) and after (kept by the usage batch), on both databases.
#[tokio::test]
async fn daily_rollups_equal_the_records_they_sum() {
    use sheepdog_gateway::store::console::SeriesCell;
    on_both(|db| async move {
        let test_db = TestDb::new(db).await;
        let store = Store::connect_url(&test_db.url, 2).await.unwrap();
        let daily = 20261207000009;
        migrations_before(daily).run(store.pool()).await.unwrap();
        let day = 1_764_028_800_000i64; // 2025-11-25T00:00:00Z
                                        // Twelve records, five hours apart: over three days.
        for i in 0..12 {
            insert_old_record(&store, i, day + i * 5 * 3_600_000 + 59_999).await.unwrap();
        }
        store.migrate().await.unwrap();
        // And some through the usage batch, after the migration: a new
        // tenant, and a known one on a day that already has a row.
        let mut recs: Vec<UsageRecord> = (0..5)
            .map(|i| UsageRecord {
                ingress: "embeddings".into(),
                ..record("tenant-c", day + 86_400_000 + i, 1_000 + i, if i % 2 == 0 { Some("ops") } else { None })
            })
            .collect();
        recs.push(record("tenant-a", day + 3 * 86_400_000 - 1, 7, Some("search")));
        store.write_usage_batch(&recs, &BTreeMap::new()).await.unwrap();
        let sorted = |mut v: Vec<SeriesCell>| {
            v.sort_by(|a, b| (a.bucket_ms, &a.key).cmp(&(b.bucket_ms, &b.key)));
            v
        };
        let (from, to) = (day - 86_400_000, day + 4 * 86_400_000);
        for group in [UsageGroup::Tenant, UsageGroup::Model, UsageGroup::CostCenter, UsageGroup::Ingress] {
            for bucket in [86_400_000, 2 * 86_400_000] {
                // Whole days: the daily rollups. One millisecond earlier: the records.
                let rolled = sorted(store.usage_cells(group, bucket, from, to, None).await.unwrap());
                let records = sorted(store.usage_cells(group, bucket, from - 1, to, None).await.unwrap());
                assert!(rolled.len() >= 3, "{db:?} {group:?} {rolled:?}");
                assert_eq!(rolled, records, "{db:?} {group:?} {bucket}");
            }
        }
        let tenants = store.usage_cells(UsageGroup::Tenant, 86_400_000, from, to, None).await.unwrap();
        let a_day3 = tenants.iter().find(|c| c.key == "tenant-a" && c.bucket_ms == day + 2 * 86_400_000);
        // Records 10 (old) and the batch's last one.
        assert_eq!(a_day3.map(|c| (c.requests, c.cost_nanos)), Some((2, 110 + 7)), "{tenants:?}");
        store.close().await;
        test_db.cleanup().await;
    })
    .await;
}

/// The largest groups and the rest summed, as the database reads them
/// (`usage_top_cells`), equal what ranking every group's cells gives, from
/// the daily rollups, the hourly ones and the records, on both databases.
#[tokio::test]
async fn top_cells_equal_ranking_every_group() {
    use sheepdog_gateway::store::console::SeriesCell;
    on_both(|db| async move {
        let test_db = TestDb::new(db).await;
        let store = Store::connect_url(&test_db.url, 2).await.unwrap();
        store.migrate().await.unwrap();
        let day = 1_764_028_800_000i64;
        // Seven tenants over three days, costs apart, cost centers by tenant.
        let mut recs = Vec::new();
        for t in 0..7i64 {
            for i in 0..(3 + t) {
                let center = ["a", "b", "c"][(t % 3) as usize];
                let ms = day + i * 13 * 3_600_000 + t * 60_000;
                recs.push(record(&format!("tenant-{t}"), ms, 100 * (t + 1) + i, Some(center)));
            }
        }
        let mut hourly: BTreeMap<(String, i64), HourlyDelta> = BTreeMap::new();
        for r in &recs {
            let d = hourly.entry((r.tenant_id.clone(), r.created_ms - r.created_ms.rem_euclid(3_600_000))).or_default();
            d.request_count += 1;
            d.input_tokens += r.input_tokens;
            d.output_tokens += r.output_tokens;
            d.cost_nanos += r.cost_nanos;
        }
        store.write_usage_batch(&recs, &hourly).await.unwrap();
        let sorted = |mut v: Vec<SeriesCell>| {
            v.sort_by(|a, b| (a.bucket_ms, &a.key).cmp(&(b.bucket_ms, &b.key)));
            v
        };
        // What ranking every group's cells gives.
        let expected = |all: &[SeriesCell], top: usize| -> (Vec<SeriesCell>, usize) {
            let mut totals: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
            for c in all {
                let t = totals.entry(&c.key).or_default();
                t.0 += c.cost_nanos;
                t.1 += c.requests;
            }
            if totals.len() <= top + 1 {
                return (sorted(all.to_vec()), 0);
            }
            let mut ranked: Vec<(&str, (i64, i64))> = totals.into_iter().collect();
            ranked.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(b.1 .1.cmp(&a.1 .1)).then(a.0.cmp(b.0)));
            let kept: Vec<&str> = ranked.iter().take(top).map(|r| r.0).collect();
            let mut out: Vec<SeriesCell> = all.iter().filter(|c| kept.contains(&c.key.as_str())).cloned().collect();
            let mut rest: BTreeMap<i64, SeriesCell> = BTreeMap::new();
            for c in all.iter().filter(|c| !kept.contains(&c.key.as_str())) {
                let r = rest.entry(c.bucket_ms).or_insert(SeriesCell {
                    bucket_ms: c.bucket_ms,
                    key: "(other)".into(),
                    requests: 0,
                    input_tokens: 0,
                    output_tokens: 0,
                    cost_nanos: 0,
                });
                r.requests += c.requests;
                r.input_tokens += c.input_tokens;
                r.output_tokens += c.output_tokens;
                r.cost_nanos += c.cost_nanos;
            }
            out.extend(rest.into_values());
            (sorted(out), ranked.len() - top)
        };
        let ranges = [
            (86_400_000, day, day + 3 * 86_400_000), // whole days: the daily rollups
            (3_600_000, day + 3_600_000, day + 50 * 3_600_000), // whole hours: the hourly ones
            (86_400_000, day - 1, day + 3 * 86_400_000), // neither: the records
        ];
        for group in [UsageGroup::Tenant, UsageGroup::CostCenter] {
            for (bucket, from, to) in ranges {
                let all = store.usage_cells(group, bucket, from, to, None).await.unwrap();
                for top in [1, 2, 6] {
                    let (cells, others) =
                        store.usage_top_cells((group, bucket, from, to, None), top, "(other)").await.unwrap();
                    let want = expected(&all, top);
                    assert_eq!((sorted(cells), others), want, "{db:?} {group:?} {bucket} {from} top {top}");
                }
            }
        }
        // The overview's top tenants: from the daily rollup on whole days,
        // from usage_hourly on other hours, from the records otherwise; the
        // same ranking each way.
        for (from, to) in
            [(day, day + 3 * 86_400_000), (day + 3_600_000, day + 60 * 3_600_000), (day + 1, day + 50 * 3_600_000)]
        {
            let mut want: BTreeMap<String, (i64, i64)> = BTreeMap::new();
            for r in recs.iter().filter(|r| r.created_ms >= from && r.created_ms < to) {
                let e = want.entry(r.tenant_id.clone()).or_default();
                e.0 += 1;
                e.1 += r.cost_nanos;
            }
            let mut want: Vec<(String, i64, i64)> = want.into_iter().map(|(t, (n, c))| (t, n, c)).collect();
            want.sort_by(|a, b| b.2.cmp(&a.2).then(b.1.cmp(&a.1)).then(a.0.cmp(&b.0)));
            want.truncate(3);
            assert_eq!(store.spend_by_tenant(from, to, 3).await.unwrap(), want, "{db:?} {from}");
        }
        // Only one tenant's records, too.
        let (cells, others) = store
            .usage_top_cells(
                (UsageGroup::CostCenter, 86_400_000, day, day + 3 * 86_400_000, Some("tenant-6")),
                1,
                "(other)",
            )
            .await
            .unwrap();
        assert_eq!(others, 0, "{cells:?}");
        let in_range = recs.iter().filter(|r| r.tenant_id == "tenant-6" && r.created_ms < day + 3 * 86_400_000).count();
        assert_eq!(cells.iter().map(|c| c.requests).sum::<i64>(), in_range as i64);
        store.close().await;
        test_db.cleanup().await;
    })
    .await;
}
