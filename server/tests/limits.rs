//! Connection limits and shutdown of the real process: the console
//! listener's header and idle timeouts (in-process), and the fault test of
//! SIGTERM with 200 half-sent request heads and 10 streams in flight
//! against the `sheepdog` binary, on SQLite and on Postgres: the process
//! exits within the grace + 5 s and every stream is billed.
// Helpers outside #[test] functions, which clippy.toml's test allowances do not reach.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sheepdog::console::Console;
use sheepdog_gateway::config::{Config, Secret, Settings};
use sheepdog_gateway::listener::ShutdownSignal;
use sheepdog_testkit::process::{self, fake_site, free_port};
use sheepdog_testkit::raw::time_to_close;
use sheepdog_testkit::{sse_payloads, usage_records, AdminClient, Db, TestDb};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ADMIN: &str = "limits-test-admin-token-0123456789";

#[tokio::test]
async fn the_console_closes_half_sent_heads_and_idle_connections() {
    let dir = tempfile::tempdir().unwrap();
    let site = fake_site(dir.path());
    let mut config = Config::default();
    config.database.url = format!("sqlite://{}", dir.path().join("sheepdog.db").display());
    config.console.site_root = site.display().to_string();
    config.console.header_read_timeout_ms = 300;
    config.console.idle_timeout_ms = 700;
    let mut settings = Settings::from_config(config, "test", &|_| None).unwrap();
    settings.process_admin_token = Some(Secret::new(ADMIN));
    let console = Console::new(&settings).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let signal = ShutdownSignal::new();
    let served = tokio::spawn(console.serve_until(listener, signal.clone()));

    let mut half = TcpStream::connect(addr).await.unwrap();
    let opened = Instant::now();
    half.write_all(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/ht").await.unwrap();
    let after = time_to_close(&mut half, opened).await;
    assert!(after >= Duration::from_millis(280) && after < Duration::from_millis(1_500), "{after:?}");

    // A served request, then idle: closed at the idle timeout.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /pkg/sheepdog.css HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\r\n\r\nx") {
        let n = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));
    let answered = Instant::now();
    let after = time_to_close(&mut idle, answered).await;
    assert!(after >= Duration::from_millis(680) && after < Duration::from_millis(2_000), "{after:?}");

    signal.request();
    tokio::time::timeout(Duration::from_secs(5), served).await.unwrap().unwrap().unwrap();
}

/// `sheepdog gateway` with a slow simulated model `slow` (a chunk every
/// 100 ms) and the given grace.
fn start_gateway(dir: &Path, db_url: &str, grace_secs: u64) -> (Child, u16) {
    let port = free_port();
    let config = format!(
        "[gateway]\nlisten = \"127.0.0.1:{port}\"\nworkers = 2\nshutdown_grace_secs = {grace_secs}\n\
         [database]\nurl = \"{db_url}\"\n\
         [accounting]\nflush_interval_ms = 50\n\
         [providers.slow]\nkind = \"simulated\"\nchunk_interval_ms = 100\nstream_idle_timeout_ms = 60000\n\
         total_timeout_ms = 600000\n\
         [models.slow]\nprovider = \"slow\"\ninput_per_mtok = 2\noutput_per_mtok = 8\n"
    );
    (process::spawn_gateway(env!("CARGO_BIN_EXE_sheepdog"), dir, &config, port, ADMIN), port)
}

fn sigterm(child: &Child) {
    process::sigterm(child.id());
}

/// Waits at most `limit` for the process to exit (its log in `dir` is shown if not).
async fn exits_within(child: &mut Child, limit: Duration, dir: &Path) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(dir.join("sheepdog.log")).unwrap_or_default();
            panic!("the process did not exit within {limit:?}; its log:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A stream of `tokens` chunks, in flight once the first arrived; resolves
/// to the `data:` payloads when it ends.
async fn open_stream(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    tokens: u32,
) -> tokio::task::JoinHandle<Vec<String>> {
    let mut resp = http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "slow", "stream": true,
            "messages": [{"role": "user", "content": format!("go [sim:tokens={tokens}]")}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let first = tokio::time::timeout(Duration::from_secs(10), resp.chunk()).await.unwrap().unwrap().unwrap();
    tokio::spawn(async move {
        let mut text = first.to_vec();
        while let Ok(Some(chunk)) = resp.chunk().await {
            text.extend_from_slice(&chunk);
        }
        sse_payloads(&String::from_utf8_lossy(&text))
    })
}

/// SIGTERM with 200 half-sent request heads and 10 streams in flight.
async fn sigterm_with_slowloris_and_streams(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::sqlite_or_postgres(postgres).await;
    let db_url = db.url.clone();
    let grace = Duration::from_secs(2);
    let (mut child, port) = start_gateway(dir.path(), &db_url, grace.as_secs());
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let (tenant, key) = AdminClient::new(http.clone(), &base, ADMIN).tenant_with_key("t").await;

    // 10 streams of 60 s each, all past their first chunk.
    let mut streams = Vec::new();
    for _ in 0..10 {
        streams.push(open_stream(&http, &base, &key, 600).await);
    }
    // 200 connections that send half a request head and then nothing.
    let mut heads = Vec::new();
    for i in 0..200 {
        let mut c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        c.write_all(format!("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Request-Id: h{i}\r\n").as_bytes())
            .await
            .unwrap();
        heads.push(c);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let asked = Instant::now();
    sigterm(&child);
    let status = exits_within(&mut child, grace + Duration::from_secs(5), dir.path()).await;
    let took = asked.elapsed();
    assert!(status.success(), "a graceful stop exits 0, got {status}");
    assert!(took >= grace, "the streams had the grace: {took:?}");

    // Every stream ended with the error event, none was silently cut.
    for s in streams {
        let events = tokio::time::timeout(Duration::from_secs(5), s).await.unwrap().unwrap();
        let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
        assert_eq!(last["error"]["code"], "server_shutting_down", "{last}");
        assert!(events.len() > 15, "{} events", events.len());
    }
    // Every half-sent head was closed.
    for mut c in heads {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(1), c.read(&mut buf)).await.unwrap();
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    // Every stream billed for what it streamed, written before the exit.
    let records = usage_records(&db_url, &tenant).await;
    assert_eq!(records.len(), 10, "postgres={postgres}: {records:?}");
    for r in &records {
        assert!(r.stream && r.outcome == "server_shutdown", "{r:?}");
        assert!(r.output_tokens >= 15 && r.output_tokens < 600 && r.cost_nanos > 0, "{r:?}");
    }
    db.cleanup().await;
    eprintln!("postgres={postgres}: exited {took:?} after SIGTERM (grace {grace:?})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_200_half_sent_heads_and_10_streams_exits_within_the_grace_and_bills_every_stream_sqlite() {
    sigterm_with_slowloris_and_streams(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_200_half_sent_heads_and_10_streams_exits_within_the_grace_and_bills_every_stream_postgres() {
    sigterm_with_slowloris_and_streams(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_skips_the_grace_and_still_bills() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(Db::Sqlite).await;
    let db_url = db.url.clone();
    let (mut child, port) = start_gateway(dir.path(), &db_url, 60);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let (tenant, key) = AdminClient::new(http.clone(), &base, ADMIN).tenant_with_key("t").await;
    let stream = open_stream(&http, &base, &key, 600).await;
    sigterm(&child);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(child.try_wait().unwrap().is_none(), "the grace is 60 s");
    sigterm(&child);
    // Far sooner than the 60 s grace (the bound allows for a loaded machine).
    let status = exits_within(&mut child, Duration::from_secs(10), dir.path()).await;
    assert!(status.success(), "{status}");
    let events = tokio::time::timeout(Duration::from_secs(5), stream).await.unwrap().unwrap();
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "server_shutting_down", "{last}");
    let records = usage_records(&db_url, &tenant).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(records[0].outcome == "server_shutdown" && records[0].output_tokens > 0, "{records:?}");
}
