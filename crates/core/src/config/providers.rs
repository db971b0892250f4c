//! The `[providers.<name>]` and `[models.<name>]` tables: their fields,
//! defaults and prices, and the default price table.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sheepdog_types::money::parse_decimal_scaled;
use sheepdog_types::Nanos;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Openai,
    Anthropic,
    Gemini,
    Simulated,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Simulated => "simulated",
        }
    }
}

/// Largest configured simulated delay (`latency_ms`, `ttft_ms`, `chunk_interval_ms`), in ms.
pub const SIMULATED_MAX_DELAY_MS: u64 = 60_000;

/// One `[providers.<name>]` table. `kind` is required in a file; every other
/// field has a default, and [`ProviderConfig::default`] is what a table with
/// only `kind = "simulated"` gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    pub base_url: Option<String>,
    /// Name of the environment variable holding the provider's API key.
    pub api_key_env: Option<String>,
    /// Anthropic: the `anthropic-version` header (default `2023-06-01`).
    pub api_version: Option<String>,
    #[serde(default = "d_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Time allowed until the upstream's response headers arrive.
    #[serde(default = "d_first_byte_timeout")]
    pub first_byte_timeout_ms: u64,
    /// Longest silence allowed between two pieces of a streamed answer.
    #[serde(default = "d_idle_timeout")]
    pub stream_idle_timeout_ms: u64,
    /// Whole request, stream included.
    #[serde(default = "d_total_timeout")]
    pub total_timeout_ms: u64,
    /// Simulated provider: fixed latency before a non-streamed answer.
    #[serde(default)]
    pub latency_ms: u64,
    /// Simulated provider: time to the first streamed chunk.
    #[serde(default)]
    pub ttft_ms: u64,
    /// Simulated provider: gap between streamed chunks.
    #[serde(default)]
    pub chunk_interval_ms: u64,
    /// Simulated provider: share of requests that fail with HTTP 500, in parts per million.
    #[serde(default)]
    pub error_ppm: u32,
    /// Upstream capacity: requests in flight at most (unset: unlimited).
    #[serde(default)]
    pub max_concurrency: Option<u32>,
    /// Upstream capacity: requests per minute (unset: unlimited).
    #[serde(default)]
    pub requests_per_minute: Option<u64>,
    /// Upstream capacity: tokens per minute (unset: unlimited).
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
    /// Concurrency slots reserved for dedicated tenants: tenant id or alias → slots
    /// (taken out of `max_concurrency`).
    #[serde(default)]
    pub reserved: BTreeMap<String, u32>,
    /// Longest wait for upstream capacity before a 429.
    #[serde(default = "d_queue_timeout")]
    pub queue_timeout_ms: u64,
    /// Requests one tenant may have waiting for this upstream before a 429.
    #[serde(default = "d_max_queue")]
    pub max_queue_per_tenant: usize,
    /// Retries of a failed call on this upstream (before the first byte reaches the client).
    #[serde(default = "d_max_retries")]
    pub max_retries: u32,
    /// First retry backoff; doubles each retry (full jitter), capped by `retry_max_ms`.
    #[serde(default = "d_retry_base")]
    pub retry_base_ms: u64,
    #[serde(default = "d_retry_max")]
    pub retry_max_ms: u64,
    /// Circuit breaker: consecutive failures that open it.
    #[serde(default = "d_breaker_failures")]
    pub breaker_failure_threshold: u32,
    /// Circuit breaker: error rate (percent) over the window that opens it.
    #[serde(default = "d_breaker_rate")]
    pub breaker_error_rate_percent: u32,
    /// Circuit breaker: calls in the window before the error rate counts.
    #[serde(default = "d_breaker_min")]
    pub breaker_min_samples: u32,
    #[serde(default = "d_breaker_window")]
    pub breaker_window_ms: u64,
    /// How long it stays open before a half-open probe (doubles after a failed probe, up to 8×).
    #[serde(default = "d_breaker_open")]
    pub breaker_open_ms: u64,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        ProviderConfig {
            kind: ProviderKind::Simulated,
            base_url: None,
            api_key_env: None,
            api_version: None,
            connect_timeout_ms: d_connect_timeout(),
            first_byte_timeout_ms: d_first_byte_timeout(),
            stream_idle_timeout_ms: d_idle_timeout(),
            total_timeout_ms: d_total_timeout(),
            latency_ms: 0,
            ttft_ms: 0,
            chunk_interval_ms: 0,
            error_ppm: 0,
            max_concurrency: None,
            requests_per_minute: None,
            tokens_per_minute: None,
            reserved: BTreeMap::new(),
            queue_timeout_ms: d_queue_timeout(),
            max_queue_per_tenant: d_max_queue(),
            max_retries: d_max_retries(),
            retry_base_ms: d_retry_base(),
            retry_max_ms: d_retry_max(),
            breaker_failure_threshold: d_breaker_failures(),
            breaker_error_rate_percent: d_breaker_rate(),
            breaker_min_samples: d_breaker_min(),
            breaker_window_ms: d_breaker_window(),
            breaker_open_ms: d_breaker_open(),
        }
    }
}

pub(super) fn d_max_retries() -> u32 {
    2
}
pub(super) fn d_retry_base() -> u64 {
    100
}
pub(super) fn d_retry_max() -> u64 {
    2_000
}
pub(super) fn d_breaker_failures() -> u32 {
    5
}
pub(super) fn d_breaker_rate() -> u32 {
    50
}
pub(super) fn d_breaker_min() -> u32 {
    10
}
pub(super) fn d_breaker_window() -> u64 {
    30_000
}
pub(super) fn d_breaker_open() -> u64 {
    10_000
}

pub(super) fn d_queue_timeout() -> u64 {
    30_000
}
pub(super) fn d_max_queue() -> usize {
    64
}

pub(super) fn d_connect_timeout() -> u64 {
    10_000
}
pub(super) fn d_first_byte_timeout() -> u64 {
    120_000
}
pub(super) fn d_idle_timeout() -> u64 {
    120_000
}
pub(super) fn d_total_timeout() -> u64 {
    600_000
}

/// A price in USD per 1M tokens, as a TOML number or a decimal string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PriceValue {
    Int(i64),
    Float(f64),
    Text(String),
}

impl PriceValue {
    /// nano-USD per token. A price per 1M tokens with at most three decimal
    /// places is a whole number of nano-USD per token; more precision would
    /// make costs inexact and is refused.
    pub fn nanos_per_token(&self) -> Result<Nanos, String> {
        let text = match self {
            PriceValue::Int(i) => i.to_string(),
            PriceValue::Float(f) if f.is_finite() => format!("{f}"),
            PriceValue::Float(_) => return Err("not a finite number".into()),
            PriceValue::Text(s) => s.clone(),
        };
        let v = parse_decimal_scaled(&text, 3)
            .map_err(|e| format!("{text:?} is not a USD price per 1M tokens with at most 3 decimal places ({e})"))?;
        if v < 0 {
            return Err(format!("{text:?} is negative"));
        }
        Ok(v)
    }
}

/// What a model does: which endpoints serve it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelMode {
    /// Chat Completions, Messages and Responses.
    #[default]
    Chat,
    /// Embeddings (`POST /v1/embeddings`); billed on input tokens only.
    Embedding,
}

impl ModelMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelMode::Chat => "chat",
            ModelMode::Embedding => "embedding",
        }
    }
}

/// One `[models.<name>]` table. `provider` is required in a file (the
/// default's is empty); every other field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub provider: String,
    pub upstream_model: Option<String>,
    pub input_per_mtok: Option<PriceValue>,
    pub output_per_mtok: Option<PriceValue>,
    /// Price of prompt tokens served from the provider's cache (default: the input price).
    pub cached_input_per_mtok: Option<PriceValue>,
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// Largest completion the model can produce (used for worst-case estimates).
    pub max_output_tokens: Option<u64>,
    /// `chat` (default) or `embedding`.
    #[serde(default)]
    pub mode: ModelMode,
}

/// The default price table (SPEC §2): model, input and output USD per 1M tokens.
pub const DEFAULT_PRICES: [(&str, &str, &str); 4] = [
    ("gpt-4.1", "2", "8"),
    ("claude-sonnet-4.5", "3", "15"),
    ("gemini-2.5-flash", "0.30", "2.50"),
    ("deepseek-v3.2", "0.10", "0.42"),
];
