//! The figures of `report.json`: ratios and rounding, margins and monthly
//! extrapolation, rates and token statistics, costs, one `Usage` block, the
//! time-series bucket, and how each figure is computed ([`methods`]).

use std::collections::BTreeMap;

use sheepdog_types::analysis::{Cost, GroupReport, Headroom, Limits, Money, Peak, PriceUsd, Rate, TokenStats, Usage};

use crate::agg::{Group, Sums};
use crate::events::{Conc, Rates};
use crate::options::Options;
use crate::prices::Price;
use crate::time::{format_minute, format_ms, DAY_MS, MINUTE_MS};

/// A month, for monthly figures: 30 days.
pub const MONTH_MS: i64 = 30 * DAY_MS;
/// Sheepdog's default per-tenant limits.
pub const DEFAULT_RPM_LIMIT: u64 = 1_000;
pub const DEFAULT_TPM_LIMIT: u64 = 1_000_000;

/// The prices of a model as the report shows them (USD per 1M tokens).
pub(crate) fn price_usd(p: &Price) -> PriceUsd {
    let f = |n: i64| format!("{}.{:03}", n / 1000, n % 1000);
    PriceUsd { input_per_mtok: f(p.input), output_per_mtok: f(p.output), cached_input_per_mtok: f(p.cached_input) }
}

pub(crate) fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        round(a as f64 / b as f64, 6)
    }
}

pub(crate) fn round(v: f64, places: i32) -> f64 {
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

pub(crate) fn peak(c: &Conc) -> Peak {
    Peak { value: c.peak.max(0) as u64, at: c.peak_at.map(format_ms), active_tenants: c.active_at_peak }
}

pub(crate) fn rates(r: &Rates) -> (Rate, Rate) {
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

pub(crate) fn token_stats(total: u64, with_usage: u64, h: &crate::agg::Histogram) -> TokenStats {
    TokenStats {
        total,
        avg: if with_usage == 0 { 0.0 } else { round(total as f64 / with_usage as f64, 1) },
        p95: h.quantile(0.95),
        max: h.max(),
    }
}

pub(crate) fn avg(total: u64, n: u64) -> f64 {
    if n == 0 {
        0.0
    } else {
        round(total as f64 / n as f64, 1)
    }
}

pub(crate) fn group_report(name: &str, g: &Group, all: u64) -> GroupReport {
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
pub(crate) struct Pricing<'a> {
    pub(crate) now: Option<(&'a str, &'a Price)>,
    pub(crate) target: String,
    pub(crate) projected: Option<(&'a str, &'a Price)>,
}

pub(crate) struct Costs {
    pub(crate) now: i128,
    pub(crate) projected: i128,
    pub(crate) unpriced: u64,
    pub(crate) projected_unpriced: u64,
}

pub(crate) fn cost_of(s: &Sums, p: &Pricing<'_>) -> Costs {
    let now = p.now.map(|(_, pr)| pr.cost(s.input, s.cached, s.output));
    let projected = p.projected.map(|(_, pr)| pr.cost(s.input, s.cached, s.output));
    Costs {
        now: now.unwrap_or(0),
        projected: projected.unwrap_or(0),
        unpriced: if now.is_none() { s.requests } else { 0 },
        projected_unpriced: if projected.is_none() { s.requests } else { 0 },
    }
}

pub(crate) struct UsageInput<'a> {
    pub(crate) sums: &'a Sums,
    pub(crate) without_duration: u64,
    pub(crate) duration_sum_ms: u128,
    pub(crate) conc: &'a Conc,
    pub(crate) rates: &'a Rates,
    pub(crate) costs: Costs,
    pub(crate) span_ms: i64,
    pub(crate) margin: u32,
}

pub(crate) fn usage(u: UsageInput<'_>) -> Usage {
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
