//! Console users and sign-in verification (`/admin/v1/users`,
//! `/admin/v1/auth/verify`).
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UserList {
    pub data: Vec<ConsoleUser>,
    /// How many match in all; present when the request asked for a page
    /// (`limit`/`offset`) or a filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}
