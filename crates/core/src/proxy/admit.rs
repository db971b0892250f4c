//! Authentication, the tenant's limits and the model's route: what decides
//! whether a request goes upstream (refusals by a limit count as rate-limit hits).

use std::sync::Arc;

use axum::http::HeaderMap;

use crate::accounting::Event;
use crate::admission::limiter::RateInfo;
use crate::admission::{self, Permit};
use crate::auth::{self, Caller};
use crate::config::ModelMode;
use crate::error::GatewayError;
use crate::providers::ChatRequest;
use crate::routing::ModelRoute;
use crate::state::AppState;

/// The cheap limits (requests in flight, requests/min), before the body.
pub(super) async fn take_request(
    state: &AppState,
    caller: &Caller,
    rate: &mut Option<RateInfo>,
) -> Result<admission::Ticket, GatewayError> {
    match state.admission().take_request(&caller.tenant).await {
        Ok((ticket, info)) => {
            *rate = Some(info);
            Ok(ticket)
        }
        Err(r) => Err(refused(state, &caller.tenant.id, r, rate)),
    }
}

/// Admission: the tenant's tokens/min, budget and pool (the worst case over
/// every route that may serve the request). Refusals by a limit count as
/// rate-limit hits.
pub(super) async fn admit(
    state: &AppState,
    caller: &Caller,
    ticket: admission::Ticket,
    plan: &[Arc<ModelRoute>],
    chat: &ChatRequest,
    rate: &mut Option<RateInfo>,
) -> Result<Permit, GatewayError> {
    match state.admission().admit_with(ticket, &caller.tenant, plan, chat).await {
        Ok((permit, info)) => {
            *rate = Some(info);
            Ok(permit)
        }
        Err(r) => Err(refused(state, &caller.tenant.id, r, rate)),
    }
}

pub(super) fn refused(
    state: &AppState,
    tenant_id: &str,
    r: admission::Refused,
    rate: &mut Option<RateInfo>,
) -> GatewayError {
    if let Some(info) = r.info {
        *rate = Some(info);
    }
    if r.rate_limited {
        state
            .accountant()
            .record(Event::RateLimitHit { tenant_id: tenant_id.to_string(), at_ms: sheepdog_types::time::now_ms() });
    }
    r.error
}

/// Authentication and the tenant's status (admission of suspended tenants).
pub fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Caller, GatewayError> {
    let catalog = state.catalog().snapshot();
    let caller = auth::authenticate(&catalog, headers)?;
    if caller.tenant.status == sheepdog_types::TenantStatus::Suspended {
        return Err(GatewayError::TenantSuspended);
    }
    Ok(caller)
}

/// The model's route, if it exists, the tenant may use it, and it serves
/// what is asked (a chat model for completions, an embedding model for
/// embeddings: otherwise a 400 naming the endpoint that serves it).
pub(super) fn route(state: &AppState, caller: &Caller, chat: &ChatRequest) -> Result<Arc<ModelRoute>, GatewayError> {
    match state.models().get(&chat.requested_model) {
        Some(r) if caller.tenant.may_use(&chat.requested_model) => {
            if r.model.mode != chat.mode {
                return Err(GatewayError::invalid(wrong_mode(&r.model.name, r.model.mode), Some("model")));
            }
            Ok(r.clone())
        }
        _ => Err(GatewayError::ModelNotFound(chat.requested_model.clone())),
    }
}

fn wrong_mode(model: &str, mode: ModelMode) -> String {
    match mode {
        ModelMode::Embedding => {
            format!("The model `{model}` is an embedding model: send it to /v1/embeddings.")
        }
        ModelMode::Chat => format!(
            "The model `{model}` is a chat model and does not produce embeddings: use a model with mode \"embedding\"."
        ),
    }
}
