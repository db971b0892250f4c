//! Configuration: a TOML file plus `SHEEPDOG_<SECTION>__<KEY>` environment
//! overrides (SPEC §2), validated into [`Settings`]. Every error names the key
//! and where its value came from.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use sheepdog_types::money::parse_decimal_scaled;
use sheepdog_types::Nanos;

pub use sheepdog_store::config::{sqlite_path, DatabaseConfig};

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

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub gateway: GatewayConfig,
    pub console: ConsoleConfig,
    pub database: DatabaseConfig,
    pub redis: Option<RedisConfig>,
    pub accounting: AccountingConfig,
    pub log: LogConfig,
    pub tenant: TenantConfig,
    pub providers: BTreeMap<String, ProviderConfig>,
    pub models: BTreeMap<String, ModelConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    /// Name of the environment variable holding the admin bearer token.
    pub admin_token_env: String,
    pub max_body_bytes: u64,
    /// Largest log file `POST /admin/v1/analyses` accepts (as uploaded, gzip or not).
    pub max_analysis_upload_bytes: u64,
    /// Thread-per-core event loops serving the gateway listener; 0 = one per core.
    pub workers: usize,
    /// Name of an environment variable: when it is set and not empty,
    /// `/metrics` requires `Authorization: Bearer <its value>`.
    pub metrics_token_env: Option<String>,
    /// When set, `/metrics` is served only on this address (the gateway port
    /// answers 404 for it).
    pub metrics_listen: Option<SocketAddr>,
    /// A connection that has not sent a whole request head this long after
    /// it opened (or after the first byte of its next request) is closed.
    pub header_read_timeout_ms: u64,
    /// A keep-alive connection idle this long between requests is closed.
    pub idle_timeout_ms: u64,
    /// Open client connections at most; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// After SIGTERM, requests in flight get this long before streams are
    /// ended with an error event and connections close.
    pub shutdown_grace_secs: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_token_env: "SHEEPDOG_ADMIN_TOKEN".into(),
            max_body_bytes: 32 * 1024 * 1024,
            max_analysis_upload_bytes: 256 * 1024 * 1024,
            workers: 0,
            metrics_token_env: None,
            metrics_listen: None,
            header_read_timeout_ms: D_HEADER_READ_TIMEOUT_MS,
            idle_timeout_ms: D_IDLE_TIMEOUT_MS,
            max_connections: D_MAX_CONNECTIONS,
            shutdown_grace_secs: D_SHUTDOWN_GRACE_SECS,
        }
    }
}

/// Connection limits of both listeners (SPEC §10): defaults.
const D_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
const D_IDLE_TIMEOUT_MS: u64 = 120_000;
const D_MAX_CONNECTIONS: usize = 10_000;
const D_SHUTDOWN_GRACE_SECS: u64 = 30;

/// A listener's connection limits (`[gateway]` or `[console]`), validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    pub header_read_timeout: std::time::Duration,
    pub idle_timeout: std::time::Duration,
    pub max_connections: usize,
    pub shutdown_grace: std::time::Duration,
}

impl GatewayConfig {
    pub fn limits(&self) -> ListenerLimits {
        limits(self.header_read_timeout_ms, self.idle_timeout_ms, self.max_connections, self.shutdown_grace_secs)
    }
}

impl ConsoleConfig {
    pub fn limits(&self) -> ListenerLimits {
        limits(self.header_read_timeout_ms, self.idle_timeout_ms, self.max_connections, self.shutdown_grace_secs)
    }
}

fn limits(header_ms: u64, idle_ms: u64, max_connections: usize, grace_secs: u64) -> ListenerLimits {
    ListenerLimits {
        header_read_timeout: std::time::Duration::from_millis(header_ms),
        idle_timeout: std::time::Duration::from_millis(idle_ms),
        max_connections,
        shutdown_grace: std::time::Duration::from_secs(grace_secs),
    }
}

/// Connection limits that make no sense: 0 timeouts or connections, or
/// values beyond a day / a million (a typo, and timers that far out).
fn check_limits(section: &str, l: &ListenerLimits) -> Result<(), (String, String)> {
    const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);
    let key = |k: &str| format!("{section}.{k}");
    if l.header_read_timeout.is_zero() || l.header_read_timeout > DAY {
        return Err((key("header_read_timeout_ms"), "must be between 1 and 86400000 (a day)".into()));
    }
    if l.idle_timeout.is_zero() || l.idle_timeout > DAY {
        return Err((key("idle_timeout_ms"), "must be between 1 and 86400000 (a day)".into()));
    }
    if l.max_connections == 0 || l.max_connections > 1_000_000 {
        return Err((key("max_connections"), "must be between 1 and 1000000".into()));
    }
    if l.shutdown_grace > DAY {
        return Err((key("shutdown_grace_secs"), "must be at most 86400 (a day)".into()));
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    pub listen: SocketAddr,
    pub gateway_url: String,
    /// Directory of the built site (wasm, JS, CSS); cargo-leptos writes `target/site`.
    pub site_root: String,
    /// The console's address as browsers see it (e.g. `https://console.example.com`),
    /// when it runs behind a proxy: state-changing requests must come from this
    /// origin, and an `https://` URL makes the session cookie `Secure`.
    /// Unset: the request's own host, cookie not `Secure`.
    pub public_url: Option<String>,
    /// A console session unused for this long ends (seconds).
    pub session_idle_timeout_secs: u64,
    /// A console session ends this long after sign-in, used or not (seconds).
    pub session_absolute_timeout_secs: u64,
    /// The console listener's connection limits (as in `[gateway]`).
    pub header_read_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub max_connections: usize,
    pub shutdown_grace_secs: u64,
    /// Reverse proxies (CIDR ranges or addresses) whose `X-Forwarded-For` the
    /// console believes for the client address of a sign-in (throttling).
    /// Empty: the socket peer is the client.
    pub trusted_proxies: Vec<String>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            gateway_url: "http://127.0.0.1:8080".into(),
            site_root: "target/site".into(),
            public_url: None,
            session_idle_timeout_secs: 30 * 60,
            session_absolute_timeout_secs: 12 * 3600,
            header_read_timeout_ms: D_HEADER_READ_TIMEOUT_MS,
            idle_timeout_ms: D_IDLE_TIMEOUT_MS,
            max_connections: D_MAX_CONNECTIONS,
            shutdown_grace_secs: D_SHUTDOWN_GRACE_SECS,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Per-tenant bounds (`[tenant]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantConfig {
    /// Active (not revoked) keys one tenant may hold; creating one more is
    /// refused with 409 `key_limit_reached`.
    pub max_keys: u32,
}

impl Default for TenantConfig {
    fn default() -> Self {
        TenantConfig { max_keys: 100 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    pub url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountingConfig {
    /// Usage records written per database transaction at most.
    pub batch_size: usize,
    /// How long a record may wait in memory before it is written.
    pub flush_interval_ms: u64,
    /// Records queued in memory at most; when full, the request path waits
    /// (usage is never dropped).
    pub queue_capacity: usize,
}

impl Default for AccountingConfig {
    fn default() -> Self {
        AccountingConfig { batch_size: 1000, flush_interval_ms: 200, queue_capacity: 100_000 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: "text".into() }
    }
}

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

fn d_max_retries() -> u32 {
    2
}
fn d_retry_base() -> u64 {
    100
}
fn d_retry_max() -> u64 {
    2_000
}
fn d_breaker_failures() -> u32 {
    5
}
fn d_breaker_rate() -> u32 {
    50
}
fn d_breaker_min() -> u32 {
    10
}
fn d_breaker_window() -> u64 {
    30_000
}
fn d_breaker_open() -> u64 {
    10_000
}

fn d_queue_timeout() -> u64 {
    30_000
}
fn d_max_queue() -> usize {
    64
}

fn d_connect_timeout() -> u64 {
    10_000
}
fn d_first_byte_timeout() -> u64 {
    120_000
}
fn d_idle_timeout() -> u64 {
    120_000
}
fn d_total_timeout() -> u64 {
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
}

/// The default price table (SPEC §2): model, input and output USD per 1M tokens.
pub const DEFAULT_PRICES: [(&str, &str, &str); 4] = [
    ("gpt-4.1", "2", "8"),
    ("claude-sonnet-4.5", "3", "15"),
    ("gemini-2.5-flash", "0.30", "2.50"),
    ("deepseek-v3.2", "0.10", "0.42"),
];

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
}

/// A configuration error that names the key and the source of its value.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Settings {
    /// Loads the file (if any) and the environment, then validates.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        let source = match file {
            Some(path) => {
                if !path.exists() {
                    return Err(ConfigError(format!("config file {} does not exist", path.display())));
                }
                fig = fig.merge(Toml::file_exact(path));
                path.display().to_string()
            }
            None => "built-in defaults".to_string(),
        };
        fig = fig.merge(Env::prefixed("SHEEPDOG_").filter(|k| k.as_str().contains("__")).split("__"));
        let config: Config = fig.extract().map_err(|e| ConfigError(describe_figment_error(e)))?;
        Settings::from_config(config, &source, &|name| std::env::var(name).ok())
    }

    /// Loads a configuration from TOML text (no file, no environment
    /// overrides), then validates it as [`Settings::load`] does. `source`
    /// names the text in errors; `env` looks up environment variables (for keys).
    pub fn from_toml_str(
        text: &str,
        source: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| ConfigError(describe_figment_error(e)))?;
        Settings::from_config(config, source, env)
    }

    /// Validates a parsed config. `env` looks up environment variables (for keys).
    pub fn from_config(
        config: Config,
        source: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let err = |key: &str, msg: String| ConfigError(format!("{key}: {msg} (in {source})"));
        if config.gateway.max_body_bytes == 0 {
            return Err(err("gateway.max_body_bytes", "must be greater than 0".into()));
        }
        if config.gateway.workers > 1024 {
            return Err(err("gateway.workers", format!("{} is more than 1024 threads", config.gateway.workers)));
        }
        if !(config.database.url.starts_with("sqlite:")
            || config.database.url.starts_with("postgres://")
            || config.database.url.starts_with("postgresql://"))
        {
            return Err(err("database.url", "must start with sqlite: or postgres://".into()));
        }
        if config.accounting.batch_size == 0 || config.accounting.queue_capacity == 0 {
            return Err(err("accounting", "batch_size and queue_capacity must be greater than 0".into()));
        }
        if !matches!(config.log.format.as_str(), "text" | "json") {
            return Err(err("log.format", format!("{:?} is not text or json", config.log.format)));
        }
        if !(config.console.gateway_url.starts_with("http://") || config.console.gateway_url.starts_with("https://")) {
            return Err(err("console.gateway_url", "must be an http:// or https:// URL".into()));
        }
        if let Some(u) = &config.console.public_url {
            if !(u.starts_with("http://") || u.starts_with("https://"))
                || u.trim_end_matches('/').matches('/').count() != 2
            {
                return Err(err("console.public_url", "must be an origin such as https://console.example.com".into()));
            }
        }
        if config.console.session_idle_timeout_secs == 0
            || config.console.session_absolute_timeout_secs < config.console.session_idle_timeout_secs
        {
            return Err(err(
                "console.session_absolute_timeout_secs",
                "timeouts must be positive and the absolute timeout at least the idle one".into(),
            ));
        }
        for (section, l) in [("gateway", config.gateway.limits()), ("console", config.console.limits())] {
            check_limits(section, &l).map_err(|(key, msg)| err(&key, msg))?;
        }
        for (i, p) in config.console.trusted_proxies.iter().enumerate() {
            sheepdog_types::net::Cidr::parse(p).map_err(|e| err(&format!("console.trusted_proxies[{i}]"), e))?;
        }
        let admin_token = env(&config.gateway.admin_token_env).filter(|s| !s.is_empty()).map(Secret::new);
        let metrics_token = match config.gateway.metrics_token_env.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(var) => env(var).filter(|s| !s.is_empty()).map(Secret::new),
        };
        if config.gateway.metrics_listen.is_some_and(|m| m == config.gateway.listen) {
            return Err(err("gateway.metrics_listen", "must differ from gateway.listen".into()));
        }
        if config.tenant.max_keys == 0 {
            return Err(err("tenant.max_keys", "must be at least 1".into()));
        }

        let mut providers = Vec::new();
        let explicit = !config.providers.is_empty();
        if explicit {
            for (name, p) in &config.providers {
                let key = format!("providers.{name}");
                let base_url = match (&p.base_url, p.kind) {
                    (Some(u), _) => {
                        if !(u.starts_with("http://") || u.starts_with("https://")) {
                            return Err(err(&format!("{key}.base_url"), format!("{u:?} is not an http(s) URL")));
                        }
                        u.trim_end_matches('/').to_string()
                    }
                    (None, ProviderKind::Openai) => "https://api.openai.com/v1".into(),
                    (None, ProviderKind::Anthropic) => "https://api.anthropic.com/v1".into(),
                    (None, ProviderKind::Gemini) => "https://generativelanguage.googleapis.com/v1beta".into(),
                    (None, ProviderKind::Simulated) => String::new(),
                };
                let api_key = match &p.api_key_env {
                    Some(var) => env(var).filter(|s| !s.is_empty()).map(Secret::new),
                    None => None,
                };
                let reserved_total: u64 = p.reserved.values().map(|v| u64::from(*v)).sum();
                match p.max_concurrency {
                    Some(0) => return Err(err(&format!("{key}.max_concurrency"), "must be at least 1".into())),
                    Some(max) if reserved_total >= u64::from(max) => {
                        return Err(err(
                            &format!("{key}.reserved"),
                            format!("reserves {reserved_total} slots, leaving none of max_concurrency = {max} shared"),
                        ))
                    }
                    None if reserved_total > 0 => {
                        return Err(err(&format!("{key}.reserved"), "needs max_concurrency to reserve from".into()))
                    }
                    _ => {}
                }
                if p.max_queue_per_tenant == 0 || p.queue_timeout_ms == 0 {
                    return Err(err(&format!("{key}.max_queue_per_tenant"), "queue limits must be at least 1".into()));
                }
                if p.error_ppm > 1_000_000 {
                    return Err(err(&format!("{key}.error_ppm"), "must be at most 1000000".into()));
                }
                let max_delay = SIMULATED_MAX_DELAY_MS;
                for (field, v) in
                    [("latency_ms", p.latency_ms), ("ttft_ms", p.ttft_ms), ("chunk_interval_ms", p.chunk_interval_ms)]
                {
                    if v > max_delay {
                        return Err(err(&format!("{key}.{field}"), format!("{v} is more than {max_delay} ms")));
                    }
                }
                providers.push(ProviderSettings {
                    name: name.clone(),
                    kind: p.kind,
                    base_url,
                    api_key,
                    api_version: p.api_version.clone(),
                    connect_timeout_ms: p.connect_timeout_ms,
                    first_byte_timeout_ms: p.first_byte_timeout_ms,
                    stream_idle_timeout_ms: p.stream_idle_timeout_ms,
                    total_timeout_ms: p.total_timeout_ms,
                    latency_ms: p.latency_ms,
                    ttft_ms: p.ttft_ms,
                    chunk_interval_ms: p.chunk_interval_ms,
                    error_ppm: p.error_ppm,
                    max_concurrency: p.max_concurrency,
                    requests_per_minute: p.requests_per_minute,
                    tokens_per_minute: p.tokens_per_minute,
                    reserved: p.reserved.clone().into_iter().collect(),
                    queue_timeout_ms: p.queue_timeout_ms,
                    max_queue_per_tenant: p.max_queue_per_tenant,
                    max_retries: p.max_retries,
                    retry_base_ms: p.retry_base_ms,
                    retry_max_ms: p.retry_max_ms,
                    breaker_failure_threshold: p.breaker_failure_threshold.max(1),
                    breaker_error_rate_percent: p.breaker_error_rate_percent.clamp(1, 100),
                    breaker_min_samples: p.breaker_min_samples.max(1),
                    breaker_window_ms: p.breaker_window_ms.max(1),
                    breaker_open_ms: p.breaker_open_ms.max(1),
                });
            }
        } else {
            providers.push(ProviderSettings::simulated("simulated"));
        }

        let mut models = Vec::new();
        if config.models.is_empty() {
            // Every model of the default price table, served by the first provider
            // (the simulated one when no provider is configured).
            let provider = providers.first().map(|p| p.name.clone()).unwrap_or_default();
            for (name, input, output) in DEFAULT_PRICES {
                let i = PriceValue::Text(input.into()).nanos_per_token().map_err(|e| err("models", e))?;
                let o = PriceValue::Text(output.into()).nanos_per_token().map_err(|e| err("models", e))?;
                models.push(ModelSettings {
                    name: name.into(),
                    provider: provider.clone(),
                    upstream_model: name.into(),
                    input_nanos_per_token: i,
                    output_nanos_per_token: o,
                    cached_input_nanos_per_token: i,
                    fallbacks: Vec::new(),
                    max_output_tokens: None,
                });
            }
        }
        for (name, m) in &config.models {
            let key = format!("models.\"{name}\"");
            if !providers.iter().any(|p| p.name == m.provider) {
                return Err(err(
                    &format!("{key}.provider"),
                    format!("{:?} names no provider in [providers]", m.provider),
                ));
            }
            let upstream_model = m.upstream_model.clone().unwrap_or_else(|| name.clone());
            let default_price =
                DEFAULT_PRICES.iter().find(|(n, _, _)| *n == name.as_str() || *n == upstream_model.as_str());
            let price = |v: &Option<PriceValue>, field: &str, fallback: Option<&str>| -> Result<Nanos, ConfigError> {
                match (v, fallback) {
                    (Some(p), _) => p.nanos_per_token().map_err(|e| err(&format!("{key}.{field}"), e)),
                    (None, Some(d)) => {
                        PriceValue::Text(d.into()).nanos_per_token().map_err(|e| err(&format!("{key}.{field}"), e))
                    }
                    (None, None) => Err(err(
                        &format!("{key}.{field}"),
                        "is required (the model is not in the default price table)".into(),
                    )),
                }
            };
            let input = price(&m.input_per_mtok, "input_per_mtok", default_price.map(|d| d.1))?;
            let output = price(&m.output_per_mtok, "output_per_mtok", default_price.map(|d| d.2))?;
            let cached = match &m.cached_input_per_mtok {
                Some(p) => p.nanos_per_token().map_err(|e| err(&format!("{key}.cached_input_per_mtok"), e))?,
                None => input,
            };
            models.push(ModelSettings {
                name: name.clone(),
                provider: m.provider.clone(),
                upstream_model,
                input_nanos_per_token: input,
                output_nanos_per_token: output,
                cached_input_nanos_per_token: cached,
                fallbacks: m.fallbacks.clone(),
                max_output_tokens: m.max_output_tokens,
            });
        }
        for m in &models {
            for f in &m.fallbacks {
                if !models.iter().any(|x| &x.name == f) {
                    return Err(err(
                        &format!("models.\"{}\".fallbacks", m.name),
                        format!("{f:?} is not a configured model"),
                    ));
                }
            }
        }
        Ok(Settings {
            source: source.to_string(),
            gateway: config.gateway,
            console: config.console,
            database: config.database,
            redis: config.redis,
            accounting: config.accounting,
            log: config.log,
            tenant: config.tenant,
            metrics_token,
            admin_token,
            process_admin_token: None,
            providers,
            models,
        })
    }

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

fn describe_figment_error(e: figment::Error) -> String {
    let mut parts = Vec::new();
    for err in e {
        let key = if err.path.is_empty() {
            String::from("(top level)")
        } else {
            err.path.iter().filter(|p| p.as_str() != "default").cloned().collect::<Vec<_>>().join(".")
        };
        let source = match &err.metadata {
            Some(md) if md.name.contains("environment") => {
                format!("environment variable SHEEPDOG_{}", key.to_uppercase().replace('.', "__"))
            }
            Some(md) => match &md.source {
                Some(src) => format!("{} ({src})", md.name),
                None => md.name.to_string(),
            },
            None => "configuration".into(),
        };
        parts.push(format!("{key}: {} (from {source})", err.kind));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_toml(text: &str) -> Result<Settings, ConfigError> {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| ConfigError(describe_figment_error(e)))?;
        Settings::from_config(config, "test.toml", &|name| (name == "OPENAI_KEY").then(|| "sk-test".to_string()))
    }

    /// `ProviderConfig::default()` is a minimal `[providers.x]` table (only
    /// the required `kind`), and `ModelConfig::default()` with a provider is
    /// a minimal `[models.x]` table.
    #[test]
    fn defaults_equal_minimal_tables() {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string("[providers.p]\nkind = \"simulated\"\n\n[models.m]\nprovider = \"p\"\n"))
            .extract()
            .unwrap();
        assert_eq!(config.providers["p"], ProviderConfig::default());
        assert_eq!(config.models["m"], ModelConfig { provider: "p".into(), ..ModelConfig::default() });
    }

    #[test]
    fn defaults_serve_the_price_table_from_the_simulator() {
        let s = from_toml("").unwrap();
        assert_eq!(s.providers.len(), 1);
        assert_eq!(s.providers[0].kind, ProviderKind::Simulated);
        let names: Vec<_> = s.models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, vec!["gpt-4.1", "claude-sonnet-4.5", "gemini-2.5-flash", "deepseek-v3.2"]);
        let ds = &s.models[3];
        assert_eq!(ds.input_nanos_per_token, 100);
        assert_eq!(ds.output_nanos_per_token, 420);
        assert_eq!(s.models[2].input_nanos_per_token, 300);
        assert_eq!(s.models[2].output_nanos_per_token, 2500);
        assert_eq!(s.gateway.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.gateway.max_body_bytes, 33_554_432);
    }

    #[test]
    fn explicit_providers_and_prices() {
        let s = from_toml(
            r#"
            [providers.openai]
            kind = "openai"
            base_url = "http://127.0.0.1:9/v1/"
            api_key_env = "OPENAI_KEY"
            [models."gpt-4.1"]
            provider = "openai"
            input_per_mtok = 2.0
            output_per_mtok = "8"
            [models.mini]
            provider = "openai"
            upstream_model = "gpt-4.1-mini"
            input_per_mtok = 0.4
            output_per_mtok = 1.6
            fallbacks = ["gpt-4.1"]
            "#,
        )
        .unwrap();
        assert_eq!(s.providers[0].base_url, "http://127.0.0.1:9/v1");
        assert_eq!(s.providers[0].api_key.as_ref().unwrap().expose(), "sk-test");
        assert!(!format!("{:?}", s.providers[0]).contains("sk-test"));
        let mini = s.models.iter().find(|m| m.name == "mini").unwrap();
        assert_eq!((mini.input_nanos_per_token, mini.output_nanos_per_token), (400, 1600));
        assert_eq!(mini.upstream_model, "gpt-4.1-mini");
    }

    #[test]
    fn errors_name_the_key() {
        let e = from_toml("[gateway]\nmax_body_bytes = \"lots\"").unwrap_err().to_string();
        assert!(e.contains("gateway.max_body_bytes"), "{e}");
        let e = from_toml("[providers.x]\nkind = \"nope\"").unwrap_err().to_string();
        assert!(e.contains("providers.x.kind"), "{e}");
        let e = from_toml(
            "[providers.x]\nkind = \"openai\"\n[models.m]\nprovider = \"y\"\ninput_per_mtok=1\noutput_per_mtok=1",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("models.\"m\".provider") && e.contains("test.toml"), "{e}");
        let e = from_toml(
            "[providers.x]\nkind = \"openai\"\n[models.m]\nprovider = \"x\"\ninput_per_mtok=0.0001\noutput_per_mtok=1",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("input_per_mtok"), "{e}");
        let e = from_toml("[providers.x]\nkind = \"openai\"\n[models.m]\nprovider = \"x\"").unwrap_err().to_string();
        assert!(e.contains("is required"), "{e}");
        let e = from_toml("[gateway]\nworkers = 5000").unwrap_err().to_string();
        assert!(e.contains("gateway.workers"), "{e}");
        let e = from_toml("[gateway]\nworkers = -1").unwrap_err().to_string();
        assert!(e.contains("gateway.workers"), "{e}");
        let e = from_toml("[gateway]\nlisten = \"nowhere\"").unwrap_err().to_string();
        assert!(e.contains("gateway.listen"), "{e}");
        let e = from_toml("[gatewy]\nlisten = \"1.2.3.4:5\"").unwrap_err().to_string();
        assert!(e.contains("gatewy"), "{e}");
        let e = from_toml("[providers.s]\nkind = \"simulated\"\nttft_ms = 60001").unwrap_err().to_string();
        assert!(e.contains("providers.s.ttft_ms") && e.contains("60000"), "{e}");
        let e = from_toml("[tenant]\nmax_keys = 0").unwrap_err().to_string();
        assert!(e.contains("tenant.max_keys"), "{e}");
        let e = from_toml("[gateway]\nmetrics_listen = \"127.0.0.1:8080\"").unwrap_err().to_string();
        assert!(e.contains("gateway.metrics_listen"), "{e}");
    }

    #[test]
    fn metrics_token_and_key_limit() {
        let s = from_toml("").unwrap();
        assert_eq!((s.tenant.max_keys, s.metrics_token.is_none(), s.gateway.metrics_listen), (100, true, None));
        let s = from_toml(
            "[gateway]\nmetrics_token_env = \"OPENAI_KEY\"\nmetrics_listen = \"127.0.0.1:9100\"\n[tenant]\nmax_keys = 3",
        )
        .unwrap();
        assert_eq!(s.metrics_token.as_ref().map(Secret::expose), Some("sk-test"));
        assert_eq!((s.tenant.max_keys, s.gateway.metrics_listen.map(|a| a.port())), (3, Some(9100)));
        assert!(!format!("{s:?}").contains("sk-test"));
        // A variable that is unset (or empty) leaves /metrics public.
        let s = from_toml("[gateway]\nmetrics_token_env = \"UNSET_VARIABLE\"").unwrap();
        assert!(s.metrics_token.is_none());
    }

    #[test]
    fn connection_limits_default_per_spec_and_refuse_zero() {
        let s = from_toml("[console]\nidle_timeout_ms = 5000").unwrap();
        for l in [s.gateway.limits(), s.console.limits()] {
            assert_eq!(l.header_read_timeout, std::time::Duration::from_secs(10));
            assert_eq!(l.max_connections, 10_000);
            assert_eq!(l.shutdown_grace, std::time::Duration::from_secs(30));
        }
        assert_eq!(s.gateway.limits().idle_timeout, std::time::Duration::from_secs(120));
        assert_eq!(s.console.limits().idle_timeout, std::time::Duration::from_secs(5));
        // A zero grace is allowed (stop at once, still draining accounting).
        assert!(from_toml("[gateway]\nshutdown_grace_secs = 0").is_ok());
        for (section, key) in [
            ("gateway", "header_read_timeout_ms"),
            ("gateway", "idle_timeout_ms"),
            ("gateway", "max_connections"),
            ("console", "header_read_timeout_ms"),
            ("console", "idle_timeout_ms"),
            ("console", "max_connections"),
        ] {
            let e = from_toml(&format!("[{section}]\n{key} = 0")).unwrap_err().to_string();
            assert!(e.contains(&format!("{section}.{key}")) && e.contains("test.toml"), "{e}");
        }
        let e = from_toml("[console]\nshutdown_grace_secs = 100000").unwrap_err().to_string();
        assert!(e.contains("console.shutdown_grace_secs"), "{e}");
    }
}
