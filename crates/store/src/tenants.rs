//! The `tenants` and `tenant_aliases` tables.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::{Store, StoreError};
use sheepdog_types::{time, TenantStatus, Tier};

/// A tenant row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    /// Parsed once here; an unknown stored value reads as `shared`.
    pub tier: Tier,
    /// Parsed once here; an unknown stored value reads as `suspended`.
    pub status: TenantStatus,
    pub requests_per_minute: i64,
    pub tokens_per_minute: i64,
    pub max_concurrency: Option<i64>,
    pub budget_monthly_nanos: Option<i64>,
    pub budget_hard: bool,
    pub allowed_models: Option<Vec<String>>,
    pub aliases: Vec<String>,
    pub created_at: String,
    /// The credit pool a `pooled` tenant draws on.
    pub pool_id: Option<String>,
}

pub(crate) const TENANT_COLS: &str =
    "id, name, tier, status, requests_per_minute, tokens_per_minute, max_concurrency, \
    budget_monthly_nanos, budget_hard, allowed_models, created_at, pool_id";

fn json_list(text: Option<String>) -> Option<Vec<String>> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

pub(crate) fn tenant_from_row(r: &AnyRow) -> Result<TenantRow, sqlx::Error> {
    Ok(TenantRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        tier: Tier::parse(r.try_get("tier")?).unwrap_or_default(),
        status: TenantStatus::parse(r.try_get("status")?).unwrap_or(TenantStatus::Suspended),
        requests_per_minute: r.try_get("requests_per_minute")?,
        tokens_per_minute: r.try_get("tokens_per_minute")?,
        max_concurrency: r.try_get("max_concurrency")?,
        budget_monthly_nanos: r.try_get("budget_monthly_nanos")?,
        budget_hard: r.try_get::<i64, _>("budget_hard")? != 0,
        allowed_models: json_list(r.try_get("allowed_models")?),
        aliases: Vec::new(),
        created_at: r.try_get("created_at")?,
        pool_id: r.try_get("pool_id")?,
    })
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Binds `$1`…`$12` in [`TENANT_COLS`] order; `stamp` is `$11` (the creation
/// time on insert, the update time on update).
fn bind_tenant<'q>(q: AnyQuery<'q>, t: &'q TenantRow, stamp: String) -> AnyQuery<'q> {
    q.bind(&t.id)
        .bind(&t.name)
        .bind(t.tier.as_str())
        .bind(t.status.as_str())
        .bind(t.requests_per_minute)
        .bind(t.tokens_per_minute)
        .bind(t.max_concurrency)
        .bind(t.budget_monthly_nanos)
        .bind(i64::from(t.budget_hard))
        .bind(t.allowed_models.as_ref().map(|m| serde_json::to_string(m).unwrap_or_default()))
        .bind(stamp)
        .bind(&t.pool_id)
}

impl Store {
    pub async fn insert_tenant(&self, t: &TenantRow) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let exists = sqlx::query("SELECT id FROM tenants WHERE id = $1").bind(&t.id).fetch_optional(&mut *tx).await?;
        if exists.is_some() {
            return Err(StoreError::Conflict(format!("a tenant with id {} already exists", t.id)));
        }
        let sql = format!(
            "INSERT INTO tenants ({TENANT_COLS}, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$11)"
        );
        bind_tenant(sqlx::query(&sql), t, t.created_at.clone()).execute(&mut *tx).await?;
        Self::replace_aliases(&mut tx, &t.id, &t.aliases).await?;
        self.bump_version(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn replace_aliases(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tenant_id: &str,
        aliases: &[String],
    ) -> Result<(), StoreError> {
        for a in aliases {
            let owner = sqlx::query("SELECT tenant_id FROM tenant_aliases WHERE alias = $1")
                .bind(a)
                .fetch_optional(&mut **tx)
                .await?;
            if let Some(row) = owner {
                let owner: String = row.try_get("tenant_id")?;
                if owner != tenant_id {
                    return Err(StoreError::Conflict(format!("alias {a:?} is already used by another tenant")));
                }
            }
        }
        sqlx::query("DELETE FROM tenant_aliases WHERE tenant_id = $1").bind(tenant_id).execute(&mut **tx).await?;
        for a in aliases {
            sqlx::query("INSERT INTO tenant_aliases (alias, tenant_id) VALUES ($1, $2)")
                .bind(a)
                .bind(tenant_id)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Rewrites a tenant's mutable fields (and aliases).
    pub async fn update_tenant(&self, t: &TenantRow) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let sql = "UPDATE tenants SET name = $2, tier = $3, status = $4, requests_per_minute = $5, \
             tokens_per_minute = $6, max_concurrency = $7, budget_monthly_nanos = $8, budget_hard = $9, \
             allowed_models = $10, updated_at = $11, pool_id = $12 WHERE id = $1";
        bind_tenant(sqlx::query(sql), t, time::now_rfc3339()).execute(&mut *tx).await?;
        Self::replace_aliases(&mut tx, &t.id, &t.aliases).await?;
        self.bump_version(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_tenants(&self) -> Result<Vec<TenantRow>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {TENANT_COLS} FROM tenants ORDER BY created_at, id"))
            .fetch_all(self.pool())
            .await?;
        let mut tenants = rows.iter().map(tenant_from_row).collect::<Result<Vec<_>, _>>()?;
        let aliases =
            sqlx::query("SELECT alias, tenant_id FROM tenant_aliases ORDER BY alias").fetch_all(self.pool()).await?;
        let mut by_tenant: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
        for r in aliases {
            by_tenant.entry(r.try_get("tenant_id")?).or_default().push(r.try_get("alias")?);
        }
        for t in &mut tenants {
            t.aliases = by_tenant.remove(&t.id).unwrap_or_default();
        }
        Ok(tenants)
    }

    pub async fn get_tenant(&self, id: &str) -> Result<Option<TenantRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {TENANT_COLS} FROM tenants WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut t = tenant_from_row(&row)?;
        let aliases = sqlx::query("SELECT alias FROM tenant_aliases WHERE tenant_id = $1 ORDER BY alias")
            .bind(id)
            .fetch_all(self.pool())
            .await?;
        t.aliases = aliases.iter().map(|r| r.try_get("alias")).collect::<Result<_, _>>()?;
        Ok(Some(t))
    }

    pub async fn tenant_id_for_alias(&self, alias: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT tenant_id FROM tenant_aliases WHERE alias = $1")
            .bind(alias)
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("tenant_id")?),
            None => None,
        })
    }
}
