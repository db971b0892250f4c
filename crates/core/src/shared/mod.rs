//! Admission state shared by every replica, in Redis (`[redis] url` set).
//!
//! One script call per request admits it against everything global at once
//! (`admit.lua`): requests/min and tokens/min (exact sliding-window logs on
//! Redis's clock), the slot in flight (a lease), the hard budget and the
//! credit pool (the worst case reserved under the same lease). Redis runs a
//! script atomically, so N replicas together never admit more than a limit
//! and never reserve more than a budget. Finishing a request (`finish.lua`:
//! the slot freed, tokens and cost settled to the actual figures) happens off
//! the request path, on a background task.
//!
//! A tenant whose only shared limits are requests/min and tokens/min, and
//! large ones, is admitted from slices of them leased to this replica
//! instead (`slices.rs`: one script call per slice, never over the limit).
//!
//! Leases make it crash-safe: every slot and reservation carries an expiry
//! ([`LEASE`]) that this replica extends while the request runs
//! (`renew.lua`, every third of the lease). A replica that dies stops
//! extending, and the next admission after the expiry frees what it held.

pub mod capacity;
pub mod keys;
pub mod link;
pub mod slices;
pub mod slots;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sheepdog_types::Limits;
use tokio::sync::mpsc;

use crate::fastmap::FastMap;
use crate::locks::lock;
use crate::shutdown::Shutdown;
use keys::Keys;
use link::{RedisLink, SharedError};
use slices::{Ended, Slice, Slices, Unused};

/// A script that uses the sliding-window logs: `window.lua` (the clock and
/// the window functions), then the script's own text.
macro_rules! script {
    ($file:literal) => {
        concat!(include_str!("window.lua"), "\n", include_str!($file))
    };
}

/// How long a slot or reservation outlives its replica's last renewal.
pub const LEASE: Duration = Duration::from_secs(15);

/// Largest amount handed to the scripts: Lua compares numbers as doubles,
/// exact below 2^53 (9,007,199 USD in nano-USD, or tokens).
pub const MAX_AMOUNT: i64 = (1 << 53) - 1;

/// What admission does while Redis is unreachable (`[redis] on_failure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Refuse requests that need shared state (503 `shared_state_unavailable`).
    Closed,
    /// Admit against per-replica shares (limits divided by live replicas).
    Open,
}

/// The hard budget part of an admission.
#[derive(Debug, Clone, Copy)]
pub struct BudgetCheck {
    pub period: i64,
    /// `None`: no hard limit (the spend is still settled).
    pub limit: Option<i64>,
    /// What this replica knows was spent this period (seeds an account Redis
    /// does not hold yet).
    pub settled: i64,
}

/// The credit-pool part of an admission.
#[derive(Debug, Clone)]
pub struct PoolCheck {
    pub pool: String,
    pub hard: bool,
    /// This replica's figures, to seed an account Redis does not hold yet.
    pub credited: i64,
    pub debited: i64,
}

/// One admission asked of the shared state.
#[derive(Debug, Clone)]
pub struct AdmitRequest<'a> {
    pub tenant: &'a str,
    pub limits: &'a Limits,
    pub tokens: u64,
    pub worst_cost: i64,
    pub budget: Option<BudgetCheck>,
    pub pool: Option<PoolCheck>,
}

/// Which limit refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedRefusal {
    Requests,
    Tokens,
    Concurrency,
    TooLarge,
    Budget,
    Pool,
}

/// The shared state's answer.
#[derive(Debug)]
pub struct Decision {
    /// `None`: admitted.
    pub refusal: Option<SharedRefusal>,
    pub retry_after: Duration,
    pub remaining_requests: u64,
    pub reset_requests: Duration,
    pub remaining_tokens: u64,
    pub reset_tokens: Duration,
    /// Budget or pool refusals: what was available (nano-USD).
    pub available: i64,
    /// Admitted: what the request holds until [`SharedState::finish`].
    pub lease: Option<Lease>,
}

/// What one admitted request holds in the shared state.
#[derive(Debug)]
pub struct Lease {
    id: u64,
    held: Held,
    /// The tokens entry (Redis time, ms) the estimate was added to.
    tokens_at: Option<i64>,
    tokens_estimated: u64,
    budget_period: Option<i64>,
    /// Admitted from this slice (nothing of its own in Redis).
    slice: Option<Arc<Slice>>,
}

/// The leased entries of a request: its slot, its budget and pool
/// reservations, under its lease name (`<replica>:<n>`); renewed while the
/// request runs.
#[derive(Debug, Clone)]
struct Held {
    keys: Arc<Keys>,
    name: Arc<str>,
    concurrency: bool,
    budget: bool,
    pool: bool,
}

impl Held {
    /// The lease sets (sorted sets) this request has an entry in.
    fn sets(&self) -> impl Iterator<Item = &str> {
        let k = &self.keys;
        [(self.concurrency, &k.concurrency), (self.budget, &k.budget_reservations), (self.pool, &k.pool_reservations)]
            .into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, key)| key.as_str())
    }
}

/// Work queued for the background task, off the request path.
#[derive(Debug)]
enum Settlement {
    Request(Finish),
    Slot(slots::SlotRelease),
    Cancel(Arc<slots::UpstreamKeys>, String),
    /// A leased slice ended and its requests finished: give back the rest.
    Close(Arc<Slice>, Unused),
}

/// A slice to lease for a tenant (sent to the leasing task).
#[derive(Debug)]
struct Refill {
    tenant: String,
    limits: Limits,
    requests: u64,
    tokens: u64,
}

/// A finished request's settlement.
#[derive(Debug)]
struct Finish {
    lease: Lease,
    actual_tokens: u64,
    cost: i64,
}

/// The shared admission state of this replica.
#[derive(Debug)]
pub struct SharedState {
    link: Arc<RedisLink>,
    prefix: String,
    replica: String,
    pub on_failure: OnFailure,
    /// [`LEASE`], shorter in tests.
    lease: Duration,
    next_lease: AtomicU64,
    /// Leases of requests in flight here, extended until they finish.
    live: Mutex<FastMap<u64, Held>>,
    /// Upstream slots held by requests in flight here, extended likewise.
    live_slots: Mutex<FastMap<u64, slots::LiveSlot>>,
    finishes: mpsc::UnboundedSender<Settlement>,
    finish_rx: Mutex<Option<mpsc::UnboundedReceiver<Settlement>>>,
    /// Slices of requests/min and tokens/min leased to this replica.
    slices: Slices,
    refills: mpsc::UnboundedSender<Refill>,
    refill_rx: Mutex<Option<mpsc::UnboundedReceiver<Refill>>>,
    scripts: Scripts,
    /// Requests admitted against per-replica shares while Redis was down.
    pub open_admissions: AtomicU64,
    /// Requests refused because Redis was down.
    pub closed_refusals: AtomicU64,
    /// Requests admitted from a leased slice (no Redis call).
    pub slice_admissions: AtomicU64,
}

struct Scripts {
    admit: ::redis::Script,
    finish: ::redis::Script,
    renew: ::redis::Script,
    signin: ::redis::Script,
    capacity: ::redis::Script,
    lease: ::redis::Script,
    close: ::redis::Script,
}

/// A sign-in throttling policy as the script takes it: attempts before any
/// delay, the first delay and the longest (doubling in between).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    pub free: u32,
    pub base: Duration,
    pub cap: Duration,
}

/// The console sign-in throttle's two counters and their policies.
#[derive(Debug, Clone, Copy)]
pub struct SignInThrottle<'a> {
    /// Hex keys of the (email, address) pair and of the address (hashes:
    /// no email or address is written to Redis).
    pub pair: &'a str,
    pub address: &'a str,
    pub pair_policy: ThrottlePolicy,
    pub address_policy: ThrottlePolicy,
    pub forget_after: Duration,
}

impl std::fmt::Debug for Scripts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scripts")
    }
}

impl SharedState {
    /// The shared state behind `url` (connected by [`SharedState::start`]).
    pub fn new(
        url: &str,
        prefix: &str,
        timeout: Duration,
        on_failure: OnFailure,
        replica: &str,
    ) -> Result<Arc<SharedState>, SharedError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (refills, refill_rx) = mpsc::unbounded_channel();
        let scripts = Scripts {
            admit: ::redis::Script::new(script!("admit.lua")),
            finish: ::redis::Script::new(include_str!("finish.lua")),
            renew: ::redis::Script::new(include_str!("renew.lua")),
            signin: ::redis::Script::new(include_str!("signin.lua")),
            capacity: ::redis::Script::new(script!("capacity.lua")),
            lease: ::redis::Script::new(script!("lease.lua")),
            close: ::redis::Script::new(include_str!("close.lua")),
        };
        let all = vec![
            scripts.admit.clone(),
            scripts.finish.clone(),
            scripts.renew.clone(),
            scripts.signin.clone(),
            scripts.capacity.clone(),
            scripts.lease.clone(),
            scripts.close.clone(),
        ];
        Ok(Arc::new(SharedState {
            link: Arc::new(RedisLink::new(url, timeout, all)?),
            prefix: prefix.to_string(),
            replica: replica.to_string(),
            on_failure,
            lease: LEASE,
            next_lease: AtomicU64::new(1),
            live: Mutex::new(FastMap::default()),
            live_slots: Mutex::new(FastMap::default()),
            finishes: tx,
            finish_rx: Mutex::new(Some(rx)),
            slices: Slices::default(),
            refills,
            refill_rx: Mutex::new(Some(refill_rx)),
            scripts,
            open_admissions: AtomicU64::new(0),
            closed_refusals: AtomicU64::new(0),
            slice_admissions: AtomicU64::new(0),
        }))
    }

    pub fn link(&self) -> &RedisLink {
        &self.link
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Connects (a failure is not fatal: the probe task keeps trying) and
    /// starts the background tasks: reconnecting, extending leases,
    /// settling finished requests.
    pub async fn start(self: &Arc<Self>, stop: Shutdown) -> Vec<tokio::task::JoinHandle<()>> {
        if let Err(e) = self.link.connect().await {
            tracing::warn!(error = %e, "redis unreachable at start; retrying in the background");
        }
        let mut tasks = vec![tokio::spawn(self.link.clone().probe(stop.clone()))];
        tasks.push(tokio::spawn(self.clone().renew_leases(stop.clone())));
        let rx = lock(&self.finish_rx).take();
        if let Some(rx) = rx {
            tasks.push(tokio::spawn(self.clone().settle_finished(rx, stop.clone())));
        }
        let refills = lock(&self.refill_rx).take();
        if let Some(rx) = refills {
            tasks.push(tokio::spawn(self.clone().lease_slices(rx, stop)));
        }
        tasks
    }

    /// Admits `req` from its tenant's leased slice when it can (no Redis
    /// call), and asks for a slice when the tenant has none (or half of it
    /// is used). `None`: admit it by its own script call.
    fn admit_from_slice(&self, req: &AdmitRequest<'_>) -> Option<Decision> {
        let estimate = req.tokens.min(MAX_AMOUNT as u64);
        let reserves = req.budget.is_some() || req.pool.is_some();
        let (requests, tokens) = slices::sizes(req.limits, estimate, reserves)?;
        let tokens = tokens.min(MAX_AMOUNT as u64);
        if !self.link.is_up() {
            return None;
        }
        let now = tokio::time::Instant::now();
        let mut ended = Vec::new();
        let taken = self.slices.take(req.tenant, req.limits, estimate, now, &mut ended);
        self.close_slices(ended);
        let refill = match &taken {
            Some(t) => t.refill,
            None => self.slices.want(req.tenant, now),
        };
        if refill {
            let ask = Refill { tenant: req.tenant.to_string(), limits: req.limits.clone(), requests, tokens };
            // The leasing task lives as long as the process serves.
            let _ = self.refills.send(ask);
        }
        let t = taken?;
        self.slice_admissions.fetch_add(1, Ordering::Relaxed);
        let held = Held {
            keys: t.slice.keys.clone(),
            name: t.slice.name.clone(),
            concurrency: false,
            budget: false,
            pool: false,
        };
        Some(Decision {
            refusal: None,
            retry_after: Duration::ZERO,
            remaining_requests: t.remaining_requests,
            reset_requests: t.reset_requests,
            remaining_tokens: t.remaining_tokens,
            reset_tokens: t.reset_tokens,
            available: 0,
            lease: Some(Lease {
                id: 0,
                held,
                tokens_at: None,
                tokens_estimated: estimate,
                budget_period: None,
                slice: Some(t.slice),
            }),
        })
    }

    /// Queues the close of slices that ended (off the request path).
    fn close_slices(&self, ended: Ended) {
        for (slice, unused) in ended {
            let _ = self.finishes.send(Settlement::Close(slice, unused));
        }
    }

    /// The leasing task: leases the slices asked for (each call on its
    /// own, concurrently), ends the slices past their time, and at `stop`
    /// ends every slice (their closes go to the settlement task).
    async fn lease_slices(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Refill>, stop: Shutdown) {
        // One clock for the sweep, however often leases are asked for.
        let mut ticks = stop.ticks(slices::SLICE_TTL / 4);
        loop {
            tokio::select! {
                ask = rx.recv() => {
                    let Some(ask) = ask else { return };
                    let me = self.clone();
                    tokio::spawn(async move {
                        let slice = me.lease_call(&ask).await;
                        me.slices.install(&ask.tenant, slice, tokio::time::Instant::now());
                    });
                }
                running = ticks.next() => {
                    let mut ended = Vec::new();
                    self.slices.sweep(tokio::time::Instant::now(), !running, &mut ended);
                    self.close_slices(ended);
                    if !running {
                        return;
                    }
                }
            }
        }
    }

    /// One lease call: the slice, or `None` (it did not fit, or Redis failed).
    async fn lease_call(&self, ask: &Refill) -> Option<Arc<Slice>> {
        let asked_at = tokio::time::Instant::now();
        let keys = Arc::new(Keys::new(&self.prefix, &ask.tenant, None));
        let n = self.next_lease.fetch_add(1, Ordering::Relaxed);
        let name: Arc<str> = format!("{}:s{n}", self.replica).into();
        let cap = |v: u64| v.min(MAX_AMOUNT as u64);
        let mut inv = self.scripts.lease.prepare_invoke();
        inv.key(&keys.requests)
            .key(&keys.requests_amounts)
            .key(&keys.tokens)
            .key(&keys.tokens_amounts)
            .key(keys::open_marker(&self.prefix, &name))
            .arg(cap(ask.limits.requests_per_minute))
            .arg(cap(ask.limits.tokens_per_minute))
            .arg(cap(ask.requests))
            .arg(cap(ask.tokens))
            .arg(slices::SLICE_TTL.as_millis() as u64);
        let reply: Result<Vec<i64>, _> =
            self.link.call(|mut conn| async move { inv.invoke_async(&mut conn).await }).await;
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "slice lease failed");
                return None;
            }
        };
        let [0, entry_ms, rem_rq, reset_rq, rem_tok, reset_tok] = reply[..] else {
            return None; // does not fit: one script call per request for a while
        };
        let ms = |v: i64| Duration::from_millis(v.max(0) as u64);
        let granted = slices::Granted {
            requests: ask.requests,
            tokens: ask.tokens,
            entry_ms,
            remaining_requests: rem_rq.max(0) as u64,
            reset_requests: ms(reset_rq),
            remaining_tokens: rem_tok.max(0) as u64,
            reset_tokens: ms(reset_tok),
        };
        Some(Arc::new(Slice::new(keys, name, &ask.limits, granted, asked_at)))
    }

    /// Gives back what a closed slice did not use, in one script call.
    async fn close_call(&self, slice: &Slice, unused: &Unused) -> bool {
        let mut inv = self.scripts.close.prepare_invoke();
        inv.key(&slice.keys.requests_amounts)
            .key(&slice.keys.tokens_amounts)
            .key(keys::open_marker(&self.prefix, &slice.name))
            .arg(slice.entry_ms())
            .arg(unused.requests)
            .arg(unused.tokens_delta);
        let r: Result<i64, _> = self.link.call(|mut conn| async move { inv.invoke_async(&mut conn).await }).await;
        if let Err(e) = &r {
            tracing::debug!(error = %e, "slice close failed; kept to try again");
        }
        r.is_ok()
    }

    /// One script call: everything global this request needs, or nothing.
    pub async fn admit(&self, req: &AdmitRequest<'_>) -> Result<Decision, SharedError> {
        if let Some(decision) = self.admit_from_slice(req) {
            return Ok(decision);
        }
        let keys = Arc::new(Keys::new(&self.prefix, req.tenant, req.pool.as_ref().map(|p| p.pool.as_str())));
        let id = self.next_lease.fetch_add(1, Ordering::Relaxed);
        let lease_id: Arc<str> = format!("{}:{id}", self.replica).into();
        let limits = req.limits;
        let cap = |v: u64| v.min(MAX_AMOUNT as u64);
        let capi = |v: i64| v.clamp(0, MAX_AMOUNT);
        let mut inv = self.scripts.admit.prepare_invoke();
        for k in keys.admit() {
            inv.key(k);
        }
        inv.key(keys::open_marker(&self.prefix, &lease_id));
        inv.arg(cap(limits.requests_per_minute))
            .arg(cap(limits.tokens_per_minute))
            .arg(limits.max_concurrency.map(|m| cap(m) as i64).unwrap_or(-1))
            .arg(cap(req.tokens))
            .arg(&*lease_id)
            .arg(self.lease.as_millis() as u64);
        match &req.budget {
            Some(b) => inv.arg(1).arg(b.period).arg(b.limit.map(capi).unwrap_or(-1)).arg(capi(b.settled)),
            None => inv.arg(0).arg(0).arg(-1).arg(0),
        };
        inv.arg(capi(req.worst_cost));
        match &req.pool {
            Some(p) => inv.arg(1).arg(i32::from(p.hard)).arg(capi(p.credited)).arg(capi(p.debited)),
            None => inv.arg(0).arg(0).arg(0).arg(0),
        };
        let reply: Vec<i64> = self.link.call(|mut conn| async move { inv.invoke_async(&mut conn).await }).await?;
        let [status, retry, rem_rq, reset_rq, rem_tok, reset_tok, available, now] = reply[..] else {
            return Err(SharedError::Failed(format!("admit script answered {} values", reply.len())));
        };
        let ms = |v: i64| Duration::from_millis(v.max(0) as u64);
        let refusal = match status {
            0 => None,
            1 => Some(SharedRefusal::Requests),
            2 => Some(SharedRefusal::Tokens),
            3 => Some(SharedRefusal::Concurrency),
            4 => Some(SharedRefusal::TooLarge),
            5 => Some(SharedRefusal::Budget),
            6 => Some(SharedRefusal::Pool),
            other => return Err(SharedError::Failed(format!("admit script answered status {other}"))),
        };
        let lease = refusal.is_none().then(|| {
            let held = Held {
                keys,
                name: lease_id,
                concurrency: limits.max_concurrency.is_some(),
                budget: req.budget.is_some(),
                pool: req.pool.is_some(),
            };
            if held.sets().next().is_some() {
                lock(&self.live).insert(id, held.clone());
            }
            Lease {
                id,
                held,
                tokens_at: (req.tokens > 0).then_some(now),
                tokens_estimated: cap(req.tokens),
                budget_period: req.budget.map(|b| b.period),
                slice: None,
            }
        });
        Ok(Decision {
            refusal,
            retry_after: ms(retry),
            remaining_requests: rem_rq.max(0) as u64,
            reset_requests: ms(reset_rq),
            remaining_tokens: rem_tok.max(0) as u64,
            reset_tokens: ms(reset_tok),
            available,
            lease,
        })
    }

    /// Settles a finished request off the request path: the slot freed, the
    /// token estimate replaced by `actual_tokens`, the reservations by `cost`.
    pub fn finish(&self, lease: Lease, actual_tokens: u64, cost: i64) {
        if let Some(slice) = &lease.slice {
            if let Some(unused) = slice.finish(lease.tokens_estimated, actual_tokens.min(MAX_AMOUNT as u64)) {
                let _ = self.finishes.send(Settlement::Close(slice.clone(), unused));
            }
            return;
        }
        lock(&self.live).remove(&lease.id);
        // The receiver lives as long as the process serves; a send fails only
        // at exit, when the leases run out by themselves.
        let _ = self.finishes.send(Settlement::Request(Finish { lease, actual_tokens, cost }));
    }

    /// The background task settling finished requests. Calls run
    /// concurrently (pipelined on the one connection); a call that fails is
    /// kept and tried again once Redis answers (the script is idempotent per
    /// lease). At most [`MAX_PENDING`] wait; beyond that the oldest are
    /// dropped with a warning: their leases run out by themselves and the
    /// database, not Redis, holds the usage records.
    async fn settle_finished(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Settlement>, stop: Shutdown) {
        let mut pending: std::collections::VecDeque<Settlement> = std::collections::VecDeque::new();
        let mut batch = Vec::with_capacity(256);
        loop {
            if pending.is_empty() {
                tokio::select! {
                    n = rx.recv_many(&mut batch, 256) => if n == 0 { return },
                    () = stop.wait() => {
                        // Drain what is queued, once, then stop.
                        while let Ok(f) = rx.try_recv() { batch.push(f); }
                        pending.extend(batch.drain(..));
                        self.settle_batch(&mut pending).await;
                        return;
                    }
                }
            } else {
                while let Ok(f) = rx.try_recv() {
                    batch.push(f);
                }
            }
            pending.extend(batch.drain(..));
            while pending.len() > MAX_PENDING {
                pending.pop_front();
                tracing::warn!("redis settlement queue full: an old settlement dropped (its lease runs out)");
            }
            self.settle_batch(&mut pending).await;
            if !pending.is_empty() {
                tokio::select! {
                    () = stop.wait() => return,
                    () = tokio::time::sleep(link::PROBE_INTERVAL) => {}
                }
            }
        }
    }

    /// Runs the settlements of `pending` (up to 256 at once); those that
    /// fail stay in `pending`.
    async fn settle_batch(&self, pending: &mut std::collections::VecDeque<Settlement>) {
        while !pending.is_empty() && self.link.is_up() {
            let n = pending.len().min(256);
            let taken: Vec<Settlement> = pending.drain(..n).collect();
            // Finished requests go to Redis FINISH_BATCH at a time (one
            // script call each batch); slots and waiters one by one.
            let (requests, others): (Vec<usize>, Vec<usize>) =
                (0..taken.len()).partition(|i| matches!(taken[*i], Settlement::Request(_)));
            let batches: Vec<&[usize]> = requests.chunks(FINISH_BATCH).collect();
            let finishes = |b: &[usize]| -> Vec<&Finish> {
                b.iter()
                    .filter_map(|i| match &taken[*i] {
                        Settlement::Request(f) => Some(f),
                        _ => None,
                    })
                    .collect()
            };
            let calls = batches
                .iter()
                .map(|b| futures::future::Either::Left(self.finish_many(finishes(b))))
                .chain(others.iter().map(|i| futures::future::Either::Right(self.settle_call(&taken[*i]))));
            let results = futures::future::join_all(calls).await;
            let mut failed = vec![false; taken.len()];
            for (b, ok) in batches.iter().zip(&results) {
                for i in b.iter().filter(|_| !ok) {
                    failed[*i] = true;
                }
            }
            for (i, ok) in others.iter().zip(&results[batches.len()..]) {
                failed[*i] |= !ok;
            }
            let mut kept: std::collections::VecDeque<Settlement> =
                taken.into_iter().zip(failed).filter(|(_, f)| *f).map(|(s, _)| s).collect();
            let failed = !kept.is_empty();
            kept.extend(pending.drain(..));
            *pending = kept;
            if failed {
                return;
            }
        }
    }

    async fn settle_call(&self, s: &Settlement) -> bool {
        match s {
            Settlement::Request(f) => self.finish_call(f).await,
            Settlement::Slot(r) => self.release_call(r).await,
            Settlement::Cancel(keys, waiter) => self.cancel_call(keys, waiter).await,
            Settlement::Close(slice, unused) => self.close_call(slice, unused).await,
        }
    }

    async fn finish_call(&self, f: &Finish) -> bool {
        self.finish_many(std::iter::once(f)).await
    }

    /// Settles finished requests in one script call.
    async fn finish_many<'a>(&self, batch: impl IntoIterator<Item = &'a Finish>) -> bool {
        let mut inv = self.scripts.finish.prepare_invoke();
        for f in batch {
            let lease = &f.lease;
            let k = &lease.held.keys;
            let lease_id = &*lease.held.name;
            inv.key(&k.tokens_amounts)
                .key(&k.concurrency)
                .key(&k.budget)
                .key(&k.budget_reservations)
                .key(&k.pool)
                .key(&k.pool_reservations)
                .key(keys::open_marker(&self.prefix, lease_id))
                .arg(lease_id)
                .arg(lease.tokens_at.map(|t| t.to_string()).unwrap_or_default())
                .arg(lease.tokens_estimated)
                .arg(f.actual_tokens.min(MAX_AMOUNT as u64))
                .arg(i32::from(lease.budget_period.is_some()))
                .arg(lease.budget_period.unwrap_or(0))
                .arg(f.cost.clamp(0, MAX_AMOUNT))
                .arg(i32::from(lease.held.pool));
        }
        let r: Result<i64, _> = self.link.call(|mut conn| async move { inv.invoke_async(&mut conn).await }).await;
        if let Err(e) = &r {
            tracing::debug!(error = %e, "redis settlement failed; kept to try again");
        }
        r.is_ok()
    }

    /// Extends the leases of requests in flight here, every third of
    /// [`LEASE`], until `stop`.
    async fn renew_leases(self: Arc<Self>, stop: Shutdown) {
        loop {
            tokio::select! {
                () = stop.wait() => return,
                () = tokio::time::sleep(self.lease / 3) => {}
            }
            let live: Vec<Held> = lock(&self.live).values().cloned().collect();
            let slots = self.live_slot_entries();
            let entries: Vec<(&str, &str)> = live
                .iter()
                .flat_map(|h| h.sets().map(|set| (set, &*h.name)))
                .chain(slots.iter().map(|(keys, name)| (keys.slot_set(), &**name)))
                .collect();
            for chunk in entries.chunks(256) {
                let mut inv = self.scripts.renew.prepare_invoke();
                inv.arg(self.lease.as_millis() as u64);
                for (key, member) in chunk {
                    inv.key(*key).arg(*member);
                }
                let r: Result<i64, _> =
                    self.link.call(|mut conn| async move { inv.invoke_async(&mut conn).await }).await;
                if let Err(e) = r {
                    tracing::debug!(error = %e, "lease renewal failed");
                    break;
                }
            }
        }
    }

    /// Console sign-in throttling across replicas: counts an attempt and
    /// answers `Ok(None)`, or `Ok(Some(wait))` when the pair or the address
    /// must wait (nothing counted). `success`: the pair starts over and the
    /// address gets its attempt back (answers `Ok(None)`).
    pub async fn signin(&self, t: &SignInThrottle<'_>, success: bool) -> Result<Option<Duration>, SharedError> {
        let mut inv = self.scripts.signin.prepare_invoke();
        inv.key(format!("{}signin:p:{}", self.prefix, t.pair)).key(format!("{}signin:a:{}", self.prefix, t.address));
        inv.arg(if success { "success" } else { "begin" });
        for p in [t.pair_policy, t.address_policy] {
            inv.arg(p.free).arg(p.base.as_millis() as u64).arg(p.cap.as_millis() as u64);
        }
        inv.arg(t.forget_after.as_millis() as u64);
        let wait: i64 = self.link.call(|mut conn| async move { inv.invoke_async(&mut conn).await }).await?;
        Ok((wait > 0).then(|| Duration::from_millis(wait as u64)))
    }

    /// Slots and reservations held by requests in flight here.
    pub fn live_leases(&self) -> usize {
        lock(&self.live).len()
    }
}

/// Finished requests settled by one script call at most.
pub const FINISH_BATCH: usize = 64;

/// Settlements kept at most while Redis is unreachable.
pub const MAX_PENDING: usize = 100_000;

#[cfg(test)]
mod tests;
