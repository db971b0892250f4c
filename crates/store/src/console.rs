//! Storage for the console's admin endpoints: the filtered audit log,
//! totals across tenants (overview) and usage series for cost attribution
//! charts. Portable SQL for SQLite and Postgres, like [`crate`].

use std::collections::BTreeMap;

use sqlx::Row;

use crate::audit::{AuditEntry, AUDIT_COLS};
use crate::db::{Store, StoreError};
use crate::usage::{hourly_from_rows, HourlyDelta, UsageGroup};

/// Filters of the audit log (all optional; text filters are exact, except
/// `actor`, `action` and `target` which also match as a prefix).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub limit: i64,
}

/// One (bucket, group) cell of a usage series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesCell {
    pub bucket_ms: i64,
    pub key: String,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_nanos: i64,
}

/// Requests per provider since some time.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ProviderCount {
    pub provider: String,
    pub requests: i64,
    pub errors: i64,
}

/// Escapes `%`, `_` and `\` for a LIKE prefix match.
fn like_prefix(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl Store {
    // ---- audit ---------------------------------------------------------

    pub async fn list_audit_filtered(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let mut sql = format!("SELECT {AUDIT_COLS} FROM audit_log WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        let mut nums: Vec<i64> = Vec::new();
        for (col, value) in [("actor", &f.actor), ("action", &f.action), ("target", &f.target)] {
            if let Some(v) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                binds.push(like_prefix(v));
                sql.push_str(&format!(" AND {col} LIKE ${} ESCAPE '\\'", binds.len()));
            }
        }
        for (op, value) in [(">=", f.from_ms), ("<", f.to_ms)] {
            if let Some(v) = value {
                nums.push(v);
                sql.push_str(&format!(" AND at_ms {op} ${}", binds.len() + nums.len()));
            }
        }
        sql.push_str(&format!(" ORDER BY at_ms DESC, id DESC LIMIT ${}", binds.len() + nums.len() + 1));
        let mut q = sqlx::query_as::<_, AuditEntry>(&sql);
        for b in &binds {
            q = q.bind(b);
        }
        for n in &nums {
            q = q.bind(*n);
        }
        Ok(q.bind(f.limit).fetch_all(self.pool()).await?)
    }

    // ---- totals across tenants -----------------------------------------

    /// Hourly buckets summed over every tenant, with merged latency histograms.
    pub async fn hourly_all(&self, from_ms: i64, to_ms: i64) -> Result<BTreeMap<i64, HourlyDelta>, StoreError> {
        let rows = sqlx::query(
            "SELECT hour_ms, CAST(SUM(request_count) AS BIGINT) AS request_count, CAST(SUM(error_count) AS BIGINT) AS error_count, \
             CAST(SUM(rate_limit_hits) AS BIGINT) AS rate_limit_hits, CAST(SUM(latency_sum_ms) AS BIGINT) AS latency_sum_ms, \
             CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, CAST(SUM(output_tokens) AS BIGINT) AS output_tokens, \
             CAST(SUM(cost_nanos) AS BIGINT) AS cost_nanos \
             FROM usage_hourly WHERE hour_ms >= $1 AND hour_ms < $2 GROUP BY hour_ms ORDER BY hour_ms",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.pool())
        .await?;
        let hist = sqlx::query(
            "SELECT hour_ms, bucket, CAST(SUM(count) AS BIGINT) AS n FROM usage_hourly_latency \
             WHERE hour_ms >= $1 AND hour_ms < $2 GROUP BY hour_ms, bucket",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.pool())
        .await?;
        Ok(hourly_from_rows(&rows, &hist)?)
    }

    /// Requests and spend per tenant over whole hours `from_ms <= hour < to_ms`.
    pub async fn spend_by_tenant(&self, from_ms: i64, to_ms: i64) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant_id, CAST(SUM(request_count) AS BIGINT) AS requests, CAST(SUM(cost_nanos) AS BIGINT) AS cost \
             FROM usage_hourly WHERE hour_ms >= $1 AND hour_ms < $2 GROUP BY tenant_id",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push((r.try_get("tenant_id")?, r.try_get("requests")?, r.try_get("cost")?));
        }
        Ok(out)
    }

    /// Requests and upstream failures per provider since `from_ms`.
    pub async fn provider_counts(&self, from_ms: i64) -> Result<Vec<ProviderCount>, StoreError> {
        Ok(sqlx::query_as::<_, ProviderCount>(
            "SELECT provider, COUNT(*) AS requests, \
             CAST(SUM(CASE WHEN outcome = 'upstream_error' THEN 1 ELSE 0 END) AS BIGINT) AS errors \
             FROM usage_records WHERE created_ms >= $1 AND provider IS NOT NULL GROUP BY provider",
        )
        .bind(from_ms)
        .fetch_all(self.pool())
        .await?)
    }

    /// Usage per (bucket of `bucket_ms`, group) for `from_ms <= t < to_ms`.
    pub async fn usage_cells(
        &self,
        group: UsageGroup,
        bucket_ms: i64,
        from_ms: i64,
        to_ms: i64,
        tenant_id: Option<&str>,
    ) -> Result<Vec<SeriesCell>, StoreError> {
        let key = group.sql();
        let bucket_ms = bucket_ms.max(1);
        let tenant_filter = if tenant_id.is_some() { " AND tenant_id = $3" } else { "" };
        let sql = format!(
            "SELECT CAST((created_ms / {bucket_ms}) * {bucket_ms} AS BIGINT) AS b, {key} AS k, COUNT(*) AS requests, \
             CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
             CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens, \
             CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) AS cost_nanos \
             FROM usage_records WHERE created_ms >= $1 AND created_ms < $2{tenant_filter} \
             GROUP BY CAST((created_ms / {bucket_ms}) * {bucket_ms} AS BIGINT), {key}"
        );
        let mut q = sqlx::query(&sql).bind(from_ms).bind(to_ms);
        if let Some(t) = tenant_id {
            q = q.bind(t);
        }
        let rows = q.fetch_all(self.pool()).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(SeriesCell {
                bucket_ms: r.try_get("b")?,
                key: group.read(r)?,
                requests: r.try_get("requests")?,
                input_tokens: r.try_get("input_tokens")?,
                output_tokens: r.try_get("output_tokens")?,
                cost_nanos: r.try_get("cost_nanos")?,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_prefix_escapes_wildcards() {
        assert_eq!(like_prefix("tenant."), "tenant.%");
        assert_eq!(like_prefix("a_b%c\\"), "a\\_b\\%c\\\\%");
    }
}
