//! The admin API contract (`/admin/v1`): every request and response type,
//! shared by the gateway (which answers them) and the console (which reads
//! them); compiles to wasm. One module per concern, everything re-exported
//! here, so `sheepdog_types::Tenant` names the same type on both sides.
//!
//! Everything here is plain data: no database, no tokio, no secrets except
//! the one-time `key` field of [`KeyCreated`] and `token` of
//! [`AdminTokenRotated`], each shown exactly once.
//!
//! The OpenAPI derive (`utoipa::ToSchema`) is behind the `openapi` feature:
//! the gateway, which serves the OpenAPI document, switches it on; the
//! console does not.

pub mod admin_tokens;
pub mod analysis;
pub mod audit;
pub mod errors;
pub mod keys;
pub mod metrics;
pub mod money;
pub mod net;
pub mod pools;
pub mod replicas;
pub mod rollouts;
pub mod tenants;
pub mod time;
pub mod upstreams;
pub mod usage;
pub mod users;

use serde::{Deserialize, Serialize};

pub use admin_tokens::*;
pub use audit::*;
pub use errors::*;
pub use keys::*;
pub use metrics::*;
pub use money::{format_usd, parse_usd, Nanos, NANOS_PER_USD};
pub use pools::*;
pub use replicas::*;
pub use rollouts::*;
pub use tenants::*;
pub use upstreams::*;
pub use usage::*;
pub use users::*;

// The analysis report's types are named by their module
// (`sheepdog_types::analysis::Report`): several names (`Limits`, `Usage`,
// `Cost`) would clash with the admin API's. Only the answer is re-exported.
pub use analysis::AnalysisResponse;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// `{"data": [...]}`: any list answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ListResponse<T> {
    pub data: Vec<T>,
}
