//! Tenants (`/admin/v1/tenants`): the tenant as answered, and the bodies
//! that create and change one.

use serde::{Deserialize, Serialize};
use serde_json::Value;

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

/// `{"data": [tenant]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TenantList {
    pub data: Vec<Tenant>,
    /// How many match in all; present when the request asked for a page
    /// (`limit`/`offset`) or a filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// Budget as sent: `monthly_limit_usd` as a number or decimal string (at
/// most nine places), or null for no limit.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BudgetInput {
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "100.000000000"))]
    pub monthly_limit_usd: Option<Value>,
    pub hard: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LimitsInput {
    pub requests_per_minute: u64,
    pub tokens_per_minute: u64,
    #[serde(default)]
    pub max_concurrency: Option<u64>,
}

impl Default for LimitsInput {
    fn default() -> Self {
        LimitsInput {
            requests_per_minute: DEFAULT_REQUESTS_PER_MINUTE,
            tokens_per_minute: DEFAULT_TOKENS_PER_MINUTE,
            max_concurrency: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    pub name: String,
    pub tier: Tier,
    /// A UUID v4; generated when absent.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub aliases: Option<Vec<String>>,
    #[serde(default)]
    pub limits: Option<LimitsInput>,
    #[serde(default)]
    pub budget: Option<BudgetInput>,
    /// Models the tenant may use (default: all).
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    /// The credit pool to draw on; a `pooled` tenant without one gets its own new pool.
    #[serde(default)]
    pub pool_id: Option<String>,
    /// Credit (> 0, USD number or decimal string) added to the tenant's pool as a `signup` entry.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "5.000000000"))]
    pub signup_credit_usd: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PatchTenant {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub tier: Option<Tier>,
    #[serde(default)]
    pub aliases: Option<Vec<String>>,
    #[serde(default)]
    pub status: Option<TenantStatus>,
    /// `null` keeps the current list; `[]` forbids every model; omit to keep.
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    /// Moves the tenant to another (existing) credit pool.
    #[serde(default)]
    pub pool_id: Option<String>,
}
