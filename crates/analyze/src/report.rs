//! `report.json`: how it is computed from the merged aggregates and the
//! sweep. The types (the documented schema, `sheepdog.analysis.v1`) are the
//! admin API's, in [`sheepdog_types::analysis`], re-exported here.
//! Money is integer nano-USD, shown as `{"usd": "12.345000000", "nanos": …}`.

pub use sheepdog_types::analysis::{
    Cost, CostSummary, DedicatedTenant, GroupReport, Headroom, Limits, MalformedLine, ModelReport, Money, Peak,
    PriceUsd, QualityReport, Rate, Report, ReportSettings, SeriesLine, SeriesReport, TenantEndpoint, TenantModel,
    TenantReport, TierRecommendation, TokenStats, TokensPerRequest, UnpricedModel, Usage, Window,
};

use crate::agg::{Merged, Sums, NO_TENANT};
use crate::events::{Rates, Sweep};
use crate::figures::{
    avg, cost_of, group_report, price_usd, ratio, round, token_stats, usage, Costs, Pricing, UsageInput,
};
pub use crate::figures::{human_span, methods, monthly, series_bucket, with_margin};
use crate::options::Options;
use crate::prices::PriceTable;
use crate::source::InputSummary;
use crate::time::{format_ms, DAY_MS, MINUTE_MS};

pub const SCHEMA: &str = "sheepdog.analysis.v1";
pub use crate::figures::{DEFAULT_RPM_LIMIT, DEFAULT_TPM_LIMIT, MONTH_MS};

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
                price: p.now.map(|(_, pr)| price_usd(pr)),
                cost: Money::from_nanos(c.now),
                monthly_cost: Money::from_nanos(monthly(c.now, span_ms)),
                mapped_to: p.target.clone(),
                projected_priced_as: p.projected.map(|(k, _)| k.to_string()),
                projected_price: p.projected.map(|(_, pr)| price_usd(pr)),
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
