//! The rollouts' server functions: list, read, create, act.

use leptos::prelude::*;
use sheepdog_types::{RolloutReport, RolloutView};

use crate::error::ConsoleError;

/// Every rollout.
#[server(endpoint = "rollouts")]
pub async fn list_rollouts() -> Result<Vec<RolloutView>, ConsoleError> {
    use crate::auth::ssr::{require_staff, with_status};
    require_staff().await?;
    crate::state::ConsoleState::current()?.api().rollouts().await.map_err(with_status)
}

/// One rollout with its history.
#[server(endpoint = "rollout_detail")]
pub async fn get_rollout(id: String) -> Result<RolloutReport, ConsoleError> {
    use crate::auth::ssr::{require_staff, with_status};
    require_staff().await?;
    crate::state::ConsoleState::current()?.api().rollout(&id).await.map_err(with_status)
}

/// Starts a rollout of `model` to another provider and upstream model.
#[server(endpoint = "create_rollout")]
pub async fn create_rollout(
    model: String,
    provider: String,
    upstream_model: String,
    phase: Option<String>,
    tenant: Option<String>,
) -> Result<RolloutView, ConsoleError> {
    use crate::auth::ssr::{require_operator, with_status};
    let user = require_operator().await?;
    let (model, provider, upstream_model) = (model.trim(), provider.trim(), upstream_model.trim());
    if model.is_empty() || provider.is_empty() || upstream_model.is_empty() {
        return Err(with_status(ConsoleError::Invalid("Model, provider and upstream model are required.".into())));
    }
    let phase = match phase.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        None => None,
        Some(p @ ("shadow" | "canary")) => Some(p.to_string()),
        Some(_) => return Err(with_status(ConsoleError::Invalid("Phase must be shadow or canary.".into()))),
    };
    let body = sheepdog_types::CreateRollout {
        model: model.to_string(),
        tenant_id: tenant.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_string),
        to: sheepdog_types::RouteInput {
            provider: provider.to_string(),
            upstream_model: upstream_model.to_string(),
            ..Default::default()
        },
        phase,
        ..Default::default()
    };
    let state = crate::state::ConsoleState::current()?;
    state.api().create_rollout(&crate::api::actor_for(&user.email), &body).await.map_err(with_status)
}

/// Advances, pauses, resumes or rolls back a rollout.
#[server(endpoint = "rollout_action")]
pub async fn rollout_action(id: String, action: String, reason: Option<String>) -> Result<RolloutView, ConsoleError> {
    use crate::auth::ssr::{require_operator, with_status};
    let user = require_operator().await?;
    if !super::ACTIONS.iter().any(|(a, _)| *a == action) {
        return Err(with_status(ConsoleError::Invalid("Unknown rollout action.".into())));
    }
    let reason = reason.map(|r| r.trim().to_string()).filter(|r| !r.is_empty());
    let state = crate::state::ConsoleState::current()?;
    state
        .api()
        .rollout_action(&crate::api::actor_for(&user.email), &id, &action, reason.as_deref())
        .await
        .map_err(with_status)
}
