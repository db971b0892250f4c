//! Metrics: a tenant's hourly buckets (`GET /admin/v1/tenants/{id}/metrics`)
//! and the operator's overview (`GET /admin/v1/overview`).

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// One hourly bucket of `GET /admin/v1/tenants/{id}/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MetricsBucket {
    pub start: String,
    pub request_count: u64,
    pub error_count: u64,
    pub rate_limit_hits: u64,
    pub avg_latency_ms: f64,
    pub p99_latency_ms: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Decimal USD with nine places.
    pub cost_usd: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TenantMetrics {
    pub tenant_id: String,
    pub period: String,
    pub granularity: String,
    pub buckets: Vec<MetricsBucket>,
}

/// One hour of the overview's totals across tenants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct OverviewBucket {
    pub start: String,
    pub requests: u64,
    pub errors: u64,
    pub p99_latency_ms: f64,
    pub cost_nanos: i64,
}

/// A tenant's spend in the overview window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TenantSpend {
    pub tenant_id: String,
    pub name: String,
    pub requests: u64,
    pub cost_usd: String,
    pub cost_nanos: i64,
}

/// How an upstream provider did in the last hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UpstreamStatus {
    /// The `[providers.NAME]` name.
    pub provider: String,
    /// `openai`, `anthropic`, `gemini` or `simulated`.
    pub kind: String,
    /// The simulated provider answers without a real upstream.
    pub simulated: bool,
    pub models: Vec<String>,
    /// Requests answered by this provider in the last hour.
    pub requests: u64,
    /// Of which failed upstream (5xx, timeouts, broken streams).
    pub errors: u64,
    /// `healthy` (< 1 % errors), `degraded` (< 50 %), `down`, or `idle` (no traffic).
    pub status: String,
}

fn hour_bucket() -> String {
    "hour".into()
}

/// `GET /admin/v1/overview`: the operator's dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Overview {
    pub from: String,
    pub to: String,
    /// The width of each entry of `hourly`: `hour`, or `day` for windows longer than 48 hours.
    #[serde(default = "hour_bucket")]
    pub bucket: String,
    pub requests: u64,
    pub errors: u64,
    pub rate_limit_hits: u64,
    /// `errors / requests`, 0 without requests.
    pub error_rate: f64,
    pub p99_latency_ms: f64,
    pub cost_usd: String,
    pub cost_nanos: i64,
    pub tenants_total: u64,
    pub tenants_active: u64,
    /// One entry per `bucket` over the window (hourly by default, hence the name).
    pub hourly: Vec<OverviewBucket>,
    pub top_tenants: Vec<TenantSpend>,
    pub upstreams: Vec<UpstreamStatus>,
}
