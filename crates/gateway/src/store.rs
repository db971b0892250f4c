//! Storage: sqlx over SQLite (embedded default) or Postgres, one code path.
//!
//! Queries are runtime-checked and portable (`$N` placeholders, TEXT/BIGINT
//! columns) and run through sqlx's `Any` driver, so every query serves both
//! databases; the storage tests run on both. The request path never calls
//! this module: it reads the in-memory catalog and hands usage to the
//! accounting writer.

use std::collections::BTreeMap;

use anyhow::Context;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::config::{sqlite_path, DatabaseConfig};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A tenant row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub tier: String,
    pub status: String,
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

/// One usage record (billing source of truth).
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// `ok`, `upstream_error`, `client_cancelled`, `server_shutdown`, `rejected`.
    pub outcome: String,
    pub error_code: Option<String>,
    pub stream: bool,
    /// When the request arrived (ms since the Unix epoch, UTC); shown as RFC
    /// 3339 with [`crate::time::ms_to_rfc3339`] (not stored twice).
    pub created_ms: i64,
    /// The credit pool debited for this request (pooled tenants).
    pub pool_id: Option<String>,
}

/// Additive hourly aggregate for one tenant and hour.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HourlyDelta {
    pub request_count: i64,
    pub error_count: i64,
    pub rate_limit_hits: i64,
    pub latency_sum_ms: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_nanos: i64,
    /// Latency histogram: bucket index → count.
    pub latency: BTreeMap<i64, i64>,
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
}

impl UsageGroup {
    /// The SQL expression usage queries group by (selected as `k`). A day is
    /// grouped as its number since the epoch (UTC): portable integer SQL.
    pub(crate) fn sql(self) -> &'static str {
        match self {
            UsageGroup::Tenant => "tenant_id",
            UsageGroup::CostCenter => "COALESCE(cost_center, '(none)')",
            UsageGroup::Model => "model_requested",
            UsageGroup::Day => "CAST(created_ms / 86400000 AS BIGINT)",
        }
    }

    /// The group's key of a row: the value itself, or a day as `YYYY-MM-DD`.
    pub(crate) fn read(self, row: &AnyRow) -> Result<String, StoreError> {
        match self {
            UsageGroup::Day => {
                let day: i64 = row.try_get("k")?;
                let mut date = crate::time::ms_to_rfc3339(day.saturating_mul(86_400_000));
                date.truncate(10);
                Ok(date)
            }
            _ => Ok(row.try_get("k")?),
        }
    }
}

/// A console user (the hash never leaves the gateway and is not `Serialize`).
#[derive(Clone)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub role: String,
    pub tenant_id: Option<String>,
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: String,
}

impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow").field("id", &self.id).field("email", &self.email).field("role", &self.role).finish()
    }
}

/// An audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: String,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub before_json: Option<String>,
    pub after_json: Option<String>,
}

/// Errors the admin layer must tell apart.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Conflict(String),
    /// A tenant already holds `tenant.max_keys` active keys.
    #[error("{0}")]
    KeyLimit(String),
    /// The database cannot be reached or written now (connection refused or
    /// lost, pool timeout, SQLite busy or locked): worth retrying later.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Whether an error means the database is out of reach for now (as opposed
/// to a bad query or constraint): Postgres connection errors (SQLSTATE class
/// 08) and shutdowns (57P01-57P03), SQLite busy, locked, I/O, full,
/// read-only and cannot-open, and every connection-level failure.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            if code.starts_with("08") || matches!(code.as_str(), "57P01" | "57P02" | "57P03" | "53300") {
                return true;
            }
            // SQLite: the extended result code; its low byte is the primary one.
            match code.parse::<i64>() {
                Ok(c) => matches!(c & 0xff, 5 | 6 | 8 | 10 | 13 | 14),
                Err(_) => false,
            }
        }
        _ => false,
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return StoreError::Conflict("a record with the same unique value already exists".into());
            }
        }
        if is_unavailable(&e) {
            return StoreError::Unavailable(anyhow::Error::new(e));
        }
        StoreError::Other(anyhow::Error::new(e))
    }
}

/// How long a SQLite statement waits for another writer's lock before it
/// fails with SQLITE_BUSY (answered as 503 `database_unavailable`; the
/// accounting writer retries).
pub const SQLITE_BUSY_TIMEOUT_MS: u64 = 3_000;

/// Creates the SQLite database's directory (0700) and file (0600) when they
/// do not exist yet, whatever the umask; SQLite then creates the `-wal` and
/// `-shm` files with the database file's mode. An existing file keeps its
/// mode (a warning names one readable by others).
fn prepare_sqlite_file(path: &std::path::Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        builder.mode(0o700);
        builder.create(dir).with_context(|| format!("cannot create the database directory {}", dir.display()))?;
        #[cfg(unix)]
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot set the mode of {}", dir.display()))?;
    }
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    open.mode(0o600);
    match open.open(path) {
        Ok(_) => {
            #[cfg(unix)]
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("cannot set the mode of {}", path.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists =>
        {
            #[cfg(unix)]
            if let Ok(meta) = std::fs::metadata(path) {
                if meta.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(path = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777),
                        "the database file is readable by other users; chmod 600 it");
                }
            }
        }
        Err(e) => return Err(e).with_context(|| format!("cannot create the database file {}", path.display())),
    }
    Ok(())
}

const TENANT_COLS: &str = "id, name, tier, status, requests_per_minute, tokens_per_minute, max_concurrency, \
    budget_monthly_nanos, budget_hard, allowed_models, created_at, pool_id";

fn json_list(text: Option<String>) -> Option<Vec<String>> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

fn tenant_from_row(r: &AnyRow) -> Result<TenantRow, sqlx::Error> {
    Ok(TenantRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        tier: r.try_get("tier")?,
        status: r.try_get("status")?,
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

fn key_from_row(r: &AnyRow) -> Result<KeyRow, sqlx::Error> {
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

impl Store {
    /// Connects (creating the SQLite file and its directory when needed).
    pub async fn connect(cfg: &DatabaseConfig) -> anyhow::Result<Store> {
        Self::connect_url(&cfg.url, cfg.max_connections).await
    }

    pub async fn connect_url(url: &str, max_connections: u32) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let (url, backend) = if url.starts_with("sqlite:") {
            if let Some(path) = sqlite_path(url) {
                prepare_sqlite_file(&path)?;
            }
            let u = if url.contains("mode=") {
                url.to_string()
            } else if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            (u, Backend::Sqlite)
        } else {
            (url.to_string(), Backend::Postgres)
        };
        let pool = AnyPoolOptions::new()
            .acquire_timeout(Self::ACQUIRE_TIMEOUT)
            .max_connections(if backend == Backend::Sqlite {
                max_connections.clamp(1, 4)
            } else {
                max_connections.max(1)
            })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        sqlx::query(&format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}"))
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA journal_mode = WAL").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
                        // Statement journals (multi-row inserts and upserts inside
                        // the accounting transaction) in memory, not a temp file.
                        sqlx::query("PRAGMA temp_store = MEMORY").execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .with_context(|| format!("cannot open the database ({})", redact_url(&url)))?;
        Ok(Store { pool, backend })
    }

    /// The connection pool's wait for a free (or new) connection: past it a
    /// query fails at once with a pool timeout (the admin API answers 503
    /// `database_unavailable`) instead of waiting sqlx's default 30 s.
    pub const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Begins a transaction that writes. On SQLite it takes the write lock
    /// up front (`BEGIN IMMEDIATE`): a deferred transaction that reads and
    /// then writes fails at once with SQLITE_BUSY_SNAPSHOT (517) when another
    /// connection committed in between — `busy_timeout` does not cover that —
    /// while an immediate one waits its turn.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR.run(&self.pool).await.context("database migration failed")?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ---- settings ------------------------------------------------------

    pub async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM settings WHERE key = $1").bind(key).fetch_optional(&self.pool).await?;
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
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Replaces a setting's value only if it still is `old`; returns whether it was replaced.
    pub async fn replace_setting(&self, key: &str, old: &str, new: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE settings SET value = $1 WHERE key = $2 AND value = $3")
            .bind(new)
            .bind(key)
            .bind(old)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The catalog version: bumped on every change to tenants or keys, polled
    /// by every replica to refresh its in-memory catalog.
    pub async fn catalog_version(&self) -> Result<i64, StoreError> {
        Ok(self.get_setting("catalog_version").await?.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    async fn bump_version(&self, tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<(), StoreError> {
        bump_counter(tx, "catalog_version").await
    }

    // ---- tenants -------------------------------------------------------

    pub async fn insert_tenant(&self, t: &TenantRow) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let exists = sqlx::query("SELECT id FROM tenants WHERE id = $1").bind(&t.id).fetch_optional(&mut *tx).await?;
        if exists.is_some() {
            return Err(StoreError::Conflict(format!("a tenant with id {} already exists", t.id)));
        }
        sqlx::query(&format!(
            "INSERT INTO tenants ({TENANT_COLS}, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$11)"
        ))
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.tier)
        .bind(&t.status)
        .bind(t.requests_per_minute)
        .bind(t.tokens_per_minute)
        .bind(t.max_concurrency)
        .bind(t.budget_monthly_nanos)
        .bind(i64::from(t.budget_hard))
        .bind(t.allowed_models.as_ref().map(|m| serde_json::to_string(m).unwrap_or_default()))
        .bind(&t.created_at)
        .bind(&t.pool_id)
        .execute(&mut *tx)
        .await?;
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
        sqlx::query(
            "UPDATE tenants SET name = $2, tier = $3, status = $4, requests_per_minute = $5, tokens_per_minute = $6, \
             max_concurrency = $7, budget_monthly_nanos = $8, budget_hard = $9, allowed_models = $10, updated_at = $11, \
             pool_id = $12 WHERE id = $1",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.tier)
        .bind(&t.status)
        .bind(t.requests_per_minute)
        .bind(t.tokens_per_minute)
        .bind(t.max_concurrency)
        .bind(t.budget_monthly_nanos)
        .bind(i64::from(t.budget_hard))
        .bind(t.allowed_models.as_ref().map(|m| serde_json::to_string(m).unwrap_or_default()))
        .bind(crate::time::now_rfc3339())
        .bind(&t.pool_id)
        .execute(&mut *tx)
        .await?;
        Self::replace_aliases(&mut tx, &t.id, &t.aliases).await?;
        self.bump_version(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_tenants(&self) -> Result<Vec<TenantRow>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {TENANT_COLS} FROM tenants ORDER BY created_at, id"))
            .fetch_all(&self.pool)
            .await?;
        let mut tenants = rows.iter().map(tenant_from_row).collect::<Result<Vec<_>, _>>()?;
        let aliases =
            sqlx::query("SELECT alias, tenant_id FROM tenant_aliases ORDER BY alias").fetch_all(&self.pool).await?;
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
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut t = tenant_from_row(&row)?;
        let aliases = sqlx::query("SELECT alias FROM tenant_aliases WHERE tenant_id = $1 ORDER BY alias")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        t.aliases = aliases.iter().map(|r| r.try_get("alias")).collect::<Result<_, _>>()?;
        Ok(Some(t))
    }

    pub async fn tenant_id_for_alias(&self, alias: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT tenant_id FROM tenant_aliases WHERE alias = $1")
            .bind(alias)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("tenant_id")?),
            None => None,
        })
    }

    // ---- keys ----------------------------------------------------------

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
        let cols = "id, name, prefix, key_hash, scope, tenant_id, tenants, created_at, revoked_at";
        let rows = match tenant_id {
            Some(t) => {
                sqlx::query(&format!("SELECT {cols} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id"))
                    .bind(t)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(&format!("SELECT {cols} FROM api_keys ORDER BY created_at, id"))
                    .fetch_all(&self.pool)
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

    // ---- usage ---------------------------------------------------------

    /// Whether a usage record with this id is stored.
    pub async fn usage_record_exists(&self, id: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT id FROM usage_records WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
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
                self.backend,
                "INSERT INTO usage_records (id, request_id, tenant_id, key_id, cost_center, model_requested, model_served, \
                 provider, input_tokens, output_tokens, cached_tokens, cost_nanos, latency_ms, ttft_ms, status_code, outcome, \
                 error_code, stream, created_ms, pool_id) VALUES ",
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
            }
            sqlx::query_with(&sql, args).execute(&mut *tx).await?;
        }
        // Pooled tenants' usage debits their pool's ledger, in the same transaction.
        crate::store_pools::insert_usage_debits(&mut tx, records).await?;
        for ((tenant, hour), d) in hourly {
            sqlx::query(
                "INSERT INTO usage_hourly (tenant_id, hour_ms, request_count, error_count, rate_limit_hits, latency_sum_ms, \
                 input_tokens, output_tokens, cost_nanos) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) \
                 ON CONFLICT (tenant_id, hour_ms) DO UPDATE SET \
                 request_count = usage_hourly.request_count + excluded.request_count, \
                 error_count = usage_hourly.error_count + excluded.error_count, \
                 rate_limit_hits = usage_hourly.rate_limit_hits + excluded.rate_limit_hits, \
                 latency_sum_ms = usage_hourly.latency_sum_ms + excluded.latency_sum_ms, \
                 input_tokens = usage_hourly.input_tokens + excluded.input_tokens, \
                 output_tokens = usage_hourly.output_tokens + excluded.output_tokens, \
                 cost_nanos = usage_hourly.cost_nanos + excluded.cost_nanos",
            )
            .bind(tenant)
            .bind(*hour)
            .bind(d.request_count)
            .bind(d.error_count)
            .bind(d.rate_limit_hits)
            .bind(d.latency_sum_ms)
            .bind(d.input_tokens)
            .bind(d.output_tokens)
            .bind(d.cost_nanos)
            .execute(&mut *tx)
            .await?;
            for (bucket, count) in &d.latency {
                sqlx::query(
                    "INSERT INTO usage_hourly_latency (tenant_id, hour_ms, bucket, count) VALUES ($1,$2,$3,$4) \
                     ON CONFLICT (tenant_id, hour_ms, bucket) DO UPDATE SET count = usage_hourly_latency.count + excluded.count",
                )
                .bind(tenant)
                .bind(*hour)
                .bind(*bucket)
                .bind(*count)
                .execute(&mut *tx)
                .await?;
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
        .fetch_all(&self.pool)
        .await?;
        let mut out: BTreeMap<i64, HourlyDelta> = BTreeMap::new();
        for r in &rows {
            let hour: i64 = r.try_get("hour_ms")?;
            out.insert(
                hour,
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
            "SELECT hour_ms, bucket, count FROM usage_hourly_latency WHERE tenant_id = $1 AND hour_ms >= $2 AND hour_ms < $3",
        )
        .bind(tenant_id)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        for r in &hist {
            let hour: i64 = r.try_get("hour_ms")?;
            if let Some(d) = out.get_mut(&hour) {
                d.latency.insert(r.try_get("bucket")?, r.try_get("count")?);
            }
        }
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
        let rows = q.fetch_all(&self.pool).await?;
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
    pub async fn spend_since(&self, from_ms: i64) -> Result<std::collections::HashMap<String, i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant_id, CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) AS cost FROM usage_records \
             WHERE created_ms >= $1 GROUP BY tenant_id",
        )
        .bind(from_ms)
        .fetch_all(&self.pool)
        .await?;
        let mut out = std::collections::HashMap::new();
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
             created_ms, pool_id FROM usage_records WHERE tenant_id = $1 ORDER BY created_ms, id",
        )
        .bind(tenant_id)
        .fetch_all(&self.pool)
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
            });
        }
        Ok(out)
    }

    // ---- users ---------------------------------------------------------

    pub async fn insert_user(&self, u: &UserRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, email, role, tenant_id, password_hash, disabled, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7)",
        )
        .bind(&u.id)
        .bind(&u.email)
        .bind(&u.role)
        .bind(&u.tenant_id)
        .bind(&u.password_hash)
        .bind(i64::from(u.disabled))
        .bind(&u.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("a user with email {} already exists", u.email)),
            other => other,
        })?;
        Ok(())
    }

    pub async fn count_users(&self) -> Result<i64, StoreError> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM users").fetch_one(&self.pool).await?;
        Ok(r.try_get("n")?)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, email, role, tenant_id, password_hash, disabled, created_at FROM users WHERE email = $1",
        )
        .bind(email)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => Some(user_from_row(&r)?),
            None => None,
        })
    }

    // ---- audit ---------------------------------------------------------

    pub async fn insert_audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (id, at, at_ms, actor, action, target, before_json, after_json) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
        )
        .bind(&e.id)
        .bind(&e.at)
        .bind(crate::time::parse_rfc3339_ms(&e.at).unwrap_or(0))
        .bind(&e.actor)
        .bind(&e.action)
        .bind(&e.target)
        .bind(&e.before_json)
        .bind(&e.after_json)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn list_audit(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, target, before_json, after_json FROM audit_log ORDER BY at_ms DESC, id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
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
}

const USAGE_COLUMNS: usize = 20;
/// Rows per multi-row INSERT (20 × 50 = 1,000 parameters, far below SQLite's
/// and Postgres's limits).
const USAGE_ROWS_PER_INSERT: usize = 50;

/// `prefix` followed by `rows` groups of `columns` placeholders: `$N` for
/// Postgres, plain `?` for SQLite (sqlx resolves every named SQLite
/// parameter by scanning the statement's parameters, quadratic in their
/// number — it was a quarter of the gateway's CPU under load).
/// Adds one bound value to a statement's arguments.
fn push_arg<'q, T>(args: &mut sqlx::any::AnyArguments<'q>, value: T) -> Result<(), sqlx::Error>
where
    T: 'q + sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    sqlx::Arguments::add(args, value).map_err(sqlx::Error::Encode)
}

fn multi_row_insert(backend: Backend, prefix: &str, columns: usize, rows: usize) -> String {
    let mut sql = String::with_capacity(prefix.len() + rows * columns * 5);
    sql.push_str(prefix);
    let mut n = 1;
    for row in 0..rows {
        if row > 0 {
            sql.push(',');
        }
        sql.push('(');
        for col in 0..columns {
            if col > 0 {
                sql.push(',');
            }
            match backend {
                Backend::Postgres => {
                    sql.push('$');
                    sql.push_str(&n.to_string());
                    n += 1;
                }
                Backend::Sqlite => sql.push('?'),
            }
        }
        sql.push(')');
    }
    sql
}

/// Adds one to a counter in `settings` (versions other replicas poll).
pub(crate) async fn bump_counter(tx: &mut sqlx::Transaction<'_, sqlx::Any>, key: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO settings (key, value) VALUES ($1, '1') \
         ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(settings.value AS BIGINT) + 1 AS TEXT)",
    )
    .bind(key)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_row_placeholders() {
        assert_eq!(
            multi_row_insert(Backend::Postgres, "INSERT INTO t (a, b) VALUES ", 2, 2),
            "INSERT INTO t (a, b) VALUES ($1,$2),($3,$4)"
        );
        assert_eq!(
            multi_row_insert(Backend::Sqlite, "INSERT INTO t (a) VALUES ", 1, 3),
            "INSERT INTO t (a) VALUES (?),(?),(?)"
        );
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
    }
}
