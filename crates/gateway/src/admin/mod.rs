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
    /// `tenant.max_keys` active keys already (409 `key_limit_reached`).
    #[error("{0}")]
    KeyLimit(String),
    /// The database is out of reach (503 `database_unavailable`); the cause is logged.
    #[error("database unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AdminError {
    fn status(&self) -> StatusCode {
        match self {
            AdminError::Unauthorized => StatusCode::UNAUTHORIZED,
            AdminError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::Conflict(_) | AdminError::KeyLimit(_) => StatusCode::CONFLICT,
            AdminError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            AdminError::Unauthorized => "invalid_admin_token",
            AdminError::BadRequest(_) => "invalid_request_error",
            AdminError::NotFound(_) => "not_found",
            AdminError::Conflict(_) => "conflict",
            AdminError::KeyLimit(_) => "key_limit_reached",
            AdminError::Unavailable(_) => "database_unavailable",
            AdminError::Internal(_) => "internal_error",
        }
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => AdminError::Conflict(m),
            StoreError::KeyLimit(m) => AdminError::KeyLimit(m),
            StoreError::Unavailable(e) => AdminError::Unavailable(e),
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
            AdminError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "admin API: database unavailable");
                "The database is unavailable right now; retry later (the data plane keeps serving, \
                 and usage records are queued until the database is back)."
                    .to_string()
            }
            AdminError::BadRequest(m) | AdminError::NotFound(m) | AdminError::Conflict(m) | AdminError::KeyLimit(m) => {
                m.clone()
            }
        };
        let kind = match &self {
            AdminError::Unauthorized => "authentication_error",
            AdminError::Internal(_) | AdminError::Unavailable(_) => "server_error",
            _ => "invalid_request_error",
        };
        let body =
            ErrorBody { error: ErrorDetail { message, kind: kind.into(), code: self.code().into(), param: None } };
        let mut response = (self.status(), axum::Json(body)).into_response();
        if matches!(self, AdminError::Unavailable(_)) {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("5"));
        }
        response
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

/// How long an admin read waits for queued usage to be written first.
pub const FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Writes the usage queued so far before a read (read-your-writes), or
/// answers 503 `database_unavailable` at once when the accounting writer
/// cannot write (it keeps the records and retries) or does not finish
/// within [`FLUSH_WAIT`].
pub async fn flush_usage(state: &AppState) -> Result<(), AdminError> {
    let accountant = state.accountant();
    if accountant.is_failing() || !accountant.flush_within(FLUSH_WAIT).await {
        return Err(AdminError::Unavailable(anyhow::anyhow!(
            "usage records are queued: the accounting writer cannot write to the database"
        )));
    }
    Ok(())
}

/// Longest admin query string accepted (bytes, as sent).
pub const MAX_QUERY_BYTES: usize = 8192;

/// An admin request's query parameters, decoded strictly: a malformed
/// percent-escape, bytes that are not UTF-8 once decoded (`%FF`), a control
/// character (`%00`), a parameter given twice or a query string longer than
/// [`MAX_QUERY_BYTES`] is a 400 in the admin error shape, before the handler
/// runs. (axum's `Query` would replace bad bytes with U+FFFD silently.)
#[derive(Debug, Default)]
pub struct AdminQuery(pub std::collections::HashMap<String, String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for AdminQuery {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, AdminError> {
        parse_query(parts.uri.query().unwrap_or_default()).map(AdminQuery)
    }
}

/// Decodes an `application/x-www-form-urlencoded` query string (see [`AdminQuery`]).
pub fn parse_query(raw: &str) -> Result<std::collections::HashMap<String, String>, AdminError> {
    if raw.len() > MAX_QUERY_BYTES {
        return Err(AdminError::BadRequest(format!(
            "The query string is {} bytes long; at most {MAX_QUERY_BYTES} are accepted.",
            raw.len()
        )));
    }
    let mut out = std::collections::HashMap::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode_component(name, None)?;
        let value = decode_component(value, Some(&name))?;
        if out.contains_key(&name) {
            return Err(AdminError::BadRequest(format!("Query parameter `{name}` is given more than once.")));
        }
        out.insert(name, value);
    }
    Ok(out)
}

/// One percent-decoded name or value (`+` is a space).
fn decode_component(text: &str, name: Option<&str>) -> Result<String, AdminError> {
    let what = || match name {
        Some(n) => format!("Query parameter `{n}`"),
        None => "A query parameter name".to_string(),
    };
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
                    (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                    _ => {
                        return Err(AdminError::BadRequest(format!(
                            "{} has a malformed percent-escape (`%` must be followed by two hex digits).",
                            what()
                        )))
                    }
                }
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    let decoded = String::from_utf8(out)
        .map_err(|_| AdminError::BadRequest(format!("{} is not valid UTF-8 once percent-decoded.", what())))?;
    if decoded.chars().any(char::is_control) {
        return Err(AdminError::BadRequest(format!("{} contains a control character.", what())));
    }
    Ok(decoded)
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
    fn query_strings_are_decoded_strictly() {
        let q = parse_query("period=7d&actor=caf%C3%A9&x=a+b&&flag").unwrap();
        assert_eq!(q["period"], "7d");
        assert_eq!(q["actor"], "café");
        assert_eq!(q["x"], "a b");
        assert_eq!(q["flag"], "");
        assert!(parse_query("").unwrap().is_empty());
        for bad in ["a=%FF", "a=%C3", "a=%", "a=%2", "a=%zz", "a=%00", "a=%0A", "%FF=1", "a=1&a=2"] {
            assert!(matches!(parse_query(bad), Err(AdminError::BadRequest(_))), "{bad}");
        }
        assert!(parse_query(&"a".repeat(MAX_QUERY_BYTES + 1)).is_err());
        assert!(check_path("/admin/v1/tenants/caf%C3%A9").is_ok());
        assert!(check_path("/admin/v1/tenants/%00").is_err());
        assert!(check_path("/admin/v1/tenants/%FF").is_err());
    }

    #[test]
    fn store_errors_map_to_clear_answers() {
        let unavailable = AdminError::from(StoreError::from(sqlx::Error::PoolTimedOut));
        assert_eq!(
            (unavailable.status(), unavailable.code()),
            (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable")
        );
        let limit = AdminError::from(StoreError::KeyLimit("full".into()));
        assert_eq!((limit.status(), limit.code()), (StatusCode::CONFLICT, "key_limit_reached"));
        let other = AdminError::from(StoreError::from(sqlx::Error::RowNotFound));
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
