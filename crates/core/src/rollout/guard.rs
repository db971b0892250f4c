//! The rollout guard: over a sliding window with a minimum sample size, if
//! the `to` side's error rate exceeds its threshold, or its p99 latency
//! exceeds a multiple of the `from` side's, the rollout must roll back.
//! Pure: samples carry their own timestamps.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardConfig {
    /// Error rate of `to` that trips the guard, in basis points (100 = 1 %).
    pub max_error_rate_bp: u32,
    /// p99 of `to` over p99 of `from` that trips it, in percent (200 = 2×).
    pub max_p99_ratio_pct: u32,
    pub window_secs: u64,
    /// Samples each side needs before a decision.
    pub min_samples: u32,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig { max_error_rate_bp: 100, max_p99_ratio_pct: 200, window_secs: 300, min_samples: 20 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    From,
    To,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub at_ms: i64,
    pub side: Side,
    pub latency_ms: u64,
    pub error: bool,
}

/// Per-side statistics over the window.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SideStats {
    pub count: u32,
    pub errors: u32,
    pub p50_ms: u64,
    pub p99_ms: u64,
}

impl SideStats {
    pub fn error_rate_bp(&self) -> u32 {
        if self.count == 0 {
            0
        } else {
            ((u64::from(self.errors) * 10_000) / u64::from(self.count)) as u32
        }
    }
}

/// Why the guard tripped, with the numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Trip {
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Window {
    samples: VecDeque<Sample>,
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64) * q).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

impl Window {
    pub fn push(&mut self, s: Sample, cfg: &GuardConfig) {
        self.samples.push_back(s);
        self.prune(s.at_ms, cfg);
    }

    fn prune(&mut self, now_ms: i64, cfg: &GuardConfig) {
        let horizon = now_ms - (cfg.window_secs as i64) * 1000;
        while self.samples.front().is_some_and(|s| s.at_ms < horizon) {
            self.samples.pop_front();
        }
    }

    pub fn stats(&mut self, side: Side, now_ms: i64, cfg: &GuardConfig) -> SideStats {
        self.prune(now_ms, cfg);
        let mut lat: Vec<u64> = Vec::new();
        let mut errors = 0;
        for s in self.samples.iter().filter(|s| s.side == side) {
            if s.error {
                errors += 1;
            } else {
                lat.push(s.latency_ms);
            }
        }
        let count = lat.len() as u32 + errors;
        lat.sort_unstable();
        SideStats { count, errors, p50_ms: percentile(&lat, 0.5), p99_ms: percentile(&lat, 0.99) }
    }

    /// The guard's decision at `now_ms`.
    pub fn evaluate(&mut self, now_ms: i64, cfg: &GuardConfig) -> Option<Trip> {
        let to = self.stats(Side::To, now_ms, cfg);
        if to.count < cfg.min_samples {
            return None;
        }
        judge(&to, &self.stats(Side::From, now_ms, cfg), cfg)
    }
}

/// The guard's decision on both sides' statistics over its window.
pub fn judge(to: &SideStats, from: &SideStats, cfg: &GuardConfig) -> Option<Trip> {
    if to.count < cfg.min_samples {
        return None;
    }
    if to.error_rate_bp() > cfg.max_error_rate_bp {
        return Some(Trip {
            reason: format!(
                "error rate of `to` {:.2} % ({} of {}) exceeds {:.2} % over the last {} s",
                f64::from(to.error_rate_bp()) / 100.0,
                to.errors,
                to.count,
                f64::from(cfg.max_error_rate_bp) / 100.0,
                cfg.window_secs
            ),
        });
    }
    if from.count >= cfg.min_samples && from.p99_ms > 0 {
        let limit = from.p99_ms * u64::from(cfg.max_p99_ratio_pct) / 100;
        if to.p99_ms > limit {
            return Some(Trip {
                reason: format!(
                    "p99 latency of `to` {} ms exceeds {:.2}× the p99 of `from` ({} ms) over the last {} s",
                    to.p99_ms,
                    f64::from(cfg.max_p99_ratio_pct) / 100.0,
                    from.p99_ms,
                    cfg.window_secs
                ),
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> GuardConfig {
        GuardConfig { max_error_rate_bp: 100, max_p99_ratio_pct: 200, window_secs: 60, min_samples: 20 }
    }

    fn feed(w: &mut Window, side: Side, n: u32, at_ms: i64, latency_ms: u64, errors_every: Option<u32>) {
        for i in 0..n {
            let error = errors_every.is_some_and(|e| i % e == 0);
            w.push(Sample { at_ms, side, latency_ms, error }, &cfg());
        }
    }

    #[test]
    fn too_few_samples_never_trip() {
        let mut w = Window::default();
        feed(&mut w, Side::To, 19, 0, 10, Some(1));
        assert_eq!(w.evaluate(0, &cfg()), None);
        feed(&mut w, Side::To, 1, 0, 10, Some(1));
        assert!(w.evaluate(0, &cfg()).unwrap().reason.contains("error rate"));
    }

    #[test]
    fn one_percent_is_allowed_more_is_not() {
        let mut w = Window::default();
        feed(&mut w, Side::To, 100, 0, 10, Some(100)); // exactly 1 %
        assert_eq!(w.evaluate(0, &cfg()), None);
        feed(&mut w, Side::To, 1, 0, 10, Some(1)); // 2 of 101
        assert!(w.evaluate(0, &cfg()).is_some());
    }

    #[test]
    fn p99_against_twice_from() {
        let mut w = Window::default();
        feed(&mut w, Side::From, 50, 0, 100, None);
        feed(&mut w, Side::To, 50, 0, 200, None);
        assert_eq!(w.evaluate(0, &cfg()), None, "exactly 2× is allowed");
        feed(&mut w, Side::To, 5, 0, 500, None);
        let t = w.evaluate(0, &cfg()).unwrap();
        assert!(t.reason.contains("500 ms") && t.reason.contains("100 ms"), "{}", t.reason);
        // Without enough `from` samples the latency rule does not apply.
        let mut w = Window::default();
        feed(&mut w, Side::From, 5, 0, 100, None);
        feed(&mut w, Side::To, 50, 0, 900, None);
        assert_eq!(w.evaluate(0, &cfg()), None);
    }

    #[test]
    fn an_upstream_that_recovers_is_judged_on_the_window_only() {
        let mut w = Window::default();
        // A burst of errors early on, before enough samples to decide...
        feed(&mut w, Side::To, 10, 0, 10, Some(1));
        // ...then a minute and a half of health: the burst left the window.
        feed(&mut w, Side::To, 40, 90_000, 10, None);
        assert_eq!(w.evaluate(90_000, &cfg()), None);
        assert_eq!(w.stats(Side::To, 90_000, &cfg()).count, 40);
    }

    #[test]
    fn flapping_below_the_threshold_does_not_trip() {
        let mut w = Window::default();
        for round in 0..10 {
            feed(&mut w, Side::To, 100, round * 5_000, 10, Some(200)); // 0.5 % errors
            assert_eq!(w.evaluate(round * 5_000, &cfg()), None, "round {round}");
        }
    }
}
