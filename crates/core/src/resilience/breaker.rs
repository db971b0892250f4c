//! A per-upstream circuit breaker: a small state machine fed by the class of
//! each response. It opens after `failure_threshold` consecutive failures, or
//! when the error rate over the last `window` reaches `error_rate_percent`
//! with at least `min_samples` calls; while open, calls are refused at once;
//! after `open_for` one probe is let through (half-open): success closes it,
//! failure opens it again for twice as long (up to 8×). Time is passed in, so
//! tests run on paused time.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct BreakerConfig {
    pub failure_threshold: u32,
    pub error_rate_percent: u32,
    pub min_samples: u32,
    pub window: Duration,
    pub open_for: Duration,
    /// A probe that never reports back (its client left) is given up after this.
    pub probe_timeout: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            error_rate_percent: 50,
            min_samples: 10,
            window: Duration::from_secs(30),
            open_for: Duration::from_secs(10),
            probe_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    /// 0 closed, 1 half-open, 2 open (for the Prometheus gauge).
    pub fn gauge(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    open_until: Instant,
    reopen_count: u32,
    probe_started: Option<Instant>,
    consecutive_failures: u32,
    calls: VecDeque<(Instant, bool)>,
    opened_total: u64,
    last_reason: Option<String>,
}

/// A snapshot for the admin API and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerReport {
    pub state: BreakerState,
    pub consecutive_failures: u32,
    pub window_calls: u32,
    pub window_failures: u32,
    pub opened_total: u64,
    pub open_for_ms: Option<u64>,
    pub last_reason: Option<String>,
}

#[derive(Debug)]
pub struct Breaker {
    cfg: BreakerConfig,
    inner: Mutex<Inner>,
}

impl Breaker {
    pub fn new(cfg: BreakerConfig) -> Breaker {
        let now = Instant::now();
        Breaker {
            cfg,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                open_until: now,
                reopen_count: 0,
                probe_started: None,
                consecutive_failures: 0,
                calls: VecDeque::new(),
                opened_total: 0,
                last_reason: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        crate::locks::lock(&self.inner)
    }

    /// Whether a call may go to the upstream now. In half-open state only
    /// one probe is allowed at a time.
    pub fn allow(&self, now: Instant) -> bool {
        let mut s = self.lock();
        match s.state {
            BreakerState::Closed => true,
            BreakerState::Open => {
                if now >= s.open_until {
                    s.state = BreakerState::HalfOpen;
                    s.probe_started = Some(now);
                    true
                } else {
                    false
                }
            }
            BreakerState::HalfOpen => match s.probe_started {
                Some(started) if now.saturating_duration_since(started) < self.cfg.probe_timeout => false,
                _ => {
                    s.probe_started = Some(now);
                    true
                }
            },
        }
    }

    /// Reports the outcome of an allowed call (`ok` = not an upstream fault).
    pub fn record(&self, now: Instant, ok: bool) {
        let mut s = self.lock();
        let window = self.cfg.window;
        s.calls.push_back((now, ok));
        while s.calls.front().is_some_and(|(t, _)| now.saturating_duration_since(*t) > window) {
            s.calls.pop_front();
        }
        if ok {
            s.consecutive_failures = 0;
        } else {
            s.consecutive_failures += 1;
        }
        match s.state {
            BreakerState::HalfOpen => {
                s.probe_started = None;
                if ok {
                    s.state = BreakerState::Closed;
                    s.reopen_count = 0;
                    s.calls.clear();
                } else {
                    s.reopen_count = (s.reopen_count + 1).min(3);
                    let reason = "the half-open probe failed".to_string();
                    self.open(&mut s, now, reason);
                }
            }
            BreakerState::Closed if !ok => {
                let failures = s.calls.iter().filter(|(_, ok)| !ok).count() as u32;
                let total = s.calls.len() as u32;
                if s.consecutive_failures >= self.cfg.failure_threshold {
                    let reason = format!("{} consecutive failures", s.consecutive_failures);
                    self.open(&mut s, now, reason);
                } else if total >= self.cfg.min_samples && failures * 100 >= self.cfg.error_rate_percent * total {
                    let reason = format!("{failures} of the last {total} calls failed");
                    self.open(&mut s, now, reason);
                }
            }
            _ => {}
        }
    }

    fn open(&self, s: &mut Inner, now: Instant, reason: String) {
        s.state = BreakerState::Open;
        s.open_until = now + self.cfg.open_for * (1u32 << s.reopen_count);
        s.opened_total += 1;
        tracing::warn!(reason = %reason, "circuit breaker opened");
        s.last_reason = Some(reason);
    }

    pub fn report(&self, now: Instant) -> BreakerReport {
        let s = self.lock();
        let state = match s.state {
            BreakerState::Open if now >= s.open_until => BreakerState::HalfOpen,
            st => st,
        };
        BreakerReport {
            state,
            consecutive_failures: s.consecutive_failures,
            window_calls: s.calls.len() as u32,
            window_failures: s.calls.iter().filter(|(_, ok)| !ok).count() as u32,
            opened_total: s.opened_total,
            open_for_ms: (s.state == BreakerState::Open && now < s.open_until)
                .then(|| s.open_until.saturating_duration_since(now).as_millis() as u64),
            last_reason: s.last_reason.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            failure_threshold: 3,
            error_rate_percent: 50,
            min_samples: 6,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(30),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_consecutive_failures_then_probes() {
        let b = Breaker::new(cfg());
        for _ in 0..3 {
            assert!(b.allow(Instant::now()));
            b.record(Instant::now(), false);
        }
        assert_eq!(b.report(Instant::now()).state, BreakerState::Open);
        assert!(!b.allow(Instant::now()), "open: refused at once");
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(b.allow(Instant::now()), "one probe");
        assert!(!b.allow(Instant::now()), "only one probe at a time");
        b.record(Instant::now(), true);
        assert_eq!(b.report(Instant::now()).state, BreakerState::Closed);
        assert!(b.allow(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_for_longer() {
        let b = Breaker::new(cfg());
        for _ in 0..3 {
            b.allow(Instant::now());
            b.record(Instant::now(), false);
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(b.allow(Instant::now()));
        b.record(Instant::now(), false);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(!b.allow(Instant::now()), "backed off to 10 s");
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(b.allow(Instant::now()));
        assert_eq!(b.report(Instant::now()).opened_total, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_error_rate_with_enough_samples_only() {
        let b = Breaker::new(cfg());
        // Alternating failures never reach 3 in a row; 3 of 6 = 50 % opens it.
        for i in 0..5 {
            b.record(Instant::now(), i % 2 == 1);
        }
        assert_eq!(b.report(Instant::now()).state, BreakerState::Closed, "too few samples");
        b.record(Instant::now(), false);
        let r = b.report(Instant::now());
        assert_eq!(r.state, BreakerState::Open, "{r:?}");
        assert!(r.last_reason.unwrap().contains("of the last 6"));
    }

    #[tokio::test(start_paused = true)]
    async fn old_failures_leave_the_window_and_a_lost_probe_is_given_up() {
        let b = Breaker::new(cfg());
        for _ in 0..2 {
            b.record(Instant::now(), false);
        }
        b.record(Instant::now(), true);
        tokio::time::advance(Duration::from_secs(11)).await;
        for _ in 0..2 {
            b.record(Instant::now(), false);
        }
        assert_eq!(b.report(Instant::now()).state, BreakerState::Closed);
        b.record(Instant::now(), false);
        assert_eq!(b.report(Instant::now()).state, BreakerState::Open);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(b.allow(Instant::now()));
        // The probe's client went away: after the probe timeout another probe may go.
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(b.allow(Instant::now()));
    }
}
