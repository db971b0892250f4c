//! The migration analysis report (`report.json`, schema
//! `sheepdog.analysis.v1`) as `sheepdog analyze` writes it and
//! `POST /admin/v1/analyses` answers it. Computed by `sheepdog-analyze`;
//! shown by the console. Money is integer nano-USD, shown as
//! `{"usd": "12.345000000", "nanos": …}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

use crate::money::format_usd;

/// Whether a logged timestamp is the start of the request (default) or its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimestampAt {
    #[default]
    Start,
    End,
}

/// What was read from one input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSummary {
    pub name: String,
    /// The format used (detected or given); `empty` for an empty input.
    pub format: String,
    pub detected: bool,
    pub gzip: bool,
    /// Bytes read from the input as given (compressed, if gzip).
    pub bytes: u64,
    pub lines: u64,
    pub records: u64,
    pub malformed: u64,
    pub blank_lines: u64,
    /// A read error that ended this input early (the part before it is analysed).
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Money {
    /// Decimal USD with all nine places.
    pub usd: String,
    /// The same amount in integer nano-USD.
    pub nanos: i64,
}

impl Money {
    pub fn from_nanos(n: i128) -> Money {
        let v = i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX });
        Money { usd: format_usd(v), nanos: v }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub generated_at: String,
    /// Wall-clock time of the analysis.
    pub elapsed_ms: u64,
    pub inputs: Vec<InputSummary>,
    pub settings: ReportSettings,
    pub window: Window,
    pub quality: QualityReport,
    pub overall: Usage,
    /// Sorted by requests, most first.
    pub tenants: Vec<TenantReport>,
    pub endpoints: Vec<GroupReport>,
    pub models: Vec<ModelReport>,
    pub cost: CostSummary,
    /// Tenants recommended for the dedicated tier, with the reasons.
    pub dedicated: Vec<DedicatedTenant>,
    pub series: SeriesReport,
    /// How each figure is computed, one line each.
    pub methods: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReportSettings {
    pub tenant_fields: Vec<String>,
    pub field_map: BTreeMap<String, String>,
    pub timestamp_at: TimestampAt,
    pub price_table: String,
    pub projected_price_table: String,
    pub model_map: BTreeMap<String, String>,
    pub margin_percent: u32,
    pub upstream_concurrency: Option<u64>,
    pub upstream_concurrency_source: String,
    pub threads: usize,
    pub max_events_in_memory: u64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Window {
    pub first: Option<String>,
    pub last: Option<String>,
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
    /// `last − first`, at least one minute (0 when there is no request).
    pub span_ms: i64,
    /// Monthly figures = observed × this (30 days / span).
    pub month_factor: f64,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MalformedLine {
    pub file: String,
    pub line: Option<u64>,
    pub record: Option<u64>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UnpricedModel {
    pub model: String,
    pub requests: u64,
    /// `now`, `projected` or `both`.
    pub table: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QualityReport {
    pub lines: u64,
    pub records: u64,
    pub malformed: u64,
    pub blank_lines: u64,
    /// The first malformed lines (by file and line number).
    pub malformed_examples: Vec<MalformedLine>,
    pub without_duration: u64,
    pub negative_durations: u64,
    pub without_usage: u64,
    pub without_tenant: u64,
    pub without_model: u64,
    pub folded_tenants: u64,
    pub folded_models: u64,
    pub folded_endpoints: u64,
    pub unpriced_models: Vec<UnpricedModel>,
    pub spilled_events: u64,
    pub spill_runs: u64,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Peak {
    pub value: u64,
    /// First moment (ms precision) the value was reached.
    pub at: Option<String>,
    /// Tenants with a request in flight at that moment.
    pub active_tenants: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Rate {
    pub p50: u64,
    pub p95: u64,
    pub peak: u64,
    /// Start of the (first) minute with the peak.
    pub peak_minute: Option<String>,
    /// Minutes with at least one request (what p50/p95 are taken over).
    pub active_minutes: u64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Headroom {
    pub requests_peak_to_p50: Option<f64>,
    pub tokens_peak_to_p50: Option<f64>,
    pub concurrency_peak_to_mean: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Limits {
    pub requests_per_minute: u64,
    pub tokens_per_minute: u64,
    pub max_concurrency: u64,
    pub margin_percent: u32,
    /// Above Sheepdog's default 1,000 requests/min or 1,000,000 tokens/min.
    pub above_default_limits: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Cost {
    pub observed: Money,
    pub monthly: Money,
    pub projected_observed: Money,
    pub projected_monthly: Money,
    pub unpriced_requests: u64,
    pub projected_unpriced_requests: u64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Usage {
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub requests_without_usage: u64,
    pub requests_without_duration: u64,
    pub peak_concurrency: Peak,
    pub mean_concurrency: f64,
    pub requests_per_minute: Rate,
    pub tokens_per_minute: Rate,
    pub headroom: Headroom,
    pub recommended_limits: Limits,
    pub cost: Cost,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TenantModel {
    pub model: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    /// Mean tokens per request with usage.
    pub avg_input_tokens: f64,
    pub avg_output_tokens: f64,
    pub cost: Money,
    pub projected_cost: Money,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TenantEndpoint {
    pub endpoint: String,
    pub requests: u64,
    pub errors: u64,
    pub avg_input_tokens: f64,
    pub avg_output_tokens: f64,
}

/// Tokens per request of one tenant (requests with usage).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TokensPerRequest {
    pub input: TokenStats,
    pub output: TokenStats,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TierRecommendation {
    /// `dedicated` or `shared`.
    pub tier: String,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TenantReport {
    pub tenant: String,
    pub name: Option<String>,
    /// The tier given in the tenants file, if any.
    pub current_tier: Option<String>,
    pub tags: Vec<String>,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub share_of_requests: f64,
    /// Its requests in flight at the moment of the overall peak.
    pub concurrency_at_overall_peak: u64,
    #[serde(flatten)]
    pub usage: Usage,
    pub tokens_per_request: TokensPerRequest,
    pub models: Vec<TenantModel>,
    pub endpoints: Vec<TenantEndpoint>,
    pub recommendation: TierRecommendation,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TokenStats {
    pub total: u64,
    /// Mean over requests with usage.
    pub avg: f64,
    pub p95: u64,
    pub max: u64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GroupReport {
    pub name: String,
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub share_of_requests: f64,
    pub requests_with_usage: u64,
    pub input_tokens: TokenStats,
    pub output_tokens: TokenStats,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PriceUsd {
    pub input_per_mtok: String,
    pub output_per_mtok: String,
    pub cached_input_per_mtok: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelReport {
    #[serde(flatten)]
    pub group: GroupReport,
    pub share_of_tokens: f64,
    pub priced_as: Option<String>,
    pub price: Option<PriceUsd>,
    pub cost: Money,
    pub monthly_cost: Money,
    pub mapped_to: String,
    pub projected_priced_as: Option<String>,
    pub projected_price: Option<PriceUsd>,
    pub projected_cost: Money,
    pub projected_monthly_cost: Money,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CostSummary {
    pub price_table: String,
    pub projected_price_table: String,
    pub model_map: BTreeMap<String, String>,
    pub observed: Money,
    pub monthly: Money,
    pub projected_observed: Money,
    pub projected_monthly: Money,
    /// Projected minus current, per month (negative: a saving).
    pub monthly_change: Money,
    pub change_percent: Option<f64>,
    pub unpriced_requests: u64,
    pub projected_unpriced_requests: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DedicatedTenant {
    pub tenant: String,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SeriesLine {
    pub name: String,
    pub requests: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SeriesReport {
    pub start: Option<String>,
    pub start_ms: i64,
    pub bucket_ms: i64,
    /// The top tenants by requests, then `(other)` when there are more, then `(total)`.
    pub lines: Vec<SeriesLine>,
}

/// The analysis: `report` is `report.json` (schema `sheepdog.analysis.v1`, see docs/analyze.md), `html` the self-contained page.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AnalysisResponse {
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub report: Report,
    pub html: String,
}
