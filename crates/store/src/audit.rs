//! The `audit_log` table.

use crate::db::{Store, StoreError};
use sheepdog_types::time;

/// An audit entry.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: String,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub before_json: Option<String>,
    pub after_json: Option<String>,
}

/// The columns of an [`AuditEntry`].
pub(crate) const AUDIT_COLS: &str = "id, at, actor, action, target, before_json, after_json";

impl Store {
    pub async fn insert_audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (id, at, at_ms, actor, action, target, before_json, after_json) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
        )
        .bind(&e.id)
        .bind(&e.at)
        .bind(time::parse_rfc3339_ms(&e.at).unwrap_or(0))
        .bind(&e.actor)
        .bind(&e.action)
        .bind(&e.target)
        .bind(&e.before_json)
        .bind(&e.after_json)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
