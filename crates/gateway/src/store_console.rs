//! Storage for the console's admin endpoints: console users, the filtered
//! audit log, totals across tenants (overview) and usage series for cost
//! attribution charts. Portable SQL for SQLite and Postgres, like [`crate::store`].

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::store::{AuditEntry, HourlyDelta, Store, StoreError, UsageGroup, UserRow};

const USER_COLS: &str = "id, email, role, tenant_id, password_hash, disabled, created_at";

fn user_from_row(r: &AnyRow) -> Result<UserRow, sqlx::Error> {
    Ok(UserRow {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        role: r.try_get("role")?,
        tenant_id: r.try_get("tenant_id")?,
        password_hash: r.try_get("password_hash")?,
        disabled: r.try_get::<i64, _>("disabled")? != 0,
        created_at: r.try_get("created_at")?,
    })
}

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
#[derive(Debug, Clone, PartialEq, Eq)]
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
    // ---- users ---------------------------------------------------------

    pub async fn list_users(&self) -> Result<Vec<UserRow>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {USER_COLS} FROM users ORDER BY email")).fetch_all(self.pool()).await?;
        Ok(rows.iter().map(user_from_row).collect::<Result<_, _>>()?)
    }

    pub async fn get_user(&self, id: &str) -> Result<Option<UserRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(r) => Some(user_from_row(&r)?),
            None => None,
        })
    }

    pub async fn update_user(&self, u: &UserRow) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET role = $2, disabled = $3 WHERE id = $1")
            .bind(&u.id)
            .bind(&u.role)
            .bind(i64::from(u.disabled))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    // ---- audit ---------------------------------------------------------

    pub async fn list_audit_filtered(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let mut sql =
            String::from("SELECT id, at, actor, action, target, before_json, after_json FROM audit_log WHERE 1 = 1");
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
        let mut q = sqlx::query(&sql);
        for b in &binds {
            q = q.bind(b);
        }
        for n in &nums {
            q = q.bind(*n);
        }
        let rows = q.bind(f.limit).fetch_all(self.pool()).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(AuditEntry {
                id: r.try_get("id")?,
                at: r.try_get("at")?,
                actor: r.try_get("actor")?,
                action: r.try_get("action")?,
                target: r.try_get("target")?,
                before_json: r.try_get("before_json")?,
                after_json: r.try_get("after_json")?,
            });
        }
        Ok(out)
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
        let mut out = BTreeMap::new();
        for r in &rows {
            out.insert(
                r.try_get::<i64, _>("hour_ms")?,
                HourlyDelta {
                    request_count: r.try_get("request_count")?,
                    error_count: r.try_get("error_count")?,
                    rate_limit_hits: r.try_get("rate_limit_hits")?,
                    latency_sum_ms: r.try_get("latency_sum_ms")?,
                    input_tokens: r.try_get("input_tokens")?,
                    output_tokens: r.try_get("output_tokens")?,
                    cost_nanos: r.try_get("cost_nanos")?,
                    latency: BTreeMap::new(),
                },
            );
        }
        let hist = sqlx::query(
            "SELECT hour_ms, bucket, CAST(SUM(count) AS BIGINT) AS n FROM usage_hourly_latency \
             WHERE hour_ms >= $1 AND hour_ms < $2 GROUP BY hour_ms, bucket",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.pool())
        .await?;
        for r in &hist {
            let hour: i64 = r.try_get("hour_ms")?;
            if let Some(d) = out.get_mut(&hour) {
                d.latency.insert(r.try_get("bucket")?, r.try_get("n")?);
            }
        }
        Ok(out)
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
        let rows = sqlx::query(
            "SELECT provider, COUNT(*) AS requests, \
             CAST(SUM(CASE WHEN outcome = 'upstream_error' THEN 1 ELSE 0 END) AS BIGINT) AS errors \
             FROM usage_records WHERE created_ms >= $1 AND provider IS NOT NULL GROUP BY provider",
        )
        .bind(from_ms)
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(ProviderCount {
                provider: r.try_get("provider")?,
                requests: r.try_get("requests")?,
                errors: r.try_get("errors")?,
            });
        }
        Ok(out)
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
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn like_prefix_escapes_wildcards() {
        assert_eq!(like_prefix("tenant."), "tenant.%");
        assert_eq!(like_prefix("a_b%c\\"), "a\\_b\\%c\\\\%");
    }
}
