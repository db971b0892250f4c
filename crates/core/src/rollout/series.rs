//! The rollout's time series for the console's live charts: both sides in
//! fixed-width buckets (10 s, the last 90 = 15 minutes), each with requests,
//! errors, a latency histogram (p50/p99), cost in integer nano-USD, and the
//! shadow pairs compared and found differing.
//!
//! Pure: every sample carries its own timestamp (tests drive the clock).
//! Memory is bounded per rollout: at most [`BUCKETS`] buckets, each with two
//! sparse latency histograms (a few dozen slots for typical traffic, at most
//! [`SLOTS`]).

use std::collections::{BTreeMap, VecDeque};

use super::guard::{Side, SideStats};

/// The deployment's figures older than this are stale (Redis unreachable):
/// each replica's own measurements take over.
pub const STALE_MS: i64 = 3_000;

/// Width of one bucket.
pub const BUCKET_MS: i64 = 10_000;
/// Buckets kept (and reported): 15 minutes.
pub const BUCKETS: usize = 90;
/// Latency histogram slots: exact below 64 ms, then 32 slots per doubling
/// (relative error at most 1/32 ≈ 3 %).
pub const SLOTS: usize = 64 + 58 * 32;

/// The histogram slot of a latency.
pub fn slot(ms: u64) -> u16 {
    if ms < 64 {
        return ms as u16;
    }
    let e = 63 - u64::from(ms.leading_zeros()); // ⌊log2⌋ ≥ 6
    let sub = (ms >> (e - 5)) & 31;
    (64 + (e - 6) * 32 + sub) as u16
}

/// The largest latency that falls in `slot`.
pub fn slot_max(slot: u16) -> u64 {
    if slot < 64 {
        return u64::from(slot);
    }
    let s = u64::from(slot) - 64;
    let (e, sub) = (s / 32 + 6, s % 32);
    let top = (u128::from(32 + sub + 1) << (e - 5)) - 1;
    u64::try_from(top).unwrap_or(u64::MAX)
}

/// Latencies of one side in one bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    counts: BTreeMap<u16, u32>,
    n: u64,
    min: u64,
    max: u64,
}

impl Histogram {
    pub fn record(&mut self, ms: u64) {
        *self.counts.entry(slot(ms)).or_insert(0) += 1;
        if self.n == 0 || ms < self.min {
            self.min = ms;
        }
        self.max = self.max.max(ms);
        self.n += 1;
    }

    pub fn count(&self) -> u64 {
        self.n
    }

    /// Adds another histogram's samples.
    pub fn add(&mut self, o: &Histogram) {
        if o.n == 0 {
            return;
        }
        for (s, c) in &o.counts {
            *self.counts.entry(*s).or_insert(0) += c;
        }
        self.min = if self.n == 0 { o.min } else { self.min.min(o.min) };
        self.max = self.max.max(o.max);
        self.n += o.n;
    }

    /// The slots with their counts, the smallest and largest sample.
    pub fn parts(&self) -> (&BTreeMap<u16, u32>, u64, u64) {
        (&self.counts, self.min, self.max)
    }

    /// A histogram from [`Histogram::parts`].
    pub fn from_parts(counts: BTreeMap<u16, u32>, min: u64, max: u64) -> Histogram {
        let n = counts.values().map(|c| u64::from(*c)).sum();
        Histogram { counts, n, min: if n == 0 { 0 } else { min }, max: if n == 0 { 0 } else { max } }
    }

    /// The `q` quantile (nearest rank, as the guard computes it): exact below
    /// 64 ms, else the top of its slot (within 3 %), never outside the
    /// observed minimum and maximum. `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.n == 0 {
            return None;
        }
        let rank = ((self.n as f64) * q).ceil().clamp(1.0, self.n as f64) as u64;
        let mut seen = 0u64;
        for (s, c) in &self.counts {
            seen += u64::from(*c);
            if seen >= rank {
                return Some(slot_max(*s).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }
}

/// Average cost of 1,000 requests, nano-USD, of `requests` that cost
/// `cost_nanos` together; `None` without requests.
pub fn cost_per_1k_nanos(cost_nanos: i128, requests: u64) -> Option<i64> {
    let v = (cost_nanos * 1000).checked_div(i128::from(requests))?;
    Some(i64::try_from(v).unwrap_or(i64::MAX))
}

/// One side in one bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SideBucket {
    pub requests: u64,
    pub errors: u64,
    /// Latencies of the requests that succeeded (as the guard measures).
    pub latency: Histogram,
    /// What this side's requests cost (for `to` in shadow: the shadow calls).
    pub cost_nanos: i64,
    /// Requests whose cost is in `cost_nanos` (the divisor of cost per 1,000).
    pub priced: u64,
}

impl SideBucket {
    /// Average cost of 1,000 requests, nano-USD; `None` when none was priced.
    pub fn cost_per_1k_nanos(&self) -> Option<i64> {
        cost_per_1k_nanos(i128::from(self.cost_nanos), self.priced)
    }

    /// Errors per 10,000 requests.
    pub fn error_rate_bp(&self) -> u32 {
        (self.errors * 10_000).checked_div(self.requests).unwrap_or(0) as u32
    }

    pub fn add(&mut self, o: &SideBucket) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.latency.add(&o.latency);
        self.cost_nanos = self.cost_nanos.saturating_add(o.cost_nanos);
        self.priced += o.priced;
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Start of the bucket, epoch ms (a multiple of [`BUCKET_MS`]).
    pub start_ms: i64,
    pub from: SideBucket,
    pub to: SideBucket,
    /// Shadow pairs compared, and those whose outputs differ.
    pub pairs: u64,
    pub differing: u64,
}

impl Bucket {
    pub fn add(&mut self, o: &Bucket) {
        self.from.add(&o.from);
        self.to.add(&o.to);
        self.pairs += o.pairs;
        self.differing += o.differing;
    }
}

/// The last [`BUCKETS`] buckets (only those with data are stored).
#[derive(Debug, Default)]
pub struct Series {
    buckets: VecDeque<Bucket>,
}

fn floor(ms: i64) -> i64 {
    ms - ms.rem_euclid(BUCKET_MS)
}

impl Series {
    /// The buckets with data, oldest first.
    pub fn buckets(&self) -> impl Iterator<Item = &Bucket> {
        self.buckets.iter()
    }

    /// The bucket for `at_ms`, created when missing; `None` when it is older
    /// than what is kept.
    fn bucket(&mut self, at_ms: i64) -> Option<&mut Bucket> {
        let start = floor(at_ms);
        let newest = self.buckets.back().map_or(start, |b| b.start_ms.max(start));
        let oldest_kept = newest - (BUCKETS as i64 - 1) * BUCKET_MS;
        while self.buckets.front().is_some_and(|b| b.start_ms < oldest_kept) {
            self.buckets.pop_front();
        }
        if start < oldest_kept {
            return None;
        }
        // Samples arrive in time order, give or take a little (shadow pairs
        // finish after their request): search from the newest.
        let pos = self.buckets.iter().rposition(|b| b.start_ms <= start);
        let index = match pos {
            Some(i) if self.buckets[i].start_ms == start => i,
            Some(i) => {
                self.buckets.insert(i + 1, Bucket { start_ms: start, ..Bucket::default() });
                i + 1
            }
            None => {
                self.buckets.push_front(Bucket { start_ms: start, ..Bucket::default() });
                0
            }
        };
        self.buckets.get_mut(index)
    }

    /// One request served (or, for `to` in shadow, mirrored) by `side`.
    /// `cost_nanos` is `None` when the cost arrives separately
    /// ([`Series::shadow_pair`]).
    pub fn request(&mut self, at_ms: i64, side: Side, latency_ms: u64, error: bool, cost_nanos: Option<i64>) {
        let Some(b) = self.bucket(at_ms) else { return };
        let s = match side {
            Side::From => &mut b.from,
            Side::To => &mut b.to,
        };
        s.requests += 1;
        if error {
            s.errors += 1;
        } else {
            s.latency.record(latency_ms);
        }
        if let Some(c) = cost_nanos {
            s.cost_nanos += c;
            s.priced += 1;
        }
    }

    /// A compared shadow pair; `to_cost_nanos` is what the shadow call cost.
    pub fn shadow_pair(&mut self, at_ms: i64, differing: bool, to_cost_nanos: i64) {
        let Some(b) = self.bucket(at_ms) else { return };
        b.pairs += 1;
        b.differing += u64::from(differing);
        b.to.cost_nanos += to_cost_nanos;
        b.to.priced += 1;
    }

    /// Every bucket from `since_ms` (at most [`BUCKETS`] back) to the one
    /// holding `now_ms`, oldest first; buckets without data are empty.
    pub fn report(&self, since_ms: i64, now_ms: i64) -> Vec<Bucket> {
        let last = floor(now_ms);
        let first = floor(since_ms).clamp(last - (BUCKETS as i64 - 1) * BUCKET_MS, last);
        let mut out = Vec::with_capacity(((last - first) / BUCKET_MS + 1) as usize);
        let mut stored = self.buckets.iter().filter(|b| b.start_ms >= first && b.start_ms <= last).peekable();
        let mut start = first;
        while start <= last {
            match stored.peek() {
                Some(b) if b.start_ms == start => {
                    out.push((*b).clone());
                    stored.next();
                }
                _ => out.push(Bucket { start_ms: start, ..Bucket::default() }),
            }
            start += BUCKET_MS;
        }
        out
    }
}

/// Requests, errors and cost of one side since the rollout started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub requests: u64,
    pub errors: u64,
    pub cost_nanos: i64,
}

/// Shadow comparison totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShadowTotals {
    pub pairs: u64,
    pub differing: u64,
    pub tool_mismatches: u64,
    pub to_errors: u64,
    pub shadow_cost_nanos: i64,
    pub skipped: u64,
}

impl Totals {
    pub fn add(&mut self, o: &Totals) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.cost_nanos = self.cost_nanos.saturating_add(o.cost_nanos);
    }
}

impl ShadowTotals {
    pub fn add(&mut self, o: &ShadowTotals) {
        self.pairs += o.pairs;
        self.differing += o.differing;
        self.tool_mismatches += o.tool_mismatches;
        self.to_errors += o.to_errors;
        self.shadow_cost_nanos = self.shadow_cost_nanos.saturating_add(o.shadow_cost_nanos);
        self.skipped += o.skipped;
    }
}

/// What one replica measured of a rollout since it last shared it (`[redis]
/// url` set): added to the deployment's figures every second.
#[derive(Debug, Default)]
pub struct Delta {
    pub series: Series,
    pub from: Totals,
    pub to: Totals,
    pub shadow: ShadowTotals,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.series.buckets.is_empty() && self.shadow == ShadowTotals::default()
    }

    /// Adds `o` (a delta that could not be shared, put back).
    pub fn absorb(&mut self, o: Delta) {
        for b in o.series.buckets {
            if let Some(mine) = self.series.bucket(b.start_ms) {
                mine.add(&b);
            }
        }
        self.from.add(&o.from);
        self.to.add(&o.to);
        self.shadow.add(&o.shadow);
    }
}

/// The deployment's figures of a rollout: every replica's, read from Redis
/// at `at_ms`.
#[derive(Debug, Default, Clone)]
pub struct View {
    pub at_ms: i64,
    /// The last [`BUCKETS`] buckets with data, oldest first.
    pub buckets: Vec<Bucket>,
    pub from: Totals,
    pub to: Totals,
    pub shadow: ShadowTotals,
}

impl View {
    /// The view with what this replica has not shared yet added.
    pub fn with(&self, pending: &Delta) -> View {
        let mut v = self.clone();
        let mut series = Series { buckets: v.buckets.drain(..).collect() };
        for b in &pending.series.buckets {
            if let Some(mine) = series.bucket(b.start_ms) {
                mine.add(b);
            }
        }
        v.buckets = series.buckets.into_iter().collect();
        v.from.add(&pending.from);
        v.to.add(&pending.to);
        v.shadow.add(&pending.shadow);
        v
    }

    pub fn series(&self) -> Series {
        Series { buckets: self.buckets.iter().cloned().collect() }
    }

    /// One side's statistics over the guard's window, from the buckets that
    /// overlap it (so the window is rounded out to whole 10-second buckets);
    /// percentiles within 3 % (the histogram's slots).
    pub fn window_stats(&self, side: Side, now_ms: i64, window_secs: u64) -> SideStats {
        let horizon = now_ms - (window_secs as i64).saturating_mul(1000);
        let mut latency = Histogram::default();
        let (mut count, mut errors) = (0u64, 0u64);
        for b in self.buckets.iter().filter(|b| b.start_ms + BUCKET_MS > horizon && b.start_ms <= now_ms) {
            let s = match side {
                Side::From => &b.from,
                Side::To => &b.to,
            };
            count += s.requests;
            errors += s.errors;
            latency.add(&s.latency);
        }
        SideStats {
            count: u32::try_from(count).unwrap_or(u32::MAX),
            errors: u32::try_from(errors).unwrap_or(u32::MAX),
            p50_ms: latency.quantile(0.5).unwrap_or(0),
            p99_ms: latency.quantile(0.99).unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000; // a multiple of 10 s

    #[test]
    fn slots_are_exact_below_64_ms_and_within_3_percent_above() {
        for ms in 0..64 {
            assert_eq!(slot_max(slot(ms)), ms);
        }
        let mut last = 0;
        for ms in [64, 65, 100, 1_000, 12_345, 600_000, 1 << 40, u64::MAX] {
            let s = slot(ms);
            assert!(usize::from(s) < SLOTS, "{ms} → slot {s}");
            assert!(s >= last, "slots grow with the latency");
            last = s;
            let top = slot_max(s);
            assert!(top >= ms, "{ms} ≤ top of its slot {top}");
            assert!((top - ms) as f64 <= ms as f64 / 32.0, "{ms}: slot top {top} is within 1/32");
            if s > 64 {
                assert!(slot_max(s - 1) < ms, "{ms} is above the previous slot");
            }
        }
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        for ms in 1..=100 {
            h.record(ms);
        }
        assert_eq!(h.quantile(0.5), Some(50));
        // 99 lies in the slot 98–99.
        assert_eq!(h.quantile(0.99), Some(99));
        assert_eq!(h.quantile(1.0), Some(100));
        let mut one = Histogram::default();
        one.record(1_000);
        assert_eq!((one.quantile(0.5), one.quantile(0.99)), (Some(1_000), Some(1_000)), "clamped to what was seen");
    }

    #[test]
    fn requests_land_in_their_ten_second_bucket() {
        let mut s = Series::default();
        s.request(T0 + 1, Side::From, 10, false, Some(1_000));
        s.request(T0 + 9_999, Side::From, 30, false, Some(3_000));
        s.request(T0 + 9_999, Side::From, 0, true, Some(0));
        s.request(T0 + 10_000, Side::To, 20, false, Some(5_000));
        let r = s.report(T0, T0 + 10_500);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].start_ms, T0);
        assert_eq!((r[0].from.requests, r[0].from.errors, r[0].from.latency.count()), (3, 1, 2));
        assert_eq!(r[0].from.latency.quantile(0.5), Some(10));
        assert_eq!(r[0].from.latency.quantile(0.99), Some(30));
        assert_eq!(r[0].from.error_rate_bp(), 3_333);
        // (1,000 + 3,000 + 0) nano-USD over 3 requests → per 1,000 requests.
        assert_eq!(r[0].from.cost_per_1k_nanos(), Some(1_333_333));
        assert_eq!(r[0].to, SideBucket::default());
        assert_eq!(r[1].to.requests, 1);
        assert_eq!(r[1].to.cost_per_1k_nanos(), Some(5_000_000));
        assert_eq!(r[1].from.cost_per_1k_nanos(), None, "nothing priced");
    }

    #[test]
    fn shadow_pairs_carry_the_to_side_cost() {
        let mut s = Series::default();
        // In shadow the `to` call is counted when it finishes, its cost with the pair.
        s.request(T0 + 100, Side::To, 40, false, None);
        s.request(T0 + 120, Side::From, 20, false, Some(2_000));
        s.shadow_pair(T0 + 130, true, 7_000);
        s.request(T0 + 200, Side::To, 40, false, None);
        s.shadow_pair(T0 + 210, false, 9_000);
        let b = &s.report(T0, T0 + 300)[0];
        assert_eq!((b.pairs, b.differing), (2, 1));
        assert_eq!((b.to.requests, b.to.priced, b.to.cost_nanos), (2, 2, 16_000));
        assert_eq!(b.to.cost_per_1k_nanos(), Some(8_000_000));
    }

    #[test]
    fn the_report_fills_quiet_buckets_and_keeps_fifteen_minutes() {
        let mut s = Series::default();
        s.request(T0, Side::From, 5, false, Some(1));
        s.request(T0 + 30_000, Side::From, 5, false, Some(1));
        // Since creation: 4 buckets, the quiet ones empty.
        let r = s.report(T0 + 4_000, T0 + 35_000);
        assert_eq!(r.iter().map(|b| b.from.requests).collect::<Vec<_>>(), vec![1, 0, 0, 1]);
        assert_eq!(r.iter().map(|b| b.start_ms - T0).collect::<Vec<_>>(), vec![0, 10_000, 20_000, 30_000]);
        // An hour later: only the last 90 buckets, all quiet.
        let later = T0 + 3_600_000;
        let r = s.report(T0, later);
        assert_eq!(r.len(), BUCKETS);
        assert_eq!(r.last().unwrap().start_ms, later);
        assert!(r.iter().all(|b| b.from.requests == 0));
        // New traffic drops what fell out of the window.
        s.request(later, Side::To, 5, false, Some(1));
        assert_eq!(s.buckets.len(), 1);
        // A straggler older than the window is ignored, one inside it is placed in order.
        s.request(T0, Side::From, 5, false, Some(1));
        s.request(later - 20_000, Side::From, 5, false, Some(1));
        s.request(later - 40_000, Side::From, 5, false, Some(1));
        let starts: Vec<i64> = s.buckets.iter().map(|b| later - b.start_ms).collect();
        assert_eq!(starts, vec![40_000, 20_000, 0]);
        let r = s.report(T0, later);
        assert_eq!(r.iter().map(|b| b.from.requests).sum::<u64>(), 2);
    }

    #[test]
    fn a_busy_bucket_stays_small() {
        let mut s = Series::default();
        for i in 0..100_000u64 {
            s.request(T0 + (i % 10_000) as i64, Side::From, 50 + i % 5_000, false, Some(1));
        }
        let b = &s.buckets[0];
        assert_eq!(b.from.requests, 100_000);
        assert!(b.from.latency.counts.len() < 250, "{} slots", b.from.latency.counts.len());
        let p99 = b.from.latency.quantile(0.99).unwrap();
        assert!((4_950..=5_049 + 5_049 / 32).contains(&p99), "{p99}");
    }
}
