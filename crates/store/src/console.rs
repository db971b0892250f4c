//! Storage for the console's admin endpoints: the filtered audit log,
//! totals across tenants (overview) and usage series for cost attribution
//! charts. Portable SQL for SQLite and Postgres, like [`crate`].

use std::collections::{BTreeMap, HashMap};

use sheepdog_types::{Role, TenantStatus, Tier};
use sqlx::Row;

use crate::audit::{AuditEntry, AUDIT_COLS};
use crate::db::{Backend, Store, StoreError};
use crate::keys::{key_from_row, KeyRow, KEY_COLS};
use crate::tenants::{tenant_from_row, TenantRow, TENANT_COLS};
use crate::usage::{hourly_from_rows, HourlyDelta, UsageGroup, DAY_MS, HOUR_MS};
use crate::users::{user_from_row, UserRow, USER_COLS};

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
    /// Rows skipped before the first (newest first).
    pub offset: i64,
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

/// A series cell from a row of `b`, `requests`, `input_tokens`,
/// `output_tokens`, `cost_nanos`, and its group's key.
fn cell_from_row(r: &sqlx::any::AnyRow, key: String) -> Result<SeriesCell, StoreError> {
    Ok(SeriesCell {
        bucket_ms: r.try_get("b")?,
        key,
        requests: r.try_get("requests")?,
        input_tokens: r.try_get("input_tokens")?,
        output_tokens: r.try_get("output_tokens")?,
        cost_nanos: r.try_get("cost_nanos")?,
    })
}

/// Requests per provider since some time.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ProviderCount {
    pub provider: String,
    pub requests: i64,
    pub errors: i64,
}

/// Escapes `%`, `_` and `\` for a LIKE pattern.
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A LIKE pattern matching `text` as a prefix.
fn like_prefix(text: &str) -> String {
    format!("{}%", like_escape(text))
}

/// A LIKE pattern matching `text` anywhere.
fn like_contains(text: &str) -> String {
    format!("%{}%", like_escape(text))
}

/// Filters of the tenant list (all optional): `q` matches the name or an
/// alias anywhere (case-insensitive) or the id as a prefix.
#[derive(Debug, Clone, Default)]
pub struct TenantFilter {
    pub q: Option<String>,
    pub tier: Option<Tier>,
    pub status: Option<TenantStatus>,
}

/// Filters of the console user list: `q` matches the e-mail anywhere.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub q: Option<String>,
    pub role: Option<Role>,
}

/// One page of a list and how many rows match in all.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub rows: Vec<T>,
    pub total: i64,
}

/// A WHERE clause of text binds, numbered from `$1`.
#[derive(Debug, Default)]
struct Where {
    sql: String,
    binds: Vec<String>,
}

impl Where {
    fn bind(&mut self, value: String) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    fn and(&mut self, clause: String) {
        self.sql.push_str(if self.sql.is_empty() { " WHERE " } else { " AND " });
        self.sql.push_str(&clause);
    }
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl Store {
    // ---- audit ---------------------------------------------------------

    /// The WHERE clause of an audit filter: text binds then numeric binds.
    fn audit_where(f: &AuditFilter) -> (String, Vec<String>, Vec<i64>) {
        let mut sql = String::from(" WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        let mut nums: Vec<i64> = Vec::new();
        for (col, value) in [("actor", &f.actor), ("action", &f.action), ("target", &f.target)] {
            if let Some(v) = given(value) {
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
        (sql, binds, nums)
    }

    /// The newest audit entries matching `f` (`limit` of them after `offset`).
    pub async fn list_audit_filtered(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let (clause, binds, nums) = Self::audit_where(f);
        let n = binds.len() + nums.len();
        let sql = format!(
            "SELECT {AUDIT_COLS} FROM audit_log{clause} ORDER BY at_ms DESC, id DESC LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        let mut q = sqlx::query_as::<_, AuditEntry>(&sql);
        for b in &binds {
            q = q.bind(b);
        }
        for v in &nums {
            q = q.bind(*v);
        }
        Ok(q.bind(f.limit).bind(f.offset.max(0)).fetch_all(self.pool()).await?)
    }

    /// How many audit entries match `f` (its `limit` and `offset` aside).
    pub async fn count_audit_filtered(&self, f: &AuditFilter) -> Result<i64, StoreError> {
        let (clause, binds, nums) = Self::audit_where(f);
        let sql = format!("SELECT COUNT(*) AS n FROM audit_log{clause}");
        let mut q = sqlx::query(&sql);
        for b in &binds {
            q = q.bind(b);
        }
        for v in &nums {
            q = q.bind(*v);
        }
        Ok(q.fetch_one(self.pool()).await?.try_get("n")?)
    }

    /// How many rows of `table` match `w`, and `limit` of them (columns
    /// `cols`, in `order`) after `offset`.
    async fn count_and_page(
        &self,
        table: &str,
        cols: &str,
        w: &Where,
        order: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(i64, Vec<sqlx::any::AnyRow>), StoreError> {
        let count_sql = format!("SELECT COUNT(*) AS n FROM {table}{}", w.sql);
        let mut count = sqlx::query(&count_sql);
        for b in &w.binds {
            count = count.bind(b);
        }
        let total: i64 = count.fetch_one(self.pool()).await?.try_get("n")?;
        let n = w.binds.len();
        let sql = format!("SELECT {cols} FROM {table}{} ORDER BY {order} LIMIT ${} OFFSET ${}", w.sql, n + 1, n + 2);
        let mut q = sqlx::query(&sql);
        for b in &w.binds {
            q = q.bind(b);
        }
        Ok((total, q.bind(limit).bind(offset.max(0)).fetch_all(self.pool()).await?))
    }

    /// One page of tenants matching `f`, ordered by name (case-insensitive)
    /// then id, with their aliases, and the number of matches.
    pub async fn list_tenants_page(
        &self,
        f: &TenantFilter,
        limit: i64,
        offset: i64,
    ) -> Result<Page<TenantRow>, StoreError> {
        let mut w = Where::default();
        if let Some(q) = given(&f.q) {
            let contains = w.bind(like_contains(&q.to_lowercase()));
            let prefix = w.bind(like_prefix(q));
            w.and(format!(
                "(LOWER(name) LIKE {contains} ESCAPE '\\' OR id LIKE {prefix} ESCAPE '\\' OR id IN \
                 (SELECT tenant_id FROM tenant_aliases WHERE LOWER(alias) LIKE {contains} ESCAPE '\\'))"
            ));
        }
        for (col, v) in [("tier", f.tier.map(Tier::as_str)), ("status", f.status.map(TenantStatus::as_str))] {
            if let Some(v) = v {
                let p = w.bind(v.to_string());
                w.and(format!("{col} = {p}"));
            }
        }
        let (total, rows) = self.count_and_page("tenants", TENANT_COLS, &w, "LOWER(name), id", limit, offset).await?;
        let mut tenants = rows.iter().map(tenant_from_row).collect::<Result<Vec<_>, _>>()?;
        if !tenants.is_empty() {
            let marks: Vec<String> = (1..=tenants.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT alias, tenant_id FROM tenant_aliases WHERE tenant_id IN ({}) ORDER BY alias",
                marks.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for t in &tenants {
                q = q.bind(&t.id);
            }
            let mut by_tenant: HashMap<String, Vec<String>> = HashMap::new();
            for r in q.fetch_all(self.pool()).await? {
                by_tenant.entry(r.try_get("tenant_id")?).or_default().push(r.try_get("alias")?);
            }
            for t in &mut tenants {
                t.aliases = by_tenant.remove(&t.id).unwrap_or_default();
            }
        }
        Ok(Page { rows: tenants, total })
    }

    /// One page of console users matching `f`, ordered by e-mail, and the
    /// number of matches.
    pub async fn list_users_page(&self, f: &UserFilter, limit: i64, offset: i64) -> Result<Page<UserRow>, StoreError> {
        let mut w = Where::default();
        if let Some(q) = given(&f.q) {
            let p = w.bind(like_contains(&q.to_lowercase()));
            w.and(format!("LOWER(email) LIKE {p} ESCAPE '\\'"));
        }
        if let Some(r) = f.role {
            let p = w.bind(r.as_str().to_string());
            w.and(format!("role = {p}"));
        }
        let (total, rows) = self.count_and_page("users", USER_COLS, &w, "email", limit, offset).await?;
        Ok(Page { rows: rows.iter().map(user_from_row).collect::<Result<_, _>>()?, total })
    }

    /// One page of a tenant's keys, newest first, and how many it has.
    pub async fn list_tenant_keys_page(
        &self,
        tenant_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Page<KeyRow>, StoreError> {
        let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM api_keys WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_one(self.pool())
            .await?
            .try_get("n")?;
        let sql = format!(
            "SELECT {KEY_COLS} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
        );
        let rows = sqlx::query(&sql).bind(tenant_id).bind(limit).bind(offset.max(0)).fetch_all(self.pool()).await?;
        Ok(Page { rows: rows.iter().map(key_from_row).collect::<Result<_, _>>()?, total })
    }

    // ---- totals across tenants -----------------------------------------

    /// Hourly buckets summed over every tenant, with merged latency
    /// histograms: read from the per-hour totals (`usage_hourly_all`), one
    /// row per hour whatever the number of tenants.
    pub async fn hourly_all(&self, from_ms: i64, to_ms: i64) -> Result<BTreeMap<i64, HourlyDelta>, StoreError> {
        let rows = sqlx::query(
            "SELECT hour_ms, request_count, error_count, rate_limit_hits, latency_sum_ms, input_tokens, output_tokens, \
             cost_nanos FROM usage_hourly_all WHERE hour_ms >= $1 AND hour_ms < $2 ORDER BY hour_ms",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.pool())
        .await?;
        let hist = sqlx::query(
            "SELECT hour_ms, bucket, count AS n FROM usage_hourly_all_latency WHERE hour_ms >= $1 AND hour_ms < $2",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.pool())
        .await?;
        Ok(hourly_from_rows(&rows, &hist)?)
    }

    /// The `limit` tenants with the most spend (then requests, then id)
    /// over `from_ms <= t < to_ms`, with their requests and spend, ranked
    /// and cut by the database. It reads what a usage series with the whole
    /// window as one bucket reads (see [`Store::usage_cells`]): the daily
    /// rollup on whole days, `usage_hourly` on whole hours (only hours with
    /// requests), the records otherwise; every tenant listed has requests.
    pub async fn spend_by_tenant(
        &self,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let source = CellSource::new(UsageGroup::Tenant, (to_ms - from_ms).max(1), from_ms, to_ms, None);
        let mut conn = self.pool().acquire().await?;
        let top = source.read(&mut conn, Shape::Top(limit), &[]).await?;
        Ok(top.into_iter().map(|c| (c.key, c.requests, c.cost_nanos)).collect())
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
    ///
    /// Across tenants it reads the rollups, which hold the same sums as the
    /// records: on whole UTC days with day-multiple buckets,
    /// `usage_daily_groups` (by tenant, model, cost center and client
    /// format); on whole hours with hour-multiple buckets,
    /// `usage_hourly_groups` (by model, cost center and client format) and
    /// `usage_hourly` (by tenant). Otherwise the records themselves.
    pub async fn usage_cells(
        &self,
        group: UsageGroup,
        bucket_ms: i64,
        from_ms: i64,
        to_ms: i64,
        tenant_id: Option<&str>,
    ) -> Result<Vec<SeriesCell>, StoreError> {
        let source = CellSource::new(group, bucket_ms.max(1), from_ms, to_ms, tenant_id);
        let mut conn = self.pool().acquire().await?;
        source.read(&mut conn, Shape::Cells, &[]).await
    }

    /// [`Store::usage_cells`] cut to the `top` groups with the most cost
    /// (then requests, then key), and per bucket one cell keyed `other`
    /// summing every other group, with how many groups that is (0: at most
    /// `top + 1` groups, all returned as they are). Read in one snapshot,
    /// so the sums are exactly those of every group; the database ranks the
    /// groups and sums the rest, so 10,000 tenants over 30 days return a few
    /// hundred cells instead of 300,000.
    pub async fn usage_top_cells(
        &self,
        cells: (UsageGroup, i64, i64, i64, Option<&str>),
        top: usize,
        other: &str,
    ) -> Result<(Vec<SeriesCell>, usize), StoreError> {
        let (group, bucket_ms, from_ms, to_ms, tenant_id) = cells;
        let source = CellSource::new(group, bucket_ms.max(1), from_ms, to_ms, tenant_id);
        let mut tx = match self.backend() {
            Backend::Sqlite => self.pool().begin_with("BEGIN").await?,
            Backend::Postgres => self.pool().begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?,
        };
        let mut totals = source.read(&mut tx, Shape::KeyTotals, &[]).await?;
        if totals.len() <= top + 1 {
            let all = source.read(&mut tx, Shape::Cells, &[]).await?;
            tx.commit().await?;
            return Ok((all, 0));
        }
        totals
            .sort_by(|a, b| b.cost_nanos.cmp(&a.cost_nanos).then(b.requests.cmp(&a.requests)).then(a.key.cmp(&b.key)));
        let keys: Vec<String> = totals.iter().take(top).map(|c| c.key.clone()).collect();
        let mut cells = source.read(&mut tx, Shape::Cells, &keys).await?;
        let buckets = source.read(&mut tx, Shape::BucketTotals, &[]).await?;
        tx.commit().await?;
        // The rest, per bucket: everything minus the top groups.
        let mut rest: BTreeMap<i64, SeriesCell> = buckets.into_iter().map(|c| (c.bucket_ms, c)).collect();
        for c in &cells {
            if let Some(r) = rest.get_mut(&c.bucket_ms) {
                r.requests -= c.requests;
                r.input_tokens -= c.input_tokens;
                r.output_tokens -= c.output_tokens;
                r.cost_nanos -= c.cost_nanos;
            }
        }
        cells.extend(
            rest.into_values()
                .filter(|r| (r.requests, r.input_tokens, r.output_tokens, r.cost_nanos) != (0, 0, 0, 0))
                .map(|r| SeriesCell { key: other.to_string(), ..r }),
        );
        Ok((cells, totals.len() - top))
    }
}

/// What [`CellSource::read`] sums by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Per (bucket, group).
    Cells,
    /// Per group over the whole range (`bucket_ms` 0).
    KeyTotals,
    /// Per bucket over every group (key empty).
    BucketTotals,
    /// [`Shape::KeyTotals`] of the groups with the most cost (then
    /// requests, then key), at most this many, in that order.
    Top(usize),
}

/// Where usage cells are read from: a rollup (see [`Store::usage_cells`])
/// or the usage records.
struct CellSource<'a> {
    table: &'static str,
    time_column: &'static str,
    /// The group's SQL expression (selected as `k`).
    key: &'static str,
    /// `usage_daily_groups` / `usage_hourly_groups`: the dimension.
    dimension: Option<&'static str>,
    /// The records: counted (`COUNT(*)`) and keyed by [`UsageGroup::read`].
    records: Option<UsageGroup>,
    /// Only this tenant (the records).
    tenant: Option<&'a str>,
    bucket_ms: i64,
    from_ms: i64,
    to_ms: i64,
}

impl<'a> CellSource<'a> {
    fn new(group: UsageGroup, bucket_ms: i64, from_ms: i64, to_ms: i64, tenant: Option<&'a str>) -> CellSource<'a> {
        let whole = |unit: i64| [from_ms, to_ms, bucket_ms].iter().all(|t| t.rem_euclid(unit) == 0);
        let rollup = |table, time_column, key, dimension| CellSource {
            table,
            time_column,
            key,
            dimension,
            records: None,
            tenant: None,
            bucket_ms,
            from_ms,
            to_ms,
        };
        if tenant.is_none() {
            match (group.daily_rollup(), group.rollup()) {
                (Some(d), _) if whole(DAY_MS) => return rollup("usage_daily_groups", "day_ms", "group_key", Some(d)),
                (_, Some(d)) if whole(HOUR_MS) => {
                    return rollup("usage_hourly_groups", "hour_ms", "group_key", Some(d))
                }
                _ if group == UsageGroup::Tenant && whole(HOUR_MS) => {
                    return rollup("usage_hourly", "hour_ms", "tenant_id", None)
                }
                _ => {}
            }
        }
        CellSource {
            table: "usage_records",
            time_column: "created_ms",
            key: group.sql(),
            dimension: None,
            records: Some(group),
            tenant,
            bucket_ms,
            from_ms,
            to_ms,
        }
    }

    /// The cells in `shape`; with `keys`, only those groups'.
    async fn read(
        &self,
        conn: &mut sqlx::AnyConnection,
        shape: Shape,
        keys: &[String],
    ) -> Result<Vec<SeriesCell>, StoreError> {
        let (table, t, key, bucket_ms) = (self.table, self.time_column, self.key, self.bucket_ms);
        let bucket = format!("CAST(({t} / {bucket_ms}) * {bucket_ms} AS BIGINT)");
        let sums = if self.records.is_some() {
            "COUNT(*) AS requests, CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
             CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens, \
             CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) AS cost_nanos"
        } else {
            "CAST(SUM(request_count) AS BIGINT) AS requests, CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, \
             CAST(SUM(output_tokens) AS BIGINT) AS output_tokens, CAST(SUM(cost_nanos) AS BIGINT) AS cost_nanos"
        };
        let mut filter = String::new();
        let mut n = 2;
        let mut mark = || {
            n += 1;
            format!("${n}")
        };
        if self.dimension.is_some() {
            filter += &format!(" AND dimension = {}", mark());
        }
        if self.tenant.is_some() {
            filter += &format!(" AND tenant_id = {}", mark());
        }
        if table == "usage_hourly" {
            // Hours with only rate-limit refusals hold no request: not a group.
            filter += " AND request_count > 0";
        }
        if !keys.is_empty() {
            let marks: Vec<String> = keys.iter().map(|_| mark()).collect();
            filter += &format!(" AND {key} IN ({})", marks.join(", "));
        }
        let (select, group_by) = match shape {
            Shape::Cells => (format!("{bucket} AS b, {key} AS k"), format!("{bucket}, {key}")),
            Shape::KeyTotals | Shape::Top(_) => (format!("CAST(0 AS BIGINT) AS b, {key} AS k"), key.to_string()),
            Shape::BucketTotals => (format!("{bucket} AS b, '' AS k"), bucket.clone()),
        };
        let order = match shape {
            Shape::Top(limit) => format!(" ORDER BY cost_nanos DESC, requests DESC, k LIMIT {limit}"),
            _ => String::new(),
        };
        let sql = format!(
            "SELECT {select}, {sums} FROM {table} WHERE {t} >= $1 AND {t} < $2{filter} GROUP BY {group_by}{order}"
        );
        let mut q = sqlx::query(&sql).bind(self.from_ms).bind(self.to_ms);
        if let Some(d) = self.dimension {
            q = q.bind(d);
        }
        if let Some(tenant) = self.tenant {
            q = q.bind(tenant);
        }
        for k in keys {
            q = q.bind(k);
        }
        let rows = q.fetch_all(&mut *conn).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let k = match self.records {
                Some(group) if shape != Shape::BucketTotals => group.read(r)?,
                _ => r.try_get("k")?,
            };
            out.push(cell_from_row(r, k)?);
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
