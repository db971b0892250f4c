//! Admission against the state every replica shares (Redis, `[redis] url`
//! set): the shared state's answer turned into header values and refusals,
//! and the limits each replica may use alone while Redis is unreachable
//! (`on_failure = "open"`).

use std::time::Duration;

use sheepdog_types::Limits;

use super::limiter::{LimitKind, LimitRefusal, RateInfo};
use crate::shared::{Decision, SharedRefusal};

/// The `x-ratelimit-*` values of a shared decision.
pub fn rate_info(d: &Decision, limits: &Limits) -> RateInfo {
    RateInfo {
        limit_requests: limits.requests_per_minute,
        remaining_requests: d.remaining_requests,
        reset_requests: d.reset_requests,
        limit_tokens: limits.tokens_per_minute,
        remaining_tokens: d.remaining_tokens,
        reset_tokens: d.reset_tokens,
    }
}

/// A refusal by a rate limit, or `None` for a budget or pool refusal.
pub fn limit_refusal(kind: SharedRefusal, retry_after: Duration, tokens: u64) -> Option<LimitRefusal> {
    let kind = match kind {
        SharedRefusal::Requests => LimitKind::Requests,
        SharedRefusal::Tokens => LimitKind::Tokens,
        SharedRefusal::Concurrency => LimitKind::Concurrency,
        SharedRefusal::TooLarge => LimitKind::TooLarge,
        SharedRefusal::Budget | SharedRefusal::Pool => return None,
    };
    Some(LimitRefusal { kind, retry_after, needed_tokens: tokens })
}

/// One replica's share of `limits` while it cannot reach the others:
/// each limit divided by the live replicas (at least 1 of each).
pub fn share(limits: &Limits, replicas: u64) -> Limits {
    let n = replicas.max(1);
    Limits {
        requests_per_minute: (limits.requests_per_minute / n).max(1),
        tokens_per_minute: (limits.tokens_per_minute / n).max(1),
        max_concurrency: limits.max_concurrency.map(|c| (c / n).max(1)),
    }
}

/// One replica's share of what is left of a hard limit (a budget, a pool's
/// credit) while it cannot reach the others: what it knows was spent plus
/// the rest divided by the live replicas.
pub fn share_of_rest(limit: i64, spent: i64, replicas: u64) -> i64 {
    let n = i64::try_from(replicas.max(1)).unwrap_or(i64::MAX);
    spent.saturating_add(limit.saturating_sub(spent).max(0) / n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_divide_and_never_reach_zero() {
        let l = Limits { requests_per_minute: 30, tokens_per_minute: 1000, max_concurrency: Some(2) };
        assert_eq!(share(&l, 3), Limits { requests_per_minute: 10, tokens_per_minute: 333, max_concurrency: Some(1) });
        assert_eq!(share(&l, 0), l);
        let tiny = Limits { requests_per_minute: 1, tokens_per_minute: 1, max_concurrency: None };
        assert_eq!(share(&tiny, 5), tiny);
        assert_eq!(share_of_rest(1000, 400, 3), 600);
        assert_eq!(share_of_rest(1000, 1200, 3), 1200, "overspent: nothing more");
        assert_eq!(share_of_rest(i64::MAX, 0, 1), i64::MAX);
    }
}
