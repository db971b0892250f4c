//! The scripts against a real Redis (127.0.0.1:6379, `scripts/services.sh`
//! starts it), each test under a fresh key prefix it deletes after.

use super::*;

const URL: &str = "redis://127.0.0.1:6379/0";

async fn shared(lease: Duration) -> Arc<SharedState> {
    let prefix = format!("sdtest:{}:", uuid::Uuid::new_v4().simple());
    let mut s = SharedState::new(URL, &prefix, Duration::from_millis(500), OnFailure::Closed, "r1").unwrap();
    Arc::get_mut(&mut s).unwrap().lease = lease;
    s.link.connect().await.expect("redis on 127.0.0.1:6379 (scripts/services.sh starts it)");
    s
}

async fn clean(s: &SharedState) {
    let pattern = format!("{}*", s.prefix);
    let _: Result<(), _> = s
        .link
        .call(|mut c| async move {
            let keys: Vec<String> = ::redis::cmd("KEYS").arg(&pattern).query_async(&mut c).await?;
            if !keys.is_empty() {
                ::redis::cmd("DEL").arg(keys).query_async::<()>(&mut c).await?;
            }
            Ok(())
        })
        .await;
}

fn limits(rpm: u64, tpm: u64, conc: Option<u64>) -> Limits {
    Limits { requests_per_minute: rpm, tokens_per_minute: tpm, max_concurrency: conc }
}

fn req<'a>(limits: &'a Limits, tokens: u64) -> AdmitRequest<'a> {
    AdmitRequest { tenant: "t", limits, tokens, worst_cost: 0, budget: None, pool: None }
}

#[tokio::test]
async fn requests_per_minute_are_exact_and_refusals_take_nothing() {
    let s = shared(LEASE).await;
    let lim = limits(3, 1000, None);
    for i in 0..3u64 {
        let d = s.admit(&req(&lim, 10)).await.unwrap();
        assert_eq!(d.refusal, None);
        assert_eq!(d.remaining_requests, 2 - i);
        assert!(d.reset_requests <= Duration::from_secs(60) && d.reset_requests > Duration::from_secs(55));
    }
    let d = s.admit(&req(&lim, 10)).await.unwrap();
    assert_eq!(d.refusal, Some(SharedRefusal::Requests));
    assert!(d.retry_after > Duration::from_secs(55), "{:?}", d.retry_after);
    assert_eq!((d.remaining_requests, d.remaining_tokens), (0, 970));
    // Too many tokens for the whole minute; then too many for what is left.
    let lim = limits(100, 1000, None);
    assert_eq!(s.admit(&req(&lim, 1001)).await.unwrap().refusal, Some(SharedRefusal::TooLarge));
    assert_eq!(s.admit(&req(&lim, 980)).await.unwrap().refusal, Some(SharedRefusal::Tokens));
    assert_eq!(s.admit(&req(&lim, 970)).await.unwrap().refusal, None);
    clean(&s).await;
}

#[tokio::test]
async fn tokens_settle_to_the_actual_count_and_a_slot_frees_on_finish() {
    let s = shared(LEASE).await;
    let lim = limits(100, 1000, Some(1));
    let d = s.admit(&req(&lim, 900)).await.unwrap();
    let lease = d.lease.unwrap();
    assert_eq!(s.admit(&req(&lim, 1)).await.unwrap().refusal, Some(SharedRefusal::Concurrency));
    let f = Finish { lease, actual_tokens: 300, cost: 0 };
    assert!(s.finish_call(&f).await);
    assert!(s.finish_call(&f).await, "a retried settlement is harmless");
    let d = s.admit(&req(&lim, 100)).await.unwrap();
    assert_eq!(d.refusal, None);
    assert_eq!(d.remaining_tokens, 600, "900 estimated, settled to 300, then 100");
    clean(&s).await;
}

#[tokio::test]
async fn a_batch_settles_in_one_call_once_and_leaves_no_key_behind() {
    let s = shared(LEASE).await;
    let lim = limits(100, 1000, Some(3));
    let budget = BudgetCheck { period: 1, limit: Some(1000), settled: 0 };
    let mut finishes = Vec::new();
    for _ in 0..3 {
        let r = AdmitRequest { worst_cost: 300, budget: Some(budget), ..req(&lim, 10) };
        let lease = s.admit(&r).await.unwrap().lease.unwrap();
        finishes.push(Finish { lease, actual_tokens: 5, cost: 100 });
    }
    assert!(s.finish_many(finishes.iter()).await);
    assert!(s.finish_many(finishes.iter()).await, "a retried batch changes nothing");
    // Three slots free, 300 spent: 700 left.
    let r = AdmitRequest { worst_cost: 700, budget: Some(budget), ..req(&lim, 10) };
    let d = s.admit(&r).await.unwrap();
    assert_eq!(d.refusal, None);
    assert_eq!(d.remaining_tokens, 1000 - 15 - 10);
    assert!(s.finish_call(&Finish { lease: d.lease.unwrap(), actual_tokens: 10, cost: 0 }).await);
    // Only the logs and the account remain: no per-request key.
    let pattern = format!("{}l:*", s.prefix);
    let open: Vec<String> =
        s.link.call(|mut c| async move { ::redis::cmd("KEYS").arg(&pattern).query_async(&mut c).await }).await.unwrap();
    assert!(open.is_empty(), "{open:?}");
    clean(&s).await;
}

#[tokio::test]
async fn a_dead_replicas_slot_frees_when_its_lease_runs_out() {
    let s = shared(Duration::from_millis(300)).await;
    let lim = limits(100, 1000, Some(1));
    let held = s.admit(&req(&lim, 1)).await.unwrap().lease.unwrap();
    assert_eq!(s.admit(&req(&lim, 1)).await.unwrap().refusal, Some(SharedRefusal::Concurrency));
    // Nobody renews (the replica "died"): after the lease the slot is free.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.admit(&req(&lim, 1)).await.unwrap().refusal, None);
    drop(held);
    clean(&s).await;
}

#[tokio::test]
async fn a_hard_budget_is_never_overspent_by_a_race() {
    let s = shared(LEASE).await;
    let lim = limits(10_000, 10_000_000, None);
    let budget = BudgetCheck { period: 1, limit: Some(1000), settled: 0 };
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let s = s.clone();
            let lim = lim.clone();
            tokio::spawn(async move {
                let r = AdmitRequest { worst_cost: 100, budget: Some(budget), ..req(&lim, 1) };
                s.admit(&r).await.unwrap()
            })
        })
        .collect();
    let mut admitted = Vec::new();
    for t in tasks {
        let d = t.await.unwrap();
        match d.refusal {
            None => admitted.push(d.lease.unwrap()),
            Some(r) => assert_eq!(r, SharedRefusal::Budget),
        }
    }
    assert_eq!(admitted.len(), 10, "1000 nano-USD hold exactly ten worst cases of 100");
    // Settled at 40 each: 400 spent, 600 left for new requests.
    for lease in admitted {
        assert!(s.finish_call(&Finish { lease, actual_tokens: 1, cost: 40 }).await);
    }
    let r = AdmitRequest { worst_cost: 600, budget: Some(budget), ..req(&lim, 1) };
    assert_eq!(s.admit(&r).await.unwrap().refusal, None);
    let r = AdmitRequest { worst_cost: 1, budget: Some(budget), ..req(&lim, 1) };
    let d = s.admit(&r).await.unwrap();
    assert_eq!((d.refusal, d.available), (Some(SharedRefusal::Budget), 0));
    clean(&s).await;
}

#[tokio::test]
async fn a_pool_is_seeded_once_and_shared() {
    let s = shared(LEASE).await;
    let lim = limits(10_000, 10_000_000, None);
    let pool = |credited| PoolCheck { pool: "p".into(), hard: true, credited, debited: 100 };
    let r = AdmitRequest { worst_cost: 800, pool: Some(pool(1000)), ..req(&lim, 1) };
    let lease = s.admit(&r).await.unwrap().lease.unwrap();
    // A replica with other (stale) figures does not reseed the account.
    let r = AdmitRequest { worst_cost: 200, pool: Some(pool(1_000_000)), ..req(&lim, 1) };
    let d = s.admit(&r).await.unwrap();
    assert_eq!((d.refusal, d.available), (Some(SharedRefusal::Pool), 100));
    assert!(s.finish_call(&Finish { lease, actual_tokens: 1, cost: 0 }).await);
    let r = AdmitRequest { worst_cost: 900, pool: Some(pool(0)), ..req(&lim, 1) };
    assert_eq!(s.admit(&r).await.unwrap().refusal, None);
    clean(&s).await;
}

#[tokio::test]
async fn an_unreachable_redis_fails_fast() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://127.0.0.1:{port}/0");
    let s = SharedState::new(&url, "x:", Duration::from_millis(50), OnFailure::Closed, "r1").unwrap();
    assert!(s.link.connect().await.is_err());
    let lim = limits(1, 1, None);
    let started = std::time::Instant::now();
    assert_eq!(s.admit(&req(&lim, 1)).await.unwrap_err(), SharedError::Down);
    assert!(started.elapsed() < Duration::from_millis(50));
}

mod upstream_capacity {
    use super::*;
    use crate::shared::slots::{CapacityLimits, SlotAnswer, SlotAsk, SlotLease, UpstreamKeys};

    fn cap(shared: Option<u32>, rpm: Option<u64>, tpm: Option<u64>) -> CapacityLimits {
        CapacityLimits {
            shared_slots: shared,
            requests_per_minute: rpm,
            tokens_per_minute: tpm,
            max_waiting_per_tenant: 2,
        }
    }

    async fn ask(s: &SharedState, k: &Arc<UpstreamKeys>, l: &CapacityLimits, tenant: &str, waiter: &str) -> SlotAnswer {
        s.acquire_slot(k, l, &SlotAsk { tenant, reserved: 0, tokens: 10, waiter }).await.unwrap()
    }

    fn granted(a: SlotAnswer) -> SlotLease {
        match a {
            SlotAnswer::Granted(l) => l,
            other => panic!("not granted: {other:?}"),
        }
    }

    fn waits(a: &SlotAnswer) -> bool {
        matches!(a, SlotAnswer::Wait(_))
    }

    #[tokio::test]
    async fn slots_are_global_and_a_flooding_tenant_leaves_the_others_their_share() {
        let s = shared(LEASE).await;
        let k = Arc::new(UpstreamKeys::new(&s.prefix, "up"));
        let l = cap(Some(4), None, None);
        // a alone may use everything; b arrives and is owed its share (2).
        let a1 = granted(ask(&s, &k, &l, "a", "w1").await);
        let a2 = granted(ask(&s, &k, &l, "a", "w2").await);
        let b1 = granted(ask(&s, &k, &l, "b", "w3").await);
        // a is at its share and one slot is left, owed to b: a waits.
        assert!(waits(&ask(&s, &k, &l, "a", "w4").await));
        let b2 = granted(ask(&s, &k, &l, "b", "w5").await);
        assert!(waits(&ask(&s, &k, &l, "a", "w4").await));
        // a frees one: a (below its share now) is owed it, b may not take it.
        assert!(s.release_now(a1, None).await);
        assert!(waits(&ask(&s, &k, &l, "b", "w6").await));
        let a3 = granted(ask(&s, &k, &l, "a", "w4").await);
        for l2 in [a2, a3, b1, b2] {
            assert!(s.release_now(l2, None).await);
        }
        assert!(s.release_now(granted(ask(&s, &k, &l, "c", "w7").await), None).await);
        clean(&s).await;
    }

    #[tokio::test]
    async fn waiters_are_bounded_per_tenant_and_forgotten_when_nobody_asks() {
        let s = shared(LEASE).await;
        let k = Arc::new(UpstreamKeys::new(&s.prefix, "up"));
        let l = cap(Some(1), None, None);
        let held = granted(ask(&s, &k, &l, "a", "w0").await);
        assert!(waits(&ask(&s, &k, &l, "a", "w1").await));
        assert!(waits(&ask(&s, &k, &l, "a", "w2").await));
        assert!(matches!(ask(&s, &k, &l, "a", "w3").await, SlotAnswer::QueueFull));
        // Asking again is not a new waiter.
        assert!(waits(&ask(&s, &k, &l, "a", "w1").await));
        // Other tenants have their own bound.
        assert!(waits(&ask(&s, &k, &l, "b", "w4").await));
        // Waiters nobody asks for within a second are forgotten.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(waits(&ask(&s, &k, &l, "a", "w5").await));
        assert!(waits(&ask(&s, &k, &l, "a", "w6").await));
        assert!(s.release_now(held, None).await);
        clean(&s).await;
    }

    #[tokio::test]
    async fn reserved_slots_a_dead_replicas_lease_and_the_upstreams_rates() {
        let s = shared(Duration::from_millis(300)).await;
        let k = Arc::new(UpstreamKeys::new(&s.prefix, "up"));
        let l = cap(Some(1), Some(3), Some(100));
        let held = granted(ask(&s, &k, &l, "a", "w1").await);
        // The dedicated tenant's reserved slot is its own.
        let d = s.acquire_slot(&k, &l, &SlotAsk { tenant: "d", reserved: 1, tokens: 10, waiter: "w2" }).await.unwrap();
        let d = granted(d);
        assert!(d.reserved);
        assert!(waits(&ask(&s, &k, &l, "b", "w3").await));
        // Nobody renews a's slot: it frees after the lease.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let b = granted(ask(&s, &k, &l, "b", "w3").await);
        // Three requests this minute: the fourth waits for the window, with its retry.
        assert!(s.release_now(b, Some(1)).await);
        match ask(&s, &k, &l, "c", "w4").await {
            SlotAnswer::Wait(Some(retry)) => assert!(retry > Duration::from_secs(55), "{retry:?}"),
            other => panic!("{other:?}"),
        }
        assert!(s.release_now(d, None).await);
        drop(held);
        clean(&s).await;
    }
}

/// Three replicas admitting from leased slices (requests/min 4,096: slices
/// of 16) as fast as they can: never more than the limit in the minute,
/// hardly less (only what slices still held when it was reached), and once
/// the slices close the logs hold exactly what was admitted — requests,
/// and tokens at their actual count.
#[tokio::test]
async fn slices_never_admit_more_than_the_limit_and_give_back_what_they_did_not_use() {
    let prefix = format!("sdtest:{}:", uuid::Uuid::new_v4().simple());
    let (trigger, stop) = crate::shutdown::channel();
    let mut replicas = Vec::new();
    let mut tasks = Vec::new();
    for name in ["r1", "r2", "r3"] {
        let s = SharedState::new(URL, &prefix, Duration::from_millis(500), OnFailure::Closed, name).unwrap();
        tasks.extend(s.start(stop.clone()).await);
        replicas.push(s);
    }
    let lim = limits(4_096, 10_000_000, None);
    assert_eq!(slices::sizes(&lim, 10, false), Some((16, 39_062)));
    let runs = replicas.iter().map(|s| {
        let s = s.clone();
        let lim = lim.clone();
        tokio::spawn(async move {
            let (mut admitted, mut local) = (0u64, 0u64);
            for _ in 0..2_000 {
                let d = s.admit(&req(&lim, 10)).await.unwrap();
                if let Some(lease) = d.lease {
                    admitted += 1;
                    local += u64::from(lease.slice.is_some());
                    s.finish(lease, 4, 0);
                }
            }
            (admitted, local)
        })
    });
    let (mut admitted, mut local) = (0, 0);
    for r in futures::future::join_all(runs).await {
        let (a, l) = r.unwrap();
        admitted += a;
        local += l;
    }
    eprintln!("admitted {admitted} of 6,000 asked (4,096 allowed), {local} from slices");
    assert!(admitted <= 4_096, "{admitted} admitted over a limit of 4,096");
    assert!(admitted >= 4_096 - 3 * 2 * 16, "only {admitted} admitted: more than the slices could hold was lost");
    assert!(local >= admitted / 2, "most requests come from slices ({local} of {admitted})");
    // The slices end (their time), close, and give back what they did not use.
    let s = &replicas[0];
    let keys = Keys::new(&prefix, "t", None);
    let sums = |k: String| {
        let s = s.clone();
        async move {
            s.link
                .call(|mut c| async move { ::redis::cmd("HGET").arg(&k).arg("s").query_async::<i64>(&mut c).await })
                .await
                .unwrap()
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (rq, tk) = (sums(keys.requests_amounts.clone()).await, sums(keys.tokens_amounts.clone()).await);
        if (rq, tk) == (admitted as i64, 4 * admitted as i64) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "logs hold {rq} requests, {tk} tokens; {admitted} admitted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    trigger.fire();
    for t in tasks {
        let _ = t.await;
    }
    clean(s).await;
}
