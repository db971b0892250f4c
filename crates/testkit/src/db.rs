//! A fresh database per test: a new SQLite file, or a new Postgres database
//! on the test server (`SHEEPDOG_TEST_POSTGRES_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/test`), dropped by [`TestDb::cleanup`].

use std::future::Future;

use sqlx::postgres::PgPoolOptions;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// The Postgres URL new test databases are created from.
pub fn postgres_admin_url() -> String {
    std::env::var("SHEEPDOG_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh database that removes itself.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

async fn on_admin_database(sql: &str) -> Result<(), sqlx::Error> {
    let pool = PgPoolOptions::new().max_connections(1).connect(&postgres_admin_url()).await?;
    let done = sqlx::query(sql).execute(&pool).await.map(|_| ());
    pool.close().await;
    done
}

impl TestDb {
    pub async fn new(kind: Db) -> TestDb {
        match kind {
            Db::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("sheepdog.db").display());
                TestDb { url, _dir: Some(dir), pg_name: None }
            }
            Db::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("sd_test_{}", uuid::Uuid::new_v4().simple());
                on_admin_database(&format!("CREATE DATABASE {name}")).await.unwrap();
                let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
                TestDb { url: format!("{base}/{name}"), _dir: None, pg_name: Some(name) }
            }
        }
    }

    /// A fresh SQLite database when `postgres` is false, else a Postgres one.
    pub async fn sqlite_or_postgres(postgres: bool) -> TestDb {
        TestDb::new(if postgres { Db::Postgres } else { Db::Sqlite }).await
    }

    /// Drops a Postgres database (errors ignored); a SQLite file goes with its directory.
    pub async fn cleanup(self) {
        if let Some(name) = self.pg_name {
            let _ = on_admin_database(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
        }
    }
}

/// Runs `f` once on SQLite and once on Postgres.
pub async fn on_both<F, Fut>(f: F)
where
    F: Fn(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    f(Db::Sqlite).await;
    f(Db::Postgres).await;
}
