//! The admin API (`/admin/v1`, SPEC §5): bearer admin token, JSON in and
//! out, its own error boundary, every change written to the audit log, and
//! an OpenAPI document generated from these handlers.

pub mod admin_tokens;
pub mod analyses;
pub mod keys;
pub mod openapi;
pub mod overview;
pub mod pools;
pub mod reports;
pub mod rollouts;
pub mod tenants;
pub mod users;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use serde::de::DeserializeOwned;
use sheepdog_types::{ErrorBody, ErrorDetail};

use crate::gateway::AppState;
use crate::store::{AuditEntry, StoreError};

/// The admin API's error boundary.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("unauthorized")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AdminError {
    fn status(&self) -> StatusCode {
        match self {
            AdminError::Unauthorized => StatusCode::UNAUTHORIZED,
            AdminError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::Conflict(_) => StatusCode::CONFLICT,
            AdminError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            AdminError::Unauthorized => "invalid_admin_token",
            AdminError::BadRequest(_) => "invalid_request_error",
            AdminError::NotFound(_) => "not_found",
            AdminError::Conflict(_) => "conflict",
            AdminError::Internal(_) => "internal_error",
        }
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => AdminError::Conflict(m),
            StoreError::Other(e) => AdminError::Internal(e),
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let message = match &self {
            AdminError::Unauthorized => {
                "A valid admin token is required: `Authorization: Bearer <admin token>`.".to_string()
            }
            AdminError::Internal(cause) => {
                tracing::error!(error = %cause, "admin API internal error");
                "The gateway had an internal error; it has been logged.".to_string()
            }
            AdminError::BadRequest(m) | AdminError::NotFound(m) | AdminError::Conflict(m) => m.clone(),
        };
        let kind = match &self {
            AdminError::Unauthorized => "authentication_error",
            AdminError::Internal(_) => "server_error",
            _ => "invalid_request_error",
        };
        let body =
            ErrorBody { error: ErrorDetail { message, kind: kind.into(), code: self.code().into(), param: None } };
        (self.status(), axum::Json(body)).into_response()
    }
}

/// Parses a JSON body into `T`, with serde's message (field, line, column) on failure.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AdminError> {
    if std::str::from_utf8(bytes).is_err() {
        return Err(AdminError::BadRequest("The request body is not valid UTF-8.".into()));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            AdminError::BadRequest(format!("Invalid request body: {inner}."))
        } else {
            AdminError::BadRequest(format!("Invalid request body: `{path}`: {inner}."))
        }
    })
}

/// Records an admin change (who, what, before → after).
pub async fn audit(
    state: &AppState,
    action: &str,
    target: &str,
    before: Option<&impl serde::Serialize>,
    after: Option<&impl serde::Serialize>,
) {
    let entry = AuditEntry {
        id: uuid::Uuid::new_v4().to_string(),
        at: crate::time::now_rfc3339(),
        actor: ACTOR.try_with(Clone::clone).unwrap_or_else(|_| "admin-token".into()),
        action: action.into(),
        target: target.into(),
        before_json: before.and_then(|b| serde_json::to_string(b).ok()),
        after_json: after.and_then(|a| serde_json::to_string(a).ok()),
    };
    if let Err(e) = state.store().insert_audit(&entry).await {
        tracing::error!(error = %e, action, target, "could not write the audit log");
    }
}

/// Records a change made by the gateway itself (e.g. `guard`, `schedule`).
pub async fn audit_as(
    state: &AppState,
    actor: &str,
    action: &str,
    target: &str,
    before: Option<&impl serde::Serialize>,
    after: Option<&impl serde::Serialize>,
) {
    ACTOR.scope(actor.to_string(), audit(state, action, target, before, after)).await
}

tokio::task_local! {
    /// Who the audit log names for this admin request: `X-Sheepdog-Actor`
    /// (e.g. `console:ops@example.com`) or `admin-token`.
    static ACTOR: String;
}

/// Who is making the current admin request (as the audit log names it):
/// the console user (`console:…`) or `admin-token`.
pub(crate) fn current_actor() -> String {
    ACTOR.try_with(String::clone).unwrap_or_else(|_| "admin-token".into())
}

/// The `X-Sheepdog-Actor` header when present and sane (1 to 200 printable characters).
fn actor_of(headers: &axum::http::HeaderMap) -> String {
    headers
        .get("x-sheepdog-actor")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|a| !a.is_empty() && a.chars().count() <= 200 && !a.chars().any(char::is_control))
        .map(str::to_string)
        .unwrap_or_else(|| "admin-token".into())
}

async fn require_admin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let ok = crate::auth::bearer(request.headers()).map(|t| state.is_admin_token(t)).unwrap_or(false);
    if !ok {
        return AdminError::Unauthorized.into_response();
    }
    let actor = actor_of(request.headers());
    ACTOR.scope(actor, next.run(request)).await
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
        .route("/analyses", post(analyses::create_analysis))
        .route("/openapi.json", get(openapi::openapi_json))
        .fallback(not_found)
        .layer(axum::Extension(users::AuthState::new()))
        .layer(axum::middleware::from_fn_with_state(state, require_admin))
}
