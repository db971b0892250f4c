//! Rollout phases and the canary step plan, as pure functions of time.

use serde::{Deserialize, Serialize};

/// Basis points: 10,000 = 100 %.
pub const FULL: u32 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Served by `from`, mirrored to `to`.
    Shadow,
    /// A share of requests served by `to`, following the step plan.
    Canary,
    /// Everything served by `to`.
    Complete,
    /// Everything served by `from` again (by an operator or the guard).
    RolledBack,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Shadow => "shadow",
            Phase::Canary => "canary",
            Phase::Complete => "complete",
            Phase::RolledBack => "rolled_back",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        match s {
            "shadow" => Some(Phase::Shadow),
            "canary" => Some(Phase::Canary),
            "complete" => Some(Phase::Complete),
            "rolled_back" => Some(Phase::RolledBack),
            _ => None,
        }
    }

    /// Still routing by the rollout (not finished either way).
    pub fn is_active(self) -> bool {
        matches!(self, Phase::Shadow | Phase::Canary)
    }
}

/// The canary step plan: start at `initial`, add `step` every `interval_secs`
/// (or only when an operator advances, when `manual`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepPlan {
    pub initial_bp: u32,
    pub step_bp: u32,
    pub interval_secs: u64,
    pub manual: bool,
}

impl Default for StepPlan {
    fn default() -> Self {
        StepPlan { initial_bp: 500, step_bp: 2000, interval_secs: 86_400, manual: false }
    }
}

/// The canary share at `now_ms`, for a canary that reached `base_bp` at
/// `since_ms` and has been paused for `paused_ms` since then (a paused one
/// passes its pause start as `now_ms`).
pub fn canary_bp(plan: &StepPlan, base_bp: u32, since_ms: i64, now_ms: i64) -> u32 {
    if plan.manual || plan.interval_secs == 0 {
        return base_bp.min(FULL);
    }
    let elapsed = (now_ms - since_ms).max(0) as u64;
    let steps = elapsed / (plan.interval_secs * 1000);
    let grown = u64::from(base_bp) + steps.saturating_mul(u64::from(plan.step_bp));
    grown.min(u64::from(FULL)) as u32
}

/// Sticky assignment: the same key always lands in the same bucket, and a
/// growing share only ever moves keys from `from` to `to`.
pub fn bucket(rollout_id: &str, key: &str) -> u32 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in rollout_id.bytes().chain([0u8]).chain(key.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    // Final avalanche so nearby keys spread evenly.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51afd7ed558ccd);
    h ^= h >> 33;
    (h % u64::from(FULL)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn five_then_plus_twenty_a_day() {
        let p = StepPlan::default();
        assert_eq!(canary_bp(&p, 500, 0, 0), 500);
        assert_eq!(canary_bp(&p, 500, 0, DAY - 1), 500);
        assert_eq!(canary_bp(&p, 500, 0, DAY), 2500);
        assert_eq!(canary_bp(&p, 500, 0, 3 * DAY + 5), 6500);
        assert_eq!(canary_bp(&p, 500, 0, 5 * DAY), FULL);
        assert_eq!(canary_bp(&p, 500, 0, 50 * DAY), FULL);
        let manual = StepPlan { manual: true, ..p };
        assert_eq!(canary_bp(&manual, 700, 0, 50 * DAY), 700);
    }

    #[test]
    fn buckets_are_sticky_and_even() {
        assert_eq!(bucket("r1", "user-42"), bucket("r1", "user-42"));
        let n = 20_000;
        let under_5pct = (0..n).filter(|i| bucket("r1", &format!("k{i}")) < 500).count();
        assert!((800..1200).contains(&under_5pct), "{under_5pct}");
    }
}
