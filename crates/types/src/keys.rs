//! Keys (`/admin/v1/keys`, `/admin/v1/tenants/{id}/keys`): keys as listed
//! (never the secret), the one-time answer that carries the secret, and the
//! bodies that create keys.

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// `POST /admin/v1/tenants/{id}/keys` and `POST /admin/v1/keys` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct KeyList {
    pub data: Vec<KeyInfo>,
    /// How many match in all; present when the request asked for a page
    /// (`limit`/`offset`) or a filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateTenantKey {
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreatePlatformKey {
    #[serde(default)]
    pub name: Option<String>,
    /// Must be `platform`.
    pub scope: String,
    /// `"*"` for every tenant, or a list of tenant ids or aliases.
    pub tenants: TenantsSelector,
}
