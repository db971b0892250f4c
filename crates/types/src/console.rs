//! Types of the console's admin endpoints (users, sign-in verification,
//! overview, usage series, audit), shared by the gateway and the console.
//!
//! Request types that carry a password are `Deserialize` only and redact
//! their `Debug`, so they can never be serialized into a response or a log.

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// Role of a console user (SPEC §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including console users.
    Admin,
    /// Tenants, limits, budgets, keys, rollouts.
    Operator,
    /// Read only.
    Viewer,
    /// A tenant's own user: the self-service portal of one tenant.
    Tenant,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Operator, Role::Viewer, Role::Tenant];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
            Role::Tenant => "tenant",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Operators' roles (everything but `tenant`).
    pub fn is_staff(self) -> bool {
        !matches!(self, Role::Tenant)
    }
}

/// A console user as listed: never the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ConsoleUser {
    pub id: String,
    pub email: String,
    pub role: Role,
    /// The tenant of a `tenant` user.
    pub tenant_id: Option<String>,
    pub disabled: bool,
    pub created_at: String,
}

/// `POST /admin/v1/users`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub email: String,
    pub role: Role,
    /// Required for (and only for) `tenant` users: tenant id or alias.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// At least 12 characters.
    pub password: String,
}

impl std::fmt::Debug for CreateUserRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUserRequest").field("email", &self.email).field("role", &self.role).finish()
    }
}

/// `PATCH /admin/v1/users/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PatchUserRequest {
    #[serde(default)]
    pub disabled: Option<bool>,
    #[serde(default)]
    pub role: Option<Role>,
}

/// `POST /admin/v1/auth/verify`: checks a console sign-in.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    pub email: String,
    pub password: String,
    /// The address the sign-in came from (throttling per address).
    #[serde(default)]
    pub client_ip: Option<String>,
}

impl std::fmt::Debug for VerifyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyRequest").field("email", &self.email).field("client_ip", &self.client_ip).finish()
    }
}

/// One entry of `GET /admin/v1/audit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AuditRecord {
    pub id: String,
    pub at: String,
    /// `admin-token` for a bare admin-token call, else what `X-Sheepdog-Actor` said
    /// (the console sends `console:<email>`).
    pub actor: String,
    pub action: String,
    pub target: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub before: Option<serde_json::Value>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub after: Option<serde_json::Value>,
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

/// `GET /admin/v1/overview`: the operator's dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Overview {
    pub from: String,
    pub to: String,
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
    pub hourly: Vec<OverviewBucket>,
    pub top_tenants: Vec<TenantSpend>,
    pub upstreams: Vec<UpstreamStatus>,
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

/// A credit pool as the admin API answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolInfo {
    pub id: String,
    pub name: String,
    pub hard: bool,
    pub balance_usd: String,
    pub credited_usd: String,
    pub debited_usd: String,
    pub available_usd: String,
    pub created_at: String,
}
