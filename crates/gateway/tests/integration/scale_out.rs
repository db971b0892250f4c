//! Several replicas on one database and one Redis: heartbeats, every limit
//! global and exact, changes everywhere within a second, and Redis outages
//! (closed: refused at once and recovered by itself; open: per-replica
//! shares).

// Helpers of the tests below (not #[test] fns) unwrap and panic like them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sheepdog_gateway::config::RedisConfig;
use sheepdog_testkit::*;

#[tokio::test]
async fn replicas_list_every_live_replica_on_both_databases() {
    on_both(|db| async move {
        let test_db = TestDb::new(db).await;
        let a = TestGateway::builder_on_url(&test_db.url).start().await;
        let b = TestGateway::builder_on_url(&test_db.url).start().await;
        // Each writes a heartbeat at start, then every 2 s.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let list = loop {
            let (status, list) = a.admin(Method::GET, "/admin/v1/replicas", None).await;
            assert_eq!(status, 200, "{list}");
            if list["data"].as_array().unwrap().len() == 2 || tokio::time::Instant::now() > deadline {
                break list;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let data = list["data"].as_array().unwrap();
        assert_eq!(data.len(), 2, "{db:?}: {list}");
        for r in data {
            assert_eq!(r["version"], env!("CARGO_PKG_VERSION"));
            assert_eq!(r["id"].as_str().unwrap().len(), 36);
            for field in ["started_at", "last_seen_at"] {
                assert!(r[field].as_str().unwrap().ends_with('Z'), "{field}: {r}");
            }
            assert!(r["in_flight"].as_u64().is_some());
        }
        assert_eq!((list["redis"].as_str(), list["database"].as_str()), (Some("off"), Some("up")));
        // A replica that stops cleanly leaves the list at once.
        b.stop().await;
        let (_, list) = a.admin(Method::GET, "/admin/v1/replicas", None).await;
        assert_eq!(list["data"].as_array().unwrap().len(), 1, "{db:?}: {list}");
        a.stop().await;
    })
    .await;
}

/// A Redis of the test's own, on a free port (stopped and restarted by the
/// outage tests), or the machine's (127.0.0.1:6379) under a fresh prefix.
struct TestRedis {
    port: u16,
    prefix: String,
    child: Option<Child>,
    timeout_ms: u64,
}

impl TestRedis {
    fn shared() -> TestRedis {
        // A generous timeout: the test process runs three debug-built
        // gateways and every client on two cores.
        let prefix = format!("sdtest:{}:", uuid::Uuid::new_v4().simple());
        TestRedis { port: 6379, prefix, child: None, timeout_ms: 1000 }
    }

    async fn own() -> TestRedis {
        let port = free_port();
        let mut r = TestRedis { port, prefix: "sd:".into(), child: None, timeout_ms: 50 };
        r.start().await;
        r
    }

    async fn start(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn config(&self, on_failure: &str) -> RedisConfig {
        RedisConfig {
            url: format!("redis://127.0.0.1:{}/0", self.port),
            key_prefix: self.prefix.clone(),
            timeout_ms: self.timeout_ms,
            on_failure: on_failure.into(),
        }
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli").arg("-p").arg(self.port.to_string()).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.kill();
        } else {
            process::delete_redis_keys(&format!("redis://127.0.0.1:{}/0", self.port), &self.prefix);
        }
    }
}

/// `n` replicas on one fresh Postgres database and `redis`.
async fn replicas(db: &TestDb, redis: &TestRedis, on_failure: &str, n: usize) -> Vec<Arc<TestGateway>> {
    replicas_with(db, redis, on_failure, n, |_| {}).await
}

/// [`replicas`] with more configuration.
async fn replicas_with(
    db: &TestDb,
    redis: &TestRedis,
    on_failure: &str,
    n: usize,
    more: impl Fn(&mut sheepdog_gateway::config::Config) + Clone,
) -> Vec<Arc<TestGateway>> {
    let mut out = Vec::new();
    for _ in 0..n {
        let cfg = redis.config(on_failure);
        let more = more.clone();
        let gw = TestGateway::builder_on_url(&db.url)
            .config(move |c| {
                c.redis = Some(cfg);
                let mut slow = simulated_provider();
                slow.latency_ms = 500;
                c.providers.insert("slow".into(), slow);
                c.providers.insert("fast".into(), simulated_provider());
                c.models.insert("slow".into(), model("slow", "slow", "2", "8"));
                c.models.insert("gpt-4.1".into(), model("fast", "gpt-4.1", "2", "8"));
                more(c);
            })
            .start()
            .await;
        out.push(Arc::new(gw));
    }
    out
}

async fn stop_all(gws: Vec<Arc<TestGateway>>) {
    for gw in gws {
        if let Ok(gw) = Arc::try_unwrap(gw) {
            gw.stop().await;
        }
    }
}

/// Waits until every replica's catalog holds `tenant` (≤ 1 s: each polls
/// the database every 500 ms).
async fn known_everywhere(gws: &[Arc<TestGateway>], tenant: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !gws.iter().all(|g| g.state.catalog().snapshot().tenant(tenant).is_some()) {
        assert!(Instant::now() < deadline, "tenant not on every replica within 2 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn status_of(gw: &TestGateway, key: &str, body: &Value) -> (StatusCode, Value) {
    let r = gw.chat(key).json(body).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Sends `body` to `gw` until it answers `want`; fails with `why` if that
/// takes longer than `within` from `since`.
async fn until_status(
    gw: &TestGateway,
    key: &str,
    body: &Value,
    want: StatusCode,
    since: Instant,
    within: Duration,
    why: &str,
) {
    loop {
        let (s, v) = status_of(gw, key, body).await;
        if s == want {
            return;
        }
        assert!(since.elapsed() < within, "{why} (last answer {s}: {v})");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn requests_per_minute_are_exact_across_three_replicas() {
    let db = TestDb::new(Db::Postgres).await;
    let redis = TestRedis::shared();
    let gws = replicas(&db, &redis, "closed", 3).await;
    let (t, k) = gws[0]
        .tenant_and_key(json!({"name": "rpm", "tier": "shared",
            "limits": {"requests_per_minute": 30, "tokens_per_minute": 10000000}}))
        .await;
    known_everywhere(&gws, &t).await;
    let body = chat_body("gpt-4.1", "hi");
    let sends: Vec<_> = (0..90).map(|i| gws[i % 3].chat(&k).json(&body).send()).collect();
    let statuses: Vec<_> = futures::future::join_all(sends).await.into_iter().map(|r| r.unwrap().status()).collect();
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let limited = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!((ok, limited), (30, 60), "{statuses:?}");
    // Every replica answers with the deployment's numbers.
    let r = gws[2].chat(&k).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["x-ratelimit-remaining-requests"], "0");
    assert_eq!(r.headers()["x-ratelimit-limit-requests"], "30");
    stop_all(gws).await;
}

/// Large limits are admitted from slices leased to each replica (2,048
/// requests/min: slices of 8), mostly without a Redis call, and still never
/// over the limit: 2,400 requests over three replicas, at most 2,048 answered
/// (and nearly all of them: only what slices held when the limit was reached
/// is lost), the rest 429.
#[tokio::test]
async fn leased_slices_keep_large_limits_exact_across_three_replicas() {
    let db = TestDb::new(Db::Postgres).await;
    let redis = TestRedis::shared();
    let gws = replicas(&db, &redis, "closed", 3).await;
    let (t, k) = gws[0]
        .tenant_and_key(json!({"name": "sliced", "tier": "shared",
            "limits": {"requests_per_minute": 2048, "tokens_per_minute": 100000000}}))
        .await;
    known_everywhere(&gws, &t).await;
    let body = chat_body("gpt-4.1", "hi");
    let (mut ok, mut limited) = (0, 0);
    for wave in 0..50 {
        let sends: Vec<_> = (0..48).map(|i| gws[(wave + i) % 3].chat(&k).json(&body).send()).collect();
        for r in futures::future::join_all(sends).await {
            match r.unwrap().status() {
                StatusCode::OK => ok += 1,
                StatusCode::TOO_MANY_REQUESTS => limited += 1,
                other => panic!("unexpected {other}"),
            }
        }
    }
    eprintln!("leased slices: {ok} answered, {limited} limited");
    assert_eq!(ok + limited, 2_400);
    assert!(ok <= 2_048, "{ok} answered over a limit of 2,048 requests/min");
    assert!(ok >= 2_048 - 3 * 2 * 8, "only {ok} answered");
    let mut sliced = 0;
    for gw in &gws {
        let m = metrics_text(gw).await;
        let line = m.lines().find(|l| l.starts_with("sheepdog_shared_state_slice_admissions_total ")).unwrap();
        sliced += line.rsplit(' ').next().unwrap().parse::<u64>().unwrap();
    }
    assert!(sliced * 2 >= ok as u64, "most requests admitted from slices: {sliced} of {ok}");
    stop_all(gws).await;
}

#[tokio::test]
async fn a_hard_budget_is_never_overspent_by_three_replicas() {
    let db = TestDb::new(Db::Postgres).await;
    let redis = TestRedis::shared();
    let gws = replicas(&db, &redis, "closed", 3).await;
    let (t, k) = gws[0]
        .tenant_and_key(json!({"name": "budget", "tier": "shared",
            "budget": {"monthly_limit_usd": "0.0090", "hard": true}}))
        .await;
    known_everywhere(&gws, &t).await;
    let ok = budget_race(&gws, &k, 64).await;
    assert!((5..=10).contains(&ok), "{ok} requests fit");
    for gw in &gws {
        gw.state.accountant().flush().await;
    }
    let records = usage_records(&db.url, &t).await;
    let spent: i64 = records.iter().map(|r| r.cost_nanos).sum();
    assert_eq!(records.len(), ok, "only admitted requests are recorded");
    assert!(spent <= 9_000_000, "spent {spent} nano-USD of a 9,000,000 budget");
    // The shared account settles (off the request path) to the records' sum.
    let account = format!("{}t:{t}:b", redis.prefix);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let settled: i64 = redis.cli(&["HGET", &account, "s"]).parse().unwrap_or(-1);
        let reserved: i64 = redis.cli(&["HGET", &account, "r"]).parse().unwrap_or(-1);
        if (settled, reserved) == (spent, 0) {
            break;
        }
        assert!(Instant::now() < deadline, "shared account {settled} settled, {reserved} reserved; records {spent}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_all(gws).await;
}

#[tokio::test]
async fn max_concurrency_holds_across_replicas() {
    let db = TestDb::new(Db::Postgres).await;
    let redis = TestRedis::shared();
    let gws = replicas(&db, &redis, "closed", 3).await;
    let (t, k) = gws[0]
        .tenant_and_key(json!({"name": "conc", "tier": "shared",
            "limits": {"requests_per_minute": 1000, "tokens_per_minute": 10000000, "max_concurrency": 2}}))
        .await;
    known_everywhere(&gws, &t).await;
    let body = chat_body("slow", "hi");
    let sends: Vec<_> = (0..6).map(|i| gws[i % 3].chat(&k).json(&body).send()).collect();
    let statuses: Vec<_> = futures::future::join_all(sends).await.into_iter().map(|r| r.unwrap().status()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 2, "{statuses:?}");
    // The slots are free again once the requests end (settled off the path).
    let fast = chat_body("gpt-4.1", "hi");
    until_status(&gws[1], &k, &fast, StatusCode::OK, Instant::now(), Duration::from_secs(2), "slots not freed").await;
    stop_all(gws).await;
}

#[tokio::test]
async fn revocations_and_limit_changes_reach_every_replica_within_a_second() {
    let db = TestDb::new(Db::Postgres).await;
    let redis = TestRedis::shared();
    let gws = replicas(&db, &redis, "closed", 3).await;
    let (t, k) = gws[0].tenant_with_key("changes").await;
    known_everywhere(&gws, &t).await;
    let body = chat_body("gpt-4.1", "hi");
    for gw in &gws {
        assert_eq!(status_of(gw, &k, &body).await.0, StatusCode::OK);
    }
    // A limit changed on replica 2: 3 requests made this minute, 2 allowed.
    let (s, v) = gws[1]
        .admin(
            Method::PUT,
            &format!("/admin/v1/tenants/{t}/limits"),
            Some(json!({"requests_per_minute": 2, "tokens_per_minute": 1000000})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let changed = Instant::now();
    for gw in [&gws[0], &gws[2]] {
        let why = "the new limit was not enforced within 1 s";
        until_status(gw, &k, &body, StatusCode::TOO_MANY_REQUESTS, changed, Duration::from_secs(1), why).await;
    }
    // A key revoked on replica 1 is refused by replica 3 within 1 s.
    let (_, keys) = gws[0].admin(Method::GET, &format!("/admin/v1/tenants/{t}/keys"), None).await;
    let key_id = keys["data"][0]["id"].as_str().unwrap().to_string();
    let (s, v) = gws[0].admin(Method::DELETE, &format!("/admin/v1/keys/{key_id}"), None).await;
    assert!(s.is_success(), "{v}");
    let revoked = Instant::now();
    let why = "the revoked key still works after 1 s";
    until_status(&gws[2], &k, &body, StatusCode::UNAUTHORIZED, revoked, Duration::from_secs(1), why).await;
    stop_all(gws).await;
}

#[tokio::test]
async fn redis_down_closed_refuses_at_once_and_recovers_by_itself() {
    let db = TestDb::new(Db::Postgres).await;
    let mut redis = TestRedis::own().await;
    let gws = replicas(&db, &redis, "closed", 2).await;
    let (t, k) = gws[0].tenant_with_key("outage").await;
    known_everywhere(&gws, &t).await;
    let body = chat_body("gpt-4.1", "hi");
    assert_eq!(status_of(&gws[0], &k, &body).await.0, StatusCode::OK);
    redis.kill();
    for gw in &gws {
        let started = Instant::now();
        let (s, v) = status_of(gw, &k, &body).await;
        let took = started.elapsed();
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert_eq!(
            (v["error"]["type"].as_str(), v["error"]["code"].as_str()),
            (Some("service_unavailable"), Some("shared_state_unavailable")),
            "{v}"
        );
        assert!(took < Duration::from_millis(150), "refused after {took:?} (timeout_ms = 50)");
    }
    let (_, list) = gws[0].admin(Method::GET, "/admin/v1/replicas", None).await;
    assert_eq!(list["redis"], "down", "{list}");
    let metrics = metrics_text(&gws[0]).await;
    assert!(metrics.contains("sheepdog_redis_up 0"), "{metrics}");
    assert!(!metrics.contains("sheepdog_shared_state_refusals_total 0\n"), "{metrics}");
    // Redis returns: every replica admits again within 5 s, by itself.
    redis.start().await;
    let back = Instant::now();
    for gw in &gws {
        let why = "not recovered 5 s after Redis returned";
        until_status(gw, &k, &body, StatusCode::OK, back, Duration::from_secs(5), why).await;
    }
    stop_all(gws).await;
}

#[tokio::test]
async fn redis_down_open_admits_against_per_replica_shares() {
    let db = TestDb::new(Db::Postgres).await;
    let mut redis = TestRedis::own().await;
    let gws = replicas(&db, &redis, "open", 3).await;
    let (t, k) = gws[0]
        .tenant_and_key(json!({"name": "open", "tier": "shared",
            "limits": {"requests_per_minute": 30, "tokens_per_minute": 10000000}}))
        .await;
    known_everywhere(&gws, &t).await;
    // Every replica has seen the others' heartbeats (the divisor).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gws.iter().all(|g| g.state.replica().live_replicas() == 3) {
        assert!(Instant::now() < deadline, "heartbeats not seen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    redis.kill();
    let body = chat_body("gpt-4.1", "hi");
    for gw in &gws {
        let mut ok = 0;
        for _ in 0..12 {
            if status_of(gw, &k, &body).await.0 == StatusCode::OK {
                ok += 1;
            }
        }
        assert_eq!(ok, 10, "30 per minute over 3 live replicas: 10 each");
    }
    let metrics = metrics_text(&gws[0]).await;
    assert!(metrics.contains("sheepdog_shared_state_open_admissions_total 12"), "{metrics}");
    stop_all(gws).await;
}

async fn metrics_text(gw: &TestGateway) -> String {
    gw.client.get(format!("{}/metrics", gw.url)).send().await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn console_sign_in_throttling_counts_every_replicas_attempts() {
    let db = TestDb::new(Db::Postgres).await;
    let redis = TestRedis::shared();
    let gws = replicas(&db, &redis, "closed", 3).await;
    let attempt = json!({"email": "nobody@example.com", "password": "wrong-password-123", "client_ip": "203.0.113.7"});
    // Three failures, one on each replica: each replica alone has seen one.
    for gw in &gws {
        let (s, v) = gw.admin(Method::POST, "/admin/v1/auth/verify", Some(attempt.clone())).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    }
    // The shared counts hold all three, and the pair must now wait (the
    // third attempt reached the policy's free allowance).
    let ip: std::net::IpAddr = "203.0.113.7".parse().unwrap();
    let (pair, address) = sheepdog_gateway::signin::Attempt::new("nobody@example.com", Some(ip)).hex_keys();
    let pair_key = format!("{}signin:p:{pair}", redis.prefix);
    assert_eq!(redis.cli(&["HGET", &pair_key, "c"]), "3");
    assert_eq!(redis.cli(&["HGET", &format!("{}signin:a:{address}", redis.prefix), "c"]), "3");
    let last: i64 = redis.cli(&["HGET", &pair_key, "l"]).parse().unwrap();
    let next: i64 = redis.cli(&["HGET", &pair_key, "n"]).parse().unwrap();
    assert_eq!(next - last, 1000, "a 1 s wait after the third failure");
    // An attempt inside that wait is refused on any replica.
    let (s, v) = gws[1].admin(Method::POST, "/admin/v1/auth/verify", Some(attempt.clone())).await;
    let now: i64 = redis.cli(&["TIME"]).lines().next().unwrap().parse::<i64>().unwrap() * 1000;
    if now < next - 100 {
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("too_many_attempts")), "{v}");
    }
    stop_all(gws).await;
}

/// An upstream's capacity is the deployment's: four slots in flight over
/// three replicas, and a tenant flooding two replicas leaves a tenant on
/// the third its fair share (it never queues behind the flood).
#[tokio::test]
async fn upstream_capacity_and_its_fair_share_hold_across_replicas() {
    let db = TestDb::new(Db::Postgres).await;
    let redis = TestRedis::shared();
    let emu = sheepdog_emulators::Emulator::start(sheepdog_emulators::Wire::OpenAi).await.unwrap();
    emu.set_script(Some(sheepdog_emulators::Script::parse("[emu:stall_ms=150]")));
    let mut capped = emulated_provider(&emu, sheepdog_emulators::Wire::OpenAi);
    capped.max_concurrency = Some(4);
    capped.max_queue_per_tenant = 64;
    capped.queue_timeout_ms = 20_000;
    let gws = replicas_with(&db, &redis, "closed", 3, move |c| {
        c.providers.insert("capped".into(), capped.clone());
        c.models.insert("capped".into(), model("capped", "m", "2", "8"));
    })
    .await;
    let big = json!({"requests_per_minute": 100000, "tokens_per_minute": 1000000000});
    let (ta, ka) = gws[0].tenant_and_key(json!({"name": "flood", "tier": "shared", "limits": big})).await;
    let (tb, kb) = gws[0].tenant_and_key(json!({"name": "steady", "tier": "shared", "limits": big})).await;
    known_everywhere(&gws, &ta).await;
    known_everywhere(&gws, &tb).await;
    let body = chat_body("capped", "hi");
    // A: 40 requests at once on replicas 0 and 1 (0.9 s of backlog at four slots).
    let flood: Vec<_> = (0..40)
        .map(|i| {
            let (gw, ka, body) = (gws[i % 2].clone(), ka.clone(), body.clone());
            tokio::spawn(async move { gw.chat(&ka).json(&body).send().await.unwrap().status() })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // B: 8 requests one after the other on replica 2.
    let mut b_slowest = Duration::ZERO;
    let b_started = Instant::now();
    for _ in 0..8 {
        let t0 = Instant::now();
        let (s, v) = status_of(&gws[2], &kb, &body).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        b_slowest = b_slowest.max(t0.elapsed());
    }
    let b_total = b_started.elapsed();
    for f in flood {
        assert_eq!(f.await.unwrap(), StatusCode::OK);
    }
    eprintln!("shared capacity: peak {} upstream, B slowest {b_slowest:?}, B total {b_total:?}", emu.peak_in_flight());
    assert!(emu.peak_in_flight() <= 4, "{} requests upstream at once over 4 slots", emu.peak_in_flight());
    assert!(emu.peak_in_flight() >= 3, "the slots were used ({})", emu.peak_in_flight());
    // Queued behind the flood, each of B's requests would wait ~1 s.
    assert!(b_slowest < Duration::from_millis(900), "B's slowest request took {b_slowest:?}");
    assert!(b_total < Duration::from_millis(4000), "B's 8 requests took {b_total:?}");
    // Every slot is free again (released off the request path).
    let slots = format!("{}u:capped:s", redis.prefix);
    let deadline = Instant::now() + Duration::from_secs(2);
    while redis.cli(&["ZCARD", &slots]) != "0" {
        assert!(Instant::now() < deadline, "slots still held: {}", redis.cli(&["ZCARD", &slots]));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_all(gws).await;
}

/// A rollout's guard judges the deployment's traffic, not one replica's:
/// ten failing `to` requests on each of three replicas never reach a
/// minimum sample size of 30 on any one of them, but do together. One
/// replica stores the rollback; every replica's report and series show all
/// thirty requests.
#[tokio::test]
async fn a_rollouts_guard_and_series_cover_every_replica() {
    use sheepdog_emulators::{Emulator, Script, Wire};
    let db = TestDb::new(Db::Postgres).await;
    let redis = TestRedis::shared();
    let old = Emulator::start(Wire::OpenAi).await.unwrap();
    let new = Emulator::start(Wire::OpenAi).await.unwrap();
    let (po, pn) = (emulated_provider_plain(&old, Wire::OpenAi), emulated_provider_plain(&new, Wire::OpenAi));
    let gws = replicas_with(&db, &redis, "closed", 3, move |c| {
        c.providers.insert("old".into(), po.clone());
        c.providers.insert("new".into(), pn.clone());
        c.models.insert("m".into(), model("old", "gpt-old", "2", "8"));
    })
    .await;
    let (t, k) = gws[0].tenant_and_key(json!({"name": "ro", "tier": "shared"})).await;
    known_everywhere(&gws, &t).await;
    let (s, ro) = gws[0]
        .admin(
            Method::POST,
            "/admin/v1/rollouts",
            Some(json!({"model": "m", "phase": "canary", "to": {"provider": "new", "upstream_model": "gpt-new"},
                "plan": {"initial_percent": 100, "manual": true},
                "guard": {"min_samples": 30, "window_secs": 60, "max_error_rate_percent": 10}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ro}");
    let id = ro["id"].as_str().unwrap().to_string();
    let path = format!("/admin/v1/rollouts/{id}");
    let deadline = Instant::now() + Duration::from_secs(2);
    for gw in &gws {
        while gw.admin(Method::GET, &path, None).await.0 != StatusCode::OK {
            assert!(Instant::now() < deadline, "rollout not on every replica within 2 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    new.set_script(Some(Script { error: Some(500), ..Script::default() }));
    // Ten on each replica, well under 30 apiece; the figures are shared
    // every second, so wait for the last replica's to land before judging.
    for (i, gw) in gws.iter().enumerate() {
        for n in 0..10 {
            let (s, _) = status_of(gw, &k, &chat_body("m", &format!("r{i} n{n}"))).await;
            assert_ne!(s, StatusCode::OK, "`to` fails");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(4);
    for gw in &gws {
        loop {
            let (_, rep) = gw.admin(Method::GET, &path, None).await;
            if rep["phase"] == "rolled_back" {
                break;
            }
            assert!(Instant::now() < deadline, "not rolled back on every replica: {rep}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Every replica reports the deployment's thirty `to` requests (each
    // reads the others' figures every second).
    let deadline = Instant::now() + Duration::from_secs(3);
    for gw in &gws {
        loop {
            let (_, rep) = gw.admin(Method::GET, &path, None).await;
            let (_, series) = gw.admin(Method::GET, &format!("{path}/series"), None).await;
            let points = series["points"].as_array().unwrap();
            let sum: i64 = points.iter().map(|p| p["to"]["requests"].as_i64().unwrap()).sum();
            let seen = (&rep["to_stats"]["total_requests"], &rep["to_stats"]["window_errors"], sum);
            if seen == (&json!(30), &json!(30), 30) {
                break;
            }
            assert!(Instant::now() < deadline, "{seen:?}: {rep}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // One rollback event, by the guard, with the deployment's numbers.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let (_, rep) = gws[2].admin(Method::GET, &path, None).await;
        let events = rep["events"].as_array().unwrap();
        let guard: Vec<&Value> = events.iter().filter(|e| e["actor"] == "guard").collect();
        if guard.len() == 1 {
            assert!(guard[0]["reason"].as_str().unwrap().contains("(30 of 30)"), "{}", guard[0]);
            break;
        }
        assert!(guard.len() < 2, "rolled back twice: {events:?}");
        assert!(Instant::now() < deadline, "no guard event stored: {events:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // After the rollback `from` serves again, on every replica.
    for gw in &gws {
        let (s, v) = status_of(gw, &k, &chat_body("m", "after")).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    stop_all(gws).await;
}
