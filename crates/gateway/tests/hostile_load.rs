//! Hostile clients against bounded work before admission, in their own test
//! binary so that no other test competes for the cores while they measure:
//! huge random-letter prompts from one tenant must not stall another tenant
//! or `/healthz`, and a tenant over its requests/min is refused before its
//! body is read, let alone parsed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use sheepdog_testkit::*;

/// `n` pseudo-random lowercase letters: one BPE piece, the tokenizer's worst case.
fn random_letters(n: usize) -> String {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut s = String::with_capacity(n);
    while s.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push(char::from(b'a' + (x % 26) as u8));
    }
    s
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[(((v.len() as f64) * p).ceil() as usize).clamp(1, v.len()) - 1]
}

async fn gateway() -> TestGateway {
    TestGateway::start_with(Db::Sqlite, |c| {
        c.providers.insert("up".into(), simulated_provider());
        c.models.insert("m".into(), model("up", "m", "2", "8"));
    })
    .await
}

/// One tenant loops 4 parallel 8 MiB random-letter prompts (admitted: its
/// limits are huge); another tenant's small requests keep p99 < 250 ms and
/// `/healthz` answers within 100 ms throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_prompts_do_not_stall_other_tenants() {
    let gw = Arc::new(gateway().await);
    let huge_limits = json!({"requests_per_minute": 1000000, "tokens_per_minute": 1000000000000u64});
    let (_, hog) = gw.tenant_and_key(json!({"name": "hog", "tier": "shared", "limits": huge_limits})).await;
    let (_, calm) = gw.tenant_and_key(json!({"name": "calm", "tier": "shared"})).await;
    let huge: bytes::Bytes = serde_json::to_vec(&chat_body("m", &random_letters(8 << 20))).unwrap().into();

    // Warm up (tokenizer tables, connections).
    for i in 0..5 {
        let r = gw.chat(&calm).json(&chat_body("m", &format!("warm {i} [sim:tokens=4]"))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.bytes().await.unwrap();
    }

    let stop = Arc::new(AtomicBool::new(false));
    let (served, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut hogs = Vec::new();
    for _ in 0..4 {
        let (gw, hog, huge, stop, served, refused) =
            (gw.clone(), hog.clone(), huge.clone(), stop.clone(), served.clone(), refused.clone());
        hogs.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r =
                    gw.chat(&hog).header("content-type", "application/json").body(huge.clone()).send().await.unwrap();
                let status = r.status();
                let _ = r.bytes().await;
                if status == StatusCode::OK {
                    served.fetch_add(1, Ordering::Relaxed);
                } else {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // /healthz every 50 ms, on its own connection.
    let health = {
        let (url, stop) = (gw.url.clone(), stop.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let r = client.get(format!("{url}/healthz")).send().await.unwrap();
                assert_eq!(r.status(), StatusCode::OK);
                r.bytes().await.unwrap();
                lat.push(t.elapsed());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            lat
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The calm tenant: sequential small requests for at least 10 s.
    let started = Instant::now();
    let mut lat = Vec::new();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(10) || lat.len() < 100 {
        let t = Instant::now();
        let r = gw.chat(&calm).json(&chat_body("m", &format!("calm {i} [sim:tokens=4]"))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.bytes().await.unwrap();
        lat.push(t.elapsed());
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for h in hogs {
        h.await.unwrap();
    }
    let health = health.await.unwrap();
    let (n, p50, p99, worst) =
        (lat.len(), percentile(lat.clone(), 0.5), percentile(lat.clone(), 0.99), percentile(lat, 1.0));
    let (h_n, h_worst) = (health.len(), percentile(health, 1.0));
    let (served, refused) = (served.load(Ordering::Relaxed), refused.load(Ordering::Relaxed));
    eprintln!(
        "hostile load: 8 MiB prompts served {served}, refused {refused}; calm tenant {n} requests, p50 {p50:?}, p99 {p99:?}, max {worst:?}; /healthz {h_n} probes, max {h_worst:?}"
    );
    assert!(served >= 4, "the huge prompts were served too ({served})");
    assert!(p99 < Duration::from_millis(250), "calm tenant p99 {p99:?}");
    assert!(h_worst < Duration::from_millis(100), "/healthz max {h_worst:?}");
    Arc::try_unwrap(gw).ok().unwrap().stop().await;
}

/// Over its requests/min, a tenant's request is refused before its body is
/// read: the 429 arrives while the client has sent only 1 MiB of a declared
/// 30 MiB body (and, streamed without a length, of a body that never ends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_per_minute_are_checked_before_the_body_is_read() {
    let gw = gateway().await;
    let (_, key) = gw.tenant_and_key(json!({"name": "rpm", "tier": "shared", "limits": {"requests_per_minute": 1, "tokens_per_minute": 1000000}}),
    )
    .await;
    let r = gw.chat(&key).json(&chat_body("m", "the one request [sim:tokens=4]")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Declared 30 MiB, 1 MiB sent, then the client waits for the answer.
    let addr = gw.url.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let declared = 30usize << 20;
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {declared}\r\n\r\n"
    );
    let t = Instant::now();
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut part = br#"{"model":"m","messages":[{"role":"user","content":""#.to_vec();
    part.resize(1 << 20, b'a');
    conn.write_all(&part).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut answer)).await.unwrap().unwrap();
    let elapsed = t.elapsed();
    let answer = String::from_utf8_lossy(&answer[..n]).to_string();
    eprintln!("rpm before body: 429 after {elapsed:?} with 1 MiB of 30 MiB sent");
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("x-ratelimit-remaining-requests: 0"), "{answer}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");

    // No length at all: a body that never ends.
    let first = bytes::Bytes::from(part);
    let endless =
        futures::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(futures::stream::pending());
    let t = Instant::now();
    let r =
        tokio::time::timeout(Duration::from_secs(5), gw.chat(&key).body(reqwest::Body::wrap_stream(endless)).send())
            .await
            .unwrap()
            .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(t.elapsed() < Duration::from_secs(2));
    drop(conn);
    gw.stop().await;
}
