//! The Sheepdog operations console and tenant portal: components, routes and
//! server functions.
//!
//! Compiled twice: with `ssr` into the `sheepdog` binary (server rendering and
//! the server functions' bodies) and with `hydrate` into the wasm `frontend`
//! (which makes the server-rendered HTML interactive). Server-only
//! dependencies are optional and only switched on by `ssr`.
//!
//! One module per domain (`keys.rs`, `costs.rs`, `audit.rs`, `users.rs`,
//! `portal.rs`, …; the larger ones are directories: `tenants/`,
//! `rollouts/`, `analyses/`, with their server functions in `server.rs`):
//! shared types, then the server-only helpers, then the `#[server]`
//! functions (which all start with a permission check from [`auth`]), then
//! the components. Server functions reach the gateway only through the
//! typed admin API client in [`api`]; every admin API type (request and
//! answer) is the gateway's own, from `sheepdog_types`. The HTML document
//! and the [`App`] with its routes are in `routes.rs`; this file only
//! declares the modules and re-exports what the server and the frontend use.

#![recursion_limit = "256"]

pub mod analyses;
#[cfg(feature = "ssr")]
pub mod api;
pub mod audit;
pub mod auth;
pub mod charts;
pub mod components;
pub mod costs;
pub mod error;
pub mod format;
pub mod health;
pub mod keys;
mod layout;
pub mod overview;
pub mod portal;
pub mod range;
pub mod replicas;
pub mod rollouts;
mod routes;
#[cfg(feature = "ssr")]
pub mod security;
#[cfg(feature = "ssr")]
pub mod state;
pub mod tenants;
pub mod users;

pub use error::ConsoleError;
pub use format::format_url_component;
pub use routes::{shell, App, OUTPUT_NAME};
#[cfg(feature = "ssr")]
pub use state::{ConsoleState, SessionPolicy};
