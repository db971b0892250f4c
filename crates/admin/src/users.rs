//! Console users and sign-in verification (`/admin/v1/users`,
//! `/admin/v1/auth/verify`).
//!
//! Verification takes the same time whether or not the email exists (an
//! unknown email is verified against a dummy argon2id hash with the same
//! parameters). Attempts are throttled per (email, client address) with
//! doubling delays and per client address, counted before the password is
//! hashed, and at most one hash per core runs at once: see
//! [`crate::signin`]. Throttling state is per gateway process, or shared by
//! the replicas in Redis when `[redis] url` is set.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use sheepdog_types::{
    ConsoleUser, CreateUserRequest, ErrorBody, ErrorDetail, PatchUserRequest, Role, UserList, VerifyRequest,
};
use tokio::time::Instant;

use crate::audit::audit;
use crate::body::parse_json;
use crate::error::AdminError;
use crate::lookup::find_tenant;
use crate::query::AdminQuery;
use crate::signin::{Attempt, SignIn};
use sheepdog_core::state::AppState;
use sheepdog_store::UserRow;

/// Sign-in state shared by the verification handler (one per router).
#[derive(Debug)]
pub struct AuthState {
    signin: SignIn,
    dummy_hash: tokio::sync::OnceCell<String>,
}

impl AuthState {
    pub fn new() -> Arc<AuthState> {
        let state = Arc::new(AuthState { signin: SignIn::per_core(), dummy_hash: tokio::sync::OnceCell::new() });
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
            .get_or_try_init(|| crate::accounts::hash_password("sheepdog-dummy-password-never-valid".into()))
            .await
            .ok()
            .cloned()
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

fn throttled(wait: Duration, code: &str, message: &str) -> Response {
    let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
    let mut resp =
        error(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", code, &message.replace("{secs}", &secs.to_string()));
    if let Ok(v) = secs.to_string().parse() {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

#[utoipa::path(post, path = "/admin/v1/auth/verify", tag = "users", request_body = VerifyRequest,
    description = "Checks a console sign-in. Unknown emails take as long as wrong passwords (one argon2id \
                   verification either way). Throttling, per gateway process: every attempt is counted before \
                   its password is hashed. Per (email, `client_ip`) pair the first 3 attempts go straight through, \
                   then the pair must wait 1 s, 2 s, 4 s, ... (at most 300 s) before its next attempt is checked; \
                   a success clears the pair, and one pair's failures never delay another (the right password from \
                   another address is not refused). Per client address (IPv6: per /64) the first 20 attempts go \
                   through, then the same doubling delays; a success takes its own attempt back. Counts are \
                   forgotten after 15 min without attempts; at most 100 000 pairs and addresses are tracked (least \
                   recently used forgotten first). At most one password hash per core runs at once: when all are \
                   busy the answer is 429 at once (code `sign_in_busy`, not counted). A throttled attempt gets 429 \
                   (code `too_many_attempts`) with `Retry-After` in seconds. `client_ip` must be an IP address \
                   when given; without it all such attempts share one address.",
    responses((status = 200, body = ConsoleUser), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait")))),
    security(("admin_token" = [])))]
pub async fn verify(
    State(state): State<AppState>,
    Extension(auth): Extension<Arc<AuthState>>,
    body: Bytes,
) -> Result<Response, AdminError> {
    let req: VerifyRequest = parse_json(&body)?;
    let email = req.email.trim().to_lowercase();
    let client_ip = match req.client_ip.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(ip) => Some(
            ip.parse::<std::net::IpAddr>()
                .map_err(|_| AdminError::BadRequest("`client_ip` must be an IP address.".into()))?,
        ),
    };
    // A hash slot first (not counted when none is free), then the count, then the hash.
    let Some(_slot) = auth.signin.try_hash_slot() else {
        tracing::warn!(client_ip = ?client_ip, "console sign-in refused: every password-hash slot is busy");
        return Ok(throttled(
            Duration::from_secs(1),
            "sign_in_busy",
            "Too many sign-ins are being checked right now; try again in {secs} s.",
        ));
    };
    let attempt = Attempt::new(&email, client_ip);
    let shared = state.shared().map(|s| &**s);
    if let Err(wait) = auth.signin.begin_shared(shared, &attempt, Instant::now()).await {
        tracing::warn!(email = %email, client_ip = ?client_ip, wait_secs = wait.as_secs(), "console sign-in throttled");
        return Ok(throttled(wait, "too_many_attempts", "Too many failed sign-ins; try again in {secs} s."));
    }
    let user = if email.is_empty() || email.len() > 254 { None } else { state.store().user_by_email(&email).await? };
    // Always run one argon2id verification, against a dummy hash when the
    // email is unknown, so both failures take the same time.
    let hash = match &user {
        Some(u) => Some(u.password_hash.clone()),
        None => auth.dummy_hash().await,
    };
    let password_ok = match hash {
        Some(h) => crate::accounts::verify_password(req.password, h).await,
        None => false,
    };
    match user {
        Some(u) if password_ok && !u.disabled => {
            auth.signin.succeeded_shared(shared, &attempt).await;
            Ok(Json(to_api(&u)).into_response())
        }
        _ => {
            tracing::info!(email = %email, client_ip = ?client_ip, "console sign-in failed");
            Ok(invalid_credentials())
        }
    }
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserListParams {
    /// Matches the e-mail address anywhere (case-insensitive).
    pub q: Option<String>,
    /// `admin`, `operator`, `viewer` or `tenant`.
    pub role: Option<String>,
    /// A page of at most this many (1 to 500; default 50 when `offset` is given), ordered by e-mail.
    pub limit: Option<i64>,
    /// Users skipped before the page.
    pub offset: Option<i64>,
}

#[utoipa::path(get, path = "/admin/v1/users", tag = "users", params(UserListParams),
    description = "Every console user by e-mail, or with a filter or `limit`/`offset` one page and `total`.",
    responses((status = 200, body = UserList), (status = 400, body = ErrorBody)), security(("admin_token" = [])))]
pub async fn list_users(
    State(state): State<AppState>,
    AdminQuery(q): AdminQuery<UserListParams>,
) -> Result<Json<UserList>, AdminError> {
    let given = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    let filter = sheepdog_store::console::UserFilter {
        q: given(q.q),
        role: match given(q.role) {
            None => None,
            Some(r) => Some(Role::parse(&r).ok_or_else(|| {
                AdminError::BadRequest(format!("`role` {r:?} must be admin, operator, viewer or tenant."))
            })?),
        },
    };
    let page = crate::query::page(q.limit, q.offset)?;
    if filter.q.is_none() && filter.role.is_none() && page.is_none() {
        let rows = state.store().list_users().await?;
        return Ok(Json(UserList { data: rows.iter().map(to_api).collect(), total: None }));
    }
    let (limit, offset) = page.unwrap_or((crate::query::MAX_PAGE, 0));
    let found = state.store().list_users_page(&filter, limit, offset).await?;
    Ok(Json(UserList { data: found.rows.iter().map(to_api).collect(), total: Some(found.total.max(0) as u64) }))
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
    let user =
        crate::accounts::create_user(state.store(), &email, req.role.as_str(), tenant_id.as_deref(), &req.password)
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
