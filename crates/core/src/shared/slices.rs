//! Requests/min and tokens/min leased from Redis in slices, so most requests
//! are admitted without a round trip (`lease.lua`, `close.lua`).
//!
//! A tenant whose only shared limits are requests/min and tokens/min (no
//! `max_concurrency`, no hard budget, no credit pool) and whose limits are
//! large enough ([`sizes`]) is admitted from a slice this replica leased:
//! `1/SLICE_FRACTION` of each limit, usable for [`SLICE_TTL`]. One script
//! call leases a slice, another (off the request path, batched) gives back
//! what it did not use once it ends and its requests have finished; every
//! request in between is admitted in memory. The next slice is asked for
//! in the background when half of the current one is used, so a busy
//! tenant's requests do not wait for Redis at all.
//!
//! **Never over the limit.** Leasing adds the whole slice to the tenant's
//! sliding-window logs at the slice's *end* `e = t + L` (Redis time `t` of
//! the lease, length `L`), and the replica admits from it only before
//! `e` (its own clock, started before it asked, so never later). An entry
//! stamped `e` is counted by every admission or lease at Redis time up to
//! `e + 60 s`. Take any 60-second window `[s, s + 60 s)` and, of the slices
//! and single admissions used inside it, the one granted last, at `t_j`:
//! it was used in the window, so `s + 60 s > t_j`; every other one used in
//! the window was used at or after `s`, so its end is at least `s`, which is
//! later than `t_j - 60 s`: its entry was still counted when `t_j`'s grant
//! checked `used + amount <= limit`. So the window holds at most the limit.
//! A single admission is a slice with `L = 0` (`admit.lua`), and both live in
//! the same logs.
//!
//! **The cost.** Quota leased but not yet used is unavailable to the other
//! replicas until the slice closes (at most `L` plus the settlement's
//! delay), so near the limit a tenant can be refused while another replica
//! still holds part of a slice: at most two slices per replica (the current
//! one and the next), `2 × replicas / SLICE_FRACTION` of the limit (three
//! replicas: 2.3 %). Tokens are counted at the request's
//! estimate and corrected to the actual count when the slice closes (after
//! its last request finished), not per request. `x-ratelimit-remaining-*`
//! of a request admitted from a slice are the figures at the lease plus
//! what the slice has left (other replicas' use since is not seen). When a
//! slice cannot be leased (the limit is near) the tenant goes back to one
//! exact admission per request for [`BACKOFF`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sheepdog_types::Limits;
use tokio::time::Instant;

use super::keys::Keys;
use crate::fastmap::FastMap;
use crate::locks::lock;

/// A slice is this fraction of a limit (requests/min and tokens/min).
pub const SLICE_FRACTION: u64 = 256;

/// Fewest requests worth a slice: below it (requests/min under 2,048) every
/// request is admitted by its own script call.
pub const MIN_SLICE_REQUESTS: u64 = 8;

/// Most requests in one slice.
pub const MAX_SLICE_REQUESTS: u64 = 1_024;

/// How long a slice may be used after it was asked for.
pub const SLICE_TTL: Duration = Duration::from_secs(1);

/// After a slice did not fit (or Redis failed), how long the tenant is
/// admitted one request per script call before leasing is tried again.
pub const BACKOFF: Duration = Duration::from_secs(1);

/// The slice sizes (requests, tokens) for a request of `tokens` under
/// `limits`, or `None` when it must be admitted by its own script call:
/// `reserves` (a hard budget or a credit pool to reserve from), a
/// `max_concurrency`, limits too small, or more tokens than a slice holds.
pub fn sizes(limits: &Limits, tokens: u64, reserves: bool) -> Option<(u64, u64)> {
    if reserves || limits.max_concurrency.is_some() {
        return None;
    }
    let requests = (limits.requests_per_minute / SLICE_FRACTION).min(MAX_SLICE_REQUESTS);
    let slice_tokens = limits.tokens_per_minute / SLICE_FRACTION;
    (requests >= MIN_SLICE_REQUESTS && slice_tokens >= tokens).then_some((requests, slice_tokens))
}

/// What one lease call answered, for [`Slices::install`].
#[derive(Debug, Clone, Copy)]
pub struct Granted {
    pub requests: u64,
    pub tokens: u64,
    /// The log entry (Redis ms) holding the slice: its end.
    pub entry_ms: i64,
    pub remaining_requests: u64,
    pub reset_requests: Duration,
    pub remaining_tokens: u64,
    pub reset_tokens: Duration,
}

/// A leased slice.
#[derive(Debug)]
pub struct Slice {
    pub keys: Arc<Keys>,
    /// Names the slice's open marker (`<replica>:s<n>`).
    pub name: Arc<str>,
    /// The limits it was leased under: a change ends it.
    limits: (u64, u64),
    granted: Granted,
    asked_at: Instant,
    state: Mutex<SliceState>,
    /// Its close was queued (exactly once).
    close_sent: AtomicBool,
}

#[derive(Debug, Default)]
struct SliceState {
    used_requests: u64,
    used_tokens: u64,
    /// Requests admitted from it that have not finished.
    outstanding: u64,
    /// Sum over finished requests of (actual tokens - estimate).
    correction: i64,
    /// No more requests are admitted from it.
    ended: bool,
}

/// What a slice gives back when it closes: for `close.lua`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unused {
    pub requests: u64,
    /// Tokens to add to its entry (negative: given back).
    pub tokens_delta: i64,
}

/// One admission from a slice.
#[derive(Debug)]
pub struct Taken {
    pub slice: Arc<Slice>,
    pub remaining_requests: u64,
    pub reset_requests: Duration,
    pub remaining_tokens: u64,
    pub reset_tokens: Duration,
    /// Ask for the next slice now (half of this one is used).
    pub refill: bool,
}

impl Slice {
    pub fn new(keys: Arc<Keys>, name: Arc<str>, limits: &Limits, granted: Granted, asked_at: Instant) -> Slice {
        Slice {
            keys,
            name,
            limits: (limits.requests_per_minute, limits.tokens_per_minute),
            granted,
            asked_at,
            state: Mutex::new(SliceState::default()),
            close_sent: AtomicBool::new(false),
        }
    }

    pub fn entry_ms(&self) -> i64 {
        self.granted.entry_ms
    }

    fn expired(&self, now: Instant) -> bool {
        now >= self.asked_at + SLICE_TTL
    }

    /// Takes one request of `tokens` if the slice can admit it now. `Err`
    /// tells whether the slice is done for every request (`true`: expired,
    /// out of requests, or leased under other limits) or only lacks the
    /// tokens of this one (`false`).
    fn take(&self, limits: &Limits, tokens: u64, now: Instant) -> Result<(u64, u64, bool), bool> {
        let mut s = lock(&self.state);
        if s.ended {
            return Err(true);
        }
        let g = &self.granted;
        if self.expired(now)
            || self.limits != (limits.requests_per_minute, limits.tokens_per_minute)
            || s.used_requests >= g.requests
        {
            return Err(true);
        }
        if s.used_tokens.saturating_add(tokens) > g.tokens {
            // Out of tokens altogether: done; short of this request's: not.
            return Err(s.used_tokens >= g.tokens);
        }
        s.used_requests += 1;
        s.used_tokens += tokens;
        s.outstanding += 1;
        let half = s.used_requests * 2 >= g.requests || s.used_tokens * 2 >= g.tokens;
        Ok((g.requests - s.used_requests, g.tokens - s.used_tokens, half))
    }

    /// No more requests from it; `Some` when it can close now (nothing
    /// outstanding and not closed before).
    pub fn end(&self) -> Option<Unused> {
        let mut s = lock(&self.state);
        s.ended = true;
        self.closable(&s)
    }

    /// A request it admitted finished with `actual` tokens for an estimate
    /// of `estimated`; `Some` when the slice can close now.
    pub fn finish(&self, estimated: u64, actual: u64) -> Option<Unused> {
        let mut s = lock(&self.state);
        s.outstanding = s.outstanding.saturating_sub(1);
        let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        s.correction = s.correction.saturating_add(signed(actual).saturating_sub(signed(estimated)));
        self.closable(&s)
    }

    fn closable(&self, s: &SliceState) -> Option<Unused> {
        if !s.ended || s.outstanding > 0 || self.close_sent.swap(true, Ordering::AcqRel) {
            return None;
        }
        let unused_tokens = i64::try_from(self.granted.tokens.saturating_sub(s.used_tokens)).unwrap_or(i64::MAX);
        Some(Unused {
            requests: self.granted.requests.saturating_sub(s.used_requests),
            tokens_delta: s.correction.saturating_sub(unused_tokens),
        })
    }
}

/// A tenant's slices on this replica.
#[derive(Debug, Default)]
struct TenantSlices {
    current: Option<Arc<Slice>>,
    /// Asked for while `current` was still in use.
    next: Option<Arc<Slice>>,
    /// A lease call is out.
    refilling: bool,
    /// No lease is asked for before this.
    backoff_until: Option<Instant>,
}

/// Every tenant's slices on this replica.
#[derive(Debug, Default)]
pub struct Slices {
    map: Mutex<FastMap<String, TenantSlices>>,
}

/// Slices that ended and can close: their give-backs, for `close.lua`.
pub type Ended = Vec<(Arc<Slice>, Unused)>;

impl Slices {
    /// Admits one request from the tenant's slice if it can; `ended` gets
    /// the slices that ended on the way and can close.
    pub fn take(&self, tenant: &str, limits: &Limits, tokens: u64, now: Instant, ended: &mut Ended) -> Option<Taken> {
        let mut map = lock(&self.map);
        let t = map.get_mut(tenant)?;
        loop {
            let slice = t.current.clone()?;
            match slice.take(limits, tokens, now) {
                Ok((left_requests, left_tokens, half)) => {
                    let g = &slice.granted;
                    let since = now.saturating_duration_since(slice.asked_at);
                    let refill = half && t.next.is_none() && !t.refilling && t.backoff_until.is_none_or(|b| now >= b);
                    if refill {
                        t.refilling = true;
                    }
                    return Some(Taken {
                        remaining_requests: g.remaining_requests.saturating_add(left_requests),
                        reset_requests: g.reset_requests.saturating_sub(since),
                        remaining_tokens: g.remaining_tokens.saturating_add(left_tokens),
                        reset_tokens: g.reset_tokens.saturating_sub(since),
                        refill,
                        slice,
                    });
                }
                Err(true) => {
                    if let Some(u) = slice.end() {
                        ended.push((slice, u));
                    }
                    t.current = t.next.take();
                }
                Err(false) => return None,
            }
        }
    }

    /// Whether to ask for a slice for `tenant` now (none is being asked for,
    /// none is waiting, and leasing is not backing off); marks it asked.
    pub fn want(&self, tenant: &str, now: Instant) -> bool {
        let mut map = lock(&self.map);
        let t = map.entry(tenant.to_string()).or_default();
        let usable = t.current.as_ref().is_some_and(|s| !s.expired(now) && !lock(&s.state).ended);
        if t.refilling || t.next.is_some() || usable || t.backoff_until.is_some_and(|b| now < b) {
            return false;
        }
        t.refilling = true;
        true
    }

    /// A lease answered: `Some` slice to use, or `None` (it did not fit, or
    /// Redis failed: back off).
    pub fn install(&self, tenant: &str, slice: Option<Arc<Slice>>, now: Instant) {
        let mut map = lock(&self.map);
        let t = map.entry(tenant.to_string()).or_default();
        t.refilling = false;
        match slice {
            Some(s) if t.current.is_none() => t.current = Some(s),
            Some(s) => t.next = Some(s),
            None => t.backoff_until = Some(now + BACKOFF),
        }
    }

    /// Ends the slices past their time (and, with `all`, every slice), and
    /// forgets tenants with nothing left; what can close goes to `ended`.
    pub fn sweep(&self, now: Instant, all: bool, ended: &mut Ended) {
        let mut map = lock(&self.map);
        map.retain(|_, t| {
            for slot in [&mut t.current, &mut t.next] {
                if slot.as_ref().is_some_and(|s| all || s.expired(now)) {
                    if let Some(s) = slot.take() {
                        if let Some(u) = s.end() {
                            ended.push((s, u));
                        }
                    }
                }
            }
            if t.current.is_none() {
                t.current = t.next.take();
            }
            t.current.is_some() || t.refilling || t.backoff_until.is_some_and(|b| now < b)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rpm: u64, tpm: u64) -> Limits {
        Limits { requests_per_minute: rpm, tokens_per_minute: tpm, max_concurrency: None }
    }

    fn slice(requests: u64, tokens: u64, lim: &Limits, at: Instant) -> Arc<Slice> {
        let g = Granted {
            requests,
            tokens,
            entry_ms: 61_000,
            remaining_requests: 100,
            reset_requests: Duration::from_secs(60),
            remaining_tokens: 1_000,
            reset_tokens: Duration::from_secs(60),
        };
        Arc::new(Slice::new(Arc::new(Keys::new("p:", "t", None)), "r:s1".into(), lim, g, at))
    }

    #[test]
    fn sizes_lease_only_plain_rate_limits_large_enough() {
        let big = limits(100_000_000, 100_000_000_000);
        assert_eq!(sizes(&big, 100, false), Some((MAX_SLICE_REQUESTS, 100_000_000_000 / SLICE_FRACTION)));
        assert_eq!(sizes(&limits(2_048, 25_600), 100, false), Some((8, 100)));
        assert_eq!(sizes(&limits(2_047, 1_000_000), 100, false), None, "under 8 requests a slice");
        assert_eq!(sizes(&limits(100_000, 25_599), 100, false), None, "the request's tokens do not fit a slice");
        let conc = Limits { max_concurrency: Some(4), ..big.clone() };
        assert_eq!(sizes(&conc, 1, false), None);
        assert_eq!(sizes(&big, 1, true), None, "a budget or pool to reserve from");
    }

    #[test]
    fn a_slice_admits_what_it_holds_then_closes_once_its_requests_finish() {
        let lim = limits(100_000, 1_000_000);
        let t0 = Instant::now();
        let slices = Slices::default();
        let mut ended = Vec::new();
        assert!(slices.take("t", &lim, 10, t0, &mut ended).is_none(), "no slice yet");
        assert!(slices.want("t", t0));
        assert!(!slices.want("t", t0), "one lease asked for at a time");
        slices.install("t", Some(slice(4, 100, &lim, t0)), t0);
        let a = slices.take("t", &lim, 30, t0, &mut ended).unwrap();
        assert_eq!((a.remaining_requests, a.remaining_tokens, a.refill), (103, 1_070, false));
        let b = slices.take("t", &lim, 30, t0, &mut ended).unwrap();
        assert!(b.refill, "half used: the next slice is asked for");
        assert!(slices.take("t", &lim, 50, t0, &mut ended).is_none(), "50 tokens do not fit the 40 left");
        let c = slices.take("t", &lim, 40, t0, &mut ended).unwrap();
        assert!(!c.refill, "already being asked for");
        // Out of tokens for any request: it ends, nothing to take from.
        assert!(slices.take("t", &lim, 1, t0, &mut ended).is_none());
        assert!(ended.is_empty(), "three requests still outstanding");
        assert_eq!(a.slice.finish(30, 10), None);
        assert_eq!(b.slice.finish(30, 30), None);
        // 1 request and 0 tokens unused; actual tokens 20 + 0 + 5 below the estimates.
        assert_eq!(c.slice.finish(40, 35), Some(Unused { requests: 1, tokens_delta: -25 }));
        assert_eq!(c.slice.end(), None, "closed once");
    }

    #[test]
    fn a_slice_ends_at_its_time_or_when_the_limits_change_and_the_next_takes_over() {
        let lim = limits(100_000, 1_000_000);
        let t0 = Instant::now();
        let slices = Slices::default();
        let mut ended = Vec::new();
        assert!(slices.want("t", t0));
        slices.install("t", Some(slice(10, 1_000, &lim, t0)), t0);
        slices.install("t", Some(slice(10, 1_000, &lim, t0)), t0);
        let first = slices.take("t", &lim, 1, t0, &mut ended).unwrap().slice;
        // Changed limits end the current slice; the waiting one is used.
        let lower = limits(50_000, 1_000_000);
        assert!(slices.take("t", &lower, 1, t0, &mut ended).is_none());
        // The waiting slice, leased under the old limits too, ends unused;
        // the first has a request outstanding.
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].1, Unused { requests: 10, tokens_delta: -1_000 });
        assert_eq!(first.finish(1, 1), Some(Unused { requests: 9, tokens_delta: -999 }));
        // A slice past its time admits nothing, and the sweep forgets the tenant.
        assert!(slices.want("t", t0));
        slices.install("t", Some(slice(10, 1_000, &lim, t0)), t0);
        let later = t0 + SLICE_TTL;
        assert!(slices.take("t", &lim, 1, later, &mut ended).is_none());
        assert_eq!(ended.len(), 2, "ended unused when found past its time");
        slices.sweep(later, false, &mut ended);
        assert!(lock(&slices.map).is_empty(), "{:?}", lock(&slices.map));
        // A lease that did not fit backs off.
        assert!(slices.want("t", later));
        slices.install("t", None, later);
        assert!(!slices.want("t", later + BACKOFF / 2));
        assert!(slices.want("t", later + BACKOFF));
    }
}
