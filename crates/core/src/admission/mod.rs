//! Admission: whether a request may go upstream now, for this tenant.
//!
//! In order, all or nothing:
//! 1. the tenant's rate limits ([`limiter`]) — first the cheap ones, before
//!    the body is read or parsed ([`Admission::take_request`]: requests in
//!    flight and requests/min), then once the body is validated tokens/min
//!    (prompt estimated with a real tokenizer up to a bounded amount of text,
//!    see [`tokens`], plus `max_tokens`; settled to the actual usage);
//! 2. its monthly budget — the worst-case cost is reserved, a hard budget
//!    refuses what could overspend it ([`spend`]);
//! 3. its credit pool, for the `pooled` tier ([`spend`]);
//! 4. a fair share of the upstream's capacity, waited for after 1–3
//!    ([`capacity`]).
//!
//! A [`Ticket`] holds the cheap limits until the request is admitted or
//! refused; dropped (any refusal: bad input, unknown model, a later limit),
//! it gives them back, so only admitted requests count against a tenant's
//! requests/min. The [`Permit`] holds every reservation; `settle` replaces
//! estimates by the actual usage and cost, and dropping it releases whatever
//! is left. Every sum of tokens or nano-USD here saturates.

mod admit;
pub mod capacity;
pub mod global;
mod headers;
pub mod limiter;
pub mod spend;
pub mod tokens;
pub mod window;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::catalog::TenantEntry;
use crate::config::Settings;
use crate::error::GatewayError;
use crate::fastmap::FastMap;
use crate::providers::{ChatRequest, Usage};
use crate::routing::ModelRoute;
use capacity::{CapacityConfig, CapacityRefusal, FirstAsk, Slot, Upstream};
use limiter::{Grant, LimitKind, Limiter, RateInfo};
use spend::SpendBook;

use crate::replicas::ThisReplica;
use crate::shared::{Lease, SharedState};

pub use headers::{format_duration, rate_headers};

/// Completion tokens assumed for the worst case when neither the request
/// (`max_tokens`) nor the model (`max_output_tokens`) bounds them.
pub const DEFAULT_MAX_OUTPUT_TOKENS: u64 = 32_768;

/// The largest `max_tokens` accepted for a model without `max_output_tokens`:
/// above the output limit of every current model (the upstream refuses what
/// its model cannot do), far below anything that could overflow a sum.
pub const UNCONFIGURED_MAX_OUTPUT_TOKENS: u64 = 131_072;

/// The most completion tokens a request may ask of `model`.
pub fn max_output_tokens(model: &crate::config::ModelSettings) -> u64 {
    model.max_output_tokens.unwrap_or(UNCONFIGURED_MAX_OUTPUT_TOKENS)
}

/// Refuses a `max_tokens` (or `max_completion_tokens`) above the model's
/// maximum output: `400 invalid_request_error` naming the maximum.
pub fn check_max_tokens(chat: &ChatRequest, model: &crate::config::ModelSettings) -> Result<(), GatewayError> {
    let max = max_output_tokens(model);
    match chat.max_tokens {
        Some(n) if n > max => {
            let param = chat.max_tokens_param;
            Err(GatewayError::invalid(
                format!("`{param}` is too large: {n}. Model {} allows at most {max} completion tokens.", model.name),
                Some(param),
            ))
        }
        _ => Ok(()),
    }
}

/// Shared admission state (cheap to clone).
#[derive(Debug, Clone)]
pub struct Admission(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    limiter: Limiter,
    /// Per-replica shares of the limits while Redis is unreachable (`open`).
    shares: Limiter,
    spend: SpendBook,
    /// The replicas' shared state (`[redis] url` set).
    shared: Option<Arc<SharedState>>,
    /// The live replica count (the divisor of the shares).
    replica: Arc<ThisReplica>,
    upstreams: FastMap<String, Arc<Upstream>>,
    soft_alerts: Mutex<HashSet<(String, i64)>>,
}

/// A refused request: the error and the header values at that moment.
#[derive(Debug)]
pub struct Refused {
    pub error: GatewayError,
    pub info: Option<RateInfo>,
    /// Refused by a rate limit (counted in the tenant's `rate_limit_hits`).
    pub rate_limited: bool,
}

fn month() -> i64 {
    sheepdog_types::time::month_bounds(sheepdog_types::time::now_ms()).0
}

fn budget_key(tenant: &str) -> String {
    format!("tenant:{tenant}")
}

pub fn pool_key(pool: &str) -> String {
    format!("pool:{pool}")
}

/// One spend reservation to settle.
#[derive(Debug, Clone)]
struct Reservation {
    key: String,
    period: i64,
    amount: i64,
}

/// The cheap limits one request holds before it is admitted (a request of
/// the minute, a slot in flight); dropped unused, it gives them back.
#[derive(Debug)]
pub struct Ticket {
    admission: Admission,
    grant: Option<Grant>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(mut grant) = self.grant.take() {
            self.admission.0.limiter.give_back(&mut grant);
        }
    }
}

/// Everything one admitted request holds.
#[derive(Debug)]
pub struct Permit {
    admission: Admission,
    grant: Option<Grant>,
    /// This replica's share, taken while Redis was unreachable (`open`).
    share_grant: Option<Grant>,
    /// What the request holds in the shared state.
    lease: Option<Lease>,
    reservations: Vec<Reservation>,
    slot: Option<Slot>,
    /// The first route's slot, asked for alongside admission.
    first_ask: Option<FirstAsk>,
    soft_budget: Option<(String, i64)>,
    pub estimated_prompt_tokens: u64,
    settled: bool,
}

impl Admission {
    pub fn new(settings: &Settings, shared: Option<Arc<SharedState>>, replica: Arc<ThisReplica>) -> Admission {
        let upstreams = settings
            .providers
            .iter()
            .map(|p| {
                let cfg = CapacityConfig::of(p);
                let upstream = match &shared {
                    Some(s) => Upstream::shared(&p.name, cfg, s.clone(), replica.clone()),
                    None => Upstream::new(&p.name, cfg),
                };
                (p.name.clone(), upstream)
            })
            .collect();
        Admission(Arc::new(Inner {
            limiter: Limiter::default(),
            shares: Limiter::default(),
            spend: SpendBook::default(),
            shared,
            replica,
            upstreams,
            soft_alerts: Mutex::new(HashSet::new()),
        }))
    }

    /// Loads this month's spend per tenant (at start).
    pub fn load_month_spend(&self, spend: &HashMap<String, i64>) {
        let period = month();
        for (tenant, nanos) in spend {
            self.0.spend.load(&budget_key(tenant), period, *nanos, 0);
        }
    }

    /// Loads a pool's balance: credits and debits so far.
    pub fn load_pool(&self, pool: &str, credited: i64, debited: i64) {
        self.0.spend.load(&pool_key(pool), 0, debited, credited);
    }

    /// Adds credit to a pool (top-up, grant).
    pub fn credit_pool(&self, pool: &str, amount: i64) {
        self.0.spend.credit(&pool_key(pool), 0, amount);
    }

    /// A pool's balance now: credits − debits − reservations in flight.
    pub fn pool_available(&self, pool: &str) -> i64 {
        let a = self.0.spend.get(&pool_key(pool), 0);
        a.credited.saturating_sub(a.settled).saturating_sub(a.reserved)
    }

    /// This month's settled spend of a tenant.
    pub fn month_spend(&self, tenant: &str) -> i64 {
        self.0.spend.get(&budget_key(tenant), month()).settled
    }

    pub fn upstream(&self, provider: &str) -> Option<&Arc<Upstream>> {
        self.0.upstreams.get(provider)
    }

    /// Header values for a tenant without taking anything.
    pub async fn peek(&self, tenant: &TenantEntry) -> RateInfo {
        self.0.limiter.peek(&tenant.id, &tenant.limits, Instant::now()).await
    }

    /// Takes the cheap limits — a slot in flight and a request of the
    /// minute — before the body is read.
    pub async fn take_request(&self, tenant: &TenantEntry) -> Result<(Ticket, RateInfo), Refused> {
        match self.0.limiter.take_request(&tenant.id, &tenant.limits, Instant::now()).await {
            Ok((grant, info)) => Ok((Ticket { admission: self.clone(), grant: Some(grant) }, info)),
            Err((refusal, info)) => Err(limit_refused(tenant, refusal, info)),
        }
    }

    /// Checks and takes the tenant's limits, budget and pool for this
    /// request, all at once (tests and callers without a [`Ticket`]).
    pub async fn admit(
        &self,
        tenant: &TenantEntry,
        routes: &[std::sync::Arc<ModelRoute>],
        chat: &ChatRequest,
    ) -> Result<(Permit, RateInfo), Refused> {
        let (ticket, _) = self.take_request(tenant).await?;
        self.admit_with(ticket, tenant, routes, chat).await
    }
}

/// The slots `upstream` reserves for `tenant` (0 unless it is dedicated).
fn reserved_slots(tenant: &TenantEntry, upstream: &Upstream) -> u32 {
    if tenant.tier != sheepdog_types::Tier::Dedicated {
        return 0;
    }
    let mut ids: Vec<&str> = vec![tenant.id.as_str()];
    ids.extend(tenant.aliases.iter().map(String::as_str));
    upstream.reserved_for(&ids)
}

/// The refusal of a rate limit, with its message.
fn limit_refused(tenant: &TenantEntry, refusal: limiter::LimitRefusal, info: RateInfo) -> Refused {
    let message = match refusal.kind {
        LimitKind::Requests => format!(
            "Rate limit reached: {} requests per minute for this tenant. Retry after {}.",
            tenant.limits.requests_per_minute,
            format_duration(refusal.retry_after)
        ),
        LimitKind::Tokens => format!(
            "Rate limit reached: {} tokens per minute for this tenant ({} requested). Retry after {}.",
            tenant.limits.tokens_per_minute,
            refusal.needed_tokens,
            format_duration(refusal.retry_after)
        ),
        LimitKind::Concurrency => format!(
            "Too many requests in flight: at most {} at once for this tenant.",
            tenant.limits.max_concurrency.unwrap_or(0)
        ),
        LimitKind::TooLarge => format!(
            "Request too large: it needs about {} tokens, more than this tenant's limit of {} tokens per minute.",
            refusal.needed_tokens, tenant.limits.tokens_per_minute
        ),
    };
    Refused {
        error: GatewayError::RateLimited { message, retry_after: refusal.retry_after },
        info: Some(info),
        rate_limited: true,
    }
}

impl Permit {
    /// Gives back everything taken so far (a refusal by the budget or the
    /// pool); returns the header values after it.
    fn give_back(&mut self, tenant: &TenantEntry) -> RateInfo {
        let inner = &self.admission.0;
        if let Some(mut grant) = self.grant.take() {
            inner.limiter.give_back(&mut grant);
        }
        if let Some(mut grant) = self.share_grant.take() {
            inner.shares.give_back(&mut grant);
        }
        if let (Some(lease), Some(shared)) = (self.lease.take(), &inner.shared) {
            shared.finish(lease, 0, 0);
        }
        for r in self.reservations.drain(..) {
            inner.spend.settle(&r.key, r.period, r.amount, 0);
        }
        self.soft_budget = None;
        self.settled = true;
        inner.limiter.info(&tenant.id, &tenant.limits, Instant::now())
    }

    /// Waits for a fair share of the route's upstream capacity.
    pub async fn wait_for_capacity(
        &mut self,
        tenant: &TenantEntry,
        route: &ModelRoute,
        max_tokens: Option<u64>,
    ) -> Result<(), Refused> {
        let Some(upstream) = self.admission.upstream(&route.provider.name).cloned() else { return Ok(()) };
        // A new route (a fallback) frees the previous route's slot first.
        self.slot = None;
        let reserved = reserved_slots(tenant, &upstream);
        let tokens = self.estimated_prompt_tokens.saturating_add(max_tokens.unwrap_or(0));
        let acquired = match self.first_ask.take() {
            Some(first) if first.upstream() == upstream.name() => {
                upstream.acquire_after(first, &tenant.id, reserved, tokens).await
            }
            _ => upstream.acquire(&tenant.id, reserved, tokens).await,
        };
        match acquired {
            Ok(slot) => {
                self.slot = Some(slot);
                Ok(())
            }
            Err(r) => {
                let message = match r {
                    CapacityRefusal::Unavailable => {
                        return Err(Refused {
                            error: GatewayError::SharedStateUnavailable,
                            info: None,
                            rate_limited: false,
                        })
                    }
                    CapacityRefusal::QueueFull => format!(
                        "Upstream {} is at capacity and this tenant already has the most requests waiting for it; retry shortly.",
                        upstream.name()
                    ),
                    CapacityRefusal::Timeout => format!("Upstream {} is at capacity; the wait for a fair share timed out.", upstream.name()),
                    CapacityRefusal::TooLarge => format!("Request too large for upstream {}'s capacity per minute.", upstream.name()),
                };
                Err(Refused {
                    error: GatewayError::RateLimited { message, retry_after: Duration::from_secs(1) },
                    info: None,
                    rate_limited: true,
                })
            }
        }
    }

    /// Replaces every estimate by the actual usage and cost, and releases.
    pub fn settle(&mut self, usage: &Usage, cost: i64) {
        if self.settled {
            return;
        }
        self.settled = true;
        let inner = &self.admission.0;
        let tokens = usage.input_tokens.saturating_add(usage.output_tokens);
        if let Some(mut grant) = self.grant.take() {
            inner.limiter.settle(&grant, tokens);
            inner.limiter.release(&mut grant);
        }
        if let Some(mut grant) = self.share_grant.take() {
            inner.shares.settle(&grant, tokens);
            inner.shares.release(&mut grant);
        }
        if let (Some(lease), Some(shared)) = (self.lease.take(), &inner.shared) {
            shared.finish(lease, tokens, cost);
        }
        if let Some(slot) = self.slot.take() {
            slot.settle(tokens);
        }
        // Asked for but never used (the first route was not tried): given back.
        self.first_ask = None;
        for r in self.reservations.drain(..) {
            inner.spend.settle(&r.key, r.period, r.amount, cost);
        }
        if let Some((tenant, limit)) = self.soft_budget.take() {
            let period = month();
            let spent = inner.spend.get(&budget_key(&tenant), period).settled;
            if spent > limit {
                let mut alerted = crate::locks::lock(&inner.soft_alerts);
                if alerted.insert((tenant.clone(), period)) {
                    tracing::warn!(
                        tenant = %tenant,
                        spent_usd = %sheepdog_types::format_usd(spent),
                        budget_usd = %sheepdog_types::format_usd(limit),
                        "soft monthly budget exceeded (alert only; requests continue)"
                    );
                }
            }
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.settled {
            self.settle(&Usage::default(), 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(max: Option<u64>) -> crate::config::ModelSettings {
        crate::config::ModelSettings {
            name: "m".into(),
            provider: "p".into(),
            upstream_model: "m".into(),
            input_nanos_per_token: 1,
            output_nanos_per_token: 1,
            cached_input_nanos_per_token: 1,
            fallbacks: Vec::new(),
            max_output_tokens: max,
            mode: crate::config::ModelMode::Chat,
        }
    }

    fn chat(extra: &str) -> ChatRequest {
        let body = format!(r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}]{extra}}}"#);
        crate::request::parse_chat(bytes::Bytes::from(body)).unwrap()
    }

    #[test]
    fn max_tokens_above_the_models_maximum_output_is_refused() {
        let refused = |c: &ChatRequest, m| match check_max_tokens(c, &model(m)) {
            Err(e) => (e.status().as_u16(), e.code().to_string(), e.message(), e.body().error.param),
            Ok(()) => (200, String::new(), String::new(), None),
        };
        // The model's own maximum.
        assert!(check_max_tokens(&chat(r#","max_tokens":4096"#), &model(Some(4096))).is_ok());
        let (status, code, message, param) = refused(&chat(r#","max_tokens":4097"#), Some(4096));
        assert_eq!((status, code.as_str(), param.as_deref()), (400, "invalid_request_error", Some("max_tokens")));
        assert!(message.contains("4096") && message.contains("4097"), "{message}");
        // Without one, the documented default.
        assert!(check_max_tokens(&chat(r#","max_tokens":131072"#), &model(None)).is_ok());
        let (status, _, message, _) = refused(&chat(r#","max_tokens":131073"#), None);
        assert_eq!(status, 400);
        assert!(message.contains(&UNCONFIGURED_MAX_OUTPUT_TOKENS.to_string()), "{message}");
        // 2^64 − 1 is refused, under either name.
        let (status, _, _, param) = refused(&chat(r#","max_tokens":18446744073709551615"#), Some(u64::MAX - 1));
        assert_eq!((status, param.as_deref()), (400, Some("max_tokens")));
        let (status, _, _, param) = refused(&chat(r#","max_completion_tokens":18446744073709551615"#), None);
        assert_eq!((status, param.as_deref()), (400, Some("max_completion_tokens")));
        // Beyond u64: not an integer at all.
        let e = crate::request::parse_chat(bytes::Bytes::from_static(
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":18446744073709551616}"#,
        ))
        .unwrap_err();
        assert_eq!(e.status().as_u16(), 400);
        assert!(check_max_tokens(&chat(""), &model(Some(1))).is_ok());
    }
}
