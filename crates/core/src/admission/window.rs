//! An exact sliding-window log: every admitted amount is kept with its time
//! for one window, so "at most N per minute" holds over *every* 60-second
//! window, not just on average (never more than the limit on one replica).
//! Pure: the caller passes the time, so tests run on controlled time.
//!
//! Amounts added within one [`GRANULE`] share an entry that leaves the window
//! when the *latest* of them does, so memory is bounded by the window's length
//! (at most window / granule + 1 entries, 60,001 for a minute) rather than by
//! the request rate — one entry per request was 2.7 million entries, 86 MB, per
//! window and tenant at 45k requests per second. Keeping an amount up to one
//! granule longer than its own time only ever refuses more, never admits more:
//! the limit still holds over every window; a refusal's retry time is at most
//! one granule late.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Amounts added within this span of an entry's first share the entry.
pub const GRANULE: Duration = Duration::from_millis(1);

#[derive(Debug, Clone)]
struct Entry {
    /// Sequence number of the last amount the entry holds (the first is one
    /// past the previous entry's).
    last_seq: u64,
    /// When the first amount was added.
    opened: Instant,
    /// When the latest amount was added: the entry expires `window` after it.
    at: Instant,
    amount: u64,
}

#[derive(Debug, Clone)]
pub struct SlidingWindow {
    window: Duration,
    entries: VecDeque<Entry>,
    sum: u64,
    next_seq: u64,
    /// Amounts with a lower sequence number have left the window.
    expired_below: u64,
}

/// A refusal: how long until the amount would fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Fits after this wait.
    RetryAfter(Duration),
    /// Larger than the whole limit: never fits.
    TooLarge,
}

/// One added amount, as [`SlidingWindow::adjust`] needs it to settle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Added {
    seq: u64,
    amount: u64,
}

impl SlidingWindow {
    pub fn new(window: Duration) -> Self {
        SlidingWindow { window, entries: VecDeque::new(), sum: 0, next_seq: 0, expired_below: 0 }
    }

    fn prune(&mut self, now: Instant) {
        while let Some(front) = self.entries.front() {
            if front.at + self.window <= now {
                self.sum = self.sum.saturating_sub(front.amount);
                self.expired_below = front.last_seq + 1;
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
        // Checked: a sum beyond `u64` never fits.
        if self.sum.checked_add(amount).is_some_and(|total| total <= limit) {
            return Ok(());
        }
        // Walk the oldest entries until enough would have expired.
        let mut freed = 0u64;
        for e in &self.entries {
            freed = freed.saturating_add(e.amount);
            if self.sum.saturating_sub(freed).checked_add(amount).is_some_and(|total| total <= limit) {
                let at = e.at + self.window;
                return Err(Refusal::RetryAfter(at.saturating_duration_since(now)));
            }
        }
        Err(Refusal::RetryAfter(self.window))
    }

    /// Records `amount` at `now` (call after `check`); returns what `adjust` needs.
    pub fn add(&mut self, now: Instant, amount: u64) -> Added {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.sum = self.sum.saturating_add(amount);
        match self.entries.back_mut() {
            // `now` may be a little before the entry's own times (callers on
            // other threads read the clock before taking the lock): the entry
            // then keeps its later time, which only holds the amount longer.
            Some(back) if now.saturating_duration_since(back.opened) < GRANULE => {
                back.last_seq = seq;
                back.at = back.at.max(now);
                back.amount = back.amount.saturating_add(amount);
            }
            _ => self.entries.push_back(Entry { last_seq: seq, opened: now, at: now, amount }),
        }
        Added { seq, amount }
    }

    /// Changes a recorded amount to `amount` (settling an estimate to the
    /// actual); a no-op once it left the window.
    pub fn adjust(&mut self, added: Added, amount: u64) {
        if added.seq < self.expired_below || added.seq >= self.next_seq {
            return;
        }
        let i = self.entries.partition_point(|e| e.last_seq < added.seq);
        if let Some(e) = self.entries.get_mut(i) {
            // The entry holds `added.amount` among others: swap it for `amount`.
            let rest = e.amount.saturating_sub(added.amount);
            self.sum = self.sum.saturating_sub(e.amount).saturating_add(rest).saturating_add(amount);
            e.amount = rest.saturating_add(amount);
        }
    }

    /// Time until the oldest entry leaves the window (zero when empty).
    pub fn reset_in(&mut self, now: Instant) -> Duration {
        self.prune(now);
        self.entries.front().map(|e| (e.at + self.window).saturating_duration_since(now)).unwrap_or_default()
    }

    /// Entries held (memory), for tests.
    #[cfg(test)]
    fn entries(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn huge_amounts_saturate_instead_of_overflowing() {
        let mut w = SlidingWindow::new(MIN);
        let now = Instant::now();
        assert!(w.check(now, u64::MAX, u64::MAX).is_ok());
        let a = w.add(now, u64::MAX);
        // Full: nothing more fits, whatever the limit.
        assert_eq!(w.check(now, 1, u64::MAX), Err(Refusal::RetryAfter(MIN)));
        w.add(now, u64::MAX);
        assert_eq!(w.used(now), u64::MAX);
        w.adjust(a, 5);
        assert!(w.used(now) >= 5);
        tokio::time::advance(MIN).await;
        assert_eq!(w.used(Instant::now()), 0);
    }

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

    #[tokio::test(start_paused = true)]
    async fn amounts_within_a_granule_share_an_entry_that_leaves_with_the_latest() {
        let mut w = SlidingWindow::new(MIN);
        let t0 = Instant::now();
        let a = w.add(t0, 5);
        tokio::time::advance(Duration::from_micros(400)).await;
        let t1 = Instant::now();
        let b = w.add(t1, 7);
        assert_eq!(w.entries(), 1, "400 µs apart: one entry");
        // Settling one amount of a shared entry leaves the other intact.
        w.adjust(a, 2);
        assert_eq!(w.used(t1), 9);
        // 60 s after the first amount the entry is still there (its latest
        // amount is younger): held longer, never released early.
        tokio::time::advance(MIN - Duration::from_micros(400)).await;
        assert_eq!(w.used(Instant::now()), 9);
        assert_eq!(w.check(Instant::now(), 1, 9), Err(Refusal::RetryAfter(Duration::from_micros(400))));
        tokio::time::advance(Duration::from_micros(400)).await;
        assert_eq!(w.used(Instant::now()), 0);
        w.adjust(b, 100); // gone: no effect
        assert_eq!(w.used(Instant::now()), 0);
        // A granule later, a new entry.
        let t2 = Instant::now();
        w.add(t2, 1);
        w.add(t2 + GRANULE, 1);
        assert_eq!(w.entries(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn memory_is_bounded_by_the_window_not_the_rate() {
        let mut w = SlidingWindow::new(MIN);
        let limit = u64::MAX / 2;
        // 100 requests per millisecond for two minutes (12 million requests).
        let start = Instant::now();
        let mut peak = 0;
        for ms in 0..120_000u64 {
            let now = start + Duration::from_millis(ms);
            for _ in 0..100 {
                w.check(now, 1, limit).unwrap();
                w.add(now, 1);
            }
            peak = peak.max(w.entries());
        }
        assert!(peak <= 60_001, "{peak} entries");
        // Every request of the last minute is still counted, exactly.
        let end = start + Duration::from_millis(119_999);
        assert_eq!(w.used(end), 60_000 * 100);
    }

    #[tokio::test(start_paused = true)]
    async fn the_limit_holds_over_every_window_with_shared_entries() {
        // Requests every 300 µs against 50 per second, in a 1 s window: at
        // every instant, what the window admitted in the last second (by the
        // requests' own times) never exceeds the limit.
        let window = Duration::from_secs(1);
        let mut w = SlidingWindow::new(window);
        let start = Instant::now();
        let mut admitted: Vec<Instant> = Vec::new();
        for i in 0..20_000u64 {
            let now = start + Duration::from_micros(300 * i);
            if w.check(now, 1, 50).is_ok() {
                w.add(now, 1);
                admitted.push(now);
            }
            let inside = admitted.iter().filter(|t| **t + window > now).count();
            assert!(inside <= 50, "{inside} admitted in the second before {i}");
        }
        // It was not starved either: close to 50 per second over 6 s.
        assert!(admitted.len() >= 6 * 50 - 50, "{}", admitted.len());
    }
}
