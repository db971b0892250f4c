//! Console users and sign-in verification (`/admin/v1/users`,
//! `/admin/v1/auth/verify`).
//!
//! Verification takes the same time whether or not the email exists (an
//! unknown email is verified against a dummy argon2id hash with the same
//! parameters) and is throttled per email and per client address: after
//! [`EMAIL_MAX_FAILURES`] failures for one email, or [`IP_MAX_FAILURES`] from
//! one address, within [`FAILURE_WINDOW`], further attempts get `429` with
//! `Retry-After` until the oldest failure leaves the window. Throttling state
//! is per gateway process.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use sheepdog_types::{ConsoleUser, CreateUserRequest, ErrorBody, ErrorDetail, PatchUserRequest, Role, VerifyRequest};
use tokio::time::Instant;
use utoipa::ToSchema;

use super::tenants::find_tenant;
use super::{audit, parse_json, AdminError};
use crate::gateway::AppState;
use crate::store::UserRow;

/// Failures per email within the window before sign-in is refused.
pub const EMAIL_MAX_FAILURES: usize = 5;
/// Failures per client address within the window before sign-in is refused.
pub const IP_MAX_FAILURES: usize = 20;
/// The sliding window the failures are counted over.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Most emails and addresses tracked at once (oldest forgotten beyond).
const MAX_TRACKED: usize = 100_000;

#[derive(serde::Serialize, ToSchema)]
pub struct UserList {
    pub data: Vec<ConsoleUser>,
}

/// Sign-in state shared by the verification handler (one per router).
#[derive(Debug, Default)]
pub struct AuthState {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
    dummy_hash: tokio::sync::OnceCell<String>,
}

impl AuthState {
    pub fn new() -> Arc<AuthState> {
        let state = Arc::new(AuthState::default());
        // Hash the dummy password now, so the first unknown email does not
        // take longer than a known one.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let s = state.clone();
            handle.spawn(async move {
                let _ = s.dummy_hash().await;
            });
        }
        state
    }

    async fn dummy_hash(&self) -> Option<String> {
        self.dummy_hash
            .get_or_try_init(|| crate::users::hash_password("sheepdog-dummy-password-never-valid".into()))
            .await
            .ok()
            .cloned()
    }

    /// Time until `key` may try again, if it is throttled now.
    fn blocked_for(&self, key: &str, max: usize, now: Instant) -> Option<Duration> {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let entries = map.get_mut(key)?;
        while entries.front().is_some_and(|t| now.duration_since(*t) >= FAILURE_WINDOW) {
            entries.pop_front();
        }
        if entries.len() < max {
            return None;
        }
        let oldest = entries[entries.len() - max];
        Some(FAILURE_WINDOW.saturating_sub(now.duration_since(oldest)).max(Duration::from_secs(1)))
    }

    fn record_failure(&self, key: &str, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_TRACKED && !map.contains_key(key) {
            map.retain(|_, v| v.back().is_some_and(|t| now.duration_since(*t) < FAILURE_WINDOW));
            if map.len() >= MAX_TRACKED {
                map.clear();
            }
        }
        let entries = map.entry(key.to_string()).or_default();
        entries.push_back(now);
        while entries.len() > IP_MAX_FAILURES.max(EMAIL_MAX_FAILURES) {
            entries.pop_front();
        }
    }

    fn clear(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

pub fn to_api(u: &UserRow) -> ConsoleUser {
    ConsoleUser {
        id: u.id.clone(),
        email: u.email.clone(),
        role: Role::parse(&u.role).unwrap_or(Role::Viewer),
        tenant_id: u.tenant_id.clone(),
        disabled: u.disabled,
        created_at: u.created_at.clone(),
    }
}

fn error(status: StatusCode, kind: &str, code: &str, message: &str) -> Response {
    let body =
        ErrorBody { error: ErrorDetail { message: message.into(), kind: kind.into(), code: code.into(), param: None } };
    (status, Json(body)).into_response()
}

fn invalid_credentials() -> Response {
    error(StatusCode::UNAUTHORIZED, "authentication_error", "invalid_credentials", "Wrong email or password.")
}

fn throttled(wait: Duration) -> Response {
    let secs = wait.as_secs().max(1);
    let mut resp = error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_error",
        "too_many_attempts",
        &format!("Too many failed sign-ins; try again in {secs} s."),
    );
    if let Ok(v) = secs.to_string().parse() {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

#[utoipa::path(post, path = "/admin/v1/auth/verify", tag = "users", request_body = VerifyRequest,
    description = "Checks a console sign-in. Unknown emails take as long as wrong passwords; repeated failures \
                   per email (5 in 15 min) or per client address (20 in 15 min) get 429.",
    responses((status = 200, body = ConsoleUser), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn verify(
    State(state): State<AppState>,
    Extension(auth): Extension<Arc<AuthState>>,
    body: Bytes,
) -> Result<Response, AdminError> {
    let req: VerifyRequest = parse_json(&body)?;
    let email = req.email.trim().to_lowercase();
    let email_key = format!("email:{email}");
    let ip_key = req.client_ip.as_deref().map(|ip| format!("ip:{}", ip.trim()));
    let now = Instant::now();
    let wait = [
        auth.blocked_for(&email_key, EMAIL_MAX_FAILURES, now),
        ip_key.as_deref().and_then(|k| auth.blocked_for(k, IP_MAX_FAILURES, now)),
    ]
    .into_iter()
    .flatten()
    .max();
    if let Some(wait) = wait {
        tracing::warn!(email = %email, client_ip = ?req.client_ip, "console sign-in throttled");
        return Ok(throttled(wait));
    }
    let user = if email.is_empty() || email.len() > 254 { None } else { state.store().user_by_email(&email).await? };
    // Always run one argon2id verification, against a dummy hash when the
    // email is unknown, so both failures take the same time.
    let hash = match &user {
        Some(u) => Some(u.password_hash.clone()),
        None => auth.dummy_hash().await,
    };
    let password_ok = match hash {
        Some(h) => crate::users::verify_password(req.password, h).await,
        None => false,
    };
    match user {
        Some(u) if password_ok && !u.disabled => {
            auth.clear(&email_key);
            Ok(Json(to_api(&u)).into_response())
        }
        _ => {
            auth.record_failure(&email_key, now);
            if let Some(k) = &ip_key {
                auth.record_failure(k, now);
            }
            tracing::info!(email = %email, client_ip = ?req.client_ip, "console sign-in failed");
            Ok(invalid_credentials())
        }
    }
}

#[utoipa::path(get, path = "/admin/v1/users", tag = "users",
    responses((status = 200, body = UserList)), security(("admin_token" = [])))]
pub async fn list_users(State(state): State<AppState>) -> Result<Json<UserList>, AdminError> {
    let rows = state.store().list_users().await?;
    Ok(Json(UserList { data: rows.iter().map(to_api).collect() }))
}

#[utoipa::path(get, path = "/admin/v1/users/{id}", tag = "users",
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = ConsoleUser), (status = 404, body = ErrorBody)), security(("admin_token" = [])))]
pub async fn get_user(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<ConsoleUser>, AdminError> {
    let user =
        state.store().get_user(&id).await?.ok_or_else(|| AdminError::NotFound(format!("No user with id {id:?}.")))?;
    Ok(Json(to_api(&user)))
}

#[utoipa::path(post, path = "/admin/v1/users", tag = "users", request_body = CreateUserRequest,
    responses((status = 201, body = ConsoleUser), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn create_user(State(state): State<AppState>, body: Bytes) -> Result<Response, AdminError> {
    let req: CreateUserRequest = parse_json(&body)?;
    let email = req.email.trim().to_lowercase();
    let tenant_id = match (req.role, req.tenant_id.as_deref().map(str::trim).filter(|t| !t.is_empty())) {
        (Role::Tenant, None) => {
            return Err(AdminError::BadRequest("`tenant_id` is required for a tenant user.".into()))
        }
        (Role::Tenant, Some(t)) => Some(
            find_tenant(&state, t)
                .await
                .map_err(|_| AdminError::BadRequest(format!("`tenant_id`: no tenant with id or alias {t:?}.")))?
                .id,
        ),
        (_, Some(_)) => return Err(AdminError::BadRequest("`tenant_id` is only for users with role tenant.".into())),
        (_, None) => None,
    };
    if req.password.chars().count() < 12 {
        return Err(AdminError::BadRequest("`password` must be at least 12 characters long.".into()));
    }
    if state.store().user_by_email(&email).await?.is_some() {
        return Err(AdminError::Conflict(format!("A user with email {email} already exists.")));
    }
    let user = crate::users::create_user(state.store(), &email, req.role.as_str(), tenant_id.as_deref(), &req.password)
        .await
        .map_err(|e| {
            let m = e.to_string();
            if m.contains("already exists") {
                AdminError::Conflict(m)
            } else {
                AdminError::BadRequest(format!("`email`: {}.", m.replace("--email ", "")))
            }
        })?;
    let info = to_api(&user);
    audit(&state, "user.create", &user.id, None::<&ConsoleUser>, Some(&info)).await;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

#[utoipa::path(patch, path = "/admin/v1/users/{id}", tag = "users", request_body = PatchUserRequest,
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = ConsoleUser), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn patch_user(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<ConsoleUser>, AdminError> {
    let req: PatchUserRequest = parse_json(&body)?;
    let before =
        state.store().get_user(&id).await?.ok_or_else(|| AdminError::NotFound(format!("No user with id {id:?}.")))?;
    let mut after = before.clone();
    if let Some(role) = req.role {
        let was_tenant = before.role == Role::Tenant.as_str();
        if was_tenant != (role == Role::Tenant) {
            return Err(AdminError::BadRequest(
                "`role`: a tenant user cannot become an operator or the reverse; create a new user.".into(),
            ));
        }
        after.role = role.as_str().into();
    }
    if let Some(d) = req.disabled {
        after.disabled = d;
    }
    state.store().update_user(&after).await?;
    let (b, a) = (to_api(&before), to_api(&after));
    if b != a {
        audit(&state, "user.update", &id, Some(&b), Some(&a)).await;
    }
    Ok(Json(a))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn throttles_per_key_and_releases_after_the_window() {
        let auth = AuthState::default();
        let t0 = Instant::now();
        for _ in 0..EMAIL_MAX_FAILURES {
            assert!(auth.blocked_for("email:a", EMAIL_MAX_FAILURES, t0).is_none());
            auth.record_failure("email:a", t0);
        }
        let wait = auth.blocked_for("email:a", EMAIL_MAX_FAILURES, t0).unwrap();
        assert_eq!(wait, FAILURE_WINDOW);
        assert!(auth.blocked_for("email:b", EMAIL_MAX_FAILURES, t0).is_none());
        let later = t0 + FAILURE_WINDOW;
        assert!(auth.blocked_for("email:a", EMAIL_MAX_FAILURES, later).is_none());
        auth.record_failure("email:c", t0);
        auth.clear("email:c");
        assert!(auth.failures.lock().unwrap().get("email:c").is_none());
    }
}
