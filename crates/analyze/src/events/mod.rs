//! Exact peak concurrency and per-minute rates in bounded memory: an
//! external merge sort of request start/end events, then one sweep.
//!
//! Each request with a duration becomes two 16-byte events (start with its
//! tokens, end); one without a duration becomes one "point" event (counted in
//! rates, not in concurrency). Events are buffered per worker up to a fixed
//! number (`max_events_in_memory` in total); a full buffer is sorted and
//! written to a temporary file (a *run*). At the end the runs (on disk and
//! the last ones in memory) are merged with a heap and swept in time order:
//! ends sort before starts at the same millisecond, so intervals are
//! half-open `[start, end)` and back-to-back requests do not overlap. Memory
//! is the event buffer plus 64 KiB per run being merged; more than
//! [`MAX_MERGE_FAN_IN`] runs are first merged into bigger runs on disk.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::agg::Histogram;
use crate::time::MINUTE_MS;

pub const KIND_END: u32 = 0;
pub const KIND_START: u32 = 1;
pub const KIND_POINT: u32 = 2;
const KIND_SHIFT: u32 = 30;
pub const TENANT_MASK: u32 = (1 << KIND_SHIFT) - 1;
const EV_BYTES: usize = 16;
/// Runs merged at once at most; beyond, runs are merged in passes.
pub const MAX_MERGE_FAN_IN: usize = 128;

/// One event: time, kind and tenant, and the request's tokens (starts and points).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ev {
    pub ts: i64,
    pub key: u32,
    pub tokens: u32,
}

impl Ev {
    pub fn new(ts: i64, kind: u32, tenant: u32, tokens: u64) -> Ev {
        Ev { ts, key: (kind << KIND_SHIFT) | (tenant & TENANT_MASK), tokens: u32::try_from(tokens).unwrap_or(u32::MAX) }
    }
    pub fn kind(&self) -> u32 {
        self.key >> KIND_SHIFT
    }
    pub fn tenant(&self) -> u32 {
        self.key & TENANT_MASK
    }
    fn order(&self) -> (i64, u32) {
        (self.ts, self.kind())
    }
    fn to_bytes(self) -> [u8; EV_BYTES] {
        let mut b = [0u8; EV_BYTES];
        b[..8].copy_from_slice(&self.ts.to_le_bytes());
        b[8..12].copy_from_slice(&self.key.to_le_bytes());
        b[12..].copy_from_slice(&self.tokens.to_le_bytes());
        b
    }
    fn from_bytes(b: &[u8; EV_BYTES]) -> Ev {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[..8]);
        let mut key = [0u8; 4];
        key.copy_from_slice(&b[8..12]);
        let mut tokens = [0u8; 4];
        tokens.copy_from_slice(&b[12..]);
        Ev { ts: i64::from_le_bytes(ts), key: u32::from_le_bytes(key), tokens: u32::from_le_bytes(tokens) }
    }
}

/// Where runs are spilled: a temporary directory made on first use, removed when dropped.
#[derive(Debug)]
pub struct SpillDir {
    base: Option<PathBuf>,
    dir: Mutex<Option<tempfile::TempDir>>,
    counter: AtomicU64,
    pub spilled_events: AtomicU64,
    pub runs_written: AtomicU64,
}

impl SpillDir {
    pub fn new(base: Option<PathBuf>) -> Self {
        SpillDir {
            base,
            dir: Mutex::new(None),
            counter: AtomicU64::new(0),
            spilled_events: AtomicU64::new(0),
            runs_written: AtomicU64::new(0),
        }
    }

    fn new_file(&self) -> io::Result<(PathBuf, File)> {
        let mut guard = match self.dir.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if guard.is_none() {
            let d = match &self.base {
                Some(b) => tempfile::Builder::new().prefix("sheepdog-analyze-").tempdir_in(b)?,
                None => tempfile::Builder::new().prefix("sheepdog-analyze-").tempdir()?,
            };
            *guard = Some(d);
        }
        let dir = guard.as_ref().map(|d| d.path().to_path_buf()).unwrap_or_default();
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("run-{n:06}.bin"));
        let f = File::create(&path)?;
        self.runs_written.fetch_add(1, Ordering::Relaxed);
        Ok((path, f))
    }
}

/// A sorted run of events.
#[derive(Debug)]
pub enum Run {
    Mem(Vec<Ev>),
    /// On disk; `remap` turns the worker's tenant numbers into global ones.
    File {
        path: PathBuf,
        len: u64,
        remap: Option<Arc<Vec<u32>>>,
    },
}

/// A worker's event buffer.
#[derive(Debug)]
pub struct EventSink {
    buf: Vec<Ev>,
    cap: usize,
    runs: Vec<Run>,
}

fn write_run(evs: &[Ev], spill: &SpillDir) -> io::Result<(PathBuf, u64)> {
    let (path, f) = spill.new_file()?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    for e in evs {
        w.write_all(&e.to_bytes())?;
    }
    w.flush()?;
    spill.spilled_events.fetch_add(evs.len() as u64, Ordering::Relaxed);
    Ok((path, evs.len() as u64))
}

impl EventSink {
    pub fn new(cap: usize) -> Self {
        EventSink { buf: Vec::new(), cap: cap.max(2), runs: Vec::new() }
    }

    pub fn push(&mut self, ev: Ev, spill: &SpillDir) -> io::Result<()> {
        self.buf.push(ev);
        if self.buf.len() >= self.cap {
            self.buf.sort_unstable();
            let (path, len) = write_run(&self.buf, spill)?;
            self.runs.push(Run::File { path, len, remap: None });
            self.buf.clear();
        }
        Ok(())
    }

    /// The worker's runs, tenants renumbered with `remap` (local → global).
    pub fn finish(self, remap: Arc<Vec<u32>>) -> Vec<Run> {
        let EventSink { mut buf, mut runs, .. } = self;
        for r in &mut runs {
            if let Run::File { remap: m, .. } = r {
                *m = Some(remap.clone());
            }
        }
        if !buf.is_empty() {
            for e in &mut buf {
                let t = remap.get(e.tenant() as usize).copied().unwrap_or(0);
                *e = Ev { key: (e.key & !TENANT_MASK) | t, ..*e };
            }
            buf.sort_unstable();
            buf.shrink_to_fit();
            runs.push(Run::Mem(buf));
        }
        runs
    }
}

enum Source {
    Mem(std::vec::IntoIter<Ev>),
    File { r: BufReader<File>, left: u64, remap: Option<Arc<Vec<u32>>> },
}

impl Source {
    fn next(&mut self) -> io::Result<Option<Ev>> {
        match self {
            Source::Mem(it) => Ok(it.next()),
            Source::File { r, left, remap } => {
                if *left == 0 {
                    return Ok(None);
                }
                let mut b = [0u8; EV_BYTES];
                r.read_exact(&mut b)?;
                *left -= 1;
                let mut e = Ev::from_bytes(&b);
                if let Some(m) = remap {
                    let t = m.get(e.tenant() as usize).copied().unwrap_or(0);
                    e.key = (e.key & !TENANT_MASK) | t;
                }
                Ok(Some(e))
            }
        }
    }
}

/// A k-way merge of sorted runs in (time, kind) order.
pub struct Merger {
    sources: Vec<Source>,
    heads: Vec<Option<Ev>>,
    heap: BinaryHeap<Reverse<((i64, u32), usize)>>,
}

impl Merger {
    pub fn new(runs: Vec<Run>) -> io::Result<Merger> {
        let mut sources = Vec::new();
        for r in runs {
            sources.push(match r {
                Run::Mem(v) => Source::Mem(v.into_iter()),
                Run::File { path, len, remap } => {
                    Source::File { r: BufReader::with_capacity(64 * 1024, File::open(&path)?), left: len, remap }
                }
            });
        }
        let mut m = Merger { heads: vec![None; sources.len()], sources, heap: BinaryHeap::new() };
        for i in 0..m.sources.len() {
            m.refill(i)?;
        }
        Ok(m)
    }

    fn refill(&mut self, i: usize) -> io::Result<()> {
        let next = self.sources[i].next()?;
        if let Some(e) = next {
            self.heap.push(Reverse((e.order(), i)));
        }
        self.heads[i] = next;
        Ok(())
    }

    pub fn next_event(&mut self) -> io::Result<Option<Ev>> {
        let Some(Reverse((_, i))) = self.heap.pop() else {
            return Ok(None);
        };
        let e = self.heads[i];
        self.refill(i)?;
        Ok(e)
    }
}

/// Merges runs in passes until at most [`MAX_MERGE_FAN_IN`] remain (bounded open files and buffers).
pub fn reduce_runs(mut runs: Vec<Run>, spill: &SpillDir) -> io::Result<Vec<Run>> {
    while runs.len() > MAX_MERGE_FAN_IN {
        let rest = runs.split_off(MAX_MERGE_FAN_IN);
        let mut m = Merger::new(runs)?;
        let (path, f) = spill.new_file()?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let mut len = 0u64;
        while let Some(e) = m.next_event()? {
            w.write_all(&e.to_bytes())?;
            len += 1;
        }
        w.flush()?;
        runs = rest;
        runs.push(Run::File { path, len, remap: None });
    }
    Ok(runs)
}

/// Concurrency of one tenant (or overall) during the sweep.
#[derive(Debug, Clone, Default)]
pub struct Conc {
    pub cur: i64,
    pub peak: i64,
    pub peak_at: Option<i64>,
    /// Tenants with a request in flight when the peak was reached (this one included).
    pub active_at_peak: u64,
    /// Requests in flight at the moment of the overall peak.
    pub at_overall_peak: i64,
    /// The first of the tenant's own request starts at which demand exceeded
    /// the upstream capacity while it held more than its fair share.
    pub over_share: Option<OverShare>,
    snap_val: i64,
    snap_ver: u64,
}

/// A request start that Sheepdog's scheduler would have made wait: the
/// upstream was beyond capacity and the tenant over its fair share.
#[derive(Debug, Clone, PartialEq)]
pub struct OverShare {
    pub at: i64,
    /// Requests the tenant had in flight (this one included).
    pub held: i64,
    /// Requests in flight overall (this one included).
    pub overall: i64,
    /// Tenants with requests in flight.
    pub active: u64,
    /// How many of its starts were in that state.
    pub starts: u64,
}

/// Per-minute counters of one tenant (or overall) during the sweep.
#[derive(Debug, Clone)]
pub struct Rates {
    cur_minute: i64,
    cur_req: u64,
    cur_tok: u64,
    pub rpm: Histogram,
    pub tpm: Histogram,
    pub rpm_peak: u64,
    pub rpm_peak_minute: Option<i64>,
    pub tpm_peak: u64,
    pub tpm_peak_minute: Option<i64>,
}

impl Default for Rates {
    fn default() -> Self {
        Rates {
            cur_minute: i64::MIN,
            cur_req: 0,
            cur_tok: 0,
            rpm: Histogram::default(),
            tpm: Histogram::default(),
            rpm_peak: 0,
            rpm_peak_minute: None,
            tpm_peak: 0,
            tpm_peak_minute: None,
        }
    }
}

impl Rates {
    fn add(&mut self, ts: i64, tokens: u32) {
        let minute = ts.div_euclid(MINUTE_MS);
        if minute != self.cur_minute {
            self.flush();
            self.cur_minute = minute;
        }
        self.cur_req += 1;
        self.cur_tok += u64::from(tokens);
    }

    fn flush(&mut self) {
        if self.cur_req == 0 {
            return;
        }
        self.rpm.record(self.cur_req);
        self.tpm.record(self.cur_tok);
        if self.cur_req > self.rpm_peak {
            self.rpm_peak = self.cur_req;
            self.rpm_peak_minute = Some(self.cur_minute * MINUTE_MS);
        }
        if self.cur_tok > self.tpm_peak || self.tpm_peak_minute.is_none() {
            self.tpm_peak = self.cur_tok;
            self.tpm_peak_minute = Some(self.cur_minute * MINUTE_MS);
        }
        self.cur_req = 0;
        self.cur_tok = 0;
    }

    /// Minutes with at least one request.
    pub fn active_minutes(&self) -> u64 {
        self.rpm.count()
    }
}

/// What the time series of the report covers.
#[derive(Debug, Clone)]
pub struct SeriesSpec {
    pub start_ms: i64,
    pub bucket_ms: i64,
    pub buckets: usize,
    /// Tenants drawn as their own line (global numbers), the rest summed as "other".
    pub tenants: Vec<u32>,
}

/// The sweep's results.
#[derive(Debug, Clone)]
pub struct Sweep {
    pub overall: Conc,
    pub tenants: Vec<Conc>,
    pub overall_rates: Rates,
    pub tenant_rates: Vec<Rates>,
    /// Tenants with a request in flight at the overall peak.
    pub tenants_active_at_peak: u64,
    /// Requests started per bucket: one row per series tenant, then "other", then the total.
    pub series: Vec<Vec<u64>>,
    pub events: u64,
}

/// Sweeps the merged events in time order.
///
/// With an upstream `capacity`, every request start beyond it is checked
/// against the starting tenant's fair share (`capacity ÷ tenants with
/// requests in flight`). Each tenant's concurrency at the overall peak is
/// kept with a versioned snapshot (O(1) per event): when the running peak
/// rises the version is bumped, and a tenant's value is saved the first time
/// it changes after a bump.
pub fn sweep(
    runs: Vec<Run>,
    n_tenants: usize,
    spec: &SeriesSpec,
    capacity: Option<u64>,
    spill: &SpillDir,
) -> io::Result<Sweep> {
    let runs = reduce_runs(runs, spill)?;
    let mut m = Merger::new(runs)?;
    let mut s = Sweep {
        overall: Conc::default(),
        tenants: vec![Conc::default(); n_tenants],
        overall_rates: Rates::default(),
        tenant_rates: vec![Rates::default(); n_tenants],
        tenants_active_at_peak: 0,
        series: vec![vec![0; spec.buckets.max(1)]; spec.tenants.len() + 2],
        events: 0,
    };
    let mut series_row = vec![spec.tenants.len(); n_tenants];
    for (i, t) in spec.tenants.iter().enumerate() {
        if let Some(r) = series_row.get_mut(*t as usize) {
            *r = i;
        }
    }
    let total_row = spec.tenants.len() + 1;
    let mut active: i64 = 0;
    let mut version: u64 = 0;
    let capacity = capacity.map(|c| c as i64);
    while let Some(e) = m.next_event()? {
        s.events += 1;
        let t = e.tenant() as usize;
        if t >= n_tenants {
            continue;
        }
        let kind = e.kind();
        if kind == KIND_END || kind == KIND_START {
            let delta = if kind == KIND_START { 1 } else { -1 };
            let tc = &mut s.tenants[t];
            if tc.snap_ver < version {
                tc.snap_val = tc.cur;
                tc.snap_ver = version;
            }
            let was = tc.cur > 0;
            tc.cur += delta;
            active += i64::from(tc.cur > 0) - i64::from(was);
            if kind == KIND_START && tc.cur > tc.peak {
                tc.peak = tc.cur;
                tc.peak_at = Some(e.ts);
                tc.active_at_peak = active.max(1) as u64;
            }
            s.overall.cur += delta;
            if kind == KIND_START {
                if let Some(c) = capacity {
                    let share = c as f64 / active.max(1) as f64;
                    if s.overall.cur > c && tc.cur as f64 > share {
                        match &mut tc.over_share {
                            Some(o) => o.starts += 1,
                            None => {
                                tc.over_share = Some(OverShare {
                                    at: e.ts,
                                    held: tc.cur,
                                    overall: s.overall.cur,
                                    active: active.max(1) as u64,
                                    starts: 1,
                                })
                            }
                        }
                    }
                }
            }
            if kind == KIND_START && s.overall.cur > s.overall.peak {
                s.overall.peak = s.overall.cur;
                s.overall.peak_at = Some(e.ts);
                s.tenants_active_at_peak = active.max(0) as u64;
                s.overall.active_at_peak = s.tenants_active_at_peak;
                version += 1;
                tc.snap_val = tc.cur;
                tc.snap_ver = version;
            }
        }
        if kind == KIND_START || kind == KIND_POINT {
            s.overall_rates.add(e.ts, e.tokens);
            s.tenant_rates[t].add(e.ts, e.tokens);
            if spec.bucket_ms > 0 {
                let b = ((e.ts - spec.start_ms).div_euclid(spec.bucket_ms)).clamp(0, spec.buckets.max(1) as i64 - 1)
                    as usize;
                s.series[series_row[t]][b] += 1;
                s.series[total_row][b] += 1;
            }
        }
    }
    s.overall_rates.flush();
    for r in &mut s.tenant_rates {
        r.flush();
    }
    s.overall.at_overall_peak = s.overall.peak;
    for tc in &mut s.tenants {
        tc.at_overall_peak = if version > 0 && tc.snap_ver == version { tc.snap_val } else { tc.cur };
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_peak(intervals: &[(i64, i64)]) -> i64 {
        let mut best = 0;
        for &(s, _) in intervals {
            let n = intervals.iter().filter(|&&(a, b)| a <= s && s < b).count() as i64;
            best = best.max(n);
        }
        best
    }

    #[test]
    fn spilled_and_in_memory_runs_sweep_exactly() {
        let spill = SpillDir::new(None);
        let mut seed = 7u64;
        let mut rnd = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut intervals = Vec::new();
        let mut sinks = vec![EventSink::new(37), EventSink::new(1000)];
        for i in 0..400 {
            let s = rnd(10_000) as i64;
            let d = rnd(500) as i64;
            intervals.push((s, s + d));
            let sink = &mut sinks[i % 2];
            sink.push(Ev::new(s, KIND_START, 0, 1), &spill).unwrap();
            sink.push(Ev::new(s + d, KIND_END, 0, 0), &spill).unwrap();
        }
        let mut runs = Vec::new();
        for sink in sinks {
            runs.extend(sink.finish(Arc::new(vec![0])));
        }
        assert!(runs.len() > 2, "some runs must have spilled");
        let spec = SeriesSpec { start_ms: 0, bucket_ms: 1000, buckets: 10, tenants: vec![0] };
        let s = sweep(runs, 1, &spec, None, &spill).unwrap();
        let nonzero: Vec<_> = intervals.iter().copied().filter(|(a, b)| b > a).collect();
        assert_eq!(s.overall.peak, brute_peak(&nonzero));
        assert_eq!(s.tenants[0].peak, s.overall.peak);
        assert_eq!(s.overall.cur, 0);
        assert_eq!(s.series[2].iter().sum::<u64>(), 400);
        assert_eq!(s.overall_rates.rpm.count(), 1);
    }

    #[test]
    fn back_to_back_requests_do_not_overlap() {
        let spill = SpillDir::new(None);
        let mut sink = EventSink::new(100);
        for (s, e) in [(0, 10), (10, 20), (20, 30)] {
            sink.push(Ev::new(s, KIND_START, 0, 0), &spill).unwrap();
            sink.push(Ev::new(e, KIND_END, 0, 0), &spill).unwrap();
        }
        let spec = SeriesSpec { start_ms: 0, bucket_ms: 0, buckets: 1, tenants: vec![] };
        let s = sweep(sink.finish(Arc::new(vec![0])), 1, &spec, None, &spill).unwrap();
        assert_eq!(s.overall.peak, 1);
        assert_eq!(s.overall.peak_at, Some(0));
    }

    #[test]
    fn concurrency_at_the_overall_peak_and_waits_beyond_capacity() {
        let spill = SpillDir::new(None);
        let mut sink = EventSink::new(1000);
        // tenant 0: [0, 100) ×3 ; tenant 1: [50, 60), [10, 200) ; tenant 2: [55, 300)
        for (t, a, b) in [(0, 0, 100), (0, 0, 100), (0, 0, 100), (1, 50, 60), (1, 10, 200), (2, 55, 300), (2, 150, 160)]
        {
            sink.push(Ev::new(a, KIND_START, t, 0), &spill).unwrap();
            sink.push(Ev::new(b, KIND_END, t, 0), &spill).unwrap();
        }
        let spec = SeriesSpec { start_ms: 0, bucket_ms: 0, buckets: 1, tenants: vec![] };
        let s = sweep(sink.finish(Arc::new(vec![0, 1, 2])), 3, &spec, Some(4), &spill).unwrap();
        assert_eq!((s.overall.peak, s.overall.peak_at), (6, Some(55)));
        assert_eq!(s.tenants_active_at_peak, 3);
        let at: Vec<i64> = s.tenants.iter().map(|t| t.at_overall_peak).collect();
        assert_eq!(at, vec![3, 2, 1]);
        // Beyond 4 in flight: at 50 (5 in flight, 2 active → share 2) tenant 1 holds 2: not over;
        // at 55 (6 in flight, 3 active → share 1.33) tenant 2 holds 1: not over. Tenant 0 never starts then.
        assert!(s.tenants.iter().all(|t| t.over_share.is_none()));
        let mut sink = EventSink::new(1000);
        for (t, a, b) in [(0, 0, 100), (0, 1, 100), (0, 2, 100), (1, 3, 100)] {
            sink.push(Ev::new(a, KIND_START, t, 0), &spill).unwrap();
            sink.push(Ev::new(b, KIND_END, t, 0), &spill).unwrap();
        }
        let s = sweep(sink.finish(Arc::new(vec![0, 1])), 2, &spec, Some(2), &spill).unwrap();
        // At 2: 3 in flight > 2, one tenant active, share 2, tenant 0 holds 3: it would wait.
        let o = s.tenants[0].over_share.clone().unwrap();
        assert_eq!((o.at, o.held, o.overall, o.active, o.starts), (2, 3, 3, 1, 1));
        assert!(s.tenants[1].over_share.is_none(), "1 held ≤ 2 ÷ 2");
    }

    #[test]
    fn many_runs_are_merged_in_passes() {
        let spill = SpillDir::new(None);
        let mut sink = EventSink::new(2);
        for i in 0..(MAX_MERGE_FAN_IN as i64 * 3) {
            sink.push(Ev::new(i, KIND_START, 0, 0), &spill).unwrap();
            sink.push(Ev::new(i + 5, KIND_END, 0, 0), &spill).unwrap();
        }
        let runs = sink.finish(Arc::new(vec![0]));
        assert!(runs.len() > MAX_MERGE_FAN_IN);
        let spec = SeriesSpec { start_ms: 0, bucket_ms: 0, buckets: 1, tenants: vec![] };
        let s = sweep(runs, 1, &spec, None, &spill).unwrap();
        assert_eq!(s.overall.peak, 5);
        assert_eq!(s.events, MAX_MERGE_FAN_IN as u64 * 6);
    }
}
