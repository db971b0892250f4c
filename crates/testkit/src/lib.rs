//! Sheepdog's test kit: what the tests of the workspace share.
//!
//! - [`admin`]: the admin API as a test calls it ([`AdminClient`]), a tenant
//!   and its key in one call, JSON-or-text answers, a minimal chat body.
//! - [`raw`]: raw HTTP/1.1 on a socket (nothing normalises the bytes),
//!   reading answers and closes on kept-alive connections.
//! - [`sse`]: the `data:` payloads of a streamed answer.
//! - [`db`]: a fresh SQLite file or Postgres database per test.
//! - [`process`]: free ports, the `sheepdog` binary with a clean
//!   environment, waiting for ports and exits, a placeholder console site.
//! - `gateway` (default feature): [`TestGateway`], the real gateway
//!   in-process on port 0, and the provider/model config builders.
//!
//! Its helpers panic on failure (they are test code), except the `try_`
//! ones, which the benchmark uses.

// A test kit: its helpers fail the test by panicking, like the tests that call them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod admin;
pub mod db;
pub mod process;
pub mod raw;
pub mod sse;

#[cfg(feature = "gateway")]
pub mod config;
#[cfg(feature = "gateway")]
pub mod gateway;

pub use admin::{chat_body, json_or_text, parse_json_or_text, AdminClient};
pub use db::{on_both, postgres_admin_url, Db, TestDb};
pub use process::{free_port, try_free_port};
pub use sse::{sse_data, sse_payloads};

#[cfg(feature = "gateway")]
pub use config::{emulated_provider, emulated_provider_plain, model, provider_kind, simulated_provider};
#[cfg(feature = "gateway")]
pub use gateway::{budget_race, usage_records, GatewayBuilder, TestGateway, ADMIN_TOKEN};
