//! Per-tenant rate limits: requests per minute, tokens per minute (estimate
//! first, settled to the actual usage after) and requests in flight. Exact
//! sliding windows (see `window.rs`).
//!
//! Taken in two steps: the cheap limits (a request and a slot in flight,
//! [`Limiter::take_request`]) before the body is read or parsed, then the
//! tokens ([`Limiter::take_tokens`]) once the prompt is estimated. A request
//! refused after the first step gives its request back
//! ([`Limiter::give_back`]): the window then holds only requests that were
//! admitted, so no 60-second window ever admits more than the limit, and a
//! refused request costs the tenant nothing.
//!
//! [`Limiter`] is the interface the request path uses; today it has one
//! in-memory implementation for a single process. A shared (Redis) variant
//! for several replicas slots in as another enum arm without touching the
//! request path.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sheepdog_types::Limits;
use tokio::time::Instant;

use super::window::{Added, Refusal, SlidingWindow};

pub const WINDOW: Duration = Duration::from_secs(60);

/// What the `x-ratelimit-*` headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    pub limit_requests: u64,
    pub remaining_requests: u64,
    pub reset_requests: Duration,
    pub limit_tokens: u64,
    pub remaining_tokens: u64,
    pub reset_tokens: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Requests,
    Tokens,
    Concurrency,
    /// The request alone needs more tokens than the per-minute limit.
    TooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitRefusal {
    pub kind: LimitKind,
    pub retry_after: Duration,
    pub needed_tokens: u64,
}

/// What a successful acquisition holds (returned to `settle`/`release`).
#[derive(Debug)]
pub struct Grant {
    /// The tenant's state itself: settling and releasing need no lookup.
    state: Arc<Mutex<TenantState>>,
    request: Added,
    tokens: Added,
    counted_concurrency: bool,
}

#[derive(Debug)]
struct TenantState {
    requests: SlidingWindow,
    tokens: SlidingWindow,
    in_flight: u64,
}

impl TenantState {
    fn new() -> Self {
        TenantState { requests: SlidingWindow::new(WINDOW), tokens: SlidingWindow::new(WINDOW), in_flight: 0 }
    }

    fn info(&mut self, limits: &Limits, now: Instant) -> RateInfo {
        RateInfo {
            limit_requests: limits.requests_per_minute,
            remaining_requests: limits.requests_per_minute.saturating_sub(self.requests.used(now)),
            reset_requests: self.requests.reset_in(now),
            limit_tokens: limits.tokens_per_minute,
            remaining_tokens: limits.tokens_per_minute.saturating_sub(self.tokens.used(now)),
            reset_tokens: self.tokens.reset_in(now),
        }
    }
}

/// Single-process limiter state.
#[derive(Debug, Default)]
pub struct MemoryLimiter {
    tenants: Mutex<crate::fastmap::FastMap<String, Arc<Mutex<TenantState>>>>,
}

impl MemoryLimiter {
    fn state(&self, tenant: &str) -> Arc<Mutex<TenantState>> {
        let mut map = match self.tenants.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Looked up by `&str` first: the key is allocated only for a new tenant.
        if let Some(state) = map.get(tenant) {
            return state.clone();
        }
        map.entry(tenant.to_string()).or_insert_with(|| Arc::new(Mutex::new(TenantState::new()))).clone()
    }

    fn with<R>(&self, tenant: &str, f: impl FnOnce(&mut TenantState, &Arc<Mutex<TenantState>>) -> R) -> R {
        let state = self.state(tenant);
        let mut guard = lock(&state);
        f(&mut guard, &state)
    }
}

fn lock(state: &Mutex<TenantState>) -> std::sync::MutexGuard<'_, TenantState> {
    match state.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// The limiter the request path talks to (enum dispatch).
#[derive(Debug)]
pub enum Limiter {
    Memory(MemoryLimiter),
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter::Memory(MemoryLimiter::default())
    }
}

impl Limiter {
    /// Takes one request, `tokens` (estimated) and a concurrency slot, or
    /// nothing. Either way returns the header values after the decision.
    pub async fn acquire(
        &self,
        tenant: &str,
        limits: &Limits,
        tokens: u64,
        now: Instant,
    ) -> Result<(Grant, RateInfo), (LimitRefusal, RateInfo)> {
        let (mut grant, _) = self.take_request(tenant, limits, now).await.map_err(|(mut r, info)| {
            r.needed_tokens = tokens;
            (r, info)
        })?;
        match self.take_tokens(&mut grant, limits, tokens, now) {
            Ok(info) => Ok((grant, info)),
            Err(refused) => Err(refused),
        }
    }

    /// The cheap limits: a slot in flight and one request of the minute, or
    /// nothing (taken before the body is read).
    pub async fn take_request(
        &self,
        tenant: &str,
        limits: &Limits,
        now: Instant,
    ) -> Result<(Grant, RateInfo), (LimitRefusal, RateInfo)> {
        match self {
            Limiter::Memory(m) => m.with(tenant, |s, state| {
                let refuse = |kind, retry_after, s: &mut TenantState| {
                    Err((LimitRefusal { kind, retry_after, needed_tokens: 0 }, s.info(limits, now)))
                };
                if let Some(max) = limits.max_concurrency {
                    if s.in_flight >= max {
                        return refuse(LimitKind::Concurrency, Duration::from_secs(1), s);
                    }
                }
                if let Err(r) = s.requests.check(now, 1, limits.requests_per_minute) {
                    let wait = match r {
                        Refusal::RetryAfter(d) => d,
                        Refusal::TooLarge => WINDOW,
                    };
                    return refuse(LimitKind::Requests, wait, s);
                }
                let request = s.requests.add(now, 1);
                let counted_concurrency = limits.max_concurrency.is_some();
                if counted_concurrency {
                    s.in_flight += 1;
                }
                let info = s.info(limits, now);
                Ok((Grant { state: state.clone(), request, tokens: Added::default(), counted_concurrency }, info))
            }),
        }
    }

    /// The tokens of a request that holds a [`Grant`] from
    /// [`Limiter::take_request`]. A refusal gives the request back (the
    /// grant then holds nothing); the header values are those after the
    /// decision.
    pub fn take_tokens(
        &self,
        grant: &mut Grant,
        limits: &Limits,
        tokens: u64,
        now: Instant,
    ) -> Result<RateInfo, (LimitRefusal, RateInfo)> {
        match self {
            Limiter::Memory(_) => {
                let refusal = {
                    let mut s = lock(&grant.state);
                    match s.tokens.check(now, tokens, limits.tokens_per_minute) {
                        Ok(()) => {
                            grant.tokens = s.tokens.add(now, tokens);
                            return Ok(s.info(limits, now));
                        }
                        Err(Refusal::RetryAfter(d)) => {
                            LimitRefusal { kind: LimitKind::Tokens, retry_after: d, needed_tokens: tokens }
                        }
                        Err(Refusal::TooLarge) => {
                            LimitRefusal { kind: LimitKind::TooLarge, retry_after: WINDOW, needed_tokens: tokens }
                        }
                    }
                };
                self.give_back(grant);
                Err((refusal, lock(&grant.state).info(limits, now)))
            }
        }
    }

    /// Gives a refused request's request and slot in flight back (its
    /// tokens too, if it took any). Idempotent.
    pub fn give_back(&self, grant: &mut Grant) {
        match self {
            Limiter::Memory(_) => {
                let mut s = lock(&grant.state);
                s.requests.adjust(grant.request, 0);
                s.tokens.adjust(grant.tokens, 0);
                grant.request = Added::default();
                grant.tokens = Added::default();
                if grant.counted_concurrency {
                    grant.counted_concurrency = false;
                    s.in_flight = s.in_flight.saturating_sub(1);
                }
            }
        }
    }

    /// Header values without taking anything (for refused requests).
    pub async fn peek(&self, tenant: &str, limits: &Limits, now: Instant) -> RateInfo {
        self.info(tenant, limits, now)
    }

    /// [`Limiter::peek`], for callers that cannot wait.
    pub fn info(&self, tenant: &str, limits: &Limits, now: Instant) -> RateInfo {
        match self {
            Limiter::Memory(m) => m.with(tenant, |s, _| s.info(limits, now)),
        }
    }

    /// Replaces the estimate with the actual token count.
    pub fn settle(&self, grant: &Grant, actual_tokens: u64) {
        match self {
            Limiter::Memory(_) => lock(&grant.state).tokens.adjust(grant.tokens, actual_tokens),
        }
    }

    /// Frees the concurrency slot (the request ended). Idempotent.
    pub fn release(&self, grant: &mut Grant) {
        if !grant.counted_concurrency {
            return;
        }
        grant.counted_concurrency = false;
        match self {
            Limiter::Memory(_) => {
                let mut s = lock(&grant.state);
                s.in_flight = s.in_flight.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rpm: u64, tpm: u64, conc: Option<u64>) -> Limits {
        Limits { requests_per_minute: rpm, tokens_per_minute: tpm, max_concurrency: conc }
    }

    #[tokio::test(start_paused = true)]
    async fn requests_per_minute_exact_with_headers() {
        let l = Limiter::default();
        let lim = limits(3, 1_000_000, None);
        for i in 0..3 {
            let (mut g, info) = l.acquire("t", &lim, 10, Instant::now()).await.unwrap();
            assert_eq!(info.remaining_requests, 2 - i);
            assert_eq!(info.limit_requests, 3);
            l.release(&mut g);
            tokio::time::advance(Duration::from_secs(10)).await;
        }
        let (refusal, info) = l.acquire("t", &lim, 10, Instant::now()).await.unwrap_err();
        assert_eq!(refusal.kind, LimitKind::Requests);
        // The first request was 30 s ago: a slot frees in 30 s.
        assert_eq!(refusal.retry_after, Duration::from_secs(30));
        assert_eq!(info.remaining_requests, 0);
        assert_eq!(info.reset_requests, Duration::from_secs(30));
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(l.acquire("t", &lim, 10, Instant::now()).await.is_ok());
        // Another tenant is unaffected.
        assert!(l.acquire("other", &lim, 10, Instant::now()).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_are_estimated_then_settled() {
        let l = Limiter::default();
        let lim = limits(1000, 1000, None);
        let (g, _) = l.acquire("t", &lim, 900, Instant::now()).await.unwrap();
        let (r, _) = l.acquire("t", &lim, 200, Instant::now()).await.unwrap_err();
        assert_eq!(r.kind, LimitKind::Tokens);
        l.settle(&g, 300); // actual usage was lower
        let (_, info) = l.acquire("t", &lim, 200, Instant::now()).await.unwrap();
        assert_eq!(info.remaining_tokens, 500);
        let (r, _) = l.acquire("t", &lim, 5000, Instant::now()).await.unwrap_err();
        assert_eq!(r.kind, LimitKind::TooLarge);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_released() {
        let l = Limiter::default();
        let lim = limits(1000, 1_000_000, Some(2));
        let (mut a, _) = l.acquire("t", &lim, 1, Instant::now()).await.unwrap();
        let (_b, _) = l.acquire("t", &lim, 1, Instant::now()).await.unwrap();
        let (r, _) = l.acquire("t", &lim, 1, Instant::now()).await.unwrap_err();
        assert_eq!(r.kind, LimitKind::Concurrency);
        l.release(&mut a);
        l.release(&mut a); // idempotent: frees one slot, not two
        assert!(l.acquire("t", &lim, 1, Instant::now()).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_takes_nothing() {
        let l = Limiter::default();
        let lim = limits(2, 100, None);
        l.acquire("t", &lim, 60, Instant::now()).await.unwrap();
        l.acquire("t", &lim, 50, Instant::now()).await.unwrap_err();
        let info = l.peek("t", &lim, Instant::now()).await;
        assert_eq!((info.remaining_requests, info.remaining_tokens), (1, 40));
    }

    #[tokio::test(start_paused = true)]
    async fn cheap_limits_first_then_tokens_and_a_refusal_gives_everything_back() {
        let l = Limiter::default();
        let lim = limits(2, 100, Some(1));
        // The request and the slot are taken before the tokens are known.
        let (mut g, info) = l.take_request("t", &lim, Instant::now()).await.unwrap();
        assert_eq!((info.remaining_requests, info.remaining_tokens), (1, 100));
        let (r, _) = l.take_request("t", &lim, Instant::now()).await.unwrap_err();
        assert_eq!(r.kind, LimitKind::Concurrency);
        // Too many tokens: refused, and the request and slot come back.
        let (r, info) = l.take_tokens(&mut g, &lim, 500, Instant::now()).unwrap_err();
        assert_eq!(r.kind, LimitKind::TooLarge);
        assert_eq!((info.remaining_requests, info.remaining_tokens), (2, 100));
        l.give_back(&mut g); // idempotent
        l.release(&mut g);
        let info = l.peek("t", &lim, Instant::now()).await;
        assert_eq!((info.remaining_requests, info.remaining_tokens), (2, 100));
        // Refused for another reason (bad input) after the cheap limits:
        // given back too.
        let (mut g, _) = l.take_request("t", &lim, Instant::now()).await.unwrap();
        l.give_back(&mut g);
        let (mut g, _) = l.take_request("t", &lim, Instant::now()).await.unwrap();
        let info = l.take_tokens(&mut g, &lim, 60, Instant::now()).unwrap();
        assert_eq!((info.remaining_requests, info.remaining_tokens), (1, 40));
        l.release(&mut g);
        let (mut g2, _) = l.take_request("t", &lim, Instant::now()).await.unwrap();
        // 60 of 100 tokens taken: 50 more wait; the request comes back.
        let (r, info) = l.take_tokens(&mut g2, &lim, 50, Instant::now()).unwrap_err();
        assert_eq!(r.kind, LimitKind::Tokens);
        assert_eq!((info.remaining_requests, info.remaining_tokens), (1, 40));
        // Exact: two admitted in this minute, no more.
        l.release(&mut g2);
        let (mut g3, _) = l.take_request("t", &lim, Instant::now()).await.unwrap();
        l.take_tokens(&mut g3, &lim, 10, Instant::now()).unwrap();
        l.release(&mut g3);
        let (r, _) = l.take_request("t", &lim, Instant::now()).await.unwrap_err();
        assert_eq!(r.kind, LimitKind::Requests);
    }
}
