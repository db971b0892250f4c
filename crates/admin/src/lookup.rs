//! Finding the records an admin path or body names (a tenant by id or alias),
//! shared by the handlers.

use sheepdog_core::state::AppState;
use sheepdog_store::TenantRow;

use crate::error::AdminError;

/// Finds a tenant by id or alias.
pub async fn find_tenant(state: &AppState, id: &str) -> Result<TenantRow, AdminError> {
    if let Some(t) = state.store().get_tenant(id).await? {
        return Ok(t);
    }
    if let Ok(u) = uuid::Uuid::parse_str(id) {
        if let Some(t) = state.store().get_tenant(&u.hyphenated().to_string()).await? {
            return Ok(t);
        }
    }
    if let Some(real) = state.store().tenant_id_for_alias(id).await? {
        if let Some(t) = state.store().get_tenant(&real).await? {
            return Ok(t);
        }
    }
    Err(AdminError::NotFound(format!("No tenant with id or alias {id:?}.")))
}
