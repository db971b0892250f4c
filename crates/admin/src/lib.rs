//! The admin API (`/admin/v1`): bearer admin token, JSON in and out, its own
//! error boundary, every change written to the audit log, and an OpenAPI
//! document generated from these handlers. Thin handlers over the data
//! plane's state (`sheepdog-core`) and the store (`sheepdog-store`); the
//! data plane never imports this crate.
//!
//! Shared pieces sit below the handlers, each in its own module: the error
//! boundary (`error`), JSON bodies (`body`), strict query strings (`query`),
//! the audit log (`audit`), read-your-writes flushing (`flush`) and record
//! look-ups (`lookup`). The router (`routes`) sits above them all; no module
//! imports one that imports it back.

pub mod accounts;
mod admin_tokens;
pub mod analyses;
mod audit;
mod body;
mod error;
mod flush;
mod keys;
mod lookup;
pub mod openapi;
mod overview;
mod pools;
mod query;
mod replicas;
mod reports;
mod rollouts;
mod routes;
pub mod signin;
mod tenants;
mod users;

pub use error::AdminError;
pub use routes::router;
