//! The `/admin/v1` router: every route, the admin-token and path checks in
//! front of them, and the JSON 404 for unknown paths.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use sheepdog_core::state::AppState;

use crate::audit::{actor_of, ACTOR};
use crate::error::AdminError;
use crate::query::decode_component;
use crate::{admin_tokens, analyses, keys, openapi, overview, pools, replicas, reports, rollouts, tenants, users};

async fn require_admin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let ok = sheepdog_core::auth::bearer(request.headers()).map(|t| state.is_admin_token(t)).unwrap_or(false);
    if !ok {
        return AdminError::Unauthorized.into_response();
    }
    if let Err(e) = check_path(request.uri().path()) {
        return e.into_response();
    }
    let actor = actor_of(request.headers());
    ACTOR.scope(actor, next.run(request)).await
}

/// Path segments (ids, aliases) must be UTF-8 without control characters
/// once percent-decoded: a 400 here rather than axum's plain-text rejection
/// or a database error on a NUL byte.
fn check_path(path: &str) -> Result<(), AdminError> {
    if !path.contains('%') {
        return Ok(());
    }
    decode_component(path, None).map(|_| ()).map_err(|_| {
        AdminError::BadRequest(
            "The request path is not valid once percent-decoded (malformed escape, not UTF-8, or a control character)."
                .into(),
        )
    })
}

async fn not_found(uri: axum::http::Uri) -> Response {
    AdminError::NotFound(format!("Unknown admin path: {}.", uri.path())).into_response()
}

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/tenants", post(tenants::create_tenant).get(tenants::list_tenants))
        .route("/tenants/{id}", get(tenants::get_tenant).patch(tenants::patch_tenant).delete(tenants::delete_tenant))
        .route("/tenants/{id}/limits", put(tenants::put_limits))
        .route("/tenants/{id}/budget", put(tenants::put_budget))
        .route("/tenants/{id}/keys", post(keys::create_tenant_key).get(keys::list_tenant_keys))
        .route("/tenants/{id}/metrics", get(reports::tenant_metrics))
        .route("/keys", post(keys::create_platform_key).get(keys::list_keys))
        .route("/keys/{key_id}", delete(keys::revoke_key))
        .route("/usage", get(reports::usage))
        .route("/audit", get(reports::audit_log))
        .route("/pools", post(pools::create_pool).get(pools::list_pools))
        .route("/pools/{id}", get(pools::get_pool))
        .route("/pools/{id}/credits", post(pools::credit_pool))
        .route("/pools/{id}/ledger", get(pools::pool_ledger))
        .route("/users", get(users::list_users).post(users::create_user))
        .route("/users/{id}", get(users::get_user).patch(users::patch_user))
        .route("/auth/verify", post(users::verify))
        .route("/admin-tokens/rotate", post(admin_tokens::rotate))
        .route("/overview", get(overview::overview))
        .route("/usage/series", get(overview::usage_series))
        .route("/rollouts", post(rollouts::create).get(rollouts::list))
        .route("/rollouts/{id}", get(rollouts::get))
        .route("/rollouts/{id}/advance", post(rollouts::advance))
        .route("/rollouts/{id}/pause", post(rollouts::pause))
        .route("/rollouts/{id}/resume", post(rollouts::resume))
        .route("/rollouts/{id}/rollback", post(rollouts::rollback))
        .route("/rollouts/{id}/events", get(rollouts::events))
        .route("/rollouts/{id}/samples", get(rollouts::samples))
        .route("/rollouts/{id}/series", get(rollouts::series))
        .route("/upstreams", get(rollouts::upstreams))
        .route("/replicas", get(replicas::list))
        .route("/analyses", post(analyses::create_analysis))
        .route("/openapi.json", get(openapi::openapi_json))
        .fallback(not_found)
        .layer(axum::Extension(users::AuthState::new()))
        .layer(axum::middleware::from_fn_with_state(state, require_admin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_decoded_strictly() {
        assert!(check_path("/admin/v1/tenants/caf%C3%A9").is_ok());
        assert!(check_path("/admin/v1/tenants/%00").is_err());
        assert!(check_path("/admin/v1/tenants/%FF").is_err());
    }
}
