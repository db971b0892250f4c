//! The database handle: connecting (SQLite or Postgres through sqlx's `Any`
//! driver), migrations, write transactions, the error type, and the small
//! helpers every table module shares (multi-row inserts, bound arguments,
//! version counters in `settings`).

use anyhow::Context;
use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;

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
}

/// Adds one bound value to a statement's arguments.
pub(crate) fn push_arg<'q, T>(args: &mut sqlx::any::AnyArguments<'q>, value: T) -> Result<(), sqlx::Error>
where
    T: 'q + sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    sqlx::Arguments::add(args, value).map_err(sqlx::Error::Encode)
}

/// `prefix` followed by `rows` groups of `columns` placeholders: `$N` for
/// Postgres, plain `?` for SQLite (sqlx resolves every named SQLite
/// parameter by scanning the statement's parameters, quadratic in their
/// number — it was a quarter of the gateway's CPU under load).
pub(crate) fn multi_row_insert(backend: Backend, prefix: &str, columns: usize, rows: usize) -> String {
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
