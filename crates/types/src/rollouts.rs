//! Rollouts (`/admin/v1/rollouts`, SPEC §6): the bodies that create and
//! move a rollout, and the rollout as answered (both sides side by side,
//! shadow diffs, history, differing samples and the time series).

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

// ---- request bodies ---------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RouteInput {
    pub provider: String,
    pub upstream_model: String,
    /// Prices on this route (USD per 1M tokens); default: those of a configured
    /// model on the same provider and upstream model, else the model's own.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub input_per_mtok: Option<Value>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub output_per_mtok: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PlanInput {
    /// First canary share, percent (default 5).
    pub initial_percent: Option<f64>,
    /// Added every interval, percent (default 20).
    pub step_percent: Option<f64>,
    /// Seconds between steps (default 86400).
    pub step_interval_secs: Option<u64>,
    /// Only operators advance the share (default false).
    pub manual: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GuardInput {
    /// `to` error rate that rolls back, percent (default 1).
    pub max_error_rate_percent: Option<f64>,
    /// `to` p99 over `from` p99 that rolls back (default 2).
    pub max_p99_ratio: Option<f64>,
    /// Sliding window, seconds (default 300).
    pub window_secs: Option<u64>,
    /// Samples each side needs before the guard decides (default 20).
    pub min_samples: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateRollout {
    pub model: String,
    /// One tenant (id or alias); absent: every tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Default: the model's configured route.
    #[serde(default)]
    pub from: Option<RouteInput>,
    pub to: RouteInput,
    /// `shadow` (default) or `canary`.
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default)]
    pub plan: Option<PlanInput>,
    #[serde(default)]
    pub guard: Option<GuardInput>,
    /// Shadow calls in flight at most (default 8).
    #[serde(default)]
    pub shadow_max_concurrency: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AdvanceInput {
    /// Set the canary share to this percent instead of the next step.
    pub percent: Option<f64>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReasonInput {
    pub reason: Option<String>,
}

// ---- responses ----------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RouteView {
    pub provider: String,
    pub upstream_model: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SideView {
    /// Requests in the guard window.
    pub window_requests: u32,
    pub window_errors: u32,
    pub error_rate_percent: f64,
    pub p50_ms: u64,
    pub p99_ms: u64,
    /// Requests per minute over the guard window.
    pub throughput_rpm: f64,
    pub total_requests: u64,
    pub total_errors: u64,
    /// Average cost of 1,000 requests so far, USD (for `to`, mirrored shadow calls count at what they cost).
    pub cost_per_1k_requests_usd: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ShadowView {
    pub pairs: u64,
    pub differing: u64,
    pub diff_rate_percent: f64,
    pub tool_mismatches: u64,
    pub to_errors: u64,
    /// What the shadow calls cost (not billed to tenants).
    pub shadow_spend_usd: String,
    /// Requests not mirrored because every shadow slot was busy.
    pub skipped: u64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RolloutView {
    pub id: String,
    pub model: String,
    pub tenant_id: Option<String>,
    pub from: RouteView,
    pub to: RouteView,
    /// `shadow`, `canary`, `complete` or `rolled_back`.
    pub phase: String,
    /// Share of requests on `to` now, percent.
    pub percent: f64,
    pub paused: bool,
    pub plan: PlanView,
    pub guard: GuardView,
    pub window_secs: u64,
    pub from_stats: SideView,
    pub to_stats: SideView,
    pub shadow: ShadowView,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PlanView {
    pub initial_percent: f64,
    pub step_percent: f64,
    pub step_interval_secs: u64,
    pub manual: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct GuardView {
    pub max_error_rate_percent: f64,
    pub max_p99_ratio: f64,
    pub window_secs: u64,
    pub min_samples: u32,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EventView {
    pub at: String,
    pub from_phase: Option<String>,
    pub to_phase: String,
    pub percent: f64,
    pub actor: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SampleView {
    pub at: String,
    pub request_id: Option<String>,
    pub from_latency_ms: Option<i64>,
    pub to_latency_ms: Option<i64>,
    pub from_ttft_ms: Option<i64>,
    pub to_ttft_ms: Option<i64>,
    pub from_error: Option<String>,
    pub to_error: Option<String>,
    pub from_tokens: [Option<i64>; 2],
    pub to_tokens: [Option<i64>; 2],
    pub exact_match: bool,
    pub similarity_percent: i64,
    pub same_tools: Option<bool>,
    pub from_text: Option<String>,
    pub to_text: Option<String>,
    pub to_cost_usd: String,
}

/// One side in one bucket of the time series.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SeriesSideView {
    /// Requests this side answered in the bucket (for `to` in shadow: mirrored calls).
    pub requests: u64,
    pub errors: u64,
    pub error_rate_percent: f64,
    /// Latency of the successful requests, nearest rank (exact below 64 ms, else within 3 %); null without any.
    pub p50_ms: Option<u64>,
    pub p99_ms: Option<u64>,
    /// Requests per minute over the bucket.
    pub throughput_rpm: f64,
    /// What the side's requests cost in the bucket (for `to` in shadow: the shadow calls), integer nano-USD.
    pub cost_nanos: i64,
    /// The same as decimal USD.
    pub cost_usd: String,
    /// Average cost of 1,000 requests in the bucket, USD; null when none was priced.
    pub cost_per_1k_requests_usd: Option<String>,
}

/// One bucket of the time series.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SeriesPointView {
    /// Start of the bucket (RFC 3339, UTC).
    pub start: String,
    pub start_ms: i64,
    /// False for the bucket still filling (the last one).
    pub complete: bool,
    pub from: SeriesSideView,
    pub to: SeriesSideView,
    /// Shadow pairs compared in the bucket, and those whose outputs differ.
    pub shadow_pairs: u64,
    pub shadow_differing: u64,
    /// `shadow_differing` ÷ `shadow_pairs`, percent; null without pairs.
    pub diff_rate_percent: Option<f64>,
}

/// Both sides over time: fixed buckets of `bucket_secs`, from the rollout's
/// creation (at most the last 90 buckets, 15 minutes) to now, oldest first,
/// quiet buckets included. Kept in memory by each gateway process.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SeriesView {
    pub bucket_secs: u64,
    pub points: Vec<SeriesPointView>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RolloutReport {
    #[serde(flatten)]
    pub rollout: RolloutView,
    pub events: Vec<EventView>,
    /// The latest differing shadow pairs.
    pub differing_samples: Vec<SampleView>,
    /// Both sides over time (the console's live charts).
    pub series: SeriesView,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RolloutList {
    pub data: Vec<RolloutView>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EventList {
    pub data: Vec<EventView>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SampleList {
    pub data: Vec<SampleView>,
}
