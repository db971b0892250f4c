//! Storage: sqlx over SQLite (embedded default) or Postgres, one code path.
//!
//! Queries are runtime-checked and portable (`$N` placeholders, TEXT/BIGINT
//! columns) and run through sqlx's `Any` driver, so every query serves both
//! databases; the storage tests run on both. The request path never calls
//! this module: it reads the in-memory catalog and hands usage to the
//! accounting writer.
//!
//! One module per table group, each adding its queries to [`Store`]:
//! `db` (the handle, connection, migrations, errors, shared helpers),
//! `settings`, `tenants`, `keys`, `usage` (records, hourly aggregates,
//! spend; a usage batch debits [`pools`] in the same transaction), `audit`,
//! `users`, [`pools`], [`replicas`] (heartbeats), [`rollouts`] and [`console`] (the console's filtered
//! audit log, totals and series).

pub mod config;
pub mod console;
pub mod pools;
pub mod replicas;
pub mod rollouts;

mod audit;
mod db;
mod keys;
mod settings;
mod tenants;
mod usage;
mod users;

pub use audit::AuditEntry;
pub use db::{is_unavailable, redact_url, Backend, Store, StoreError, MIGRATOR, SQLITE_BUSY_TIMEOUT_MS};
pub use keys::KeyRow;
pub use tenants::TenantRow;
pub use usage::{HourlyDelta, HourlyRow, UsageAggregate, UsageGroup, UsageRecord};
pub use users::UserRow;
