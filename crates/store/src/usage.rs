//! The usage tables: `usage_records` (billing source of truth),
//! `usage_hourly` and `usage_hourly_latency` (additive hourly aggregates),
//! and the queries over them. A usage batch also debits pooled tenants'
//! credit pools ([`crate::pools`]) in the same transaction.

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::any::AnyRow;
use sqlx::{FromRow, Row};

use crate::db::{multi_row_insert, push_arg, Store, StoreError};
use crate::pools::{insert_ledger_on, kind, LedgerEntry};
use sheepdog_types::time;

/// One usage record (billing source of truth). Serializable: the gateway's
/// journal keeps each one on disk until it is in the database.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UsageRecord {
    pub id: String,
    pub request_id: String,
    pub tenant_id: String,
    pub key_id: Option<String>,
    pub cost_center: Option<String>,
    pub model_requested: String,
    pub model_served: Option<String>,
    pub provider: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub cost_nanos: i64,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
    pub status_code: i64,
    /// `ok`, `upstream_error`, `client_cancelled`, `server_shutdown`,
    /// `rejected`, `interrupted` (in flight when its replica died).
    pub outcome: String,
    pub error_code: Option<String>,
    pub stream: bool,
    /// When the request arrived (ms since the Unix epoch, UTC); shown as RFC
    /// 3339 with [`time::ms_to_rfc3339`] (not stored twice).
    pub created_ms: i64,
    /// The credit pool debited for this request (pooled tenants).
    pub pool_id: Option<String>,
    /// The client format the request came in: `chat`, `messages`,
    /// `responses` or `embeddings` (records journaled before the column
    /// existed read as `chat`).
    #[serde(default = "chat_ingress")]
    pub ingress: String,
}

/// The ingress of records that do not name one.
pub fn chat_ingress() -> String {
    "chat".to_string()
}

/// Additive hourly aggregate for one tenant and hour.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct HourlyDelta {
    pub request_count: i64,
    pub error_count: i64,
    pub rate_limit_hits: i64,
    pub latency_sum_ms: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_nanos: i64,
    /// Latency histogram: bucket index → count.
    #[sqlx(skip)]
    pub latency: BTreeMap<i64, i64>,
}

impl HourlyDelta {
    /// Adds another delta (every count and the histogram).
    pub fn add(&mut self, d: &HourlyDelta) {
        self.request_count += d.request_count;
        self.error_count += d.error_count;
        self.rate_limit_hits += d.rate_limit_hits;
        self.latency_sum_ms += d.latency_sum_ms;
        self.input_tokens += d.input_tokens;
        self.output_tokens += d.output_tokens;
        self.cost_nanos += d.cost_nanos;
        for (bucket, count) in &d.latency {
            *self.latency.entry(*bucket).or_insert(0) += count;
        }
    }
}

/// A stored hourly bucket with its histogram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourlyRow {
    pub hour_ms: i64,
    pub delta: HourlyDelta,
}

/// A usage aggregate row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageAggregate {
    pub key: String,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub cost_nanos: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageGroup {
    Tenant,
    CostCenter,
    Model,
    Day,
    /// The client format (`chat`, `messages`, `responses`, `embeddings`).
    Ingress,
}

impl UsageGroup {
    /// The group named in the admin API's `group_by`.
    pub fn from_name(name: &str) -> Option<UsageGroup> {
        Some(match name {
            "tenant" => UsageGroup::Tenant,
            "cost_center" => UsageGroup::CostCenter,
            "model" => UsageGroup::Model,
            "day" => UsageGroup::Day,
            "ingress" => UsageGroup::Ingress,
            _ => return None,
        })
    }

    /// The `usage_hourly_groups` dimension holding this group, if any (a
    /// tenant's hours are `usage_hourly`).
    pub(crate) fn rollup(self) -> Option<&'static str> {
        match self {
            UsageGroup::CostCenter => Some("cost_center"),
            UsageGroup::Model => Some("model"),
            UsageGroup::Ingress => Some("ingress"),
            UsageGroup::Tenant | UsageGroup::Day => None,
        }
    }

    /// The `usage_daily_groups` dimension holding this group, if any.
    pub(crate) fn daily_rollup(self) -> Option<&'static str> {
        match self {
            UsageGroup::Tenant => Some("tenant"),
            UsageGroup::Day => None,
            other => other.rollup(),
        }
    }

    /// The SQL expression usage queries group by (selected as `k`). A day is
    /// grouped as its number since the epoch (UTC): portable integer SQL.
    pub(crate) fn sql(self) -> &'static str {
        match self {
            UsageGroup::Tenant => "tenant_id",
            UsageGroup::CostCenter => "COALESCE(cost_center, '(none)')",
            UsageGroup::Model => "model_requested",
            UsageGroup::Day => "CAST(created_ms / 86400000 AS BIGINT)",
            UsageGroup::Ingress => "ingress",
        }
    }

    /// The group's key of a row: the value itself, or a day as `YYYY-MM-DD`.
    pub(crate) fn read(self, row: &AnyRow) -> Result<String, StoreError> {
        match self {
            UsageGroup::Day => {
                let day: i64 = row.try_get("k")?;
                let mut date = time::ms_to_rfc3339(day.saturating_mul(86_400_000));
                date.truncate(10);
                Ok(date)
            }
            _ => Ok(row.try_get("k")?),
        }
    }
}

/// A group's sums in a rollup of the usage records (`usage_hourly_groups`,
/// `usage_daily_groups`).
#[derive(Debug, Default, Clone, Copy)]
struct GroupSums {
    requests: i64,
    input_tokens: i64,
    output_tokens: i64,
    cost_nanos: i64,
}

impl GroupSums {
    fn add(&mut self, r: &UsageRecord) {
        self.requests += 1;
        self.input_tokens += r.input_tokens;
        self.output_tokens += r.output_tokens;
        self.cost_nanos += r.cost_nanos;
    }
}

/// The additive columns of an hourly bucket, in [`bind_delta`]'s order.
const HOURLY_COLUMNS: [&str; 7] = [
    "request_count",
    "error_count",
    "rate_limit_hits",
    "latency_sum_ms",
    "input_tokens",
    "output_tokens",
    "cost_nanos",
];

/// `INSERT INTO table (keys…, counts…) VALUES ($1…) ON CONFLICT (keys) DO
/// UPDATE` adding each count to the stored value: how every rollup table
/// (hourly buckets, latency histograms, groups) is kept.
fn additive_upsert(table: &str, keys: &[&str], counts: &[&str]) -> String {
    let columns: Vec<&str> = keys.iter().chain(counts).copied().collect();
    let marks: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
    let sums: Vec<String> = counts.iter().map(|c| format!("{c} = {table}.{c} + excluded.{c}")).collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}",
        columns.join(", "),
        marks.join(","),
        keys.join(", "),
        sums.join(", ")
    )
}

/// Binds a delta's [`HOURLY_COLUMNS`] after the key columns.
fn bind_delta<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    d: &HourlyDelta,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    q.bind(d.request_count)
        .bind(d.error_count)
        .bind(d.rate_limit_hits)
        .bind(d.latency_sum_ms)
        .bind(d.input_tokens)
        .bind(d.output_tokens)
        .bind(d.cost_nanos)
}

/// An hour in milliseconds: the width of the hourly rollups.
pub(crate) const HOUR_MS: i64 = 3_600_000;

/// A UTC day in milliseconds: the width of the daily rollups.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// The cost center of a record without one, in reports.
pub(crate) const NO_COST_CENTER: &str = "(none)";

const USAGE_COLUMNS: usize = 21;
/// Rows per multi-row INSERT (21 × 50 = 1,050 parameters, far below SQLite's
/// and Postgres's limits).
const USAGE_ROWS_PER_INSERT: usize = 50;

impl Store {
    /// Which of these records (tenant, created_ms, id: the primary key) are
    /// stored already.
    pub async fn stored_usage_ids(&self, records: &[UsageRecord]) -> Result<HashSet<String>, StoreError> {
        let mut found = HashSet::new();
        for r in records {
            let row = sqlx::query("SELECT id FROM usage_records WHERE tenant_id = $1 AND created_ms = $2 AND id = $3")
                .bind(&r.tenant_id)
                .bind(r.created_ms)
                .bind(&r.id)
                .fetch_optional(self.pool())
                .await?;
            if row.is_some() {
                found.insert(r.id.clone());
            }
        }
        Ok(found)
    }

    /// Whether a usage record with this id is stored.
    pub async fn usage_record_exists(&self, id: &str) -> Result<bool, StoreError> {
        let row =
            sqlx::query("SELECT id FROM usage_records WHERE id = $1").bind(id).fetch_optional(self.pool()).await?;
        Ok(row.is_some())
    }

    /// Writes a batch of usage records and their hourly aggregates in one transaction.
    pub async fn write_usage_batch(
        &self,
        records: &[UsageRecord],
        hourly: &BTreeMap<(String, i64), HourlyDelta>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        // Many rows per statement: one round trip per chunk, not per record.
        for chunk in records.chunks(USAGE_ROWS_PER_INSERT) {
            let sql = multi_row_insert(
                self.backend(),
                "INSERT INTO usage_records (id, request_id, tenant_id, key_id, cost_center, model_requested, model_served, \
                 provider, input_tokens, output_tokens, cached_tokens, cost_nanos, latency_ms, ttft_ms, status_code, outcome, \
                 error_code, stream, created_ms, pool_id, ingress) VALUES ",
                USAGE_COLUMNS,
                chunk.len(),
            );
            // Arguments sized up front: bound one by one, 1,050 values per
            // statement grew their vector ten times over.
            let mut args = sqlx::any::AnyArguments::default();
            sqlx::Arguments::reserve(&mut args, chunk.len() * USAGE_COLUMNS, 0);
            for r in chunk {
                push_arg(&mut args, &r.id)?;
                push_arg(&mut args, &r.request_id)?;
                push_arg(&mut args, &r.tenant_id)?;
                push_arg(&mut args, &r.key_id)?;
                push_arg(&mut args, &r.cost_center)?;
                push_arg(&mut args, &r.model_requested)?;
                push_arg(&mut args, &r.model_served)?;
                push_arg(&mut args, &r.provider)?;
                push_arg(&mut args, r.input_tokens)?;
                push_arg(&mut args, r.output_tokens)?;
                push_arg(&mut args, r.cached_tokens)?;
                push_arg(&mut args, r.cost_nanos)?;
                push_arg(&mut args, r.latency_ms)?;
                push_arg(&mut args, r.ttft_ms)?;
                push_arg(&mut args, r.status_code)?;
                push_arg(&mut args, &r.outcome)?;
                push_arg(&mut args, &r.error_code)?;
                push_arg(&mut args, i64::from(r.stream))?;
                push_arg(&mut args, r.created_ms)?;
                push_arg(&mut args, &r.pool_id)?;
                push_arg(&mut args, &r.ingress)?;
            }
            sqlx::query_with(&sql, args).execute(&mut *tx).await?;
        }
        // Pooled tenants' usage debits their pool's ledger, in the same transaction.
        insert_usage_debits(&mut tx, records).await?;
        let tenant_sql = additive_upsert("usage_hourly", &["tenant_id", "hour_ms"], &HOURLY_COLUMNS);
        let tenant_latency_sql =
            additive_upsert("usage_hourly_latency", &["tenant_id", "hour_ms", "bucket"], &["count"]);
        for ((tenant, hour), d) in hourly {
            bind_delta(sqlx::query(&tenant_sql).bind(tenant).bind(*hour), d).execute(&mut *tx).await?;
            for (bucket, count) in &d.latency {
                sqlx::query(&tenant_latency_sql)
                    .bind(tenant)
                    .bind(*hour)
                    .bind(*bucket)
                    .bind(*count)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        // The records summed by model, cost center and client format per
        // hour over tenants (`usage_hourly_groups`), and by those and by
        // tenant per UTC day (`usage_daily_groups`).
        let mut hours: BTreeMap<(i64, &'static str, &str), GroupSums> = BTreeMap::new();
        let mut days: BTreeMap<(i64, &'static str, &str), GroupSums> = BTreeMap::new();
        for r in records {
            let hour = r.created_ms - r.created_ms.rem_euclid(HOUR_MS);
            let day = r.created_ms - r.created_ms.rem_euclid(DAY_MS);
            let center = r.cost_center.as_deref().unwrap_or(NO_COST_CENTER);
            for (dimension, key) in
                [("model", r.model_requested.as_str()), ("cost_center", center), ("ingress", r.ingress.as_str())]
            {
                hours.entry((hour, dimension, key)).or_default().add(r);
                days.entry((day, dimension, key)).or_default().add(r);
            }
            days.entry((day, "tenant", r.tenant_id.as_str())).or_default().add(r);
        }
        for (table, time_column, sums) in
            [("usage_hourly_groups", "hour_ms", &hours), ("usage_daily_groups", "day_ms", &days)]
        {
            let sql = additive_upsert(
                table,
                &[time_column, "dimension", "group_key"],
                &["request_count", "input_tokens", "output_tokens", "cost_nanos"],
            );
            for ((at, dimension, key), g) in sums {
                sqlx::query(&sql)
                    .bind(*at)
                    .bind(*dimension)
                    .bind(*key)
                    .bind(g.requests)
                    .bind(g.input_tokens)
                    .bind(g.output_tokens)
                    .bind(g.cost_nanos)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        // The same deltas summed over tenants: one row per hour (`usage_hourly_all`).
        let mut all: BTreeMap<i64, HourlyDelta> = BTreeMap::new();
        for ((_, hour), d) in hourly {
            all.entry(*hour).or_default().add(d);
        }
        let all_sql = additive_upsert("usage_hourly_all", &["hour_ms"], &HOURLY_COLUMNS);
        let all_latency_sql = additive_upsert("usage_hourly_all_latency", &["hour_ms", "bucket"], &["count"]);
        for (hour, d) in &all {
            bind_delta(sqlx::query(&all_sql).bind(*hour), d).execute(&mut *tx).await?;
            for (bucket, count) in &d.latency {
                sqlx::query(&all_latency_sql).bind(*hour).bind(*bucket).bind(*count).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Hourly buckets of one tenant with `from_ms <= hour < to_ms`.
    pub async fn hourly(&self, tenant_id: &str, from_ms: i64, to_ms: i64) -> Result<Vec<HourlyRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT hour_ms, request_count, error_count, rate_limit_hits, latency_sum_ms, input_tokens, output_tokens, cost_nanos \
             FROM usage_hourly WHERE tenant_id = $1 AND hour_ms >= $2 AND hour_ms < $3 ORDER BY hour_ms",
        )
        .bind(tenant_id)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.pool())
        .await?;
        let hist = sqlx::query(
            "SELECT hour_ms, bucket, count AS n FROM usage_hourly_latency WHERE tenant_id = $1 AND hour_ms >= $2 AND hour_ms < $3",
        )
        .bind(tenant_id)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.pool())
        .await?;
        let out = hourly_from_rows(&rows, &hist)?;
        Ok(out.into_iter().map(|(hour_ms, delta)| HourlyRow { hour_ms, delta }).collect())
    }

    /// Usage grouped by tenant, cost center, model or day, for `from_ms <= t < to_ms`.
    pub async fn usage(
        &self,
        group: UsageGroup,
        from_ms: i64,
        to_ms: i64,
        tenant_id: Option<&str>,
    ) -> Result<Vec<UsageAggregate>, StoreError> {
        let key = group.sql();
        let tenant_filter = if tenant_id.is_some() { " AND tenant_id = $3" } else { "" };
        let sql = format!(
            "SELECT {key} AS k, COUNT(*) AS requests, CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
             CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens, \
             CAST(COALESCE(SUM(cached_tokens), 0) AS BIGINT) AS cached_tokens, \
             CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) AS cost_nanos \
             FROM usage_records WHERE created_ms >= $1 AND created_ms < $2{tenant_filter} GROUP BY {key} ORDER BY {key}"
        );
        let mut q = sqlx::query(&sql).bind(from_ms).bind(to_ms);
        if let Some(t) = tenant_id {
            q = q.bind(t);
        }
        let rows = q.fetch_all(self.pool()).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(UsageAggregate {
                key: group.read(r)?,
                requests: r.try_get("requests")?,
                input_tokens: r.try_get("input_tokens")?,
                output_tokens: r.try_get("output_tokens")?,
                cached_tokens: r.try_get("cached_tokens")?,
                cost_nanos: r.try_get("cost_nanos")?,
            });
        }
        Ok(out)
    }

    /// Spend per tenant since `from_ms` (this month's spend, loaded at start).
    pub async fn spend_since(&self, from_ms: i64) -> Result<HashMap<String, i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant_id, CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) AS cost FROM usage_records \
             WHERE created_ms >= $1 GROUP BY tenant_id",
        )
        .bind(from_ms)
        .fetch_all(self.pool())
        .await?;
        let mut out = HashMap::new();
        for r in &rows {
            out.insert(r.try_get("tenant_id")?, r.try_get("cost")?);
        }
        Ok(out)
    }

    /// All usage records of a tenant (oldest first), for audits and tests.
    pub async fn usage_records(&self, tenant_id: &str) -> Result<Vec<UsageRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, request_id, tenant_id, key_id, cost_center, model_requested, model_served, provider, input_tokens, \
             output_tokens, cached_tokens, cost_nanos, latency_ms, ttft_ms, status_code, outcome, error_code, stream, \
             created_ms, pool_id, ingress FROM usage_records WHERE tenant_id = $1 ORDER BY created_ms, id",
        )
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(UsageRecord {
                id: r.try_get("id")?,
                request_id: r.try_get("request_id")?,
                tenant_id: r.try_get("tenant_id")?,
                key_id: r.try_get("key_id")?,
                cost_center: r.try_get("cost_center")?,
                model_requested: r.try_get("model_requested")?,
                model_served: r.try_get("model_served")?,
                provider: r.try_get("provider")?,
                input_tokens: r.try_get("input_tokens")?,
                output_tokens: r.try_get("output_tokens")?,
                cached_tokens: r.try_get("cached_tokens")?,
                cost_nanos: r.try_get("cost_nanos")?,
                latency_ms: r.try_get("latency_ms")?,
                ttft_ms: r.try_get("ttft_ms")?,
                status_code: r.try_get("status_code")?,
                outcome: r.try_get("outcome")?,
                error_code: r.try_get("error_code")?,
                stream: r.try_get::<i64, _>("stream")? != 0,
                created_ms: r.try_get("created_ms")?,
                pool_id: r.try_get("pool_id")?,
                ingress: r.try_get("ingress")?,
            });
        }
        Ok(out)
    }
}

/// Hourly buckets from rows of `usage_hourly` columns (one per hour) and
/// their latency histograms from `(hour_ms, bucket, n)` rows; histogram rows
/// of an hour without a bucket row are ignored.
pub(crate) fn hourly_from_rows(rows: &[AnyRow], hist: &[AnyRow]) -> Result<BTreeMap<i64, HourlyDelta>, sqlx::Error> {
    let mut out = BTreeMap::new();
    for r in rows {
        out.insert(r.try_get::<i64, _>("hour_ms")?, HourlyDelta::from_row(r)?);
    }
    for r in hist {
        let hour: i64 = r.try_get("hour_ms")?;
        if let Some(d) = out.get_mut(&hour) {
            d.latency.insert(r.try_get("bucket")?, r.try_get("n")?);
        }
    }
    Ok(out)
}

/// Inside the usage writer's transaction: one `usage` debit of its credit
/// pool's ledger per billed record of a pooled tenant (`pool_id` set,
/// cost > 0).
async fn insert_usage_debits(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    records: &[UsageRecord],
) -> Result<(), StoreError> {
    for r in records {
        let Some(pool_id) = &r.pool_id else { continue };
        if r.cost_nanos <= 0 {
            continue;
        }
        let entry = LedgerEntry {
            id: uuid::Uuid::new_v4().to_string(),
            pool_id: pool_id.clone(),
            tenant_id: Some(r.tenant_id.clone()),
            kind: kind::USAGE.into(),
            amount_nanos: -r.cost_nanos,
            request_id: Some(r.request_id.clone()),
            note: None,
            created_at: time::ms_to_rfc3339(r.created_ms),
            created_ms: r.created_ms,
        };
        insert_ledger_on(&mut **tx, &entry).await?;
    }
    Ok(())
}
