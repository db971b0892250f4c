//! An exact sliding-window log: every admitted amount is kept with its time
//! for one window, so "at most N per minute" holds over *every* 60-second
//! window, not just on average (error bound: zero on one replica). Memory is
//! one entry per admitted request still inside the window. Pure: the caller
//! passes the time, so tests run on controlled time.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone)]
struct Entry {
    seq: u64,
    at: Instant,
    amount: u64,
}

#[derive(Debug, Clone)]
pub struct SlidingWindow {
    window: Duration,
    entries: VecDeque<Entry>,
    sum: u64,
    next_seq: u64,
}

/// A refusal: how long until the amount would fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Fits after this wait.
    RetryAfter(Duration),
    /// Larger than the whole limit: never fits.
    TooLarge,
}

impl SlidingWindow {
    pub fn new(window: Duration) -> Self {
        SlidingWindow { window, entries: VecDeque::new(), sum: 0, next_seq: 0 }
    }

    fn prune(&mut self, now: Instant) {
        while let Some(front) = self.entries.front() {
            if front.at + self.window <= now {
                self.sum -= front.amount;
                self.entries.pop_front();
            } else {
                break;
            }
        }
    }

    /// Amount used inside the window ending at `now`.
    pub fn used(&mut self, now: Instant) -> u64 {
        self.prune(now);
        self.sum
    }

    /// Whether `amount` fits under `limit` now; if not, when it will.
    pub fn check(&mut self, now: Instant, amount: u64, limit: u64) -> Result<(), Refusal> {
        self.prune(now);
        if amount > limit {
            return Err(Refusal::TooLarge);
        }
        if self.sum + amount <= limit {
            return Ok(());
        }
        // Walk the oldest entries until enough would have expired.
        let mut freed = 0u64;
        for e in &self.entries {
            freed += e.amount;
            if self.sum - freed + amount <= limit {
                let at = e.at + self.window;
                return Err(Refusal::RetryAfter(at.saturating_duration_since(now)));
            }
        }
        Err(Refusal::RetryAfter(self.window))
    }

    /// Records `amount` at `now` (call after `check`); returns a handle for `adjust`.
    pub fn add(&mut self, now: Instant, amount: u64) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.entries.push_back(Entry { seq, at: now, amount });
        self.sum += amount;
        seq
    }

    /// Changes a recorded amount (settling an estimate to the actual); a no-op
    /// once the entry left the window.
    pub fn adjust(&mut self, seq: u64, amount: u64) {
        if let Ok(i) = self.entries.binary_search_by_key(&seq, |e| e.seq) {
            if let Some(e) = self.entries.get_mut(i) {
                self.sum = self.sum - e.amount + amount;
                e.amount = amount;
            }
        }
    }

    /// Time until the oldest entry leaves the window (zero when empty).
    pub fn reset_in(&mut self, now: Instant) -> Duration {
        self.prune(now);
        self.entries.front().map(|e| (e.at + self.window).saturating_duration_since(now)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_limit_in_any_window() {
        let mut w = SlidingWindow::new(MIN);
        let t0 = Instant::now();
        for _ in 0..3 {
            w.check(t0, 1, 3).unwrap();
            w.add(t0, 1);
        }
        assert_eq!(w.check(t0, 1, 3), Err(Refusal::RetryAfter(MIN)));
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(w.check(Instant::now(), 1, 3), Err(Refusal::RetryAfter(Duration::from_secs(1))));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(w.check(Instant::now(), 1, 3).is_ok());
        assert_eq!(w.used(Instant::now()), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_counts_what_must_expire() {
        let mut w = SlidingWindow::new(MIN);
        let t0 = Instant::now();
        w.add(t0, 600);
        tokio::time::advance(Duration::from_secs(10)).await;
        w.add(Instant::now(), 300);
        tokio::time::advance(Duration::from_secs(10)).await;
        let now = Instant::now();
        // 900 used of 1000: 200 more needs the first entry (t0) gone: 40 s.
        assert_eq!(w.check(now, 200, 1000), Err(Refusal::RetryAfter(Duration::from_secs(40))));
        assert!(w.check(now, 100, 1000).is_ok());
        assert_eq!(w.check(now, 1001, 1000), Err(Refusal::TooLarge));
        assert_eq!(w.reset_in(now), Duration::from_secs(40));
    }

    #[tokio::test(start_paused = true)]
    async fn adjust_settles_an_estimate() {
        let mut w = SlidingWindow::new(MIN);
        let now = Instant::now();
        let a = w.add(now, 500);
        let _b = w.add(now, 100);
        w.adjust(a, 50);
        assert_eq!(w.used(now), 150);
        tokio::time::advance(MIN).await;
        w.adjust(a, 999); // gone: no effect
        assert_eq!(w.used(Instant::now()), 0);
    }
}
