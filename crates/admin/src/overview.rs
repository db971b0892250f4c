//! The console's dashboards: totals across tenants (`GET /admin/v1/overview`)
//! and usage as time series for cost attribution charts
//! (`GET /admin/v1/usage/series`). Reads flush the accounting queue first.

use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use axum::Json;
use sheepdog_types::{
    format_usd, Overview, OverviewBucket, TenantSpend, TenantStatus, UpstreamStatus, UsageSeries, UsageSeriesRow,
    OTHER_KEY,
};

use crate::error::AdminError;
use crate::flush::flush_usage;
use crate::lookup::find_tenant;
use crate::query::AdminQuery;
use crate::reports::time_range;
use sheepdog_core::accounting::histogram;
use sheepdog_core::state::AppState;
use sheepdog_store::{HourlyDelta, UsageGroup};
use sheepdog_types::time::{hour_floor, ms_to_rfc3339, ms_to_rfc3339_secs, now_ms, HOUR_MS};

const DAY_MS: i64 = 24 * HOUR_MS;
/// Most buckets one series request may ask for.
const MAX_BUCKETS: i64 = 2_000;
/// Tenants shown in the overview's top list.
const TOP_TENANTS: usize = 5;

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Upstream status from the last hour's traffic.
fn upstream_status(requests: i64, errors: i64) -> &'static str {
    if requests <= 0 {
        "idle"
    } else if errors * 100 < requests {
        "healthy"
    } else if errors * 2 < requests {
        "degraded"
    } else {
        "down"
    }
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OverviewParams {
    /// Hours ending now (1 to 168, default 24); ignored when `from` is given.
    pub hours: Option<i64>,
    /// RFC 3339 start (inclusive, floored to the hour): a fixed window instead of the last `hours`.
    pub from: Option<String>,
    /// RFC 3339 end (exclusive, rounded up to the hour); default: the end of this hour. Only with `from`.
    pub to: Option<String>,
}

/// Longest window `from`/`to` may span.
const MAX_OVERVIEW_DAYS: i64 = 400;

#[utoipa::path(get, path = "/admin/v1/overview", tag = "reports", params(OverviewParams),
    description = "Totals across tenants over the last hours or a `from`/`to` window (requests, errors, p99 latency, \
                   spend), hourly buckets (daily beyond 48 hours), top tenants by spend, and every upstream \
                   provider's status over the last hour.",
    responses((status = 200, body = Overview), (status = 400, body = sheepdog_types::ErrorBody)), security(("admin_token" = [])))]
pub async fn overview(
    State(state): State<AppState>,
    AdminQuery(q): AdminQuery<OverviewParams>,
) -> Result<Json<Overview>, AdminError> {
    let now = now_ms();
    let (start, end) = overview_window(&q, now)?;
    let bucket_ms = if end - start > 2 * DAY_MS { DAY_MS } else { HOUR_MS };
    flush_usage(&state).await?;
    let store = state.store();
    let (rows, spend, provider_counts) = tokio::try_join!(
        store.hourly_all(start, end),
        store.spend_by_tenant(start, end, TOP_TENANTS),
        store.provider_counts(now - HOUR_MS),
    )?;
    // The window's total, and one sum per bucket (an hour, or a day beyond 48 hours).
    let mut total = HourlyDelta::default();
    let mut buckets: BTreeMap<i64, HourlyDelta> = (0..(end - start + bucket_ms - 1) / bucket_ms)
        .map(|i| (start + i * bucket_ms, HourlyDelta::default()))
        .collect();
    for (hour, d) in rows.range(start..end) {
        total.add(d);
        buckets.entry(start + (hour - start) / bucket_ms * bucket_ms).or_default().add(d);
    }
    let hourly = buckets
        .into_iter()
        .map(|(t, d)| OverviewBucket {
            start: ms_to_rfc3339_secs(t),
            requests: d.request_count.max(0) as u64,
            errors: d.error_count.max(0) as u64,
            p99_latency_ms: round2(histogram::quantile(&d.latency, 0.99)),
            cost_nanos: d.cost_nanos,
        })
        .collect();

    // Names and counts from the in-memory catalog.
    let catalog = state.catalog().snapshot();
    let top_tenants = spend
        .iter()
        .map(|(id, r, c)| TenantSpend {
            tenant_id: id.clone(),
            name: catalog.tenant(id).map(|t| t.name.clone()).unwrap_or_else(|| id.clone()),
            requests: (*r).max(0) as u64,
            cost_usd: format_usd(*c),
            cost_nanos: *c,
        })
        .collect();

    let counts: HashMap<String, (i64, i64)> =
        provider_counts.into_iter().map(|p| (p.provider, (p.requests, p.errors))).collect();
    let upstreams = state
        .settings()
        .providers
        .iter()
        .map(|p| {
            let (r, e) = counts.get(&p.name).copied().unwrap_or((0, 0));
            UpstreamStatus {
                provider: p.name.clone(),
                kind: p.kind.as_str().into(),
                simulated: p.kind == sheepdog_core::config::ProviderKind::Simulated,
                models: state
                    .models()
                    .iter()
                    .filter(|m| m.provider.name == p.name)
                    .map(|m| m.model.name.clone())
                    .collect(),
                requests: r.max(0) as u64,
                errors: e.max(0) as u64,
                status: upstream_status(r, e).into(),
            }
        })
        .collect();

    Ok(Json(Overview {
        from: ms_to_rfc3339(start),
        to: ms_to_rfc3339(end),
        bucket: if bucket_ms == DAY_MS { "day" } else { "hour" }.into(),
        requests: total.request_count.max(0) as u64,
        errors: total.error_count.max(0) as u64,
        rate_limit_hits: total.rate_limit_hits.max(0) as u64,
        error_rate: if total.request_count > 0 { total.error_count as f64 / total.request_count as f64 } else { 0.0 },
        p99_latency_ms: round2(histogram::quantile(&total.latency, 0.99)),
        cost_usd: format_usd(total.cost_nanos),
        cost_nanos: total.cost_nanos,
        tenants_total: catalog.tenants.len() as u64,
        tenants_active: catalog.tenants.values().filter(|t| t.status == TenantStatus::Active).count() as u64,
        hourly,
        top_tenants,
        upstreams,
    }))
}

/// The overview's window: the last `hours` (default 24) ending with this
/// hour, or `from`/`to` floored and rounded up to whole hours (whole days
/// when it spans more than 48 hours).
fn overview_window(q: &OverviewParams, now: i64) -> Result<(i64, i64), AdminError> {
    let this_hour_end = hour_floor(now) + HOUR_MS;
    let Some(from) = q.from.as_deref() else {
        if q.to.is_some() {
            return Err(AdminError::BadRequest("`to` needs `from`.".into()));
        }
        let hours = match q.hours {
            None => 24,
            Some(h) if (1..=168).contains(&h) => h,
            Some(_) => return Err(AdminError::BadRequest("`hours` must be an integer from 1 to 168.".into())),
        };
        return Ok((this_hour_end - hours * HOUR_MS, this_hour_end));
    };
    let parse = |name: &str, t: &str| {
        sheepdog_types::time::parse_rfc3339_ms(t)
            .ok_or_else(|| AdminError::BadRequest(format!("`{name}` {t:?} is not an RFC 3339 timestamp.")))
    };
    let from = parse("from", from)?;
    let to = match q.to.as_deref() {
        Some(t) => parse("to", t)?,
        None => this_hour_end,
    };
    if from >= to {
        return Err(AdminError::BadRequest("`from` must be before `to`.".into()));
    }
    if to - from > MAX_OVERVIEW_DAYS * DAY_MS {
        return Err(AdminError::BadRequest(format!("Choose a window of at most {MAX_OVERVIEW_DAYS} days.")));
    }
    let start = hour_floor(from);
    let end = hour_floor(to - 1) + HOUR_MS;
    if end - start > 2 * DAY_MS {
        Ok((start - start.rem_euclid(DAY_MS), end + (DAY_MS - end.rem_euclid(DAY_MS)) % DAY_MS))
    } else {
        Ok((start, end))
    }
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeriesParams {
    /// RFC 3339 start (inclusive); default: start of this calendar month (UTC).
    pub from: Option<String>,
    /// RFC 3339 end (exclusive); default: start of next month.
    pub to: Option<String>,
    /// `tenant` (default), `cost_center`, `model` or `ingress` (the client format).
    pub group_by: Option<String>,
    /// `hour` or `day`; default `hour` for ranges up to 48 h, else `day`.
    pub bucket: Option<String>,
    /// Only this tenant (id or alias).
    pub tenant_id: Option<String>,
    /// Only the largest this many groups (1 to 1000), and one row keyed `(other)` summing the rest.
    pub top: Option<usize>,
}

#[utoipa::path(get, path = "/admin/v1/usage/series", tag = "reports", params(SeriesParams),
    description = "Cost and requests per time bucket, one series per tenant, cost center or model (largest first).",
    responses((status = 200, body = UsageSeries), (status = 400, body = sheepdog_types::ErrorBody), (status = 404, body = sheepdog_types::ErrorBody, description = "Unknown `tenant_id`")), security(("admin_token" = [])))]
pub async fn usage_series(
    State(state): State<AppState>,
    AdminQuery(q): AdminQuery<SeriesParams>,
) -> Result<Json<UsageSeries>, AdminError> {
    let (from, to) = time_range(q.from.as_deref(), q.to.as_deref())?;
    let group_name = q.group_by.as_deref().unwrap_or("tenant");
    let group = match UsageGroup::from_name(group_name) {
        Some(g) if g != UsageGroup::Day => g,
        _ => {
            return Err(AdminError::BadRequest(format!(
                "`group_by` {group_name:?} must be tenant, cost_center, model or ingress."
            )))
        }
    };
    let bucket_name = match q.bucket.as_deref() {
        None if to - from <= 2 * DAY_MS => "hour",
        None => "day",
        Some(b @ ("hour" | "day")) => b,
        Some(other) => return Err(AdminError::BadRequest(format!("`bucket` {other:?} must be hour or day."))),
    };
    let bucket_ms = if bucket_name == "hour" { HOUR_MS } else { DAY_MS };
    let first = from - from.rem_euclid(bucket_ms);
    let count = (to - first + bucket_ms - 1) / bucket_ms;
    if count > MAX_BUCKETS {
        return Err(AdminError::BadRequest(format!(
            "the range holds {count} {bucket_name} buckets; at most {MAX_BUCKETS} are allowed."
        )));
    }
    if q.top.is_some_and(|t| !(1..=1000).contains(&t)) {
        return Err(AdminError::BadRequest("`top` must be an integer from 1 to 1000.".into()));
    }
    let tenant = match q.tenant_id.as_deref() {
        Some(t) => Some(find_tenant(&state, t).await?.id),
        None => None,
    };
    flush_usage(&state).await?;
    // With `top`, the database ranks the groups and sums the rest (one row
    // keyed OTHER_KEY); the answer is what `keep_top` makes of every group.
    let range = (group, bucket_ms, from, to, tenant.as_deref());
    let (cells, others) = match q.top {
        Some(top) => state.store().usage_top_cells(range, top, OTHER_KEY).await?,
        None => (state.store().usage_cells(group, bucket_ms, from, to, tenant.as_deref()).await?, 0),
    };
    // Tenant names from the in-memory catalog (a deleted tenant shows its id).
    let catalog = state.catalog().snapshot();
    let label = |key: &str| -> String {
        match group {
            UsageGroup::Tenant => catalog.tenant(key).map(|t| t.name.clone()).unwrap_or_else(|| key.to_string()),
            _ => key.to_string(),
        }
    };
    let n = count.max(0) as usize;
    let mut by_key: BTreeMap<String, UsageSeriesRow> = BTreeMap::new();
    for c in cells {
        let idx = ((c.bucket_ms - first) / bucket_ms) as usize;
        let row = by_key.entry(c.key.clone()).or_insert_with(|| UsageSeriesRow::empty(c.key.clone(), label(&c.key), n));
        if let Some(v) = row.values_nanos.get_mut(idx) {
            *v += c.cost_nanos;
        }
        if let Some(v) = row.requests_per_bucket.get_mut(idx) {
            *v += c.requests.max(0) as u64;
        }
        row.requests += c.requests.max(0) as u64;
        row.input_tokens += c.input_tokens.max(0) as u64;
        row.output_tokens += c.output_tokens.max(0) as u64;
        row.cost_nanos += c.cost_nanos;
    }
    let mut series: Vec<UsageSeriesRow> = by_key
        .into_values()
        .map(|mut r| {
            r.cost_usd = format_usd(r.cost_nanos);
            r
        })
        .collect();
    series.sort_by(|a, b| b.cost_nanos.cmp(&a.cost_nanos).then(b.requests.cmp(&a.requests)).then(a.key.cmp(&b.key)));
    if others > 0 {
        // The rest, last, whatever its size.
        let mut other = match series.iter().position(|r| r.key == OTHER_KEY) {
            Some(i) => series.remove(i),
            None => UsageSeriesRow::empty(OTHER_KEY.into(), String::new(), n),
        };
        other.label = format!("{others} more");
        other.cost_usd = format_usd(other.cost_nanos);
        series.push(other);
    }
    let all = UsageSeries {
        from: ms_to_rfc3339(from),
        to: ms_to_rfc3339(to),
        group_by: group_name.into(),
        bucket: bucket_name.into(),
        buckets: (0..count).map(|i| ms_to_rfc3339_secs(first + i * bucket_ms)).collect(),
        series,
    };
    Ok(Json(all))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_status_thresholds() {
        assert_eq!(upstream_status(0, 0), "idle");
        assert_eq!(upstream_status(1000, 9), "healthy");
        assert_eq!(upstream_status(100, 1), "degraded");
        assert_eq!(upstream_status(10, 5), "down");
    }
}
