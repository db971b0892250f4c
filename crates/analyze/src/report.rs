//! `report.json`: the types (the documented schema, `sheepdog.analysis.v1`)
//! and how they are computed from the merged aggregates and the sweep.
//! Money is integer nano-USD, shown as `{"usd": "12.345000000", "nanos": …}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sheepdog_types::money::format_usd;

use crate::agg::{Group, Merged, Sums, NO_TENANT};
use crate::events::{Conc, Rates, Sweep};
use crate::fields::TimestampAt;
use crate::options::Options;
use crate::prices::{Price, PriceTable};
use crate::source::InputSummary;
use crate::time::{format_minute, format_ms, DAY_MS, MINUTE_MS};

pub const SCHEMA: &str = "sheepdog.analysis.v1";
/// A month, for monthly figures: 30 days.
pub const MONTH_MS: i64 = 30 * DAY_MS;
/// Sheepdog's default per-tenant limits (SPEC §4).
pub const DEFAULT_RPM_LIMIT: u64 = 1_000;
pub const DEFAULT_TPM_LIMIT: u64 = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    /// Decimal USD with all nine places.
    pub usd: String,
    /// The same amount in integer nano-USD.
    pub nanos: i64,
}

impl Money {
    pub fn from_nanos(n: i128) -> Money {
        let v = i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX });
        Money { usd: format_usd(v), nanos: v }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub generated_at: String,
    /// Wall-clock time of the analysis.
    pub elapsed_ms: u64,
    pub inputs: Vec<InputSummary>,
    pub settings: ReportSettings,
    pub window: Window,
    pub quality: QualityReport,
    pub overall: Usage,
    /// Sorted by requests, most first.
    pub tenants: Vec<TenantReport>,
    pub endpoints: Vec<GroupReport>,
    pub models: Vec<ModelReport>,
    pub cost: CostSummary,
    /// Tenants recommended for the dedicated tier, with the reasons.
    pub dedicated: Vec<DedicatedTenant>,
    pub series: SeriesReport,
    /// How each figure is computed, one line each.
    pub methods: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportSettings {
    pub tenant_fields: Vec<String>,
    pub field_map: BTreeMap<String, String>,
    pub timestamp_at: TimestampAt,
    pub price_table: String,
    pub projected_price_table: String,
    pub model_map: BTreeMap<String, String>,
    pub margin_percent: u32,
    pub upstream_concurrency: Option<u64>,
    pub upstream_concurrency_source: String,
    pub threads: usize,
    pub max_events_in_memory: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub first: Option<String>,
    pub last: Option<String>,
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
    /// `last − first`, at least one minute (0 when there is no request).
    pub span_ms: i64,
    /// Monthly figures = observed × this (30 days / span).
    pub month_factor: f64,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MalformedLine {
    pub file: String,
    pub line: Option<u64>,
    pub record: Option<u64>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnpricedModel {
    pub model: String,
    pub requests: u64,
    /// `now`, `projected` or `both`.
    pub table: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QualityReport {
    pub lines: u64,
    pub records: u64,
    pub malformed: u64,
    pub blank_lines: u64,
    /// The first malformed lines (by file and line number).
    pub malformed_examples: Vec<MalformedLine>,
    pub without_duration: u64,
    pub negative_durations: u64,
    pub without_usage: u64,
    pub without_tenant: u64,
    pub without_model: u64,
    pub folded_tenants: u64,
    pub folded_models: u64,
    pub folded_endpoints: u64,
    pub unpriced_models: Vec<UnpricedModel>,
    pub spilled_events: u64,
    pub spill_runs: u64,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peak {
    pub value: u64,
    /// First moment (ms precision) the value was reached.
    pub at: Option<String>,
    /// Tenants with a request in flight at that moment.
    pub active_tenants: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    pub p50: u64,
    pub p95: u64,
    pub peak: u64,
    /// Start of the (first) minute with the peak.
    pub peak_minute: Option<String>,
    /// Minutes with at least one request (what p50/p95 are taken over).
    pub active_minutes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Headroom {
    pub requests_peak_to_p50: Option<f64>,
    pub tokens_peak_to_p50: Option<f64>,
    pub concurrency_peak_to_mean: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub requests_per_minute: u64,
    pub tokens_per_minute: u64,
    pub max_concurrency: u64,
    pub margin_percent: u32,
    /// Above Sheepdog's default 1,000 requests/min or 1,000,000 tokens/min.
    pub above_default_limits: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cost {
    pub observed: Money,
    pub monthly: Money,
    pub projected_observed: Money,
    pub projected_monthly: Money,
    pub unpriced_requests: u64,
    pub projected_unpriced_requests: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub requests_without_usage: u64,
    pub requests_without_duration: u64,
    pub peak_concurrency: Peak,
    pub mean_concurrency: f64,
    pub requests_per_minute: Rate,
    pub tokens_per_minute: Rate,
    pub headroom: Headroom,
    pub recommended_limits: Limits,
    pub cost: Cost,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantModel {
    pub model: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    /// Mean tokens per request with usage.
    pub avg_input_tokens: f64,
    pub avg_output_tokens: f64,
    pub cost: Money,
    pub projected_cost: Money,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantEndpoint {
    pub endpoint: String,
    pub requests: u64,
    pub errors: u64,
    pub avg_input_tokens: f64,
    pub avg_output_tokens: f64,
}

/// Tokens per request of one tenant (requests with usage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokensPerRequest {
    pub input: TokenStats,
    pub output: TokenStats,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierRecommendation {
    /// `dedicated` or `shared`.
    pub tier: String,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantReport {
    pub tenant: String,
    pub name: Option<String>,
    /// The tier given in the tenants file, if any.
    pub current_tier: Option<String>,
    pub tags: Vec<String>,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub share_of_requests: f64,
    /// Its requests in flight at the moment of the overall peak.
    pub concurrency_at_overall_peak: u64,
    #[serde(flatten)]
    pub usage: Usage,
    pub tokens_per_request: TokensPerRequest,
    pub models: Vec<TenantModel>,
    pub endpoints: Vec<TenantEndpoint>,
    pub recommendation: TierRecommendation,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenStats {
    pub total: u64,
    /// Mean over requests with usage.
    pub avg: f64,
    pub p95: u64,
    pub max: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupReport {
    pub name: String,
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub share_of_requests: f64,
    pub requests_with_usage: u64,
    pub input_tokens: TokenStats,
    pub output_tokens: TokenStats,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceUsd {
    pub input_per_mtok: String,
    pub output_per_mtok: String,
    pub cached_input_per_mtok: String,
}

impl PriceUsd {
    fn of(p: &Price) -> PriceUsd {
        let f = |n: i64| format!("{}.{:03}", n / 1000, n % 1000);
        PriceUsd { input_per_mtok: f(p.input), output_per_mtok: f(p.output), cached_input_per_mtok: f(p.cached_input) }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelReport {
    #[serde(flatten)]
    pub group: GroupReport,
    pub share_of_tokens: f64,
    pub priced_as: Option<String>,
    pub price: Option<PriceUsd>,
    pub cost: Money,
    pub monthly_cost: Money,
    pub mapped_to: String,
    pub projected_priced_as: Option<String>,
    pub projected_price: Option<PriceUsd>,
    pub projected_cost: Money,
    pub projected_monthly_cost: Money,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostSummary {
    pub price_table: String,
    pub projected_price_table: String,
    pub model_map: BTreeMap<String, String>,
    pub observed: Money,
    pub monthly: Money,
    pub projected_observed: Money,
    pub projected_monthly: Money,
    /// Projected minus current, per month (negative: a saving).
    pub monthly_change: Money,
    pub change_percent: Option<f64>,
    pub unpriced_requests: u64,
    pub projected_unpriced_requests: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedicatedTenant {
    pub tenant: String,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesLine {
    pub name: String,
    pub requests: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesReport {
    pub start: Option<String>,
    pub start_ms: i64,
    pub bucket_ms: i64,
    /// The top tenants by requests, then `(other)` when there are more, then `(total)`.
    pub lines: Vec<SeriesLine>,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        round(a as f64 / b as f64, 6)
    }
}

fn round(v: f64, places: i32) -> f64 {
    let p = 10f64.powi(places);
    (v * p).round() / p
}

/// `ceil(v × (100 + margin) / 100)`, exactly.
pub fn with_margin(v: u64, margin: u32) -> u64 {
    let n = u128::from(v) * u128::from(100 + margin);
    u64::try_from(n.div_ceil(100)).unwrap_or(u64::MAX)
}

/// Observed → monthly: `× 30 days / span`, rounded half up to the nano-USD.
pub fn monthly(observed: i128, span_ms: i64) -> i128 {
    if span_ms <= 0 {
        return observed;
    }
    let num = observed * i128::from(MONTH_MS);
    let den = i128::from(span_ms);
    if num >= 0 {
        (num + den / 2) / den
    } else {
        -((-num + den / 2) / den)
    }
}

fn peak(c: &Conc) -> Peak {
    Peak { value: c.peak.max(0) as u64, at: c.peak_at.map(format_ms), active_tenants: c.active_at_peak }
}

fn rates(r: &Rates) -> (Rate, Rate) {
    (
        Rate {
            p50: r.rpm.quantile(0.5),
            p95: r.rpm.quantile(0.95),
            peak: r.rpm_peak,
            peak_minute: r.rpm_peak_minute.map(format_minute),
            active_minutes: r.active_minutes(),
        },
        Rate {
            p50: r.tpm.quantile(0.5),
            p95: r.tpm.quantile(0.95),
            peak: r.tpm_peak,
            peak_minute: r.tpm_peak_minute.map(format_minute),
            active_minutes: r.active_minutes(),
        },
    )
}

fn token_stats(total: u64, with_usage: u64, h: &crate::agg::Histogram) -> TokenStats {
    TokenStats {
        total,
        avg: if with_usage == 0 { 0.0 } else { round(total as f64 / with_usage as f64, 1) },
        p95: h.quantile(0.95),
        max: h.max(),
    }
}

fn avg(total: u64, n: u64) -> f64 {
    if n == 0 {
        0.0
    } else {
        round(total as f64 / n as f64, 1)
    }
}

fn group_report(name: &str, g: &Group, all: u64) -> GroupReport {
    GroupReport {
        name: name.to_string(),
        requests: g.sums.requests,
        errors: g.sums.errors,
        error_rate: ratio(g.sums.errors, g.sums.requests),
        share_of_requests: ratio(g.sums.requests, all),
        requests_with_usage: g.sums.with_usage,
        input_tokens: token_stats(g.sums.input, g.sums.with_usage, &g.input_hist),
        output_tokens: token_stats(g.sums.output, g.sums.with_usage, &g.output_hist),
    }
}

/// Prices of a model, now and projected.
struct Pricing<'a> {
    now: Option<(&'a str, &'a Price)>,
    target: String,
    projected: Option<(&'a str, &'a Price)>,
}

struct Costs {
    now: i128,
    projected: i128,
    unpriced: u64,
    projected_unpriced: u64,
}

fn cost_of(s: &Sums, p: &Pricing<'_>) -> Costs {
    let now = p.now.map(|(_, pr)| pr.cost(s.input, s.cached, s.output));
    let projected = p.projected.map(|(_, pr)| pr.cost(s.input, s.cached, s.output));
    Costs {
        now: now.unwrap_or(0),
        projected: projected.unwrap_or(0),
        unpriced: if now.is_none() { s.requests } else { 0 },
        projected_unpriced: if projected.is_none() { s.requests } else { 0 },
    }
}

struct UsageInput<'a> {
    sums: &'a Sums,
    without_duration: u64,
    duration_sum_ms: u128,
    conc: &'a Conc,
    rates: &'a Rates,
    costs: Costs,
    span_ms: i64,
    margin: u32,
}

fn usage(u: UsageInput<'_>) -> Usage {
    let (rpm, tpm) = rates(u.rates);
    let mean_conc = if u.span_ms > 0 { round(u.duration_sum_ms as f64 / u.span_ms as f64, 3) } else { 0.0 };
    let pk = peak(u.conc);
    let headroom = Headroom {
        requests_peak_to_p50: (rpm.p50 > 0).then(|| round(rpm.peak as f64 / rpm.p50 as f64, 2)),
        tokens_peak_to_p50: (tpm.p50 > 0).then(|| round(tpm.peak as f64 / tpm.p50 as f64, 2)),
        concurrency_peak_to_mean: (mean_conc > 0.0).then(|| round(pk.value as f64 / mean_conc, 2)),
    };
    let limits = Limits {
        requests_per_minute: with_margin(rpm.peak, u.margin),
        tokens_per_minute: with_margin(tpm.peak, u.margin),
        max_concurrency: with_margin(pk.value, u.margin),
        margin_percent: u.margin,
        above_default_limits: with_margin(rpm.peak, u.margin) > DEFAULT_RPM_LIMIT
            || with_margin(tpm.peak, u.margin) > DEFAULT_TPM_LIMIT,
    };
    Usage {
        requests: u.sums.requests,
        errors: u.sums.errors,
        error_rate: ratio(u.sums.errors, u.sums.requests),
        input_tokens: u.sums.input,
        output_tokens: u.sums.output,
        cached_tokens: u.sums.cached,
        requests_without_usage: u.sums.requests - u.sums.with_usage,
        requests_without_duration: u.without_duration,
        peak_concurrency: pk,
        mean_concurrency: mean_conc,
        requests_per_minute: rpm,
        tokens_per_minute: tpm,
        headroom,
        recommended_limits: limits,
        cost: Cost {
            observed: Money::from_nanos(u.costs.now),
            monthly: Money::from_nanos(monthly(u.costs.now, u.span_ms)),
            projected_observed: Money::from_nanos(u.costs.projected),
            projected_monthly: Money::from_nanos(monthly(u.costs.projected, u.span_ms)),
            unpriced_requests: u.costs.unpriced,
            projected_unpriced_requests: u.costs.projected_unpriced,
        },
    }
}

/// Chooses the time-series bucket: the smallest of 1 min … 7 days giving at most 240 buckets.
pub fn series_bucket(first_ms: i64, last_ms: i64) -> (i64, i64, usize) {
    const STEPS: [i64; 11] = [1, 5, 15, 30, 60, 180, 360, 720, 1440, 10_080, 43_200];
    if last_ms < first_ms {
        return (0, MINUTE_MS, 1);
    }
    for m in STEPS {
        let b = m * MINUTE_MS;
        let start = first_ms.div_euclid(b) * b;
        let n = (last_ms - start).div_euclid(b) + 1;
        if n <= 240 || m == 43_200 {
            return (start, b, n.clamp(1, 100_000) as usize);
        }
    }
    (first_ms, MINUTE_MS, 1)
}

/// One line per figure: how it is computed.
pub fn methods(opts: &Options) -> BTreeMap<String, String> {
    let m = opts.margin_percent;
    let lines = [
        ("requests", "Records read successfully; malformed lines are counted in quality.malformed and not included."),
        ("error_rate", "Requests whose status is an HTTP code ≥ 400 or a failure word (failure, error, …), or that carry a non-empty `error`, divided by requests."),
        ("peak_concurrency", "Exact: each request with a duration is the interval [start, start + duration); start and end events are sorted (external merge sort, spilled to disk beyond the in-memory budget) and swept, ends before starts at the same millisecond; the largest number of open intervals, at the first millisecond it was reached. Requests without a duration are not counted."),
        ("mean_concurrency", "Sum of request durations divided by the window span (Little's law)."),
        ("requests_per_minute", "Requests started in each UTC minute with at least one request; p50 and p95 are nearest-rank percentiles over those active minutes (exact up to 511 per minute, then within 0.4 %); peak is the exact maximum."),
        ("tokens_per_minute", "Input + output tokens of the requests started in each active UTC minute (a request's tokens count in its start minute); percentiles as for requests_per_minute (exact up to 511, then within 0.4 % above); peak is exact."),
        ("headroom", "Peak-to-baseline ratios: per-minute peak ÷ p50 for requests and tokens, and peak concurrency ÷ mean concurrency."),
        ("recommended_limits", &format!("Observed peak × (1 + {m} % margin), rounded up: requests/min and tokens/min from the per-minute peaks, max_concurrency from the exact peak concurrency.")),
        ("input_tokens", "Per endpoint and model (and per tenant in tokens_per_request): total is exact; avg = total ÷ requests with usage; p95 nearest-rank from a histogram exact below 512 tokens and within 0.4 % above; max exact. Per tenant and model or endpoint: exact averages."),
        ("output_tokens", "As input_tokens, for completion tokens."),
        ("share_of_requests", "Requests of the model (or tenant, endpoint) divided by all requests — the model distribution."),
        ("share_of_tokens", "Input + output tokens of the model divided by all tokens."),
        ("cost.observed", "Exact integer nano-USD: per request model, (input − cached) × input price + cached × cached-input price + output × output price, from the current price table; models it does not price are counted in unpriced_requests, not guessed."),
        ("cost.monthly", "Observed cost × 30 days ÷ window span (first start to last end, at least one minute), rounded half up to the nano-USD."),
        ("cost.projected", "The same tokens after the model mapping, priced with the projected price table (the current one overlaid by --prices); monthly as for cost.monthly."),
        ("recommendation", "dedicated when, with the upstream saturated, the tenant held more than its fair share of it (capacity ÷ tenants with requests in flight, as Sheepdog's scheduler shares slots): at the overall peak, or — with a known capacity — at any of its own request starts beyond capacity (those would wait); or when the tenants file tags it with something that calls for isolation (e.g. data-residency). Capacity: --upstream-concurrency, else the providers' max_concurrency in --config, else the observed overall peak (then saturated at that peak only)."),
        ("window", "From the earliest request start to the latest request end (or start, without a duration) across all inputs."),
        ("series", "Requests started per bucket (1 min to 30 days, at most 240 buckets), for the top tenants by requests, the rest, and the total."),
    ];
    lines.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Everything `build` needs besides the aggregates.
pub struct BuildInput<'a> {
    pub opts: &'a Options,
    pub inputs: Vec<InputSummary>,
    pub merged: &'a Merged,
    pub sweep: &'a Sweep,
    pub series_spec: &'a crate::events::SeriesSpec,
    pub projected: &'a PriceTable,
    pub elapsed_ms: u64,
    pub generated_at_ms: i64,
    pub spilled_events: u64,
    pub spill_runs: u64,
    pub plan_tenant_paths: Vec<String>,
}

pub fn build(b: BuildInput<'_>) -> Report {
    let opts = b.opts;
    let m = b.merged;
    let sw = b.sweep;
    let has_requests = m.first_ms <= m.last_ms;
    let span_ms = if has_requests { (m.last_ms - m.first_ms).max(MINUTE_MS) } else { 0 };
    let all_requests: u64 = m.tenants.items.iter().map(|t| t.sums.requests).sum();

    // Pricing per model.
    let pricing: Vec<Pricing<'_>> = m
        .models
        .names
        .iter()
        .map(|name| {
            let now = opts.prices.lookup(name);
            let target = opts.model_map.target(name, now.map(|(k, _)| k)).to_string();
            let projected = b.projected.lookup(&target);
            Pricing { now, target, projected }
        })
        .collect();

    // Models.
    let mut all = Sums::default();
    let mut all_with_duration_sum: u128 = 0;
    let mut all_without_duration = 0;
    for t in &m.tenants.items {
        all.merge(&t.sums);
        all_with_duration_sum += t.duration_sum_ms;
        all_without_duration += t.without_duration;
    }
    let all_tokens = all.input + all.output;
    let mut total = Costs { now: 0, projected: 0, unpriced: 0, projected_unpriced: 0 };
    let mut unpriced_models = Vec::new();
    let mut models: Vec<ModelReport> = m
        .models
        .names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let g = &m.models.items[i];
            let p = &pricing[i];
            let c = cost_of(&g.sums, p);
            total.now += c.now;
            total.projected += c.projected;
            total.unpriced += c.unpriced;
            total.projected_unpriced += c.projected_unpriced;
            if c.unpriced > 0 || c.projected_unpriced > 0 {
                let table = match (c.unpriced > 0, c.projected_unpriced > 0) {
                    (true, true) => "both",
                    (true, false) => "now",
                    _ => "projected",
                };
                unpriced_models.push(UnpricedModel {
                    model: name.to_string(),
                    requests: g.sums.requests,
                    table: table.into(),
                });
            }
            ModelReport {
                group: group_report(name, g, all_requests),
                share_of_tokens: ratio(g.sums.input + g.sums.output, all_tokens),
                priced_as: p.now.map(|(k, _)| k.to_string()),
                price: p.now.map(|(_, pr)| PriceUsd::of(pr)),
                cost: Money::from_nanos(c.now),
                monthly_cost: Money::from_nanos(monthly(c.now, span_ms)),
                mapped_to: p.target.clone(),
                projected_priced_as: p.projected.map(|(k, _)| k.to_string()),
                projected_price: p.projected.map(|(_, pr)| PriceUsd::of(pr)),
                projected_cost: Money::from_nanos(c.projected),
                projected_monthly_cost: Money::from_nanos(monthly(c.projected, span_ms)),
            }
        })
        .collect();
    models.sort_by(|a, b| b.group.requests.cmp(&a.group.requests).then_with(|| a.group.name.cmp(&b.group.name)));

    let mut endpoints: Vec<GroupReport> = m
        .endpoints
        .names
        .iter()
        .enumerate()
        .map(|(i, name)| group_report(name, &m.endpoints.items[i], all_requests))
        .collect();
    endpoints.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.name.cmp(&b.name)));

    // Fair share of upstream capacity.
    let observed_peak = sw.overall.peak.max(0) as u64;
    let (capacity, capacity_source, saturated) = match opts.upstream_concurrency {
        Some(c) => (
            c,
            opts.upstream_concurrency_source.clone().unwrap_or_else(|| "--upstream-concurrency".into()),
            observed_peak > c,
        ),
        None => (observed_peak, "the observed peak".to_string(), observed_peak > 0),
    };
    let active_at_peak = sw.tenants_active_at_peak.max(1);
    let share_at_peak = capacity as f64 / active_at_peak as f64;
    let busiest = sw.overall.peak_at.map(format_ms).unwrap_or_default();

    // Tenants.
    let mut tenants: Vec<TenantReport> = Vec::new();
    let mut dedicated = Vec::new();
    for (i, name) in m.tenants.names.iter().enumerate() {
        let acc = &m.tenants.items[i];
        let mut costs = Costs { now: 0, projected: 0, unpriced: 0, projected_unpriced: 0 };
        let mut tm: Vec<TenantModel> = Vec::new();
        for (model, s) in &acc.by_model {
            let Some(p) = pricing.get(*model as usize) else { continue };
            let c = cost_of(s, p);
            costs.now += c.now;
            costs.projected += c.projected;
            costs.unpriced += c.unpriced;
            costs.projected_unpriced += c.projected_unpriced;
            tm.push(TenantModel {
                model: m.models.names[*model as usize].to_string(),
                requests: s.requests,
                input_tokens: s.input,
                output_tokens: s.output,
                cached_tokens: s.cached,
                avg_input_tokens: avg(s.input, s.with_usage),
                avg_output_tokens: avg(s.output, s.with_usage),
                cost: Money::from_nanos(c.now),
                projected_cost: Money::from_nanos(c.projected),
            });
        }
        tm.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.model.cmp(&b.model)));
        let mut te: Vec<TenantEndpoint> = acc
            .by_endpoint
            .iter()
            .map(|(e, s)| TenantEndpoint {
                endpoint: m.endpoints.names.get(*e as usize).map(|n| n.to_string()).unwrap_or_default(),
                requests: s.requests,
                errors: s.errors,
                avg_input_tokens: avg(s.input, s.with_usage),
                avg_output_tokens: avg(s.output, s.with_usage),
            })
            .collect();
        te.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.endpoint.cmp(&b.endpoint)));
        let conc = sw.tenants.get(i).cloned().unwrap_or_default();
        let default_rates = Rates::default();
        let r = sw.tenant_rates.get(i).unwrap_or(&default_rates);
        let u = usage(UsageInput {
            sums: &acc.sums,
            without_duration: acc.without_duration,
            duration_sum_ms: acc.duration_sum_ms,
            conc: &conc,
            rates: r,
            costs,
            span_ms,
            margin: opts.margin_percent,
        });
        let info = opts.tenants.get(name);
        let mut reasons = Vec::new();
        let is_named = name.as_ref() != NO_TENANT;
        // Sheepdog divides shared slots among the tenants with requests in flight.
        let held = conc.at_overall_peak.max(0) as u64;
        if is_named && saturated && (held as f64) > share_at_peak {
            reasons.push(format!(
                "at the busiest moment ({busiest}) it held {held} of {observed_peak} requests in flight, above its fair share of {share_at_peak:.2} slots (capacity {capacity} ÷ {active_at_peak} active tenants; capacity: {capacity_source})"
            ));
        }
        if let (true, Some(o)) = (is_named, &conc.over_share) {
            reasons.push(format!(
                "{} of its requests started beyond the upstream capacity of {capacity} while it held more than its fair share, so Sheepdog would make them wait (first at {}: {} of {} in flight, fair share {:.2} = {capacity} ÷ {} active tenants)",
                o.starts,
                format_ms(o.at),
                o.held,
                o.overall,
                capacity as f64 / o.active.max(1) as f64,
                o.active
            ));
        }
        let tags = if is_named { opts.tenants.dedicated_tags_of(name) } else { Vec::new() };
        if !tags.is_empty() {
            reasons.push(format!("tagged {} in the tenants file: needs reserved, isolated capacity", tags.join(", ")));
        }
        let recommendation = if reasons.is_empty() {
            let why = if !is_named {
                "records without a tenant identifier are not a tenant".to_string()
            } else if !saturated {
                format!("the upstream capacity of {capacity} was never exceeded (peak {observed_peak} in flight), so fair sharing never held it back, and no tag calls for isolation")
            } else {
                format!("at the busiest moment it held {held}, within its fair share of {share_at_peak:.2} slots ({capacity} ÷ {active_at_peak} active tenants), and no tag calls for isolation")
            };
            TierRecommendation { tier: "shared".into(), reasons: vec![why] }
        } else {
            dedicated.push(DedicatedTenant { tenant: name.to_string(), reasons: reasons.clone() });
            TierRecommendation { tier: "dedicated".into(), reasons }
        };
        tenants.push(TenantReport {
            tenant: name.to_string(),
            name: info.and_then(|i| i.name.clone()),
            current_tier: info.and_then(|i| i.tier.clone()),
            tags: info.map(|i| i.tags.clone()).unwrap_or_default(),
            first_seen: (acc.first_ms <= acc.last_ms).then(|| format_ms(acc.first_ms)),
            last_seen: (acc.first_ms <= acc.last_ms).then(|| format_ms(acc.last_ms)),
            share_of_requests: ratio(acc.sums.requests, all_requests),
            concurrency_at_overall_peak: conc.at_overall_peak.max(0) as u64,
            usage: u,
            tokens_per_request: TokensPerRequest {
                input: token_stats(acc.sums.input, acc.sums.with_usage, &acc.input_hist),
                output: token_stats(acc.sums.output, acc.sums.with_usage, &acc.output_hist),
            },
            models: tm,
            endpoints: te,
            recommendation,
        });
    }
    tenants.sort_by(|a, b| b.usage.requests.cmp(&a.usage.requests).then_with(|| a.tenant.cmp(&b.tenant)));
    dedicated.sort_by_key(|d| tenants.iter().position(|t| t.tenant == d.tenant));

    let total_now = total.now;
    let total_projected = total.projected;
    let total_unpriced = total.unpriced;
    let total_projected_unpriced = total.projected_unpriced;
    let overall = usage(UsageInput {
        sums: &all,
        without_duration: all_without_duration,
        duration_sum_ms: all_with_duration_sum,
        conc: &sw.overall,
        rates: &sw.overall_rates,
        costs: total,
        span_ms,
        margin: opts.margin_percent,
    });

    // Quality.
    let q = &m.quality;
    let names: Vec<String> = b.inputs.iter().map(|s| s.name.clone()).collect();
    let file_name = |i: usize| names.get(i).cloned().unwrap_or_else(|| format!("input {}", i + 1));
    let mut warnings = Vec::new();
    if has_requests && span_ms < DAY_MS {
        warnings.push(format!(
            "The logs cover {}; monthly figures extrapolate them ×{:.0} and cannot reflect daily or weekly cycles.",
            human_span(span_ms),
            MONTH_MS as f64 / span_ms as f64
        ));
    }
    if span_ms > 366 * DAY_MS {
        warnings.push(format!(
            "The logs span {}: check for wrong or skewed timestamps (the window and the monthly figures depend on it).",
            human_span(span_ms)
        ));
    }
    if all.requests > 0 && all_without_duration * 2 > all.requests {
        warnings.push(format!(
            "{all_without_duration} of {} requests have no duration or end time: peak concurrency only counts the others.",
            all.requests
        ));
    }
    if total_unpriced > 0 {
        warnings.push(format!(
            "{total_unpriced} requests use models the current price table does not price; their cost is not included."
        ));
    }
    if total_projected_unpriced > 0 {
        warnings.push(format!("{total_projected_unpriced} requests map to models the projected price table does not price; their projected cost is not included."));
    }
    if m.tenants.folded > 0 {
        warnings.push(format!(
            "More than {} distinct tenants: {} further requests are grouped as \"(other tenants)\" — is the tenant field right?",
            opts.caps.tenants, m.tenants.folded
        ));
    }
    let mut malformed_total = 0;
    let mut lines_total = 0;
    let mut blank_total = 0;
    let mut inputs = b.inputs;
    for (i, s) in inputs.iter_mut().enumerate() {
        if let Some(f) = q.files.get(i) {
            s.lines = f.lines;
            s.records = f.records;
            s.malformed = f.malformed;
            s.blank_lines += f.blank;
        }
        malformed_total += s.malformed;
        lines_total += s.lines;
        blank_total += s.blank_lines;
        if let Some(e) = &s.error {
            warnings.push(format!("{}: {e}", s.name));
        }
    }
    if malformed_total > 0 {
        warnings.push(format!("{malformed_total} malformed lines or records were skipped (see malformed_examples)."));
    }
    let quality = QualityReport {
        lines: lines_total,
        records: all.requests,
        malformed: malformed_total,
        blank_lines: blank_total,
        malformed_examples: q
            .examples
            .iter()
            .map(|e| MalformedLine {
                file: file_name(e.file),
                line: e.line,
                record: e.record,
                reason: e.reason.clone(),
            })
            .collect(),
        without_duration: q.without_duration,
        negative_durations: q.skewed,
        without_usage: q.without_usage,
        without_tenant: q.without_tenant,
        without_model: q.without_model,
        folded_tenants: m.tenants.folded,
        folded_models: m.models.folded,
        folded_endpoints: m.endpoints.folded,
        unpriced_models,
        spilled_events: b.spilled_events,
        spill_runs: b.spill_runs,
        warnings,
    };

    let change = total_projected - total_now;
    let cost = CostSummary {
        price_table: opts.prices.label.clone(),
        projected_price_table: b.projected.label.clone(),
        model_map: opts.model_map.0.clone(),
        observed: Money::from_nanos(total_now),
        monthly: Money::from_nanos(monthly(total_now, span_ms)),
        projected_observed: Money::from_nanos(total_projected),
        projected_monthly: Money::from_nanos(monthly(total_projected, span_ms)),
        monthly_change: Money::from_nanos(monthly(total_projected, span_ms) - monthly(total_now, span_ms)),
        change_percent: (total_now > 0).then(|| round(change as f64 * 100.0 / total_now as f64, 2)),
        unpriced_requests: total_unpriced,
        projected_unpriced_requests: total_projected_unpriced,
    };

    let spec = b.series_spec;
    let mut lines: Vec<SeriesLine> = spec
        .tenants
        .iter()
        .enumerate()
        .map(|(row, t)| SeriesLine {
            name: m.tenants.names.get(*t as usize).map(|n| n.to_string()).unwrap_or_default(),
            requests: sw.series.get(row).cloned().unwrap_or_default(),
        })
        .collect();
    if let Some(other) = sw.series.get(spec.tenants.len()) {
        if other.iter().any(|v| *v > 0) {
            lines.push(SeriesLine { name: "(other)".into(), requests: other.clone() });
        }
    }
    if has_requests {
        lines.push(SeriesLine {
            name: "(total)".into(),
            requests: sw.series.get(spec.tenants.len() + 1).cloned().unwrap_or_default(),
        });
    }

    Report {
        schema: SCHEMA.into(),
        generated_at: format_ms(b.generated_at_ms),
        elapsed_ms: b.elapsed_ms,
        inputs,
        settings: ReportSettings {
            tenant_fields: b.plan_tenant_paths,
            field_map: opts.field_map.iter().map(|(k, f)| (k.clone(), f.name().to_string())).collect(),
            timestamp_at: opts.timestamp_at,
            price_table: opts.prices.label.clone(),
            projected_price_table: b.projected.label.clone(),
            model_map: opts.model_map.0.clone(),
            margin_percent: opts.margin_percent,
            upstream_concurrency: opts.upstream_concurrency,
            upstream_concurrency_source: capacity_source,
            threads: opts.threads.max(1),
            max_events_in_memory: opts.max_events_in_memory as u64,
        },
        window: Window {
            first: has_requests.then(|| format_ms(m.first_ms)),
            last: has_requests.then(|| format_ms(m.last_ms)),
            first_ms: has_requests.then_some(m.first_ms),
            last_ms: has_requests.then_some(m.last_ms),
            span_ms,
            month_factor: if span_ms > 0 { round(MONTH_MS as f64 / span_ms as f64, 4) } else { 0.0 },
            note: (!has_requests).then(|| "no usable request in the input".to_string()),
        },
        quality,
        overall,
        tenants,
        endpoints,
        models,
        cost,
        dedicated,
        series: SeriesReport {
            start: has_requests.then(|| format_ms(spec.start_ms)),
            start_ms: spec.start_ms,
            bucket_ms: spec.bucket_ms,
            lines,
        },
        methods: methods(opts),
    }
}

/// `3 d 4 h`, `2 h 5 min`, `45 min`, `12 s`.
pub fn human_span(ms: i64) -> String {
    let s = ms / 1000;
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min")
    } else {
        format!("{s} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margins_and_months_are_exact() {
        assert_eq!(with_margin(100, 25), 125);
        assert_eq!(with_margin(3, 25), 4);
        assert_eq!(with_margin(0, 25), 0);
        assert_eq!(monthly(1_000, MONTH_MS), 1_000);
        assert_eq!(monthly(1_000, DAY_MS), 30_000);
        assert_eq!(monthly(1, 7 * DAY_MS), 4); // 30/7 = 4.29 → 4
        assert_eq!(monthly(1, 20 * DAY_MS), 2); // 1.5 → 2 (half up)
        assert_eq!(monthly(-1, 20 * DAY_MS), -2);
        assert_eq!(Money::from_nanos(1_500_000_000).usd, "1.500000000");
    }

    #[test]
    fn series_buckets() {
        let (s, b, n) = series_bucket(90_000, 90_000 + 30 * MINUTE_MS);
        assert_eq!((s, b, n), (60_000, MINUTE_MS, 31));
        let (_, b, n) = series_bucket(0, 7 * DAY_MS);
        assert_eq!(b, 60 * MINUTE_MS);
        assert!(n <= 240);
        assert_eq!(human_span(3 * DAY_MS + 3_600_000), "3 d 1 h");
    }
}
