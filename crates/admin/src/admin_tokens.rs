//! `POST /admin/v1/admin-tokens/rotate`: a new stored admin token; the old
//! one is revoked on every gateway within a second (see
//! [`sheepdog_core::admin_tokens`]).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use sheepdog_types::{AdminTokenRotated, ErrorBody};

use crate::audit::current_actor;
use crate::error::AdminError;
use sheepdog_core::admin_tokens::{fingerprint, RotateError};
use sheepdog_core::state::AppState;

#[utoipa::path(post, path = "/admin/v1/admin-tokens/rotate", tag = "admin-tokens",
    description = "Issues a new stored admin token and revokes the previous stored one (the bootstrap token or the \
                   last rotated one). The new token is in this answer only. This gateway accepts only the new token \
                   at once, every other gateway on the same database within 1 s. `sheepdog serve`'s own per-process \
                   token (used by its console) keeps working. When `gateway.admin_token_env` names a variable that \
                   holds a token, that token is the admin token and this call answers 409 (change the variable and \
                   restart instead). Audited as `admin_token.rotate` (fingerprints only).",
    responses((status = 201, body = AdminTokenRotated), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn rotate(State(state): State<AppState>) -> Result<Response, AdminError> {
    match state.admin_tokens().rotate(state.store(), &current_actor()).await {
        Ok(token) => {
            let body =
                AdminTokenRotated { fingerprint: fingerprint(token.expose()), token: token.expose().to_string() };
            Ok((StatusCode::CREATED, Json(body)).into_response())
        }
        Err(e @ (RotateError::EnvManaged(_) | RotateError::Concurrent)) => {
            let mut m = e.to_string();
            if let Some(first) = m.get_mut(..1) {
                first.make_ascii_uppercase();
            }
            Err(AdminError::Conflict(format!("{m}.")))
        }
        Err(RotateError::Store(e)) => Err(e.into()),
    }
}
