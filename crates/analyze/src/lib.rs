//! Sheepdog's migration analysis (SPEC §7): reads existing API logs (JSON
//! lines, LiteLLM spend logs, Sheepdog usage exports, CSV; gzip or not) and
//! reports per tenant and overall: exact peak concurrency, requests and
//! tokens per minute (p50, p95, peak), headroom and recommended limits,
//! tokens per endpoint and model, model distribution, cost now and
//! projected (integer nano-USD), error rates and dedicated-tier candidates.
//!
//! The engine has no dependency on the gateway: `sheepdog analyze` (through
//! [`cli`]) and the gateway's `POST /admin/v1/analyses` both call
//! [`analyze`] and [`html::render`].
//!
//! Pipeline: [`source`] (inputs, formats, parallel JSON-lines parsing) →
//! [`fields`] (one pass of serde over each record, keeping only wanted
//! values) → [`agg`] (per-worker exact sums and histograms, event buffers)
//! → [`events`] (external merge sort and sweep: exact concurrency, per-minute
//! rates) → [`report`] (`report.json`) → [`html`] / [`summary`].

pub mod agg;
#[cfg(feature = "cli")]
pub mod cli;
pub mod events;
pub mod fields;
pub mod figures;
pub mod histogram;
pub mod html;
mod options;
pub mod prices;
pub mod report;
pub mod source;
pub mod summary;
pub mod synth;
pub mod tenants;
pub mod time;

use std::io;
use std::sync::atomic::Ordering;
use std::time::Instant;

pub use agg::Caps;
pub use fields::{Field, TimestampAt};
pub use options::{Options, DEFAULT_MARGIN_PERCENT, DEFAULT_MAX_EVENTS_IN_MEMORY};
pub use prices::{ModelMap, Price, PriceTable};
pub use report::Report;
pub use source::{Format, Input, InputSummary};
pub use tenants::{TenantInfo, TenantsFile};

/// Parses `COLUMN=FIELD[,COLUMN=FIELD...]` (`--csv-map`); FIELD is a
/// canonical field name (see [`Field::parse`]).
pub fn parse_field_map(text: &str) -> Result<Vec<(String, Field)>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (col, field) = part
            .rsplit_once('=')
            .map(|(a, b)| (a.trim(), b.trim()))
            .filter(|(a, b)| !a.is_empty() && !b.is_empty())
            .ok_or_else(|| format!("column mapping {part:?} must look like COLUMN=FIELD (e.g. ts=start)"))?;
        let f = Field::parse(field).ok_or_else(|| {
            format!(
                "column mapping {part:?}: unknown field {field:?}; fields: {}",
                fields::FIELDS.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
            )
        })?;
        out.push((col.to_string(), f));
    }
    Ok(out)
}

/// Parses comma-separated tenant field paths (`--tenant-field`).
pub fn parse_tenant_fields(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_string).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// Invalid options (bad mapping, unknown model…): the caller's input.
    #[error("{0}")]
    Options(String),
    /// The machine failed us (disk full while spilling, unreadable file).
    #[error("{name}: {source}")]
    Io {
        name: String,
        #[source]
        source: io::Error,
    },
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The projected price table: the current one overlaid by `--prices`.
pub fn projected_table(opts: &Options) -> PriceTable {
    match &opts.projected_prices {
        Some(p) => opts.prices.overlay(p),
        None => opts.prices.clone(),
    }
}

/// Checks options that can be checked before reading anything.
pub fn validate(opts: &Options) -> Result<(), AnalyzeError> {
    let projected = projected_table(opts);
    for (from, to) in &opts.model_map.0 {
        if !projected.contains(to) {
            let known: Vec<&str> = projected.iter().map(|(k, _)| k).collect();
            return Err(AnalyzeError::Options(format!(
                "model mapping {from}={to}: {to:?} has no price in the projected price table (known: {})",
                known.join(", ")
            )));
        }
    }
    if opts.upstream_concurrency == Some(0) {
        return Err(AnalyzeError::Options("upstream concurrency must be greater than 0".into()));
    }
    if opts.margin_percent > 1000 {
        return Err(AnalyzeError::Options("the margin must be at most 1000 %".into()));
    }
    Ok(())
}

/// Analyses `inputs` (read in order, each streamed) into a report.
pub fn analyze(inputs: Vec<Input>, opts: &Options) -> Result<Report, AnalyzeError> {
    let started = Instant::now();
    validate(opts)?;
    let plan = fields::Plan::new(&opts.tenant_fields, &opts.field_map).map_err(AnalyzeError::Options)?;
    let threads = opts.threads.clamp(1, 64);
    let spill = events::SpillDir::new(opts.spill_dir.clone());
    let cap = (opts.max_events_in_memory / threads).max(16);
    let mut workers: Vec<agg::Aggregator> = (0..threads).map(|_| agg::Aggregator::new(cap, opts.caps)).collect();
    let ctx = source::Ctx {
        plan: &plan,
        at: opts.timestamp_at,
        spill: &spill,
        progress: opts.progress.clone(),
        forced: opts.format,
    };
    let mut summaries = Vec::new();
    for (i, input) in inputs.into_iter().enumerate() {
        let name = input.name.clone();
        let s = source::read_input(i, input, &ctx, &mut workers).map_err(|e| AnalyzeError::Io { name, source: e })?;
        summaries.push(s);
    }
    let mut merged = agg::merge(workers, opts.caps);
    let (start, bucket, n) = report::series_bucket(merged.first_ms, merged.last_ms);
    let mut top: Vec<(u64, &str, u32)> = merged
        .tenants
        .names
        .iter()
        .enumerate()
        .map(|(i, n)| (merged.tenants.items[i].sums.requests, n.as_ref(), i as u32))
        .collect();
    top.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    let spec = events::SeriesSpec {
        start_ms: start,
        bucket_ms: bucket,
        buckets: n,
        tenants: top.iter().take(opts.series_tenants).map(|t| t.2).collect(),
    };
    let runs = std::mem::take(&mut merged.runs);
    let sweep = events::sweep(runs, merged.tenants.len(), &spec, opts.upstream_concurrency, &spill)
        .map_err(|e| AnalyzeError::Io { name: "temporary event runs".into(), source: e })?;
    let projected = projected_table(opts);
    let report = report::build(report::BuildInput {
        opts,
        inputs: summaries,
        merged: &merged,
        sweep: &sweep,
        series_spec: &spec,
        projected: &projected,
        elapsed_ms: started.elapsed().as_millis() as u64,
        generated_at_ms: now_ms(),
        spilled_events: spill.spilled_events.load(Ordering::Relaxed),
        spill_runs: spill.runs_written.load(Ordering::Relaxed),
        plan_tenant_paths: plan.tenant_paths.clone(),
    });
    Ok(report)
}
