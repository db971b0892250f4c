//! The analysis page's server functions: its settings, and applying a
//! recommendation to a tenant.

use leptos::prelude::*;
use sheepdog_types::Tenant;

use super::UploadSettings;
use crate::error::ConsoleError;

/// The page's settings (admins and operators only).
#[server(endpoint = "analysis_settings")]
pub async fn analysis_settings() -> Result<UploadSettings, ConsoleError> {
    use crate::auth::ssr::require_operator;
    require_operator().await?;
    Ok(UploadSettings { max_upload_bytes: crate::state::ConsoleState::current()?.max_upload_bytes() })
}

/// Sets a tenant's tier and limits from an analysis' recommendation (two
/// audited admin API changes: `tenant.update` when the tier changes, then
/// `tenant.limits`).
#[server(endpoint = "apply_analysis")]
pub async fn apply_analysis(
    tenant_id: String,
    tier: String,
    requests_per_minute: u64,
    tokens_per_minute: u64,
    max_concurrency: u64,
) -> Result<Tenant, ConsoleError> {
    use crate::auth::ssr::{require_operator, with_status};
    let user = require_operator().await?;
    use sheepdog_types::Tier;
    let Some(tier) = Tier::parse(tier.trim()) else {
        return Err(with_status(ConsoleError::Invalid("Tier must be shared or dedicated.".into())));
    };
    if requests_per_minute == 0 || tokens_per_minute == 0 || max_concurrency == 0 {
        return Err(with_status(ConsoleError::Invalid("Every limit must be at least 1.".into())));
    }
    let state = crate::state::ConsoleState::current()?;
    let actor = crate::api::actor_for(&user.email);
    let current = state.api().tenant(tenant_id.trim()).await.map_err(with_status)?;
    if tier == Tier::Pooled && current.tier != Tier::Pooled {
        return Err(with_status(ConsoleError::Invalid(
            "An analysis never moves a tenant to the pooled tier; do that on the tenant's page.".into(),
        )));
    }
    if current.tier != tier {
        let body = sheepdog_types::PatchTenant { tier: Some(tier), ..Default::default() };
        state.api().patch_tenant(&actor, &current.id, &body).await.map_err(with_status)?;
    }
    let body =
        sheepdog_types::LimitsInput { requests_per_minute, tokens_per_minute, max_concurrency: Some(max_concurrency) };
    let after = state.api().put_limits(&actor, &current.id, &body).await.map_err(with_status)?;
    tracing::info!(email = %user.email, tenant = %after.id, "analysis recommendation applied");
    Ok(after)
}
