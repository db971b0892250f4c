//! The upstream's capacity over every replica (`[redis] url` set): one
//! script call takes a slot under the same fair-share rule as the local
//! scheduler, counted over every replica's tenants (see
//! [`crate::shared::capacity`]). A request that cannot start waits here and
//! asks again as soon as a slot frees on this replica, or every 20 ms for
//! slots freed elsewhere, until its queue timeout.
//!
//! While Redis is unreachable: `closed` refuses (503
//! `shared_state_unavailable`); `open` schedules on this replica's share of
//! the capacity (every figure divided by the live replicas).

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::{CapacityConfig, CapacityRefusal, FirstAsk, Global, GlobalSlot, Slot, SlotKind, Upstream};
use crate::admission::window::Added;
use crate::replicas::ThisReplica;
use crate::shared::capacity::waiter_id;
use crate::shared::slots::{poll_after, CapacityLimits, SlotAnswer, SlotAsk, UpstreamKeys};
use crate::shared::{OnFailure, SharedState};

impl GlobalSlot {
    pub(super) fn settle(&self, actual_tokens: u64) {
        self.actual.store(actual_tokens.min(u64::MAX - 1), Ordering::Relaxed);
    }
}

impl Global {
    pub(super) fn queued(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    pub(super) fn in_use(&self) -> (u32, u32) {
        (self.held_shared.load(Ordering::Relaxed), self.held_reserved.load(Ordering::Relaxed))
    }

    /// This replica's share of `cfg` for `replicas` live replicas.
    fn fallback(&self, name: &str, cfg: &CapacityConfig) -> Arc<Upstream> {
        let n = self.replica.live_replicas().max(1);
        let mut f = crate::locks::lock(&self.fallback);
        if let Some((built_for, u)) = f.as_ref() {
            if *built_for == n {
                return u.clone();
            }
        }
        let share32 = |v: u32| (v / n as u32).max(1);
        let cfg = CapacityConfig {
            max_concurrency: cfg.max_concurrency.map(share32),
            requests_per_minute: cfg.requests_per_minute.map(|v| (v / n).max(1)),
            tokens_per_minute: cfg.tokens_per_minute.map(|v| (v / n).max(1)),
            reserved: cfg.reserved.iter().map(|(t, v)| (t.clone(), share32(*v))).collect(),
            queue_timeout: cfg.queue_timeout,
            max_queue_per_tenant: cfg.max_queue_per_tenant,
        };
        let u = Upstream::new(name, cfg);
        *f = Some((n, u.clone()));
        u
    }
}

impl Drop for FirstAsk {
    fn drop(&mut self) {
        let Some(g) = &self.upstream.global else { return };
        match self.answer.take() {
            Some(Ok(SlotAnswer::Granted(lease))) => g.shared.release_slot(lease, None, g.freed.clone()),
            Some(Ok(SlotAnswer::Wait(_))) => g.shared.cancel_wait(g.keys.clone(), std::mem::take(&mut self.waiter)),
            _ => {}
        }
    }
}

/// Counts a local waiter for as long as it is alive.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Upstream {
    /// An upstream scheduled over every replica, in `shared`.
    pub fn shared(name: &str, cfg: CapacityConfig, shared: Arc<SharedState>, replica: Arc<ThisReplica>) -> Arc<Self> {
        let reserved_total: u32 = cfg.reserved.values().sum();
        let global = Global {
            keys: Arc::new(UpstreamKeys::new(shared.prefix(), name)),
            limits: CapacityLimits {
                shared_slots: cfg.max_concurrency.map(|m| m.saturating_sub(reserved_total)),
                requests_per_minute: cfg.requests_per_minute,
                tokens_per_minute: cfg.tokens_per_minute,
                max_waiting_per_tenant: cfg.max_queue_per_tenant,
            },
            shared,
            replica,
            freed: Arc::new(Notify::new()),
            waiting: AtomicUsize::new(0),
            held_shared: AtomicU32::new(0),
            held_reserved: AtomicU32::new(0),
            fallback: Mutex::new(None),
        };
        Self::build(name, cfg, Some(global))
    }

    /// The first ask for a slot, made while admission runs (its call is
    /// pipelined with the admission script's on the one connection, so the
    /// two cost one round trip). `None`: nothing to ask in Redis (an upstream
    /// without declared capacity, a request too large for it, no shared arm).
    pub async fn first_ask(self: &Arc<Self>, tenant: &str, reserved: u32, tokens: u64) -> Option<FirstAsk> {
        let g = self.global.as_ref()?;
        if !self.cfg.is_limited() || self.cfg.tokens_per_minute.is_some_and(|tpm| tokens > tpm) {
            return None;
        }
        let waiter = waiter_id(&g.shared);
        let ask = SlotAsk { tenant, reserved, tokens, waiter: &waiter };
        let answer = g.shared.acquire_slot(&g.keys, &g.limits, &ask).await;
        Some(FirstAsk { upstream: self.clone(), waiter, answer: Some(answer) })
    }

    /// [`Upstream::acquire`], going on from the answer to `first`.
    pub async fn acquire_after(
        self: &Arc<Self>,
        first: FirstAsk,
        tenant: &str,
        reserved: u32,
        tokens: u64,
    ) -> Result<Slot, CapacityRefusal> {
        match &self.global {
            Some(g) if Arc::ptr_eq(&first.upstream, self) => {
                self.acquire_global(g, tenant, reserved, tokens, Some(first)).await
            }
            _ => self.acquire(tenant, reserved, tokens).await,
        }
    }

    pub(super) async fn acquire_global(
        self: &Arc<Self>,
        g: &Global,
        tenant: &str,
        reserved: u32,
        tokens: u64,
        mut first: Option<FirstAsk>,
    ) -> Result<Slot, CapacityRefusal> {
        let waiter = match &first {
            Some(f) => f.waiter.clone(),
            None => waiter_id(&g.shared),
        };
        let ask = SlotAsk { tenant, reserved, tokens, waiter: &waiter };
        let deadline = Instant::now() + self.cfg.queue_timeout;
        let mut waiting: Option<Waiting<'_>> = None;
        loop {
            // Registered before asking: a slot freed during the call wakes it.
            let freed = g.freed.notified();
            let answer = match first.as_mut().and_then(|f| f.answer.take()) {
                Some(answer) => answer,
                None => g.shared.acquire_slot(&g.keys, &g.limits, &ask).await,
            };
            match answer {
                Ok(SlotAnswer::Granted(lease)) => {
                    let (kind, held) = if lease.reserved {
                        (SlotKind::Reserved, &g.held_reserved)
                    } else {
                        (SlotKind::Shared, &g.held_shared)
                    };
                    held.fetch_add(1, Ordering::Relaxed);
                    return Ok(Slot {
                        upstream: Some(self.clone()),
                        tenant: tenant.to_string(),
                        kind,
                        tokens: Added::default(),
                        global: Some(GlobalSlot { lease, actual: AtomicU64::new(u64::MAX) }),
                    });
                }
                Ok(SlotAnswer::QueueFull) => return Err(CapacityRefusal::QueueFull),
                Ok(SlotAnswer::Wait(retry)) => {
                    if waiting.is_none() {
                        g.waiting.fetch_add(1, Ordering::Relaxed);
                        waiting = Some(Waiting(&g.waiting));
                    }
                    tokio::select! {
                        () = freed => {}
                        () = tokio::time::sleep(poll_after(retry)) => {}
                        () = tokio::time::sleep_until(deadline) => {
                            g.shared.cancel_wait(g.keys.clone(), waiter);
                            return Err(CapacityRefusal::Timeout);
                        }
                    }
                }
                Err(e) => {
                    if waiting.is_some() {
                        g.shared.cancel_wait(g.keys.clone(), waiter.clone());
                    }
                    if g.shared.on_failure == OnFailure::Closed {
                        tracing::debug!(error = %e, upstream = %self.name, "shared capacity unreachable: refused");
                        return Err(CapacityRefusal::Unavailable);
                    }
                    tracing::debug!(error = %e, upstream = %self.name, "shared capacity unreachable: this replica's share");
                    let local = g.fallback(&self.name, &self.cfg);
                    let left = deadline.saturating_duration_since(Instant::now());
                    // Boxed: `acquire` calls this function (the share has no shared arm).
                    let acquire = Box::pin(local.acquire(tenant, reserved, tokens));
                    return match tokio::time::timeout(left, acquire).await {
                        Ok(r) => r,
                        Err(_) => Err(CapacityRefusal::Timeout),
                    };
                }
            }
        }
    }

    pub(super) fn release_global(&self, slot: GlobalSlot) {
        let Some(g) = &self.global else { return };
        let held = if slot.lease.reserved { &g.held_reserved } else { &g.held_shared };
        held.fetch_sub(1, Ordering::Relaxed);
        let actual = slot.actual.load(Ordering::Relaxed);
        g.shared.release_slot(slot.lease, (actual != u64::MAX).then_some(actual), g.freed.clone());
    }
}
