//! The Redis side of an upstream's capacity, as data: its keys, what a
//! request asks for and what it holds (see `capacity.lua` and
//! [`super::capacity`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

/// How often a waiting request asks again when no slot freed on its own
/// replica (slots freed on other replicas are seen this late at most).
pub const POLL: Duration = Duration::from_millis(20);

/// The Redis keys of one upstream's capacity, in the script's order.
#[derive(Debug)]
pub struct UpstreamKeys([String; 11]);

impl UpstreamKeys {
    pub fn new(prefix: &str, upstream: &str) -> UpstreamKeys {
        let k = |suffix: &str| format!("{prefix}u:{upstream}:{suffix}");
        UpstreamKeys([k("s"), k("h"), k("n"), k("e"), k("w"), k("wt"), k("rq"), k("rqa"), k("tk"), k("tka"), k("wq")])
    }

    pub fn all(&self) -> &[String; 11] {
        &self.0
    }

    /// The slot leases' set (renewed while requests run).
    pub(super) fn slot_set(&self) -> &str {
        &self.0[0]
    }
}

/// A slot held here: its upstream's keys and its lease name.
pub(super) type LiveSlot = (Arc<UpstreamKeys>, Arc<str>);

/// The upstream's declared capacity, as the script takes it.
#[derive(Debug, Clone, Copy)]
pub struct CapacityLimits {
    /// Shared slots (`max_concurrency` minus every reservation); `None`: unlimited.
    pub shared_slots: Option<u32>,
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    pub max_waiting_per_tenant: usize,
}

/// One request asking for a slot.
#[derive(Debug, Clone, Copy)]
pub struct SlotAsk<'a> {
    pub tenant: &'a str,
    /// The tenant's reserved slots on this upstream (0 unless dedicated).
    pub reserved: u32,
    pub tokens: u64,
    /// This request's waiter id (the same on every ask of one request).
    pub waiter: &'a str,
}

/// The answer to a [`SlotAsk`].
#[derive(Debug)]
pub enum SlotAnswer {
    Granted(SlotLease),
    /// No slot now (the request is registered as waiting): ask again after
    /// a slot frees, or after this long at most for a rate window.
    Wait(Option<Duration>),
    /// The tenant already has the most requests waiting.
    QueueFull,
}

/// A slot held in the shared state, renewed while the request runs.
#[derive(Debug)]
pub struct SlotLease {
    pub(super) id: u64,
    pub(super) name: Arc<str>,
    pub(super) keys: Arc<UpstreamKeys>,
    pub reserved: bool,
    /// The tokens entry (Redis time, ms) the estimate was added to.
    pub(super) tokens_at: Option<i64>,
    pub(super) tokens: u64,
}

/// A slot's release, queued for the background task.
#[derive(Debug)]
pub(super) struct SlotRelease {
    pub(super) lease: SlotLease,
    pub(super) actual_tokens: Option<u64>,
    /// Woken once the slot is free in Redis (this replica's waiters).
    pub(super) freed: Arc<Notify>,
}

/// How long a waiter sleeps before asking again (unless a slot frees here
/// first): [`POLL`] when no slot was free, the rate window's retry (at most
/// half a second, so the waiter stays registered) when a rate limit held it.
pub fn poll_after(retry: Option<Duration>) -> Duration {
    retry.map_or(POLL, |r| r.clamp(Duration::from_millis(1), Duration::from_millis(500)))
}
