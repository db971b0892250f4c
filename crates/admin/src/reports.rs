//! Reports: per-tenant hourly metrics, usage grouped for cost attribution,
//! and the audit log. Reads flush the accounting queue first, so what a
//! request did is visible as soon as it has finished.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::Json;
use sheepdog_types::{format_usd, AuditItem, AuditList, MetricsBucket, TenantMetrics, UsageReport, UsageRow};

use crate::error::AdminError;
use crate::flush::flush_usage;
use crate::lookup::find_tenant;
use crate::query::AdminQuery;
use sheepdog_core::accounting::histogram;
use sheepdog_core::state::AppState;
use sheepdog_store::UsageGroup;
use sheepdog_types::time::{hour_floor, month_bounds, ms_to_rfc3339_secs, now_ms, parse_rfc3339_ms, HOUR_MS};

/// `24h`, `7d`, … → milliseconds (1 hour to 90 days).
fn parse_period(text: &str) -> Result<i64, AdminError> {
    let bad = || {
        let shown: String = text.chars().take(40).collect();
        AdminError::BadRequest(format!("`period` {shown:?} must look like 24h or 7d (1h to 90d)."))
    };
    // The unit is the last character, whatever its width (never a byte index).
    let mut chars = text.chars();
    let unit = chars.next_back().map(String::from).unwrap_or_default();
    let num = chars.as_str();
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: i64 = num.parse().map_err(|_| bad())?;
    let ms = match unit.as_str() {
        "h" => n.checked_mul(HOUR_MS),
        "d" => n.checked_mul(24 * HOUR_MS),
        _ => None,
    }
    .ok_or_else(bad)?;
    if !(HOUR_MS..=90 * 24 * HOUR_MS).contains(&ms) {
        return Err(bad());
    }
    Ok(ms)
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricsParams {
    /// Window ending now: `24h` (default), `7d`, … up to `90d`.
    pub period: Option<String>,
    /// Bucket width; only `1h`.
    pub granularity: Option<String>,
}

#[utoipa::path(get, path = "/admin/v1/tenants/{id}/metrics", tag = "reports",
    params(("id" = String, Path, description = "Tenant id or alias"), MetricsParams),
    responses((status = 200, body = TenantMetrics), (status = 400, body = sheepdog_types::ErrorBody), (status = 404, body = sheepdog_types::ErrorBody)),
    security(("admin_token" = [])))]
pub async fn tenant_metrics(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AdminQuery(q): AdminQuery<MetricsParams>,
) -> Result<Json<TenantMetrics>, AdminError> {
    let period = q.period.as_deref().unwrap_or("24h");
    let period_ms = parse_period(period)?;
    let granularity = q.granularity.as_deref().unwrap_or("1h");
    if granularity != "1h" {
        return Err(AdminError::BadRequest(format!("`granularity` {granularity:?} is not supported; use 1h.")));
    }
    let tenant = find_tenant(&state, &id).await?;
    flush_usage(&state).await?;
    let end = hour_floor(now_ms()) + HOUR_MS;
    let start = end - period_ms.div_euclid(HOUR_MS).max(1) * HOUR_MS;
    let rows = state.store().hourly(&tenant.id, start, end).await?;
    let mut by_hour: HashMap<i64, _> = rows.into_iter().map(|r| (r.hour_ms, r.delta)).collect();
    let mut buckets = Vec::new();
    let mut hour = start;
    while hour < end {
        let d = by_hour.remove(&hour).unwrap_or_default();
        let avg = if d.request_count > 0 { d.latency_sum_ms as f64 / d.request_count as f64 } else { 0.0 };
        buckets.push(MetricsBucket {
            start: ms_to_rfc3339_secs(hour),
            request_count: d.request_count.max(0) as u64,
            error_count: d.error_count.max(0) as u64,
            rate_limit_hits: d.rate_limit_hits.max(0) as u64,
            avg_latency_ms: (avg * 100.0).round() / 100.0,
            p99_latency_ms: (histogram::quantile(&d.latency, 0.99) * 100.0).round() / 100.0,
            input_tokens: d.input_tokens.max(0) as u64,
            output_tokens: d.output_tokens.max(0) as u64,
            cost_usd: format_usd(d.cost_nanos),
        });
        hour += HOUR_MS;
    }
    Ok(Json(TenantMetrics { tenant_id: tenant.id, period: period.into(), granularity: granularity.into(), buckets }))
}

/// `from` and `to` (RFC 3339) of a query, defaulting to this calendar month (UTC).
pub(super) fn time_range(from: Option<&str>, to: Option<&str>) -> Result<(i64, i64), AdminError> {
    let (month_start, month_end) = month_bounds(now_ms());
    let time = |name: &str, value: Option<&str>, default: i64| -> Result<i64, AdminError> {
        match value {
            None => Ok(default),
            Some(t) => parse_rfc3339_ms(t)
                .ok_or_else(|| AdminError::BadRequest(format!("`{name}` {t:?} is not an RFC 3339 timestamp."))),
        }
    };
    let from = time("from", from, month_start)?;
    let to = time("to", to, month_end)?;
    if from >= to {
        return Err(AdminError::BadRequest("`from` must be before `to`.".into()));
    }
    Ok((from, to))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// RFC 3339 start (inclusive); default: start of this calendar month (UTC).
    pub from: Option<String>,
    /// RFC 3339 end (exclusive); default: start of next month.
    pub to: Option<String>,
    /// `tenant` (default), `cost_center`, `model`, `day` or `ingress` (the
    /// client format: `chat`, `messages`, `responses`, `embeddings`).
    pub group_by: Option<String>,
    /// Only this tenant (id or alias).
    pub tenant_id: Option<String>,
}

#[utoipa::path(get, path = "/admin/v1/usage", tag = "reports", params(UsageParams),
    responses((status = 200, body = UsageReport), (status = 400, body = sheepdog_types::ErrorBody), (status = 404, body = sheepdog_types::ErrorBody, description = "Unknown `tenant_id`")), security(("admin_token" = [])))]
pub async fn usage(
    State(state): State<AppState>,
    AdminQuery(q): AdminQuery<UsageParams>,
) -> Result<Json<UsageReport>, AdminError> {
    let (from, to) = time_range(q.from.as_deref(), q.to.as_deref())?;
    let group_name = q.group_by.as_deref().unwrap_or("tenant");
    let Some(group) = UsageGroup::from_name(group_name) else {
        return Err(AdminError::BadRequest(format!(
            "`group_by` {group_name:?} must be tenant, cost_center, model, day or ingress."
        )));
    };
    let tenant = match q.tenant_id.as_deref() {
        Some(t) => Some(find_tenant(&state, t).await?.id),
        None => None,
    };
    flush_usage(&state).await?;
    let rows = state.store().usage(group, from, to, tenant.as_deref()).await?;
    let data = rows
        .into_iter()
        .map(|r| UsageRow {
            key: r.key,
            requests: r.requests.max(0) as u64,
            input_tokens: r.input_tokens.max(0) as u64,
            output_tokens: r.output_tokens.max(0) as u64,
            cached_tokens: r.cached_tokens.max(0) as u64,
            cost_usd: format_usd(r.cost_nanos),
            cost_nanos: r.cost_nanos,
        })
        .collect();
    Ok(Json(UsageReport {
        from: sheepdog_types::time::ms_to_rfc3339(from),
        to: sheepdog_types::time::ms_to_rfc3339(to),
        group_by: group_name.into(),
        data,
    }))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Newest entries first, at most this many (default 100, max 1000).
    pub limit: Option<i64>,
    /// Entries skipped before the first (for the next page); with it the answer carries `total`.
    pub offset: Option<i64>,
    /// Who made the change (prefix match), e.g. `console:` or `admin-token`.
    pub actor: Option<String>,
    /// What was done (prefix match), e.g. `tenant.` or `key.revoke`.
    pub action: Option<String>,
    /// The changed object's id (prefix match).
    pub target: Option<String>,
    /// RFC 3339 start (inclusive).
    pub from: Option<String>,
    /// RFC 3339 end (exclusive).
    pub to: Option<String>,
}

#[utoipa::path(get, path = "/admin/v1/audit", tag = "reports", params(AuditParams),
    responses((status = 200, body = AuditList), (status = 400, body = sheepdog_types::ErrorBody)), security(("admin_token" = [])))]
pub async fn audit_log(
    State(state): State<AppState>,
    AdminQuery(q): AdminQuery<AuditParams>,
) -> Result<Json<AuditList>, AdminError> {
    let limit = match q.limit {
        None => 100,
        Some(n) if (1..=1000).contains(&n) => n,
        Some(_) => return Err(AdminError::BadRequest("`limit` must be an integer from 1 to 1000.".into())),
    };
    let time = |name: &str, value: Option<&str>| -> Result<Option<i64>, AdminError> {
        match value.map(str::trim).filter(|t| !t.is_empty()) {
            None => Ok(None),
            Some(t) => parse_rfc3339_ms(t)
                .map(Some)
                .ok_or_else(|| AdminError::BadRequest(format!("`{name}` {t:?} is not an RFC 3339 timestamp."))),
        }
    };
    let filter = sheepdog_store::console::AuditFilter {
        from_ms: time("from", q.from.as_deref())?,
        to_ms: time("to", q.to.as_deref())?,
        actor: q.actor,
        action: q.action,
        target: q.target,
        limit,
        offset: match q.offset {
            None => 0,
            Some(o) if o >= 0 => o,
            Some(_) => return Err(AdminError::BadRequest("`offset` must not be negative.".into())),
        },
    };
    let rows = state.store().list_audit_filtered(&filter).await?;
    let total = match q.offset {
        Some(_) => Some(state.store().count_audit_filtered(&filter).await?.max(0) as u64),
        None => None,
    };
    let parse = |t: Option<String>| t.and_then(|t| serde_json::from_str(&t).ok());
    Ok(Json(AuditList {
        data: rows
            .into_iter()
            .map(|e| AuditItem {
                id: e.id,
                at: e.at,
                actor: e.actor,
                action: e.action,
                target: e.target,
                before: parse(e.before_json),
                after: parse(e.after_json),
            })
            .collect(),
        total,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_read_by_character() {
        assert_eq!(parse_period("24h").unwrap(), 24 * HOUR_MS);
        assert_eq!(parse_period("90d").unwrap(), 90 * 24 * HOUR_MS);
        for bad in ["", "h", "1é", "é", "1€", "€h", "0h", "91d", "-1h", "+1h", "1.5h", "99999999999999999999h", "24H"]
        {
            assert!(matches!(parse_period(bad), Err(AdminError::BadRequest(_))), "{bad}");
        }
    }
}
