//! The validated settings the gateway runs on, and the secrets in them.

use std::path::PathBuf;

use sheepdog_store::config::{sqlite_path, DatabaseConfig};
use sheepdog_types::Nanos;

use super::file::{AccountingConfig, ConsoleConfig, GatewayConfig, LogConfig, RedisConfig, TenantConfig};
use super::providers::{
    d_breaker_failures, d_breaker_min, d_breaker_open, d_breaker_rate, d_breaker_window, d_connect_timeout,
    d_first_byte_timeout, d_idle_timeout, d_max_queue, d_max_retries, d_queue_timeout, d_retry_base, d_retry_max,
    d_total_timeout, ModelMode, ProviderKind,
};

/// A secret string whose `Debug` never shows the value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Validated settings the rest of the gateway runs on.
#[derive(Debug, Clone)]
pub struct Settings {
    pub source: String,
    pub gateway: GatewayConfig,
    pub console: ConsoleConfig,
    pub database: DatabaseConfig,
    pub redis: Option<RedisConfig>,
    pub accounting: AccountingConfig,
    pub log: LogConfig,
    pub tenant: TenantConfig,
    /// The bearer token `/metrics` requires (from `gateway.metrics_token_env`).
    pub metrics_token: Option<Secret>,
    pub admin_token: Option<Secret>,
    /// An admin token valid for this process only (never stored): `sheepdog
    /// serve` creates one so its console can call its gateway's admin API.
    pub process_admin_token: Option<Secret>,
    pub providers: Vec<ProviderSettings>,
    pub models: Vec<ModelSettings>,
}

#[derive(Debug, Clone)]
pub struct ProviderSettings {
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub api_version: Option<String>,
    pub connect_timeout_ms: u64,
    pub first_byte_timeout_ms: u64,
    pub stream_idle_timeout_ms: u64,
    pub total_timeout_ms: u64,
    pub latency_ms: u64,
    pub ttft_ms: u64,
    pub chunk_interval_ms: u64,
    pub error_ppm: u32,
    pub max_concurrency: Option<u32>,
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    pub reserved: std::collections::HashMap<String, u32>,
    pub queue_timeout_ms: u64,
    pub max_queue_per_tenant: usize,
    pub max_retries: u32,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub breaker_failure_threshold: u32,
    pub breaker_error_rate_percent: u32,
    pub breaker_min_samples: u32,
    pub breaker_window_ms: u64,
    pub breaker_open_ms: u64,
}

impl ProviderSettings {
    /// A simulated provider with no delays and no errors.
    pub fn simulated(name: &str) -> Self {
        ProviderSettings {
            name: name.into(),
            kind: ProviderKind::Simulated,
            base_url: String::new(),
            api_key: None,
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
            reserved: std::collections::HashMap::new(),
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

#[derive(Debug, Clone)]
pub struct ModelSettings {
    pub name: String,
    pub provider: String,
    pub upstream_model: String,
    pub input_nanos_per_token: Nanos,
    pub output_nanos_per_token: Nanos,
    pub cached_input_nanos_per_token: Nanos,
    pub fallbacks: Vec<String>,
    pub max_output_tokens: Option<u64>,
    pub mode: ModelMode,
}

/// A configuration error that names the key and the source of its value.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Settings {
    /// The admin token the console uses for its admin API calls: this
    /// process's own token (`serve`), else the configured one (`console`).
    pub fn console_admin_token(&self) -> Option<&Secret> {
        self.process_admin_token.as_ref().or(self.admin_token.as_ref())
    }

    /// The SQLite file path for a `sqlite:` URL, if any.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        sqlite_path(&self.database.url)
    }
}
