//! Upstream capacity and fair share. Each provider (deployment) may declare
//! its capacity — requests in flight, requests/min, tokens/min — and slots
//! reserved for dedicated tenants.
//!
//! Shared slots are split fairly among the *active* tenants (those with
//! requests in flight or waiting, or one finished within the last second):
//! each is guaranteed `shared / active` slots. A tenant below its share
//! starts at once whenever a slot is free; a tenant above it may only take a
//! free slot if enough stay free to cover every other active tenant's unused
//! share. So a tenant sending at a normal rate never waits behind a
//! flooding neighbour, and capacity nobody else needs is still used.
//! Requests that cannot start wait in per-tenant queues; every freed slot
//! goes to the waiting tenant with the fewest requests in flight (oldest
//! first on ties). A flooding tenant thus queues behind itself, and gets
//! 429s once its queue is full or its wait times out.
//!
//! Dedicated tenants first use their reserved slots, which no other tenant
//! can take, and may borrow idle shared slots through the same fair queue.

mod shared;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize};

use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

use super::window::{Added, Refusal, SlidingWindow};
use crate::config::ProviderSettings;
use crate::replicas::ThisReplica;
use crate::shared::link::SharedError;
use crate::shared::slots::{CapacityLimits, SlotAnswer, SlotLease, UpstreamKeys};
use crate::shared::SharedState;

const WINDOW: Duration = Duration::from_secs(60);

/// Capacity settings of one upstream.
#[derive(Debug, Clone, Default)]
pub struct CapacityConfig {
    pub max_concurrency: Option<u32>,
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    /// Slots reserved per tenant (id or alias as configured).
    pub reserved: HashMap<String, u32>,
    pub queue_timeout: Duration,
    pub max_queue_per_tenant: usize,
}

impl CapacityConfig {
    pub fn of(p: &ProviderSettings) -> Self {
        CapacityConfig {
            max_concurrency: p.max_concurrency,
            requests_per_minute: p.requests_per_minute,
            tokens_per_minute: p.tokens_per_minute,
            reserved: p.reserved.clone(),
            queue_timeout: Duration::from_millis(p.queue_timeout_ms),
            max_queue_per_tenant: p.max_queue_per_tenant,
        }
    }

    fn is_limited(&self) -> bool {
        self.max_concurrency.is_some()
            || self.requests_per_minute.is_some()
            || self.tokens_per_minute.is_some()
            || !self.reserved.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapacityRefusal {
    /// The replicas' shared state is unreachable (`on_failure = "closed"`).
    Unavailable,
    /// The tenant already has this many requests waiting.
    QueueFull,
    /// Waited for the whole queue timeout.
    Timeout,
    /// Needs more tokens than the upstream's whole per-minute capacity.
    TooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotKind {
    Shared,
    Reserved,
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    tokens: u64,
    reserved: u32,
    enqueued: Instant,
    tx: oneshot::Sender<(SlotKind, Added)>,
}

/// How long a tenant counts as active after its last request ended.
const ACTIVE_FOR: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Sched {
    shared_in_use: u32,
    reserved_in_use: HashMap<String, u32>,
    in_flight: HashMap<String, u32>,
    /// Shared slots held per tenant.
    shared_by: HashMap<String, u32>,
    /// When each tenant's last request ended.
    last_end: HashMap<String, Instant>,
    requests: SlidingWindow,
    tokens: SlidingWindow,
    waiting: HashMap<String, VecDeque<Waiter>>,
    next_id: u64,
    wake_at: Option<Instant>,
}

/// One upstream's scheduler.
#[derive(Debug)]
pub struct Upstream {
    name: String,
    cfg: CapacityConfig,
    shared_slots: Option<u32>,
    state: Mutex<Sched>,
    me: Weak<Upstream>,
    /// Every replica's capacity in Redis (`[redis] url` set).
    global: Option<Global>,
}

/// A held slot: dropping it frees the capacity and serves the next waiter.
#[derive(Debug)]
pub struct Slot {
    upstream: Option<Arc<Upstream>>,
    tenant: String,
    kind: SlotKind,
    tokens: Added,
    /// A slot of every replica's capacity (released in Redis).
    global: Option<GlobalSlot>,
}

impl Slot {
    /// A slot of an upstream without declared capacity.
    pub fn unlimited() -> Slot {
        Slot { upstream: None, tenant: String::new(), kind: SlotKind::Shared, tokens: Added::default(), global: None }
    }

    fn local(upstream: &Arc<Upstream>, tenant: &str, kind: SlotKind, tokens: Added) -> Slot {
        Slot { upstream: Some(upstream.clone()), tenant: tenant.to_string(), kind, tokens, global: None }
    }

    /// Replaces the estimated tokens by the actual count in the upstream's window.
    pub fn settle(&self, actual_tokens: u64) {
        if let Some(g) = &self.global {
            g.settle(actual_tokens);
        } else if let Some(u) = &self.upstream {
            u.lock().tokens.adjust(self.tokens, actual_tokens);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(u) = self.upstream.take() {
            match self.global.take() {
                Some(g) => u.release_global(g),
                None => u.release(&self.tenant, self.kind),
            }
        }
    }
}

impl Upstream {
    /// An upstream scheduled by this process alone.
    pub fn new(name: &str, cfg: CapacityConfig) -> Arc<Upstream> {
        Self::build(name, cfg, None)
    }

    fn build(name: &str, cfg: CapacityConfig, global: Option<Global>) -> Arc<Upstream> {
        let reserved_total: u32 = cfg.reserved.values().sum();
        let shared_slots = cfg.max_concurrency.map(|m| m.saturating_sub(reserved_total));
        Arc::new_cyclic(|me| Upstream {
            name: name.to_string(),
            shared_slots,
            cfg,
            state: Mutex::new(Sched {
                shared_in_use: 0,
                reserved_in_use: HashMap::new(),
                in_flight: HashMap::new(),
                shared_by: HashMap::new(),
                last_end: HashMap::new(),
                requests: SlidingWindow::new(WINDOW),
                tokens: SlidingWindow::new(WINDOW),
                waiting: HashMap::new(),
                next_id: 0,
                wake_at: None,
            }),
            me: me.clone(),
            global,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sched> {
        crate::locks::lock(&self.state)
    }

    /// Slots reserved for a tenant (matched by id or any alias), if it is dedicated.
    pub fn reserved_for(&self, ids: &[&str]) -> u32 {
        ids.iter().filter_map(|id| self.cfg.reserved.get(*id)).copied().max().unwrap_or(0)
    }

    /// Which slot the tenant can start on now, or why not (Err(Some(wait)):
    /// blocked by a rate window for that long; Err(None): no free slot).
    fn can_start(
        &self,
        s: &mut Sched,
        tenant: &str,
        reserved: u32,
        tokens: u64,
        now: Instant,
    ) -> Result<SlotKind, Option<Duration>> {
        let kind = if reserved > 0 && s.reserved_in_use.get(tenant).copied().unwrap_or(0) < reserved {
            SlotKind::Reserved
        } else if self.shared_slot_allowed(s, tenant, now) {
            SlotKind::Shared
        } else {
            return Err(None);
        };
        // Requests/min and tokens/min of the upstream (reserved slots are
        // concurrency only; the upstream's rate limits bind everyone).
        if let Some(rpm) = self.cfg.requests_per_minute {
            if let Err(Refusal::RetryAfter(d)) = s.requests.check(now, 1, rpm) {
                return Err(Some(d));
            }
        }
        if let Some(tpm) = self.cfg.tokens_per_minute {
            if let Err(Refusal::RetryAfter(d)) = s.tokens.check(now, tokens.min(tpm), tpm) {
                return Err(Some(d));
            }
        }
        Ok(kind)
    }

    /// Whether `tenant` may take a shared slot now (see the module docs).
    fn shared_slot_allowed(&self, s: &Sched, tenant: &str, now: Instant) -> bool {
        let Some(max) = self.shared_slots else { return true };
        if s.shared_in_use >= max {
            return false;
        }
        let free = max - s.shared_in_use;
        let mut active: Vec<&str> = s
            .shared_by
            .keys()
            .chain(s.waiting.iter().filter(|(_, q)| !q.is_empty()).map(|(t, _)| t))
            .chain(s.last_end.iter().filter(|(_, at)| now.saturating_duration_since(**at) < ACTIVE_FOR).map(|(t, _)| t))
            .map(String::as_str)
            .collect();
        active.push(tenant);
        active.sort_unstable();
        active.dedup();
        let share = (max / active.len() as u32).max(1);
        let held = |t: &str| s.shared_by.get(t).copied().unwrap_or(0);
        if held(tenant) < share {
            return true;
        }
        let owed: u32 = active.iter().filter(|t| **t != tenant).map(|t| share.saturating_sub(held(t))).sum();
        free > owed
    }

    fn start(s: &mut Sched, tenant: &str, kind: SlotKind, tokens: u64, now: Instant) -> Added {
        match kind {
            SlotKind::Shared => {
                s.shared_in_use += 1;
                *s.shared_by.entry(tenant.to_string()).or_default() += 1;
            }
            SlotKind::Reserved => *s.reserved_in_use.entry(tenant.to_string()).or_default() += 1,
        }
        *s.in_flight.entry(tenant.to_string()).or_default() += 1;
        s.requests.add(now, 1);
        s.tokens.add(now, tokens)
    }

    fn stop(s: &mut Sched, tenant: &str, kind: SlotKind, now: Instant) {
        match kind {
            SlotKind::Shared => {
                s.last_end.insert(tenant.to_string(), now);
                s.shared_in_use = s.shared_in_use.saturating_sub(1);
                if let Some(n) = s.shared_by.get_mut(tenant) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        s.shared_by.remove(tenant);
                    }
                }
            }
            SlotKind::Reserved => {
                if let Some(n) = s.reserved_in_use.get_mut(tenant) {
                    *n = n.saturating_sub(1);
                }
            }
        }
        if let Some(n) = s.in_flight.get_mut(tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                s.in_flight.remove(tenant);
            }
        }
    }

    /// Waits for a slot for `tenant`, fairly. `reserved` is the tenant's own
    /// reserved slot count (0 unless dedicated).
    pub async fn acquire(self: &Arc<Self>, tenant: &str, reserved: u32, tokens: u64) -> Result<Slot, CapacityRefusal> {
        if !self.cfg.is_limited() {
            return Ok(Slot::unlimited());
        }
        if self.cfg.tokens_per_minute.is_some_and(|tpm| tokens > tpm) {
            return Err(CapacityRefusal::TooLarge);
        }
        if let Some(g) = &self.global {
            return self.acquire_global(g, tenant, reserved, tokens, None).await;
        }
        let rx = {
            let mut s = self.lock();
            let now = Instant::now();
            let nobody_waits = s.waiting.values().all(VecDeque::is_empty);
            let under_share = s.shared_by.get(tenant).copied().unwrap_or(0) == 0;
            match self.can_start(&mut s, tenant, reserved, tokens, now) {
                Ok(kind) if nobody_waits || under_share || kind == SlotKind::Reserved => {
                    let added = Self::start(&mut s, tenant, kind, tokens, now);
                    return Ok(Slot::local(self, tenant, kind, added));
                }
                _ => {}
            }
            let queue = s.waiting.entry(tenant.to_string()).or_default();
            if queue.len() >= self.cfg.max_queue_per_tenant {
                return Err(CapacityRefusal::QueueFull);
            }
            let (tx, rx) = oneshot::channel();
            let id = s.next_id;
            s.next_id += 1;
            s.waiting.entry(tenant.to_string()).or_default().push_back(Waiter {
                id,
                tokens,
                reserved,
                enqueued: now,
                tx,
            });
            self.dispatch(&mut s, now);
            (rx, id)
        };
        let (mut rx, id) = rx;
        match tokio::time::timeout(self.cfg.queue_timeout, &mut rx).await {
            Ok(Ok((kind, tokens))) => Ok(Slot::local(self, tenant, kind, tokens)),
            Ok(Err(_)) => Err(CapacityRefusal::Timeout),
            Err(_) => {
                let mut s = self.lock();
                if let Some(q) = s.waiting.get_mut(tenant) {
                    if let Some(pos) = q.iter().position(|w| w.id == id) {
                        q.remove(pos);
                        return Err(CapacityRefusal::Timeout);
                    }
                }
                drop(s);
                // Granted just as the wait ran out: take it.
                match rx.try_recv() {
                    Ok((kind, tokens)) => Ok(Slot::local(self, tenant, kind, tokens)),
                    Err(_) => Err(CapacityRefusal::Timeout),
                }
            }
        }
    }

    fn release(&self, tenant: &str, kind: SlotKind) {
        let mut s = self.lock();
        let now = Instant::now();
        Self::stop(&mut s, tenant, kind, now);
        s.last_end.retain(|_, at| now.saturating_duration_since(*at) < ACTIVE_FOR);
        self.dispatch(&mut s, now);
    }

    /// Hands free capacity to waiters, fewest-in-flight tenant first.
    fn dispatch(&self, s: &mut Sched, now: Instant) {
        let mut blocked_until: Option<Duration> = None;
        loop {
            // Candidates: the head waiter of every tenant, fairest first.
            let mut heads: Vec<(u32, Instant, String)> = s
                .waiting
                .iter()
                .filter_map(|(t, q)| {
                    q.front().map(|w| (s.in_flight.get(t).copied().unwrap_or(0), w.enqueued, t.clone()))
                })
                .collect();
            if heads.is_empty() {
                break;
            }
            heads.sort();
            let mut started = false;
            for (_, _, tenant) in heads {
                let Some(w) = s.waiting.get(&tenant).and_then(|q| q.front()) else { continue };
                let (tokens, reserved) = (w.tokens, w.reserved);
                match self.can_start(s, &tenant, reserved, tokens, now) {
                    Ok(kind) => {
                        let Some(w) = s.waiting.get_mut(&tenant).and_then(VecDeque::pop_front) else { continue };
                        let seq = Self::start(s, &tenant, kind, tokens, now);
                        if w.tx.send((kind, seq)).is_err() {
                            // The waiter is gone (its client left): undo.
                            Self::stop(s, &tenant, kind, now);
                            s.tokens.adjust(seq, 0);
                        }
                        started = true;
                        break;
                    }
                    Err(Some(wait)) => {
                        blocked_until = Some(blocked_until.map_or(wait, |b| b.min(wait)));
                    }
                    Err(None) => {}
                }
            }
            if !started {
                break;
            }
        }
        s.waiting.retain(|_, q| !q.is_empty());
        // Waiters held back by a recently active tenant's share: look again
        // when that tenant stops counting as active.
        if !s.waiting.is_empty() {
            if let Some(expiry) = s.last_end.values().map(|at| *at + ACTIVE_FOR).filter(|at| *at > now).min() {
                let wait = expiry - now;
                blocked_until = Some(blocked_until.map_or(wait, |b| b.min(wait)));
            }
        }
        // Blocked by a rate window or an activity expiry: come back then.
        if let Some(wait) = blocked_until {
            let at = now + wait.max(Duration::from_millis(1));
            if s.wake_at.is_none_or(|w| w <= now || at < w) {
                s.wake_at = Some(at);
                if let Some(me) = self.me.upgrade() {
                    tokio::spawn(async move {
                        tokio::time::sleep_until(at).await;
                        let mut s = me.lock();
                        if s.wake_at == Some(at) {
                            s.wake_at = None;
                        }
                        me.dispatch(&mut s, Instant::now());
                    });
                }
            }
        }
    }

    /// Requests waiting here now (all tenants).
    pub fn queued(&self) -> usize {
        if let Some(g) = &self.global {
            return g.queued();
        }
        self.lock().waiting.values().map(VecDeque::len).sum()
    }

    /// Slots in use by this replica's requests now: (shared, reserved).
    pub fn in_use(&self) -> (u32, u32) {
        if let Some(g) = &self.global {
            return g.in_use();
        }
        let s = self.lock();
        (s.shared_in_use, s.reserved_in_use.values().sum())
    }
}

/// The shared arm of one upstream.
#[derive(Debug)]
struct Global {
    shared: Arc<SharedState>,
    keys: Arc<UpstreamKeys>,
    limits: CapacityLimits,
    replica: Arc<ThisReplica>,
    /// Woken when a slot held here is released (in Redis).
    freed: Arc<Notify>,
    waiting: AtomicUsize,
    held_shared: AtomicU32,
    held_reserved: AtomicU32,
    /// While Redis is unreachable (`open`): this replica's share, built for
    /// a live-replica count.
    fallback: Mutex<Option<(u64, Arc<Upstream>)>>,
}

/// A held slot of every replica's capacity.
#[derive(Debug)]
struct GlobalSlot {
    lease: SlotLease,
    /// The actual tokens once known (`u64::MAX`: not yet).
    actual: AtomicU64,
}

/// A slot asked for ahead of time ([`Upstream::first_ask`]): handed to
/// [`Upstream::acquire_after`], or given back when dropped unused (a slot
/// released, a waiter forgotten).
#[derive(Debug)]
pub struct FirstAsk {
    upstream: Arc<Upstream>,
    waiter: String,
    answer: Option<Result<SlotAnswer, SharedError>>,
}

impl FirstAsk {
    /// The upstream asked.
    pub fn upstream(&self) -> &str {
        self.upstream.name()
    }
}

#[cfg(test)]
mod tests;
