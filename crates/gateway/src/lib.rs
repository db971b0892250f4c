//! Sheepdog's data plane and admin API, without Leptos or wasm.
//!
//! A chat completion flows one way through one module per concern:
//! [`request`] (headers, body) → [`auth`] (key, tenant) → admission (tenant
//! status; limits and budgets come next) → [`routing`] (model → provider) →
//! [`providers`] (one file per wire format) → response, with [`accounting`]
//! on the side. [`proxy`] strings the phases together; [`gateway`] assembles
//! the listener; [`admin`] is the admin API; [`store`] the database.

pub mod accounting;
pub mod admin;
pub mod admin_tokens;
pub mod admission;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod error;
pub mod fastmap;
pub mod gateway;
pub mod ids;
pub mod jsonscan;
pub mod listener;
pub mod metrics;
pub mod providers;
pub mod proxy;
pub mod request;
pub mod resilience;
pub mod rollout;
pub mod routing;
pub mod shutdown;
pub mod signin;
pub mod store;
pub mod store_console;
pub mod store_pools;
pub mod telemetry;
pub mod time;
pub mod users;
pub mod workers;

pub use gateway::{AppState, Bootstrap, Gateway};
