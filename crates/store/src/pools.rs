//! Storage of credit pools (pooled tier): pools and their append-only ledger
//! in nano-USD. Ledger rows are only ever inserted — top-ups, grants and
//! signup credits positive, usage debits negative — and a pool's balance is
//! their sum. Portable SQL for SQLite and Postgres, like [`crate`]. Usage
//! debits are written by the usage writer (`Store::write_usage_batch`) with
//! `insert_ledger_on`.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::{Store, StoreError};

/// A credit pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRow {
    pub id: String,
    pub name: String,
    /// A hard pool refuses requests it cannot cover; it never goes negative.
    pub hard: bool,
    pub created_at: String,
}

/// A pool with its ledger sums: `balance = credited - debited`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolBalance {
    pub pool: PoolRow,
    /// Sum of the positive entries.
    pub credited: i64,
    /// Sum of the negative entries, as a positive number.
    pub debited: i64,
}

impl PoolBalance {
    pub fn balance(&self) -> i64 {
        self.credited - self.debited
    }
}

/// Kinds of ledger entries.
pub mod kind {
    pub const TOPUP: &str = "topup";
    pub const GRANT: &str = "grant";
    pub const SIGNUP: &str = "signup";
    pub const USAGE: &str = "usage";
}

/// One ledger entry (never updated or deleted).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LedgerEntry {
    pub id: String,
    pub pool_id: String,
    pub tenant_id: Option<String>,
    /// `topup`, `grant`, `signup` (positive) or `usage` (negative).
    pub kind: String,
    pub amount_nanos: i64,
    pub request_id: Option<String>,
    pub note: Option<String>,
    pub created_at: String,
    pub created_ms: i64,
}

const POOL_SUMS: &str = "SELECT p.id, p.name, p.hard, p.created_at, \
     CAST(COALESCE(SUM(CASE WHEN l.amount_nanos > 0 THEN l.amount_nanos ELSE 0 END), 0) AS BIGINT) AS credited, \
     CAST(COALESCE(SUM(CASE WHEN l.amount_nanos < 0 THEN -l.amount_nanos ELSE 0 END), 0) AS BIGINT) AS debited \
     FROM credit_pools p LEFT JOIN credit_ledger l ON l.pool_id = p.id";

const LEDGER_COLS: &str = "id, pool_id, tenant_id, kind, amount_nanos, request_id, note, created_at, created_ms";

fn pool_balance_from_row(r: &AnyRow) -> Result<PoolBalance, sqlx::Error> {
    Ok(PoolBalance {
        pool: PoolRow {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            hard: r.try_get::<i64, _>("hard")? != 0,
            created_at: r.try_get("created_at")?,
        },
        credited: r.try_get("credited")?,
        debited: r.try_get("debited")?,
    })
}

pub(crate) async fn insert_ledger_on<'e, E>(exec: E, e: &LedgerEntry) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(&format!("INSERT INTO credit_ledger ({LEDGER_COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)"))
        .bind(&e.id)
        .bind(&e.pool_id)
        .bind(&e.tenant_id)
        .bind(&e.kind)
        .bind(e.amount_nanos)
        .bind(&e.request_id)
        .bind(&e.note)
        .bind(&e.created_at)
        .bind(e.created_ms)
        .execute(exec)
        .await?;
    Ok(())
}

impl Store {
    pub async fn insert_pool(&self, p: &PoolRow) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO credit_pools (id, name, hard, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&p.id)
            .bind(&p.name)
            .bind(i64::from(p.hard))
            .bind(&p.created_at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Removes a pool nothing refers to (no tenant, no ledger entry): undoes
    /// a pool created for a tenant whose creation then failed.
    pub async fn delete_unused_pool(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM credit_pools WHERE id = $1 \
             AND NOT EXISTS (SELECT 1 FROM credit_ledger WHERE pool_id = $1) \
             AND NOT EXISTS (SELECT 1 FROM tenants WHERE pool_id = $1)",
        )
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Every pool with its sums, oldest first.
    pub async fn list_pools(&self) -> Result<Vec<PoolBalance>, StoreError> {
        let rows = sqlx::query(&format!(
            "{POOL_SUMS} GROUP BY p.id, p.name, p.hard, p.created_at ORDER BY p.created_at, p.id"
        ))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(pool_balance_from_row).collect::<Result<_, _>>()?)
    }

    pub async fn get_pool(&self, id: &str) -> Result<Option<PoolBalance>, StoreError> {
        let row = sqlx::query(&format!("{POOL_SUMS} WHERE p.id = $1 GROUP BY p.id, p.name, p.hard, p.created_at"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(r) => Some(pool_balance_from_row(&r)?),
            None => None,
        })
    }

    /// Every pool's (credited, debited) sums, to load admission at start.
    pub async fn pool_sums(&self) -> Result<HashMap<String, (i64, i64)>, StoreError> {
        Ok(self.list_pools().await?.into_iter().map(|p| (p.pool.id, (p.credited, p.debited))).collect())
    }

    /// Every pool's `hard` flag (for the catalog).
    pub async fn pool_hard_flags(&self) -> Result<HashMap<String, bool>, StoreError> {
        let rows = sqlx::query("SELECT id, hard FROM credit_pools").fetch_all(self.pool()).await?;
        let mut out = HashMap::with_capacity(rows.len());
        for r in &rows {
            out.insert(r.try_get("id")?, r.try_get::<i64, _>("hard")? != 0);
        }
        Ok(out)
    }

    /// Appends one ledger entry.
    pub async fn insert_ledger(&self, e: &LedgerEntry) -> Result<(), StoreError> {
        insert_ledger_on(self.pool(), e).await?;
        Ok(())
    }

    /// A pool's ledger, newest first, at most `limit` entries.
    pub async fn list_ledger(&self, pool_id: &str, limit: i64) -> Result<Vec<LedgerEntry>, StoreError> {
        Ok(sqlx::query_as::<_, LedgerEntry>(&format!(
            "SELECT {LEDGER_COLS} FROM credit_ledger WHERE pool_id = $1 ORDER BY created_ms DESC, id DESC LIMIT $2"
        ))
        .bind(pool_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }
}
