//! Connection limits of the gateway listener (SPEC §10) on real sockets:
//! header and idle timeouts, the connection cap, and the shutdown grace
//! (streams cut by its end get an error event and are billed; a second
//! signal skips it; accounting drains).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use sheepdog_gateway::config::Config;
use sheepdog_testkit::raw::{read_answer, time_to_close};
use sheepdog_testkit::sse::sse_data_within;
use sheepdog_testkit::{model, on_both, simulated_provider, usage_records, Db, TestGateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The gateway on port 0 with a slow simulated model `slow` (300 ms per
/// completion; streams: a chunk every 50 ms), stopped by its `signal`.
async fn start<'a>(db: Db, customize: impl FnOnce(&mut Config) + 'a) -> TestGateway {
    TestGateway::builder(db)
        .config(|config| {
            config.gateway.workers = 2;
            let mut slow = simulated_provider();
            slow.latency_ms = 300;
            slow.chunk_interval_ms = 50;
            slow.stream_idle_timeout_ms = 60_000;
            slow.total_timeout_ms = 120_000;
            config.providers.insert("slow".into(), slow);
            config.models.insert("slow".into(), model("slow", "slow", "2", "8"));
        })
        .config(customize)
        .start()
        .await
}

/// A stream of `tokens` chunks from the slow model.
fn stream(gw: &TestGateway, key: &str, tokens: u32) -> reqwest::RequestBuilder {
    gw.chat(key).json(&json!({
        "model": "slow", "stream": true,
        "messages": [{"role": "user", "content": format!("go [sim:tokens={tokens}]")}]
    }))
}

const HEALTH: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

#[tokio::test]
async fn half_sent_request_heads_are_closed_after_the_header_timeout() {
    let gw = start(Db::Sqlite, |c| {
        c.gateway.header_read_timeout_ms = 300;
        c.gateway.idle_timeout_ms = 5_000;
    })
    .await;
    // Half a head on a new connection, and a connection that sends nothing.
    let mut half = TcpStream::connect(gw.addr).await.unwrap();
    let mut silent = TcpStream::connect(gw.addr).await.unwrap();
    let opened = Instant::now();
    half.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: app").await.unwrap();
    for conn in [&mut half, &mut silent] {
        let after = time_to_close(conn, opened).await;
        assert!(after >= Duration::from_millis(280) && after < Duration::from_millis(1_500), "{after:?}");
    }
    // After a served request, the next head gets the header timeout from its
    // first byte (the idle timeout is far longer).
    let mut kept = TcpStream::connect(gw.addr).await.unwrap();
    kept.write_all(HEALTH).await.unwrap();
    assert!(read_answer(&mut kept).await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    kept.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let after = time_to_close(&mut kept, started).await;
    assert!(after >= Duration::from_millis(280) && after < Duration::from_millis(1_500), "{after:?}");
    gw.stop().await;
}

#[tokio::test]
async fn idle_keep_alive_connections_close_after_the_idle_timeout_and_busy_ones_do_not() {
    let gw = start(Db::Sqlite, |c| {
        c.gateway.header_read_timeout_ms = 300;
        c.gateway.idle_timeout_ms = 700;
    })
    .await;
    let (_, key) = gw.tenant_with_key("t").await;
    // Idle after one request: closed at the idle timeout.
    let mut idle = TcpStream::connect(gw.addr).await.unwrap();
    idle.write_all(HEALTH).await.unwrap();
    assert!(read_answer(&mut idle).await.starts_with("HTTP/1.1 200"));
    let answered = Instant::now();
    let idle = tokio::spawn(async move { time_to_close(&mut idle, answered).await });
    // Active: a request every 250 ms for 2.5 s, all on one connection.
    let mut active = TcpStream::connect(gw.addr).await.unwrap();
    for _ in 0..10 {
        active.write_all(HEALTH).await.unwrap();
        assert!(read_answer(&mut active).await.starts_with("HTTP/1.1 200"));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let after = idle.await.unwrap();
    assert!(after >= Duration::from_millis(680) && after < Duration::from_millis(2_000), "{after:?}");
    // Busy: a stream of 1.5 s (twice the idle timeout, five times the header
    // timeout) is never idle; the connection is closed once idle after it.
    let mut busy = TcpStream::connect(gw.addr).await.unwrap();
    let body =
        json!({"model": "slow", "stream": true, "messages": [{"role": "user", "content": "go [sim:tokens=30]"}]})
            .to_string();
    busy.write_all(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let sent = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let done = loop {
        let n = tokio::time::timeout(Duration::from_secs(10), busy.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed mid-stream after {:?}: {}", sent.elapsed(), String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        // The chunked body ends with `data: [DONE]` then the last chunk.
        if String::from_utf8_lossy(&got).contains("data: [DONE]") && got.ends_with(b"0\r\n\r\n") {
            break Instant::now();
        }
    };
    assert!(sent.elapsed() >= Duration::from_millis(1_400), "{:?}", sent.elapsed());
    let after = time_to_close(&mut busy, done).await;
    assert!(after >= Duration::from_millis(650) && after < Duration::from_millis(2_000), "{after:?}");
    gw.stop().await;
}

#[tokio::test]
async fn connections_beyond_max_connections_wait_in_the_backlog_until_one_closes() {
    let gw = start(Db::Sqlite, |c| c.gateway.max_connections = 2).await;
    let mut first = TcpStream::connect(gw.addr).await.unwrap();
    let mut second = TcpStream::connect(gw.addr).await.unwrap();
    for c in [&mut first, &mut second] {
        c.write_all(HEALTH).await.unwrap();
        assert!(read_answer(c).await.starts_with("HTTP/1.1 200"));
    }
    // The kernel completes the handshake (backlog) but the gateway does not
    // accept, so the request waits; it is not refused or closed either.
    let mut third = TcpStream::connect(gw.addr).await.unwrap();
    third.write_all(HEALTH).await.unwrap();
    let mut buf = [0u8; 256];
    let early = tokio::time::timeout(Duration::from_millis(800), third.read(&mut buf)).await;
    assert!(early.is_err(), "served beyond the cap: {early:?}");
    // One closes: the waiting connection is accepted and served.
    drop(first);
    let freed = Instant::now();
    assert!(read_answer(&mut third).await.starts_with("HTTP/1.1 200"));
    assert!(freed.elapsed() < Duration::from_secs(2), "{:?}", freed.elapsed());
    second.write_all(HEALTH).await.unwrap();
    assert!(read_answer(&mut second).await.starts_with("HTTP/1.1 200"));
    gw.stop().await;
}

/// Waits for the first chunk of a streamed answer (the stream is in flight).
#[allow(clippy::unwrap_used)]
async fn first_chunk(resp: &mut reqwest::Response) -> bytes::Bytes {
    tokio::time::timeout(Duration::from_secs(5), resp.chunk()).await.unwrap().unwrap().unwrap()
}

#[tokio::test]
async fn the_grace_lets_requests_finish_then_streams_end_with_an_error_event_and_are_billed() {
    on_both(|db| async move {
        let mut gw = start(db, |c| c.gateway.shutdown_grace_secs = 1).await;
        let (tenant, key) = gw.tenant_with_key("t").await;
        // A stream of 10 s (a chunk every 50 ms) and a completion of 300 ms,
        // both in flight when the shutdown starts.
        let mut stream = stream(&gw, &key, 200).send().await.unwrap();
        assert_eq!(stream.status(), StatusCode::OK);
        let first = first_chunk(&mut stream).await;
        let complete = tokio::spawn(
            gw.chat(&key)
                .json(&json!({"model": "slow", "messages": [{"role": "user", "content": "hi [sim:tokens=5]"}]}))
                .send(),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let asked = Instant::now();
        gw.signal.request();
        let complete = complete.await.unwrap().unwrap();
        assert_eq!(complete.status(), StatusCode::OK, "finished within the grace");
        let body: Value = complete.json().await.unwrap();
        assert_eq!(body["usage"]["completion_tokens"], 5, "{body}");

        let events = sse_data_within(stream, Duration::from_secs(10)).await;
        let cut = asked.elapsed();
        assert!(cut >= Duration::from_millis(950) && cut < Duration::from_millis(2_500), "{cut:?}");
        assert!(events.len() > 10, "the stream ran during the grace: {} events", events.len());
        let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
        assert_eq!(last["error"]["code"], "server_shutting_down", "{last}");
        assert_eq!(last["error"]["type"], "service_unavailable", "{last}");
        assert!(!events.iter().any(|e| e == "[DONE]"), "no [DONE] after the error");
        assert!(!first.is_empty());

        // The process's listener is done and accounting drained.
        gw.finished_within(Duration::from_secs(5)).await;
        assert!(TcpStream::connect(gw.addr).await.is_err(), "the port refuses connections after the stop");
        let records = usage_records(gw.db_url(), &tenant).await;
        assert_eq!(records.len(), 2, "{db:?}: {records:?}");
        let ok = records.iter().find(|r| !r.stream).unwrap();
        assert_eq!((ok.outcome.as_str(), ok.output_tokens), ("ok", 5));
        let cut = records.iter().find(|r| r.stream).unwrap();
        assert_eq!(cut.outcome, "server_shutdown", "{cut:?}");
        assert_eq!(cut.error_code.as_deref(), Some("server_shutting_down"));
        assert_eq!(cut.status_code, 503);
        // Billed for what was streamed: ~20 chunks in 1 s, not the 200 asked for.
        assert!(cut.output_tokens >= 10 && cut.output_tokens < 100, "{cut:?}");
        assert!(cut.input_tokens > 0 && cut.cost_nanos > 0, "{cut:?}");
        gw.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_second_signal_skips_the_grace_but_not_the_accounting_drain() {
    let mut gw = start(Db::Sqlite, |c| c.gateway.shutdown_grace_secs = 30).await;
    let (tenant, key) = gw.tenant_with_key("t").await;
    let mut stream = stream(&gw, &key, 400).send().await.unwrap();
    first_chunk(&mut stream).await;
    gw.signal.request();
    // Within the grace the stream goes on.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!first_chunk(&mut stream).await.is_empty());
    let second = Instant::now();
    gw.signal.request_immediate();
    let events = sse_data_within(stream, Duration::from_secs(10)).await;
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "server_shutting_down", "{last}");
    gw.finished_within(Duration::from_secs(5)).await;
    assert!(second.elapsed() < Duration::from_secs(3), "{:?}", second.elapsed());
    let records = usage_records(gw.db_url(), &tenant).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].outcome, "server_shutdown");
    assert!(records[0].output_tokens > 0 && records[0].cost_nanos > 0, "{records:?}");
    gw.stop().await;
}
