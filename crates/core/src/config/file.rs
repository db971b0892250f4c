//! The TOML file's sections other than `[providers.*]` and `[models.*]`:
//! `[gateway]`, `[console]`, `[tenant]`, `[redis]`, `[accounting]`, `[log]`,
//! with their defaults.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use sheepdog_store::config::DatabaseConfig;

use super::providers::{ModelConfig, ProviderConfig};

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

/// `[redis]`: shared admission state for several replicas (`url` set).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    pub url: String,
    /// Every key this deployment writes starts with it.
    #[serde(default = "d_key_prefix")]
    pub key_prefix: String,
    /// One Redis call; past it the call counts as failed.
    #[serde(default = "d_redis_timeout_ms")]
    pub timeout_ms: u64,
    /// `closed` or `open`: what admission does while Redis is unreachable.
    #[serde(default = "d_on_failure")]
    pub on_failure: String,
}

fn d_key_prefix() -> String {
    "sheepdog:".into()
}

fn d_redis_timeout_ms() -> u64 {
    50
}

fn d_on_failure() -> String {
    "closed".into()
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
    /// Where this replica journals usage records until they are in the
    /// database (see `journal/`); `""` turns the journal off.
    pub journal_dir: String,
}

impl Default for AccountingConfig {
    fn default() -> Self {
        AccountingConfig {
            batch_size: 1000,
            flush_interval_ms: 200,
            queue_capacity: 100_000,
            journal_dir: "data/journal".into(),
        }
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
