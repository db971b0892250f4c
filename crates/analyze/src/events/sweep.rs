//! The sweep over the merged events: exact concurrency (overall, per tenant,
//! at the overall peak), starts beyond capacity and fair share, per-minute
//! rates and the report's time series.

use std::io;

use super::ev::{KIND_END, KIND_POINT, KIND_START};
use super::merge::{reduce_runs, Merger};
use super::spill::{Run, SpillDir};
use crate::histogram::Histogram;
use crate::time::MINUTE_MS;

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
