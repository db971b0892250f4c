//! The `settings` table: key/value pairs, among them the version counters
//! other replicas poll (the catalog's, the rollouts').

use sqlx::Row;

use crate::db::{bump_counter, Store, StoreError};

impl Store {
    pub async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row =
            sqlx::query("SELECT value FROM settings WHERE key = $1").bind(key).fetch_optional(self.pool()).await?;
        Ok(match row {
            Some(r) => Some(r.try_get("value")?),
            None => None,
        })
    }

    /// Inserts a setting only if it is absent; returns whether it was inserted.
    pub async fn insert_setting_if_absent(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Replaces a setting's value only if it still is `old`; returns whether it was replaced.
    pub async fn replace_setting(&self, key: &str, old: &str, new: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE settings SET value = $1 WHERE key = $2 AND value = $3")
            .bind(new)
            .bind(key)
            .bind(old)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The catalog version: bumped on every change to tenants or keys, polled
    /// by every replica to refresh its in-memory catalog.
    pub async fn catalog_version(&self) -> Result<i64, StoreError> {
        Ok(self.get_setting("catalog_version").await?.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    pub(crate) async fn bump_version(&self, tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<(), StoreError> {
        bump_counter(tx, "catalog_version").await
    }
}
