//! Per-worker aggregates: exact sums per tenant, model and endpoint, token
//! histograms, data-quality counters and the event buffer. Workers never
//! share state; their aggregates are merged once at the end.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use crate::events::{Ev, EventSink, Run, SpillDir, KIND_END, KIND_POINT, KIND_START};
use crate::fields::Record;
pub use crate::histogram::Histogram;

/// Exact counters of a set of requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sums {
    pub requests: u64,
    pub errors: u64,
    /// Requests whose record carried token usage.
    pub with_usage: u64,
    pub input: u64,
    pub output: u64,
    pub cached: u64,
}

impl Sums {
    fn add(&mut self, r: &Record<'_>) {
        self.requests += 1;
        self.errors += u64::from(r.error);
        self.with_usage += u64::from(r.has_usage);
        self.input += r.input;
        self.output += r.output;
        self.cached += r.cached;
    }

    pub fn merge(&mut self, o: &Sums) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.with_usage += o.with_usage;
        self.input += o.input;
        self.output += o.output;
        self.cached += o.cached;
    }
}

/// A model or an endpoint.
#[derive(Debug, Clone, Default)]
pub struct Group {
    pub sums: Sums,
    pub input_hist: Histogram,
    pub output_hist: Histogram,
}

impl Group {
    fn add(&mut self, r: &Record<'_>) {
        self.sums.add(r);
        if r.has_usage {
            self.input_hist.record(r.input);
            self.output_hist.record(r.output);
        }
    }

    fn merge(&mut self, o: &Group) {
        self.sums.merge(&o.sums);
        self.input_hist.merge(&o.input_hist);
        self.output_hist.merge(&o.output_hist);
    }
}

#[derive(Debug, Clone)]
pub struct TenantAcc {
    pub sums: Sums,
    /// Per model (by model number): what the tenant's cost is computed from.
    pub by_model: HashMap<u32, Sums>,
    /// Per endpoint (by endpoint number).
    pub by_endpoint: HashMap<u32, Sums>,
    /// Tokens per request (requests with usage).
    pub input_hist: Histogram,
    pub output_hist: Histogram,
    pub first_ms: i64,
    pub last_ms: i64,
    pub with_duration: u64,
    pub duration_sum_ms: u128,
    pub without_duration: u64,
    pub skewed: u64,
}

impl Default for TenantAcc {
    fn default() -> Self {
        TenantAcc {
            sums: Sums::default(),
            by_model: HashMap::new(),
            by_endpoint: HashMap::new(),
            input_hist: Histogram::default(),
            output_hist: Histogram::default(),
            first_ms: i64::MAX,
            last_ms: i64::MIN,
            with_duration: 0,
            duration_sum_ms: 0,
            without_duration: 0,
            skewed: 0,
        }
    }
}

/// Names → numbers, with a cap: beyond it new names fold into `overflow`.
#[derive(Debug, Clone)]
pub struct Interner<T> {
    idx: HashMap<Box<str>, u32>,
    pub names: Vec<Box<str>>,
    pub items: Vec<T>,
    cap: usize,
    overflow: &'static str,
    pub folded: u64,
}

impl<T: Default> Interner<T> {
    pub fn new(cap: usize, overflow: &'static str) -> Self {
        Interner { idx: HashMap::new(), names: Vec::new(), items: Vec::new(), cap: cap.max(1), overflow, folded: 0 }
    }

    pub fn get(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.idx.get(name) {
            return i;
        }
        let name = if self.names.len() >= self.cap {
            self.folded += 1;
            if let Some(&i) = self.idx.get(self.overflow) {
                return i;
            }
            self.overflow
        } else {
            name
        };
        let i = self.names.len() as u32;
        self.idx.insert(name.into(), i);
        self.names.push(name.into());
        self.items.push(T::default());
        i
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// An unusable line or record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub file: usize,
    /// Line number (1-based) in the (decompressed) file, when known.
    pub line: Option<u64>,
    /// Record number (1-based) in a JSON document, when there are no lines.
    pub record: Option<u64>,
    pub reason: String,
}

/// How many examples of malformed lines the report keeps (the first ones).
pub const MAX_EXAMPLES: usize = 20;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileCounts {
    pub lines: u64,
    pub records: u64,
    pub malformed: u64,
    pub blank: u64,
}

/// Data-quality counters.
#[derive(Debug, Clone, Default)]
pub struct Quality {
    pub examples: Vec<Malformed>,
    pub files: Vec<FileCounts>,
    pub without_duration: u64,
    pub skewed: u64,
    pub without_usage: u64,
    pub without_tenant: u64,
    pub without_model: u64,
}

impl Quality {
    pub fn file(&mut self, file: usize) -> &mut FileCounts {
        if self.files.len() <= file {
            self.files.resize(file + 1, FileCounts::default());
        }
        &mut self.files[file]
    }

    pub fn malformed(&mut self, file: usize, line: Option<u64>, record: Option<u64>, reason: String) {
        self.file(file).malformed += 1;
        self.examples.push(Malformed { file, line, record, reason });
        if self.examples.len() >= 4 * MAX_EXAMPLES {
            self.trim_examples();
        }
    }

    pub fn trim_examples(&mut self) {
        self.examples.sort_by_key(|m| (m.file, m.line.or(m.record).unwrap_or(0)));
        self.examples.truncate(MAX_EXAMPLES);
    }

    pub fn merge(&mut self, o: &Quality) {
        self.examples.extend(o.examples.iter().cloned());
        self.trim_examples();
        for (i, f) in o.files.iter().enumerate() {
            let mine = self.file(i);
            mine.lines += f.lines;
            mine.records += f.records;
            mine.malformed += f.malformed;
            mine.blank += f.blank;
        }
        self.without_duration += o.without_duration;
        self.skewed += o.skewed;
        self.without_usage += o.without_usage;
        self.without_tenant += o.without_tenant;
        self.without_model += o.without_model;
    }
}

pub const NO_TENANT: &str = "(none)";
pub const NO_MODEL: &str = "(unknown)";
pub const NO_ENDPOINT: &str = "(unknown)";
pub const OTHER_TENANTS: &str = "(other tenants)";
pub const OTHER_MODELS: &str = "(other models)";
pub const OTHER_ENDPOINTS: &str = "(other endpoints)";

/// Caps on distinct names (memory stays bounded whatever the input).
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub tenants: usize,
    pub models: usize,
    pub endpoints: usize,
}

impl Default for Caps {
    fn default() -> Self {
        Caps { tenants: 100_000, models: 2_000, endpoints: 1_000 }
    }
}

/// One worker's aggregates.
#[derive(Debug)]
pub struct Aggregator {
    pub tenants: Interner<TenantAcc>,
    pub models: Interner<Group>,
    pub endpoints: Interner<Group>,
    pub events: EventSink,
    pub quality: Quality,
    pub first_ms: i64,
    pub last_ms: i64,
}

impl Aggregator {
    pub fn new(event_cap: usize, caps: Caps) -> Self {
        Aggregator {
            tenants: Interner::new(caps.tenants, OTHER_TENANTS),
            models: Interner::new(caps.models, OTHER_MODELS),
            endpoints: Interner::new(caps.endpoints, OTHER_ENDPOINTS),
            events: EventSink::new(event_cap),
            quality: Quality::default(),
            first_ms: i64::MAX,
            last_ms: i64::MIN,
        }
    }

    /// Adds one usable record.
    pub fn add(&mut self, r: &Record<'_>, file: usize, default_endpoint: &str, spill: &SpillDir) -> io::Result<()> {
        self.quality.file(file).records += 1;
        let q = &mut self.quality;
        q.without_tenant += u64::from(r.tenant.is_none());
        q.without_model += u64::from(r.model.is_none());
        q.without_usage += u64::from(!r.has_usage);
        q.skewed += u64::from(r.skewed);
        q.without_duration += u64::from(r.end_ms.is_none());
        let t = self.tenants.get(r.tenant.as_deref().unwrap_or(NO_TENANT));
        let m = self.models.get(r.model.as_deref().unwrap_or(NO_MODEL));
        let e = self.endpoints.get(r.endpoint.as_deref().unwrap_or(default_endpoint));
        self.models.items[m as usize].add(r);
        self.endpoints.items[e as usize].add(r);
        let acc = &mut self.tenants.items[t as usize];
        acc.sums.add(r);
        acc.by_model.entry(m).or_default().add(r);
        acc.by_endpoint.entry(e).or_default().add(r);
        if r.has_usage {
            acc.input_hist.record(r.input);
            acc.output_hist.record(r.output);
        }
        let last = r.end_ms.unwrap_or(r.start_ms).max(r.start_ms);
        acc.first_ms = acc.first_ms.min(r.start_ms);
        acc.last_ms = acc.last_ms.max(last);
        self.first_ms = self.first_ms.min(r.start_ms);
        self.last_ms = self.last_ms.max(last);
        let tokens = r.input.saturating_add(r.output);
        match r.end_ms {
            Some(end) => {
                acc.with_duration += 1;
                acc.duration_sum_ms += (end - r.start_ms) as u128;
                self.events.push(Ev::new(r.start_ms, KIND_START, t, tokens), spill)?;
                self.events.push(Ev::new(end, KIND_END, t, 0), spill)?;
            }
            None => {
                acc.without_duration += 1;
                acc.skewed += u64::from(r.skewed);
                self.events.push(Ev::new(r.start_ms, KIND_POINT, t, tokens), spill)?;
            }
        }
        Ok(())
    }
}

/// All workers' aggregates merged, with the events ready to sweep.
#[derive(Debug)]
pub struct Merged {
    pub tenants: Interner<TenantAcc>,
    pub models: Interner<Group>,
    pub endpoints: Interner<Group>,
    pub quality: Quality,
    pub first_ms: i64,
    pub last_ms: i64,
    pub runs: Vec<Run>,
}

/// Merges the workers' aggregates; tenant and model numbers become global.
pub fn merge(workers: Vec<Aggregator>, caps: Caps) -> Merged {
    let mut out = Merged {
        tenants: Interner::new(caps.tenants.saturating_add(1), OTHER_TENANTS),
        models: Interner::new(caps.models.saturating_add(1), OTHER_MODELS),
        endpoints: Interner::new(caps.endpoints.saturating_add(1), OTHER_ENDPOINTS),
        quality: Quality::default(),
        first_ms: i64::MAX,
        last_ms: i64::MIN,
        runs: Vec::new(),
    };
    for w in workers {
        let model_map: Vec<u32> = w.models.names.iter().map(|n| out.models.get(n)).collect();
        for (i, g) in w.models.items.iter().enumerate() {
            out.models.items[model_map[i] as usize].merge(g);
        }
        out.models.folded += w.models.folded;
        let endpoint_map: Vec<u32> = w.endpoints.names.iter().map(|n| out.endpoints.get(n)).collect();
        for (i, g) in w.endpoints.items.iter().enumerate() {
            out.endpoints.items[endpoint_map[i] as usize].merge(g);
        }
        out.endpoints.folded += w.endpoints.folded;
        let tenant_map: Vec<u32> = w.tenants.names.iter().map(|n| out.tenants.get(n)).collect();
        for (i, acc) in w.tenants.items.into_iter().enumerate() {
            let g = &mut out.tenants.items[tenant_map[i] as usize];
            g.sums.merge(&acc.sums);
            for (m, s) in acc.by_model {
                g.by_model.entry(model_map[m as usize]).or_default().merge(&s);
            }
            for (e, s) in acc.by_endpoint {
                g.by_endpoint.entry(endpoint_map[e as usize]).or_default().merge(&s);
            }
            g.input_hist.merge(&acc.input_hist);
            g.output_hist.merge(&acc.output_hist);
            g.first_ms = g.first_ms.min(acc.first_ms);
            g.last_ms = g.last_ms.max(acc.last_ms);
            g.with_duration += acc.with_duration;
            g.duration_sum_ms += acc.duration_sum_ms;
            g.without_duration += acc.without_duration;
            g.skewed += acc.skewed;
        }
        out.tenants.folded += w.tenants.folded;
        out.quality.merge(&w.quality);
        out.first_ms = out.first_ms.min(w.first_ms);
        out.last_ms = out.last_ms.max(w.last_ms);
        out.runs.extend(w.events.finish(Arc::new(tenant_map)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interner_folds_beyond_its_cap() {
        let mut i: Interner<Sums> = Interner::new(2, "(other)");
        assert_eq!(i.get("a"), 0);
        assert_eq!(i.get("b"), 1);
        assert_eq!(i.get("c"), 2);
        assert_eq!(i.get("d"), 2);
        assert_eq!(i.get("a"), 0);
        assert_eq!(i.names[2].as_ref(), "(other)");
        assert_eq!(i.folded, 2);
    }
}
