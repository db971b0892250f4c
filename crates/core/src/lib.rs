//! Sheepdog's data plane, without Leptos, wasm or the admin API.
//!
//! A chat completion flows one way through one module per concern:
//! [`request`] (headers, body) → [`auth`] (key, tenant) → [`admission`]
//! (status, limits, budgets, pools, capacity) → [`routing`] (model →
//! provider, with [`rollout`] and [`resilience`]) → [`providers`] (one file
//! per wire format) → response, with [`accounting`] on the side. [`proxy`]
//! strings the phases together; [`service`] and [`routes`] answer the
//! gateway listener; [`server`] builds and serves it on the [`workers`].
//! The admin API (crate `sheepdog-admin`) plugs in as a router; this crate
//! never imports it.

pub mod accounting;
pub mod admin_tokens;
pub mod admission;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod error;
mod fastmap;
pub mod ids;
pub mod ingress;
pub mod journal;
pub mod jsonscan;
pub mod limited;
pub mod listener;
pub mod locks;
pub mod metrics;
pub mod providers;
pub mod proxy;
pub mod replicas;
pub mod request;
pub mod resilience;
pub mod rollout;
pub mod routes;
pub mod routing;
pub mod server;
pub mod service;
pub mod shared;
pub mod shutdown;
pub mod state;
pub mod telemetry;
pub mod workers;

pub use server::{Bootstrap, Gateway};
pub use state::AppState;
