//! Usage for cost attribution: `GET /admin/v1/usage` (grouped totals) and
//! `GET /admin/v1/usage/series` (the same over time).

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// One row of `GET /admin/v1/usage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UsageRow {
    pub key: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    /// Decimal USD with nine places.
    pub cost_usd: String,
    /// The same amount as an integer count of nano-USD.
    pub cost_nanos: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UsageReport {
    pub from: String,
    pub to: String,
    pub group_by: String,
    pub data: Vec<UsageRow>,
}

/// One series of `GET /admin/v1/usage/series`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UsageSeriesRow {
    /// Tenant id, cost center (`(none)` when unset) or model.
    pub key: String,
    /// Tenant name for tenants; the key otherwise.
    pub label: String,
    /// Cost in nano-USD per bucket (same order as `buckets`).
    pub values_nanos: Vec<i64>,
    /// Requests per bucket.
    pub requests_per_bucket: Vec<u64>,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: String,
    pub cost_nanos: i64,
}

/// `GET /admin/v1/usage/series`: cost over time, one series per group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UsageSeries {
    pub from: String,
    pub to: String,
    /// `tenant`, `cost_center` or `model`.
    pub group_by: String,
    /// `hour` or `day`.
    pub bucket: String,
    /// Start of each bucket (RFC 3339, UTC).
    pub buckets: Vec<String>,
    /// Ordered by cost, largest first.
    pub series: Vec<UsageSeriesRow>,
}
