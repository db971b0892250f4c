//! The audit log (`GET /admin/v1/audit`).

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AuditItem {
    pub id: String,
    pub at: String,
    // `admin-token` for a bare admin-token call, else what `X-Sheepdog-Actor`
    // said (the console sends `console:<email>`).
    pub actor: String,
    pub action: String,
    pub target: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// One entry of `GET /admin/v1/audit` (the console's name of [`AuditItem`]).
pub type AuditRecord = AuditItem;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AuditList {
    pub data: Vec<AuditItem>,
    /// How many match in all; present when the request asked for a page
    /// (`limit`/`offset`) or a filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}
