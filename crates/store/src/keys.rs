//! The `api_keys` table (hashes only; a key itself is never stored).

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::{Store, StoreError};

/// A key row: never the key itself; `key_hash` stays inside the gateway.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub id: String,
    pub name: Option<String>,
    pub prefix: String,
    pub key_hash: String,
    pub scope: String,
    pub tenant_id: Option<String>,
    /// Platform keys: `None` = every tenant, else the allowed ids.
    pub tenants: Option<Vec<String>>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl std::fmt::Debug for KeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRow")
            .field("id", &self.id)
            .field("prefix", &self.prefix)
            .field("scope", &self.scope)
            .finish()
    }
}

/// The columns [`key_from_row`] reads.
pub(crate) const KEY_COLS: &str = "id, name, prefix, key_hash, scope, tenant_id, tenants, created_at, revoked_at";

pub(crate) fn key_from_row(r: &AnyRow) -> Result<KeyRow, sqlx::Error> {
    let tenants: Option<String> = r.try_get("tenants")?;
    Ok(KeyRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        prefix: r.try_get("prefix")?,
        key_hash: r.try_get("key_hash")?,
        scope: r.try_get("scope")?,
        tenant_id: r.try_get("tenant_id")?,
        tenants: match tenants.as_deref() {
            None | Some("*") => None,
            Some(t) => serde_json::from_str(t).ok(),
        },
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

impl Store {
    pub async fn insert_key(&self, k: &KeyRow) -> Result<(), StoreError> {
        self.insert_key_within(k, None).await
    }

    /// Inserts a key; a tenant key only while its tenant holds fewer than
    /// `max_active` active (not revoked) keys, else [`StoreError::KeyLimit`]
    /// and nothing changes. The catalog version is bumped first: on Postgres
    /// that row lock serialises concurrent key creations (SQLite's `BEGIN
    /// IMMEDIATE` already does), so the count cannot be raced past the limit.
    pub async fn insert_key_within(&self, k: &KeyRow, max_active: Option<i64>) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        self.bump_version(&mut tx).await?;
        if let (Some(max), Some(tenant)) = (max_active, k.tenant_id.as_deref()) {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM api_keys WHERE tenant_id = $1 AND revoked_at IS NULL")
                .bind(tenant)
                .fetch_one(&mut *tx)
                .await?;
            let active: i64 = row.try_get("n")?;
            if active >= max {
                return Err(StoreError::KeyLimit(format!(
                    "The tenant already has {active} active keys (tenant.max_keys = {max}); revoke one to create another."
                )));
            }
        }
        let tenants = if k.scope == "platform" {
            Some(match &k.tenants {
                None => "*".to_string(),
                Some(list) => serde_json::to_string(list).unwrap_or_default(),
            })
        } else {
            None
        };
        sqlx::query(
            "INSERT INTO api_keys (id, name, prefix, key_hash, scope, tenant_id, tenants, created_at, revoked_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,NULL)",
        )
        .bind(&k.id)
        .bind(&k.name)
        .bind(&k.prefix)
        .bind(&k.key_hash)
        .bind(&k.scope)
        .bind(&k.tenant_id)
        .bind(tenants)
        .bind(&k.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_keys(&self, tenant_id: Option<&str>) -> Result<Vec<KeyRow>, StoreError> {
        let cols = KEY_COLS;
        let rows = match tenant_id {
            Some(t) => {
                sqlx::query(&format!("SELECT {cols} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id"))
                    .bind(t)
                    .fetch_all(self.pool())
                    .await?
            }
            None => {
                sqlx::query(&format!("SELECT {cols} FROM api_keys ORDER BY created_at, id"))
                    .fetch_all(self.pool())
                    .await?
            }
        };
        Ok(rows.iter().map(key_from_row).collect::<Result<_, _>>()?)
    }

    /// Marks a key revoked (it stays listed). Returns the key, or None if unknown.
    pub async fn revoke_key(&self, id: &str, at: &str) -> Result<Option<KeyRow>, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(
            "SELECT id, name, prefix, key_hash, scope, tenant_id, tenants, created_at, revoked_at FROM api_keys WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let key = match row {
            Some(r) => Some(key_from_row(&r)?),
            None => None,
        };
        self.bump_version(&mut tx).await?;
        tx.commit().await?;
        Ok(key)
    }
}
