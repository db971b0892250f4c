//! Admission proper, once the cheap limits are held: tokens/min, the hard
//! budget and the credit pool, against the replicas' shared state (Redis)
//! or this process's own, and the refusals it answers with.

use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::limiter::RateInfo;
use super::{
    budget_key, global, limit_refused, month, pool_key, tokens, Admission, Permit, Refused, Reservation, Ticket,
    DEFAULT_MAX_OUTPUT_TOKENS,
};
use crate::accounting::cost_nanos;
use crate::catalog::TenantEntry;
use crate::error::GatewayError;
use crate::providers::{ChatRequest, Usage};
use crate::routing::ModelRoute;
use crate::shared::{AdmitRequest, BudgetCheck, OnFailure, PoolCheck, SharedRefusal, SharedState};

impl Admission {
    /// Admits a request that holds the cheap limits: its tokens/min, budget
    /// and pool. A refusal gives everything back (the ticket included).
    ///
    /// With shared state (`[redis] url`), one script call admits it against
    /// every replica's traffic (the local cheap limits taken before the body
    /// stay as a first filter: they can only refuse more). While Redis is
    /// unreachable: `closed` refuses with 503 `shared_state_unavailable`,
    /// `open` admits against this replica's share (limits divided by the live
    /// replicas).
    // A refusal (rare, and answered at once) carries its header values.
    #[allow(clippy::result_large_err)]
    pub async fn admit_with(
        &self,
        mut ticket: Ticket,
        tenant: &TenantEntry,
        routes: &[std::sync::Arc<ModelRoute>],
        chat: &ChatRequest,
    ) -> Result<(Permit, RateInfo), Refused> {
        let estimate = chat.prompt_tokens;
        let limit_tokens = estimate.saturating_add(chat.max_tokens.unwrap_or(0));
        let Some(grant) = ticket.grant.take() else {
            return Err(Refused { error: GatewayError::Internal, info: None, rate_limited: false });
        };
        // From here on, dropping the permit gives back what it holds.
        let mut permit = Permit {
            admission: self.clone(),
            grant: Some(grant),
            share_grant: None,
            lease: None,
            reservations: Vec::new(),
            slot: None,
            first_ask: None,
            soft_budget: None,
            estimated_prompt_tokens: estimate,
            settled: false,
        };
        let worst = worst_cost(routes, chat, estimate);
        let mut replicas = 1;
        if let Some(shared) = &self.0.shared {
            // The first route's slot is asked for at the same time: both
            // calls go out together on the one connection (one round trip).
            let first_ask = async {
                let upstream = self.upstream(&routes.first()?.provider.name)?;
                let tokens = estimate.saturating_add(chat.max_tokens.unwrap_or(0));
                upstream.first_ask(&tenant.id, super::reserved_slots(tenant, upstream), tokens).await
            };
            let (admitted, first_ask) =
                tokio::join!(self.admit_shared(shared, &mut permit, tenant, limit_tokens, worst), first_ask);
            // A refusal drops the first ask too (its slot given back).
            permit.first_ask = first_ask;
            match admitted? {
                Some(info) => return Ok((permit, info)),
                None => replicas = self.0.replica.live_replicas(),
            }
        }
        self.admit_local(permit, tenant, limit_tokens, worst, replicas).await
    }

    /// The shared-state admission: `Some` header values once admitted,
    /// `None` to go on with this replica's share (Redis unreachable, `open`).
    #[allow(clippy::result_large_err)]
    async fn admit_shared(
        &self,
        shared: &SharedState,
        permit: &mut Permit,
        tenant: &TenantEntry,
        tokens: u64,
        worst: i64,
    ) -> Result<Option<RateInfo>, Refused> {
        let period = month();
        let budget_key = budget_key(&tenant.id);
        let budget = match (tenant.budget_monthly_nanos, tenant.budget_hard) {
            (Some(limit), true) => {
                Some(BudgetCheck { period, limit: Some(limit), settled: self.0.spend.get(&budget_key, period).settled })
            }
            _ => None,
        };
        let pool = match (tenant.tier, &tenant.pool_id) {
            (sheepdog_types::Tier::Pooled, Some(pool)) => {
                let a = self.0.spend.get(&pool_key(pool), 0);
                Some(PoolCheck { pool: pool.clone(), hard: tenant.pool_hard, credited: a.credited, debited: a.settled })
            }
            _ => None,
        };
        let request = AdmitRequest {
            tenant: &tenant.id,
            limits: &tenant.limits,
            tokens,
            worst_cost: worst,
            budget,
            pool: pool.clone(),
        };
        let decision = match shared.admit(&request).await {
            Ok(d) => d,
            Err(e) => {
                if shared.on_failure == OnFailure::Open {
                    shared.open_admissions.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, "shared state unreachable: admitted against this replica's share");
                    return Ok(None);
                }
                shared.closed_refusals.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "shared state unreachable: refused");
                permit.give_back(tenant);
                return Err(Refused { error: GatewayError::SharedStateUnavailable, info: None, rate_limited: false });
            }
        };
        let info = global::rate_info(&decision, &tenant.limits);
        if let Some(kind) = decision.refusal {
            permit.give_back(tenant);
            return Err(match global::limit_refusal(kind, decision.retry_after, tokens) {
                Some(r) => limit_refused(tenant, r, info),
                None if kind == SharedRefusal::Budget => budget_refused(worst, decision.available, info),
                None => pool_refused(worst, decision.available, info),
            });
        }
        permit.lease = decision.lease;
        // This replica's book follows its own requests (what it seeds the
        // shared accounts with, the soft-budget alert); the limits were
        // checked above.
        self.0.spend.reserve(&budget_key, period, None, worst).ok();
        permit.reservations.push(Reservation { key: budget_key, period, amount: worst });
        if let (Some(limit), false) = (tenant.budget_monthly_nanos, tenant.budget_hard) {
            permit.soft_budget = Some((tenant.id.clone(), limit));
        }
        if let Some(p) = pool {
            let key = pool_key(&p.pool);
            self.0.spend.reserve(&key, 0, None, worst).ok();
            permit.reservations.push(Reservation { key, period: 0, amount: worst });
        }
        Ok(Some(info))
    }

    /// This replica's own admission: its tokens/min, budget and pool, against
    /// the whole limits (`replicas` = 1) or its share of them.
    #[allow(clippy::result_large_err)]
    async fn admit_local(
        &self,
        mut permit: Permit,
        tenant: &TenantEntry,
        limit_tokens: u64,
        worst: i64,
        replicas: u64,
    ) -> Result<(Permit, RateInfo), Refused> {
        let now = Instant::now();
        let info = if replicas <= 1 {
            let Some(grant) = permit.grant.as_mut() else {
                return Err(Refused { error: GatewayError::Internal, info: None, rate_limited: false });
            };
            match self.0.limiter.take_tokens(grant, &tenant.limits, limit_tokens, now) {
                Ok(info) => info,
                Err((refusal, info)) => {
                    permit.grant = None; // given back by the refusal
                    return Err(limit_refused(tenant, refusal, info));
                }
            }
        } else {
            // This replica's share, on a limiter of its own (the whole
            // limits' local filter keeps its request as well).
            let limits = global::share(&tenant.limits, replicas);
            match self.0.shares.acquire(&tenant.id, &limits, limit_tokens, now).await {
                Ok((grant, info)) => {
                    permit.share_grant = Some(grant);
                    info
                }
                Err((refusal, info)) => {
                    permit.give_back(tenant);
                    let mut refused = limit_refused(tenant, refusal, info);
                    refused.info = Some(info);
                    return Err(refused);
                }
            }
        };
        // Budget: reserve the worst case (hard budgets refuse what could overspend).
        let period = month();
        let key = budget_key(&tenant.id);
        let hard_limit = tenant.budget_monthly_nanos.filter(|_| tenant.budget_hard).map(|limit| {
            let spent = self.0.spend.get(&key, period).settled;
            if replicas <= 1 {
                limit
            } else {
                global::share_of_rest(limit, spent, replicas)
            }
        });
        if let Err(short) = self.0.spend.reserve(&key, period, hard_limit, worst) {
            let info = permit.give_back(tenant);
            return Err(budget_refused(short.needed, short.available, info));
        }
        permit.reservations.push(Reservation { key, period, amount: worst });
        if let (Some(limit), false) = (tenant.budget_monthly_nanos, tenant.budget_hard) {
            permit.soft_budget = Some((tenant.id.clone(), limit));
        }
        // Pool: pooled tenants draw on their pool's credit.
        if let (sheepdog_types::Tier::Pooled, Some(pool)) = (tenant.tier, &tenant.pool_id) {
            let key = pool_key(pool);
            let a = self.0.spend.get(&key, 0);
            let limit = tenant.pool_hard.then(|| {
                if replicas <= 1 {
                    a.credited
                } else {
                    global::share_of_rest(a.credited, a.settled, replicas)
                }
            });
            if let Err(short) = self.0.spend.reserve(&key, 0, limit, worst) {
                let info = permit.give_back(tenant);
                return Err(pool_refused(short.needed, short.available, info));
            }
            permit.reservations.push(Reservation { key, period: 0, amount: worst });
        }
        Ok((permit, info))
    }
}

/// The worst-case cost of a request over every route that may answer it
/// (fallbacks included).
fn worst_cost(routes: &[std::sync::Arc<ModelRoute>], chat: &ChatRequest, estimate: u64) -> i64 {
    routes
        .iter()
        .map(|route| {
            let max_output = chat.max_tokens.or(route.model.max_output_tokens).unwrap_or(DEFAULT_MAX_OUTPUT_TOKENS);
            let usage = Usage {
                input_tokens: tokens::reserve_prompt_tokens(estimate),
                output_tokens: max_output,
                cached_tokens: 0,
            };
            cost_nanos(&route.model, &usage)
        })
        .max()
        .unwrap_or(0)
}

fn budget_refused(needed: i64, available: i64, info: RateInfo) -> Refused {
    Refused {
        error: GatewayError::InsufficientQuota(format!(
            "Monthly budget exhausted: this request could cost up to ${}, ${} of the budget is left.",
            sheepdog_types::format_usd(needed),
            sheepdog_types::format_usd(available)
        )),
        info: Some(info),
        rate_limited: false,
    }
}

fn pool_refused(needed: i64, available: i64, info: RateInfo) -> Refused {
    Refused {
        error: GatewayError::InsufficientQuota(format!(
            "Credit exhausted: this request could cost up to ${}, the pool has ${} available.",
            sheepdog_types::format_usd(needed),
            sheepdog_types::format_usd(available)
        )),
        info: Some(info),
        rate_limited: false,
    }
}
