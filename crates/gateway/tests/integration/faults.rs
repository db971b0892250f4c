//! The database out of reach for 10 s under load, on both databases: the data
//! plane keeps serving from memory, usage records queue and are all written
//! when the database returns, admin calls answer a quick 503
//! `database_unavailable`, `/readyz` says unavailable.
//!
//! Postgres: an instance of our own (initdb + pg_ctl on a free port in a temp
//! directory) that is stopped for 10 s and started again, with the admission
//! state shared in Redis as replicas run it. SQLite: another
//! connection holds an exclusive write lock (`BEGIN EXCLUSIVE`) for 10 s, so
//! every write gets SQLITE_BUSY.
// Helpers outside #[test] functions, which clippy.toml's test allowances do not reach.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Connection;

use sheepdog_testkit::*;

/// A Postgres server of this test's own, in a temporary directory.
struct OwnPostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres_user: bool,
}

impl OwnPostgres {
    fn bin_dir() -> PathBuf {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| d.flatten().map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).collect())
            .unwrap_or_default();
        found.sort();
        if let Some(b) = found.pop() {
            return b;
        }
        let out = std::process::Command::new("pg_config").arg("--bindir").output();
        match out {
            Ok(o) if o.status.success() => PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()),
            _ => panic!("the database outage test needs the Postgres server binaries (initdb, pg_ctl)"),
        }
    }

    fn run(&self, tool: &str, args: &[&str]) -> std::process::Output {
        let program = self.bin.join(tool);
        let mut cmd = if self.as_postgres_user {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            std::process::Command::new(&program)
        };
        let out = cmd.args(args).current_dir(self.dir.path()).output().unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn new() -> OwnPostgres {
        let bin = Self::bin_dir();
        let dir = tempfile::tempdir().unwrap();
        let root = std::process::Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
        if root {
            let ok = std::process::Command::new("chown")
                .args(["-R", "postgres:", &dir.path().display().to_string()])
                .status()
                .unwrap();
            assert!(ok.success(), "chown of the Postgres directory failed");
        }
        let pg = OwnPostgres { bin, dir, port: free_port(), as_postgres_user: root };
        pg.run("initdb", &["-D", &pg.data(), "-A", "trust", "-U", "postgres", "--no-sync"]);
        pg.start();
        pg
    }

    fn start(&self) {
        let opts =
            format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.path().display());
        let log = self.dir.path().join("log").display().to_string();
        self.run("pg_ctl", &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "-t", "30", "start"]);
    }

    fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "-t", "30", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        // Stop it if a failed assertion left it running (errors ignored: it may be stopped).
        let program = self.bin.join("pg_ctl");
        let data = self.data();
        let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
        let _ = if self.as_postgres_user {
            std::process::Command::new("runuser").args(["-u", "postgres", "--"]).arg(&program).args(args).output()
        } else {
            std::process::Command::new(&program).args(args).output()
        };
    }
}

/// What the load generator saw.
#[derive(Default)]
struct Load {
    ok: AtomicU64,
    failed: AtomicU64,
    max_latency_ms: AtomicU64,
}

/// `clients` loops sending chat completions (about 50 a second each) until `stop`.
fn spawn_load(
    gw: &TestGateway,
    key: &str,
    clients: usize,
    stop: Arc<AtomicBool>,
    load: Arc<Load>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|i| {
            let client = gw.client.clone();
            let url = format!("{}/v1/chat/completions", gw.url);
            let key = key.to_string();
            let (stop, load) = (stop.clone(), load.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let stream = n.is_multiple_of(4);
                    let body = json!({"model": "gpt-4.1", "stream": stream,
                        "messages": [{"role": "user", "content": format!("client {i} request {n} [sim:tokens=5]")}]});
                    let started = Instant::now();
                    let ok = match client.post(&url).bearer_auth(&key).json(&body).send().await {
                        Ok(r) if r.status() == StatusCode::OK => r.bytes().await.is_ok(),
                        Ok(r) => {
                            eprintln!("request failed: {} {}", r.status(), r.text().await.unwrap_or_default());
                            false
                        }
                        Err(e) => {
                            eprintln!("request failed: {e}");
                            false
                        }
                    };
                    let ms = started.elapsed().as_millis() as u64;
                    load.max_latency_ms.fetch_max(ms, Ordering::Relaxed);
                    if ok {
                        load.ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        load.failed.fetch_add(1, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
        .collect()
}

/// How the outage is made and ended.
enum Outage {
    Postgres(OwnPostgres),
    Sqlite { url: String, holder: Option<sqlx::AnyConnection> },
}

impl Outage {
    async fn begin(&mut self) {
        match self {
            Outage::Postgres(pg) => pg.stop(),
            Outage::Sqlite { url, holder } => {
                let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
                sqlx::query("BEGIN EXCLUSIVE").execute(&mut conn).await.unwrap();
                *holder = Some(conn);
            }
        }
    }

    async fn end(&mut self) {
        match self {
            Outage::Postgres(pg) => pg.start(),
            Outage::Sqlite { holder, .. } => {
                if let Some(mut conn) = holder.take() {
                    sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
                    conn.close().await.unwrap();
                }
            }
        }
    }
}

async fn timed_admin(
    gw: &TestGateway,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let (s, v) = gw.admin(method, path, body).await;
    (s, v, started.elapsed())
}

fn assert_unavailable(what: &str, (status, body, took): &(StatusCode, Value, Duration)) {
    assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
    assert_eq!(body["error"]["code"], "database_unavailable", "{what}: {body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("database is unavailable"), "{what}: {body}");
    assert!(*took < Duration::from_secs(8), "{what} took {took:?}");
}

async fn outage_under_load(db: Db) {
    sqlx::any::install_default_drivers();
    let (mut outage, url, _sqlite_dir) = match db {
        Db::Postgres => {
            let pg = tokio::task::spawn_blocking(OwnPostgres::new).await.unwrap();
            let url = pg.url();
            (Outage::Postgres(pg), url, None)
        }
        Db::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("sheepdog.db").display());
            (Outage::Sqlite { url: url.clone(), holder: None }, url, Some(dir))
        }
    };
    // On Postgres the admission state is shared in Redis (as with several
    // replicas): admission goes on while the database is away.
    let prefix = format!("sdtest:{}:", uuid::Uuid::new_v4().simple());
    let redis = (db == Db::Postgres).then(|| sheepdog_gateway::config::RedisConfig {
        url: "redis://127.0.0.1:6379/0".into(),
        key_prefix: prefix.clone(),
        timeout_ms: 1000,
        on_failure: "closed".into(),
    });
    let gw = TestGateway::builder_on_url(&url)
        .client_timeout(Duration::from_secs(30))
        .config(move |c| c.redis = redis)
        .start()
        .await;
    let (tenant, key) = gw.tenant_with_key("outage").await;
    // Above the default 1,000 requests/min: the load is not rate limited.
    let limits = json!({"requests_per_minute": 1_000_000, "tokens_per_minute": 100_000_000});
    let (s, v) = gw.admin(Method::PUT, &format!("/admin/v1/tenants/{tenant}/limits"), Some(limits)).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let stop = Arc::new(AtomicBool::new(false));
    let load = Arc::new(Load::default());
    let clients = spawn_load(&gw, &key, 4, stop.clone(), load.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before_outage = load.ok.load(Ordering::Relaxed);

    // ---- the database goes away for 10 s ----
    let outage_started = Instant::now();
    outage.begin().await;
    let ok_at_start = load.ok.load(Ordering::Relaxed);
    // Admin calls: a clear 503 within seconds, nothing changed.
    let keys_path = format!("/admin/v1/tenants/{tenant}/keys");
    let (create, new_key, usage, list) = tokio::join!(
        timed_admin(&gw, Method::POST, "/admin/v1/tenants", Some(json!({"name": "during-outage", "tier": "shared"}))),
        timed_admin(&gw, Method::POST, &keys_path, Some(json!({}))),
        timed_admin(&gw, Method::GET, "/admin/v1/usage", None),
        timed_admin(&gw, Method::GET, "/admin/v1/tenants", None),
    );
    eprintln!(
        "{db:?}: admin answers during the outage: create tenant {} in {:?}, create key {} in {:?}, usage {} in {:?}, \
         list tenants {} in {:?}",
        create.0, create.2, new_key.0, new_key.2, usage.0, usage.2, list.0, list.2
    );
    assert_unavailable("creating a tenant", &create);
    assert_unavailable("creating a key", &new_key);
    match db {
        // Nothing can be read either.
        Db::Postgres => {
            assert_unavailable("the usage report", &usage);
            assert_unavailable("listing tenants", &list);
        }
        // SQLite in WAL mode still serves reads under another writer's lock:
        // the usage report is refused while records wait to be written, and
        // answers when none did at that instant (a loaded machine can leave
        // the queue empty for a moment between requests).
        Db::Sqlite => {
            if usage.0 != StatusCode::OK {
                assert_unavailable("the usage report", &usage);
            }
            assert_eq!(list.0, StatusCode::OK, "{}", list.1);
        }
    }
    // Readiness says so (quickly) while the outage lasts.
    let mut unready = None;
    while outage_started.elapsed() < Duration::from_secs(9) {
        let started = Instant::now();
        let r = gw.client.get(format!("{}/readyz", gw.url)).send().await.unwrap();
        let took = started.elapsed();
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            assert!(took < Duration::from_secs(4), "/readyz took {took:?}");
            unready = Some(r.json::<Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let unready = unready.expect("/readyz never said unavailable during the outage");
    assert_eq!(unready["status"], "unavailable", "{unready}");
    assert!(gw.state.accountant().is_failing(), "the accounting writer should be failing and retrying");
    // The data plane keeps serving: requests still succeed, quickly.
    let remaining = Duration::from_secs(10).saturating_sub(outage_started.elapsed());
    tokio::time::sleep(remaining).await;
    let served_during = load.ok.load(Ordering::Relaxed) - ok_at_start;
    let queued = gw.state.accountant().queue_depth();
    outage.end().await;
    // ---- the database is back ----

    assert!(served_during >= 100, "only {served_during} requests served during the outage");
    eprintln!(
        "{db:?}: {served_during} requests served during the 10 s outage ({before_outage} before), {queued} events \
         queued at its end, max latency {} ms",
        load.max_latency_ms.load(Ordering::Relaxed)
    );
    let mut ready = false;
    let back = Instant::now();
    while back.elapsed() < Duration::from_secs(30) {
        let r = gw.client.get(format!("{}/readyz", gw.url)).send().await.unwrap();
        if r.status() == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ready, "/readyz did not recover within 30 s of the database's return");
    eprintln!("{db:?}: ready again {:?} after the database returned", back.elapsed());
    // Admin changes work again.
    let (s, t) = gw.admin(Method::POST, "/admin/v1/tenants", Some(json!({"name": "after", "tier": "shared"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{t}");

    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let (ok, failed) = (load.ok.load(Ordering::Relaxed), load.failed.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "{failed} requests failed ({ok} succeeded)");
    let max_ms = load.max_latency_ms.load(Ordering::Relaxed);
    assert!(max_ms < 2_500, "a request took {max_ms} ms: the data plane waited on the database");

    // Every usage record is written: one per request served.
    gw.state.accountant().flush().await;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_records WHERE tenant_id = $1")
        .bind(&tenant)
        .fetch_one(gw.state.store().pool())
        .await
        .unwrap();
    assert_eq!(n as u64, ok, "usage records written vs requests served");
    let (s, report) = gw.admin(Method::GET, &format!("/admin/v1/usage?tenant_id={tenant}"), None).await;
    assert_eq!(s, StatusCode::OK, "{report}");
    assert_eq!(report["data"][0]["requests"].as_u64(), Some(ok), "{report}");
    let (s, metrics) = gw.admin(Method::GET, &format!("/admin/v1/tenants/{tenant}/metrics?period=2h"), None).await;
    assert_eq!(s, StatusCode::OK, "{metrics}");
    let hourly: u64 = metrics["buckets"].as_array().unwrap().iter().map(|b| b["request_count"].as_u64().unwrap()).sum();
    assert_eq!(hourly, ok, "hourly aggregates vs requests served");
    eprintln!("{db:?}: {ok} requests, {n} usage records");

    gw.stop().await;
    drop(outage);
    if db == Db::Postgres {
        process::delete_redis_keys("redis://127.0.0.1:6379/0", &prefix);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_sqlite() {
    outage_under_load(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_postgres() {
    outage_under_load(Db::Postgres).await;
}
