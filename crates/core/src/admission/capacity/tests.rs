//! The scheduler on controlled time.

use super::*;

fn upstream(max: u32, reserved: &[(&str, u32)]) -> Arc<Upstream> {
    Upstream::new(
        "u",
        CapacityConfig {
            max_concurrency: Some(max),
            reserved: reserved.iter().map(|(t, n)| (t.to_string(), *n)).collect(),
            queue_timeout: Duration::from_secs(5),
            max_queue_per_tenant: 4,
            ..CapacityConfig::default()
        },
    )
}

#[tokio::test(start_paused = true)]
async fn freed_slots_go_to_the_tenant_with_fewest_in_flight() {
    let u = upstream(2, &[]);
    let a1 = u.acquire("a", 0, 1).await.unwrap();
    let a2 = u.acquire("a", 0, 1).await.unwrap();
    // Saturated: a queues first, then b.
    let ua = u.clone();
    let a3 = tokio::spawn(async move { ua.acquire("a", 0, 1).await });
    tokio::task::yield_now().await;
    let ub = u.clone();
    let b1 = tokio::spawn(async move { ub.acquire("b", 0, 1).await });
    tokio::task::yield_now().await;
    assert_eq!(u.queued(), 2);
    drop(a1);
    // b (0 in flight) is served before a's older request (a has 1 in flight).
    let b1 = b1.await.unwrap().unwrap();
    assert_eq!(u.queued(), 1);
    drop(a2);
    let a3 = a3.await.unwrap().unwrap();
    drop((b1, a3));
    assert_eq!(u.in_use(), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn queues_are_bounded_and_time_out() {
    let u = upstream(1, &[]);
    let _held = u.acquire("a", 0, 1).await.unwrap();
    let mut waits = Vec::new();
    for _ in 0..4 {
        let uu = u.clone();
        waits.push(tokio::spawn(async move { uu.acquire("a", 0, 1).await }));
    }
    tokio::task::yield_now().await;
    assert_eq!(u.acquire("a", 0, 1).await.unwrap_err(), CapacityRefusal::QueueFull);
    tokio::time::advance(Duration::from_secs(6)).await;
    for w in waits {
        assert_eq!(w.await.unwrap().unwrap_err(), CapacityRefusal::Timeout);
    }
    assert_eq!(u.queued(), 0);
}

#[tokio::test(start_paused = true)]
async fn reserved_slots_are_kept_for_their_tenant() {
    let u = upstream(3, &[("dedicated", 1)]);
    let _s1 = u.acquire("a", 0, 1).await.unwrap();
    let _s2 = u.acquire("a", 0, 1).await.unwrap();
    // Shared capacity (2) is full: a waits even though one reserved slot is idle.
    let ua = u.clone();
    let waiting = tokio::spawn(async move { ua.acquire("a", 0, 1).await });
    tokio::task::yield_now().await;
    assert_eq!(u.queued(), 1);
    // The dedicated tenant starts at once on its reserved slot.
    let d = u.acquire("dedicated", u.reserved_for(&["dedicated"]), 1).await.unwrap();
    assert_eq!(u.in_use(), (2, 1));
    drop(d);
    drop(_s1);
    assert!(waiting.await.unwrap().is_ok());
}

#[tokio::test(start_paused = true)]
async fn upstream_requests_per_minute_are_shared_fairly() {
    let u = Upstream::new(
        "u",
        CapacityConfig {
            requests_per_minute: Some(2),
            queue_timeout: Duration::from_secs(120),
            max_queue_per_tenant: 10,
            ..CapacityConfig::default()
        },
    );
    drop(u.acquire("a", 0, 1).await.unwrap());
    drop(u.acquire("a", 0, 1).await.unwrap());
    let ua = u.clone();
    let a = tokio::spawn(async move { ua.acquire("a", 0, 1).await });
    tokio::task::yield_now().await;
    let ub = u.clone();
    let b = tokio::spawn(async move { ub.acquire("b", 0, 1).await });
    tokio::task::yield_now().await;
    assert_eq!(u.queued(), 2);
    // After the window rolls both fit (2 per minute).
    tokio::time::advance(Duration::from_secs(61)).await;
    assert!(a.await.unwrap().is_ok());
    assert!(b.await.unwrap().is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_flooding_tenant_leaves_every_other_active_tenant_its_share() {
    let u = Upstream::new(
        "u",
        CapacityConfig {
            max_concurrency: Some(6),
            queue_timeout: Duration::from_secs(5),
            max_queue_per_tenant: 100,
            ..CapacityConfig::default()
        },
    );
    // b is active (one request in flight), then a floods.
    let b1 = u.acquire("b", 0, 1).await.unwrap();
    let mut a_held = Vec::new();
    let mut a_waiting = Vec::new();
    for _ in 0..20 {
        let uu = u.clone();
        let h = tokio::spawn(async move { uu.acquire("a", 0, 1).await });
        tokio::task::yield_now().await;
        a_waiting.push(h);
    }
    // a holds its share (3) — the rest of b's share stays free.
    assert_eq!(u.in_use(), (1 + 3, 0));
    // b gets its second and third slot at once, no waiting.
    let b2 = u.acquire("b", 0, 1).await.unwrap();
    let b3 = u.acquire("b", 0, 1).await.unwrap();
    assert_eq!(u.in_use(), (6, 0));
    drop((b1, b2, b3));
    // b went quiet: after a second a may use everything.
    tokio::time::advance(ACTIVE_FOR + Duration::from_millis(1)).await;
    for h in a_waiting.drain(..6) {
        a_held.push(h.await.unwrap().unwrap());
    }
    assert_eq!(u.in_use().0, 6);
}

/// Redis unreachable: `closed` refuses, `open` schedules on this replica's
/// share (six slots over three live replicas: two).
#[tokio::test]
async fn without_redis_closed_refuses_and_open_uses_this_replicas_share() {
    use crate::shared::{OnFailure, SharedState};
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://127.0.0.1:{port}/0");
    let cfg = CapacityConfig {
        max_concurrency: Some(6),
        queue_timeout: Duration::from_millis(50),
        max_queue_per_tenant: 4,
        ..CapacityConfig::default()
    };
    let replica = crate::replicas::ThisReplica::new("test");
    replica.set_live(3);
    let closed = SharedState::new(&url, "x:", Duration::from_millis(50), OnFailure::Closed, "r1").unwrap();
    let u = Upstream::shared("u", cfg.clone(), closed, replica.clone());
    assert_eq!(u.acquire("a", 0, 1).await.unwrap_err(), CapacityRefusal::Unavailable);
    let open = SharedState::new(&url, "x:", Duration::from_millis(50), OnFailure::Open, "r1").unwrap();
    let u = Upstream::shared("u", cfg, open, replica);
    let held = [u.acquire("a", 0, 1).await.unwrap(), u.acquire("a", 0, 1).await.unwrap()];
    assert_eq!(u.acquire("a", 0, 1).await.unwrap_err(), CapacityRefusal::Timeout);
    drop(held);
    assert!(u.acquire("a", 0, 1).await.is_ok());
}
