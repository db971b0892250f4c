//! The `replicas` table: every gateway replica's heartbeat.

use crate::db::{Store, StoreError};

/// Rows of replicas not seen for this long are deleted (not billing data).
pub const FORGET_AFTER_MS: i64 = 24 * 3600 * 1000;

/// One replica's last heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ReplicaRow {
    pub id: String,
    pub version: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub last_seen_ms: i64,
    pub in_flight: i64,
}

impl Store {
    /// Writes a replica's heartbeat (and forgets replicas gone for a day).
    pub async fn heartbeat(&self, r: &ReplicaRow) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO replicas (id, version, started_at, last_seen_ms, in_flight) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO UPDATE SET version = $2, last_seen_ms = $4, in_flight = $5",
        )
        .bind(&r.id)
        .bind(&r.version)
        .bind(&r.started_at)
        .bind(r.last_seen_ms)
        .bind(r.in_flight)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM replicas WHERE last_seen_ms < $1")
            .bind(r.last_seen_ms.saturating_sub(FORGET_AFTER_MS))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replicas seen at or after `since_ms`, oldest start first.
    pub async fn live_replicas(&self, since_ms: i64) -> Result<Vec<ReplicaRow>, StoreError> {
        Ok(sqlx::query_as::<_, ReplicaRow>(
            "SELECT id, version, started_at, last_seen_ms, in_flight FROM replicas \
             WHERE last_seen_ms >= $1 ORDER BY started_at, id",
        )
        .bind(since_ms)
        .fetch_all(self.pool())
        .await?)
    }

    /// Removes a replica's row (it stopped cleanly).
    pub async fn forget_replica(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM replicas WHERE id = $1").bind(id).execute(self.pool()).await?;
        Ok(())
    }
}
