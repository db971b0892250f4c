//! Types shared by the gateway's admin API and the console (compiles to wasm).
//!
//! Everything here is plain data: no database, no tokio, no secrets except the
//! one-time `key` field of [`KeyCreated`], which is shown exactly once.

pub mod console;
pub mod money;
pub mod net;

use serde::{Deserialize, Serialize};

pub use console::*;
pub use money::{format_usd, parse_usd, Nanos, NANOS_PER_USD};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// Isolation tier of a tenant (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    #[default]
    Shared,
    Pooled,
    Dedicated,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Shared => "shared",
            Tier::Pooled => "pooled",
            Tier::Dedicated => "dedicated",
        }
    }
    pub fn parse(s: &str) -> Option<Tier> {
        match s {
            "shared" => Some(Tier::Shared),
            "pooled" => Some(Tier::Pooled),
            "dedicated" => Some(Tier::Dedicated),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    #[default]
    Active,
    Suspended,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
        }
    }
    pub fn parse(s: &str) -> Option<TenantStatus> {
        match s {
            "active" => Some(TenantStatus::Active),
            "suspended" => Some(TenantStatus::Suspended),
            _ => None,
        }
    }
}

/// Default per-tenant limits (SPEC §4).
pub const DEFAULT_REQUESTS_PER_MINUTE: u64 = 1_000;
pub const DEFAULT_TOKENS_PER_MINUTE: u64 = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Limits {
    pub requests_per_minute: u64,
    pub tokens_per_minute: u64,
    /// Maximum requests in flight at once; `null` means unlimited.
    #[serde(default)]
    pub max_concurrency: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            requests_per_minute: DEFAULT_REQUESTS_PER_MINUTE,
            tokens_per_minute: DEFAULT_TOKENS_PER_MINUTE,
            max_concurrency: None,
        }
    }
}

/// Monthly budget. `monthly_limit_usd` is a decimal USD string with nine places
/// (exact nano-USD); `null` means no limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Budget {
    pub monthly_limit_usd: Option<String>,
    pub hard: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub aliases: Vec<String>,
    pub tier: Tier,
    pub status: TenantStatus,
    pub limits: Limits,
    pub budget: Budget,
    /// Models this tenant may use; `null` means every configured model.
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    pub created_at: String,
    /// The credit pool this tenant draws on (`pooled` tier); `null` for none.
    #[serde(default)]
    pub pool_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ListResponse<T> {
    pub data: Vec<T>,
}

/// `POST /admin/v1/tenants/{id}/keys` and `POST /admin/v1/keys` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct KeyCreated {
    pub id: String,
    /// The secret key: returned only in this response, never again.
    pub key: String,
    pub prefix: String,
    pub created_at: String,
    pub scope: KeyScope,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenants: Option<TenantsSelector>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum KeyScope {
    Tenant,
    Platform,
}

/// `"*"` or a list of tenant ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(untagged)]
pub enum TenantsSelector {
    All(String),
    List(Vec<String>),
}

/// A key as listed: never the secret, never its hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct KeyInfo {
    pub id: String,
    pub name: Option<String>,
    pub prefix: String,
    pub scope: KeyScope,
    pub tenant_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenants: Option<TenantsSelector>,
    pub status: KeyStatus,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Revoked,
}

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

/// OpenAI-shaped error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorDetail {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub code: String,
    pub param: Option<String>,
}
