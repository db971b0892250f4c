//! An upstream's capacity shared by every replica (`capacity.lua`): slots
//! in flight leased like a tenant's, the upstream's requests/min and
//! tokens/min, reserved slots, and the fair share among the tenants active
//! on any replica. A request that cannot start registers as a waiter (so
//! its tenant counts as active everywhere) and asks again when a slot frees
//! here or every [`super::slots::POLL`]; a waiter no replica asks for within a second is
//! forgotten (its replica died or gave up).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::link::SharedError;
use super::slots::{CapacityLimits, LiveSlot, SlotAnswer, SlotAsk, SlotLease, SlotRelease, UpstreamKeys};
use super::{Settlement, SharedState, MAX_AMOUNT};
use crate::locks::lock;

impl SharedState {
    /// One script call: a slot of the upstream now, or the request waits.
    pub async fn acquire_slot(
        &self,
        keys: &Arc<UpstreamKeys>,
        limits: &CapacityLimits,
        ask: &SlotAsk<'_>,
    ) -> Result<SlotAnswer, SharedError> {
        let id = self.next_lease.fetch_add(1, Ordering::Relaxed);
        let name: Arc<str> = format!("{}:{id}", self.replica).into();
        let cap = |v: u64| v.min(MAX_AMOUNT as u64) as i64;
        let mut inv = self.scripts.capacity.prepare_invoke();
        for k in keys.all() {
            inv.key(k);
        }
        inv.arg("acquire")
            .arg(ask.tenant)
            .arg(ask.reserved)
            .arg(cap(ask.tokens))
            .arg(&*name)
            .arg(self.lease.as_millis() as u64)
            .arg(limits.shared_slots.map_or(-1, i64::from))
            .arg(limits.requests_per_minute.map_or(-1, cap))
            .arg(limits.tokens_per_minute.map_or(-1, cap))
            .arg(ask.waiter)
            .arg(limits.max_waiting_per_tenant);
        let reply: Vec<i64> = self.link.call(|mut conn| async move { inv.invoke_async(&mut conn).await }).await?;
        let [status, reserved, entry, retry] = reply[..] else {
            return Err(SharedError::Failed(format!("capacity script answered {} values", reply.len())));
        };
        Ok(match status {
            1 => {
                lock(&self.live_slots).insert(id, (keys.clone(), name.clone()));
                SlotAnswer::Granted(SlotLease {
                    id,
                    name,
                    keys: keys.clone(),
                    reserved: reserved == 1,
                    tokens_at: (entry > 0).then_some(entry),
                    tokens: cap(ask.tokens) as u64,
                })
            }
            0 => SlotAnswer::Wait((retry > 0).then(|| Duration::from_millis(retry as u64))),
            2 => SlotAnswer::QueueFull,
            other => return Err(SharedError::Failed(format!("capacity script answered status {other}"))),
        })
    }

    /// Frees a slot off the request path; `actual_tokens` replaces the
    /// estimate in the upstream's tokens/min (`None`: keep the estimate).
    /// `freed` is notified once the slot is free.
    pub fn release_slot(&self, lease: SlotLease, actual_tokens: Option<u64>, freed: Arc<Notify>) {
        lock(&self.live_slots).remove(&lease.id);
        let _ = self.finishes.send(Settlement::Slot(SlotRelease { lease, actual_tokens, freed }));
    }

    /// Forgets a waiter that gave up (off the request path; a waiter not
    /// asked for runs out after a second anyway).
    pub fn cancel_wait(&self, keys: Arc<UpstreamKeys>, waiter: String) {
        let _ = self.finishes.send(Settlement::Cancel(keys, waiter));
    }

    pub(super) async fn release_call(&self, r: &SlotRelease) -> bool {
        let l = &r.lease;
        let mut inv = self.scripts.capacity.prepare_invoke();
        for k in l.keys.all() {
            inv.key(k);
        }
        inv.arg("release")
            .arg(&*l.name)
            .arg(l.tokens_at.map(|t| t.to_string()).unwrap_or_default())
            .arg(l.tokens)
            .arg(r.actual_tokens.unwrap_or(l.tokens).min(MAX_AMOUNT as u64));
        let ok = self.settle_script(inv).await;
        if ok {
            r.freed.notify_waiters();
        }
        ok
    }

    pub(super) async fn cancel_call(&self, keys: &UpstreamKeys, waiter: &str) -> bool {
        let mut inv = self.scripts.capacity.prepare_invoke();
        for k in keys.all() {
            inv.key(k);
        }
        inv.arg("cancel").arg(waiter);
        self.settle_script(inv).await
    }

    async fn settle_script(&self, inv: redis::ScriptInvocation<'_>) -> bool {
        let r: Result<i64, _> = self.link.call(|mut conn| async move { inv.invoke_async(&mut conn).await }).await;
        if let Err(e) = &r {
            tracing::debug!(error = %e, "redis capacity release failed; kept to try again");
        }
        r.is_ok()
    }

    /// The slot leases of requests in flight here, as (set, member) pairs.
    pub(super) fn live_slot_entries(&self) -> Vec<LiveSlot> {
        lock(&self.live_slots).values().cloned().collect()
    }
}

/// A waiter id unique across replicas.
pub fn waiter_id(shared: &SharedState) -> String {
    format!("{}:w{}", shared.replica, shared.next_lease.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
impl SharedState {
    /// Releases at once (the tests run no background task).
    pub(super) async fn release_now(&self, lease: SlotLease, actual_tokens: Option<u64>) -> bool {
        lock(&self.live_slots).remove(&lease.id);
        self.release_call(&SlotRelease { lease, actual_tokens, freed: Arc::new(Notify::new()) }).await
    }
}
