//! The noisy-neighbour proof, in its own test binary so that no other test
//! competes for the two cores while it measures: tenant A floods a
//! capacity-limited upstream at 20× its fair share while tenant B sends at its
//! normal rate and dedicated tenant C uses its reserved slots. B's success
//! rate must stay ≥ 99 % and its p99 latency within 1.5× of its solo
//! baseline; C keeps its reserved capacity throughout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use sheepdog_testkit::*;

async fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[((v.len() as f64) * 0.99).ceil() as usize - 1]
}

/// Sends `n` sequential requests; returns (successes, latencies).
#[allow(clippy::unwrap_used)]
async fn steady(gw: &TestGateway, key: &str, model: &str, n: usize) -> (usize, Vec<Duration>) {
    let mut ok = 0;
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        let r = gw.chat(key).json(&chat_body(model, &format!("steady {i} [sim:tokens=4]"))).send().await.unwrap();
        if r.status() == StatusCode::OK {
            r.bytes().await.unwrap();
            ok += 1;
            lat.push(t.elapsed());
        }
    }
    (ok, lat)
}

/// The founding pain: one tenant's loop must not take the others down.
#[tokio::test]
async fn noisy_neighbour_cannot_hurt_the_others() {
    let gw = Arc::new(
        TestGateway::start_with(Db::Sqlite, |c| {
            let mut up = simulated_provider();
            up.latency_ms = 40;
            up.max_concurrency = Some(8);
            up.reserved = [("tenant-c".to_string(), 2)].into_iter().collect();
            up.max_queue_per_tenant = 64;
            up.queue_timeout_ms = 10_000;
            c.providers.insert("up".into(), up);
            c.models.insert("m".into(), model("up", "m", "2", "8"));
        })
        .await,
    );
    let big = json!({"requests_per_minute": 1000000, "tokens_per_minute": 1000000000});
    let (_, ka) = gw.tenant_and_key(json!({"name": "A", "tier": "shared", "limits": big})).await;
    let (_, kb) = gw.tenant_and_key(json!({"name": "B", "tier": "shared", "limits": big})).await;
    let (_, kc) =
        gw.tenant_and_key(json!({"name": "C", "tier": "dedicated", "aliases": ["tenant-c"], "limits": big})).await;

    // Warm up (tokenizer tables, connections), then the baselines, alone.
    steady(&gw, &kb, "m", 5).await;
    steady(&gw, &kc, "m", 5).await;
    let (_, b_solo) = steady(&gw, &kb, "m", 100).await;
    let (_, c_solo) = steady(&gw, &kc, "m", 100).await;
    let b_base = p99(b_solo).await;
    let c_base = p99(c_solo).await;

    // A floods: 60 concurrent loops, 20× its fair share of 3 shared slots.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let a_ok = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let a_refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let a_slowest = Arc::new(std::sync::Mutex::new(Duration::ZERO));
    let mut flood = Vec::new();
    for _ in 0..60 {
        let (gw, ka, stop, a_ok, a_refused, a_slowest) =
            (gw.clone(), ka.clone(), stop.clone(), a_ok.clone(), a_refused.clone(), a_slowest.clone());
        flood.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                let r = gw.chat(&ka).json(&chat_body("m", "flood [sim:tokens=4]")).send().await.unwrap();
                {
                    let mut slowest = a_slowest.lock().unwrap();
                    *slowest = (*slowest).max(t.elapsed());
                }
                if r.status() == StatusCode::OK {
                    a_ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                } else {
                    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
                    a_refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let _ = r.bytes().await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (gb, gc, kb2, kc2) = (gw.clone(), gw.clone(), kb.clone(), kc.clone());
    let b = tokio::spawn(async move { steady(&gb, &kb2, "m", 100).await });
    let c = tokio::spawn(async move { steady(&gc, &kc2, "m", 100).await });
    let (b_ok, b_lat) = b.await.unwrap();
    let (c_ok, c_lat) = c.await.unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for f in flood {
        f.await.unwrap();
    }
    let (b_p99, c_p99) = (p99(b_lat).await, p99(c_lat).await);
    let a_slowest = *a_slowest.lock().unwrap();
    eprintln!(
        "noisy neighbour: A ok {} refused {} slowest {a_slowest:?}; B {b_ok}/100 ok, p99 {b_p99:?} (solo {b_base:?}); C {c_ok}/100 ok, p99 {c_p99:?} (solo {c_base:?})",
        a_ok.load(std::sync::atomic::Ordering::Relaxed),
        a_refused.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert!(b_ok >= 99, "B success {b_ok}%");
    assert!(c_ok >= 99, "C success {c_ok}%");
    assert!(b_p99.as_secs_f64() <= b_base.as_secs_f64() * 1.5, "B p99 {b_p99:?} vs solo {b_base:?}");
    assert!(c_p99.as_secs_f64() <= c_base.as_secs_f64() * 1.5, "C p99 {c_p99:?} vs solo {c_base:?}");
    // A was held to its share: its requests queued behind each other (or were refused).
    assert!(
        a_slowest > b_base * 4 || a_refused.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "A was not held back (slowest {a_slowest:?})"
    );
    Arc::try_unwrap(gw).ok().unwrap().stop().await;
}
