//! `POST /admin/v1/admin-tokens/rotate`.

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// The new admin token, shown once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AdminTokenRotated {
    /// The new bearer token for the admin API. It is shown only here.
    pub token: String,
    /// The first 12 hex digits of the token's SHA-256 (as the audit log names it).
    pub fingerprint: String,
}

impl std::fmt::Debug for AdminTokenRotated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminTokenRotated").field("fingerprint", &self.fingerprint).finish_non_exhaustive()
    }
}
