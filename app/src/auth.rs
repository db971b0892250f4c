//! Sign-in, sessions and permissions.
//!
//! The password is checked by the gateway (`POST /admin/v1/auth/verify`:
//! argon2id, the same time for unknown emails, throttling); the console keeps
//! the signed-in user in a tower-sessions session stored in the database. The
//! session id is rotated at sign-in, the session ends after an idle timeout
//! and an absolute timeout, and sign-out deletes it. Every server function
//! starts with one of the `require_*` checks below: roles are enforced on the
//! server, the UI only hides what a role cannot do.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use sheepdog_types::Role;

use crate::error::ConsoleError;

/// The signed-in user as the UI sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUser {
    pub id: String,
    pub email: String,
    pub role: Role,
    /// The tenant of a `tenant` user.
    pub tenant_id: Option<String>,
}

/// Whether the signed-in user (the page's context) may change tenants,
/// limits, budgets, keys and rollouts: what pages show forms and buttons for.
pub fn can_operate() -> bool {
    use_context::<SessionUser>().is_some_and(|u| u.can_operate())
}

/// Whether the signed-in user is an admin (users, everything).
pub fn is_admin() -> bool {
    use_context::<SessionUser>().is_some_and(|u| u.is_admin())
}

impl SessionUser {
    /// Operators and admins may change tenants, limits, budgets and keys.
    pub fn can_operate(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Operator)
    }
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
    /// Where this user lands after sign-in.
    pub fn home(&self) -> &'static str {
        if self.role == Role::Tenant {
            "/portal"
        } else {
            "/"
        }
    }
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use std::time::{SystemTime, UNIX_EPOCH};

    use leptos::prelude::*;
    use serde::{Deserialize, Serialize};
    use sheepdog_types::Role;
    use tower_sessions::Session;

    use super::SessionUser;
    use crate::error::ConsoleError;
    use crate::state::ConsoleState;

    const AUTH_KEY: &str = "auth";

    /// What the session stores.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct AuthRecord {
        pub user: SessionUser,
        /// Unix seconds of sign-in (absolute timeout).
        pub login_at: u64,
        /// Unix seconds of the last use (idle timeout; refreshed each minute).
        pub seen_at: u64,
        /// Unix seconds the user was last re-read from the gateway.
        pub checked_at: u64,
    }

    pub fn now_secs() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    }

    /// Sets the HTTP status of a server-function response (not of a page
    /// render that calls the function directly).
    pub fn with_status(e: ConsoleError) -> ConsoleError {
        let status = match &e {
            ConsoleError::Unauthenticated | ConsoleError::InvalidCredentials => 401,
            ConsoleError::Forbidden => 403,
            ConsoleError::NotFound => 404,
            ConsoleError::Invalid(_) => 400,
            ConsoleError::Conflict(_) => 409,
            ConsoleError::TooManyAttempts(_) => 429,
            ConsoleError::Unavailable => 503,
            _ => 500,
        };
        let is_api = use_context::<axum::http::request::Parts>().is_some_and(|p| p.uri.path().starts_with("/api/"));
        if is_api {
            if let (Some(res), Ok(code)) =
                (use_context::<leptos_axum::ResponseOptions>(), axum::http::StatusCode::from_u16(status))
            {
                res.set_status(code);
            }
        }
        e
    }

    pub async fn session() -> Result<Session, ConsoleError> {
        leptos_axum::extract::<Session>().await.map_err(|e| {
            tracing::error!(error = %e, "no session layer in front of the console");
            ConsoleError::Internal
        })
    }

    fn session_error(e: impl std::fmt::Display) -> ConsoleError {
        tracing::error!(error = %e, "session store error");
        ConsoleError::Unavailable
    }

    /// Starts a session for `user`: a new session id (no fixation), then the user.
    pub async fn start(session: &Session, user: SessionUser) -> Result<(), ConsoleError> {
        session.cycle_id().await.map_err(session_error)?;
        let now = now_secs();
        let record = AuthRecord { user, login_at: now, seen_at: now, checked_at: now };
        session.insert(AUTH_KEY, record).await.map_err(session_error)
    }

    /// Ends the session: deleted from the store, cookie removed.
    pub async fn end(session: &Session) -> Result<(), ConsoleError> {
        session.flush().await.map_err(session_error)
    }

    /// The signed-in user, or `None`. Applies the idle and absolute timeouts
    /// and re-reads the user from the gateway every `recheck_every`, so a
    /// disabled user is signed out and a role change applies.
    pub async fn current_user() -> Result<Option<SessionUser>, ConsoleError> {
        let state = ConsoleState::current()?;
        let session = session().await?;
        let Some(mut record) = session.get::<AuthRecord>(AUTH_KEY).await.map_err(session_error)? else {
            return Ok(None);
        };
        let policy = state.policy();
        let now = now_secs();
        let idle = now.saturating_sub(record.seen_at) >= policy.idle_timeout.as_secs();
        let expired = now.saturating_sub(record.login_at) >= policy.absolute_timeout.as_secs();
        if idle || expired {
            tracing::info!(email = %record.user.email, idle, expired, "console session timed out");
            end(&session).await?;
            return Ok(None);
        }
        let mut changed = false;
        if now.saturating_sub(record.checked_at) >= policy.recheck_every.as_secs() {
            match state.api().user(&record.user.id).await {
                Ok(u) if !u.disabled && u.tenant_id == record.user.tenant_id => {
                    record.user.role = u.role;
                    record.checked_at = now;
                    changed = true;
                }
                Ok(_) | Err(ConsoleError::NotFound) => {
                    tracing::info!(email = %record.user.email, "console user disabled or removed; session ended");
                    end(&session).await?;
                    return Ok(None);
                }
                // The gateway is briefly away: keep the session, check next time.
                Err(_) => {}
            }
        }
        if now.saturating_sub(record.seen_at) >= 60 {
            record.seen_at = now;
            changed = true;
        }
        if changed {
            session.insert(AUTH_KEY, &record).await.map_err(session_error)?;
        }
        Ok(Some(record.user))
    }

    /// Any signed-in user.
    pub async fn require_user() -> Result<SessionUser, ConsoleError> {
        current_user().await?.ok_or_else(|| with_status(ConsoleError::Unauthenticated))
    }

    /// Reading operator pages: admin, operator or viewer (never a tenant user).
    pub async fn require_staff() -> Result<SessionUser, ConsoleError> {
        let user = require_user().await?;
        if user.role.is_staff() {
            Ok(user)
        } else {
            Err(with_status(ConsoleError::Forbidden))
        }
    }

    /// Changing tenants, limits, budgets and keys: admin or operator.
    pub async fn require_operator() -> Result<SessionUser, ConsoleError> {
        let user = require_user().await?;
        if matches!(user.role, Role::Admin | Role::Operator) {
            Ok(user)
        } else {
            Err(with_status(ConsoleError::Forbidden))
        }
    }

    /// Managing console users: admin only.
    pub async fn require_admin() -> Result<SessionUser, ConsoleError> {
        let user = require_user().await?;
        if user.role == Role::Admin {
            Ok(user)
        } else {
            Err(with_status(ConsoleError::Forbidden))
        }
    }

    /// The tenant portal: a tenant user, and the tenant id from the session
    /// (never from the request).
    pub async fn require_tenant() -> Result<(SessionUser, String), ConsoleError> {
        let user = require_user().await?;
        match (&user.role, user.tenant_id.clone()) {
            (Role::Tenant, Some(t)) => Ok((user, t)),
            _ => Err(with_status(ConsoleError::Forbidden)),
        }
    }

    /// The client's address (throttling of sign-ins per address): the socket
    /// peer, or, when the peer is one of `console.trusted_proxies`, the
    /// right-most untrusted address of `X-Forwarded-For`.
    pub async fn client_ip() -> Option<String> {
        use axum::extract::ConnectInfo;
        let state = ConsoleState::current().ok()?;
        let ConnectInfo(peer) = leptos_axum::extract::<ConnectInfo<std::net::SocketAddr>>().await.ok()?;
        let parts = use_context::<axum::http::request::Parts>();
        let forwarded: Vec<&str> = parts
            .as_ref()
            .map(|p| p.headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect())
            .unwrap_or_default();
        Some(sheepdog_types::net::client_ip(peer.ip(), forwarded, state.trusted_proxies()).to_string())
    }
}

/// The signed-in user, or `None` (pages use it to choose the layout).
#[server(endpoint = "whoami")]
pub async fn whoami() -> Result<Option<SessionUser>, ConsoleError> {
    ssr::current_user().await
}

/// Whether `next` (after sign-in) is a path on this console, never another
/// site: one `/` then a path character; no backslash (browsers read `/\\x`
/// as `//x`), no control or whitespace characters (browsers drop tabs and
/// newlines, turning `/\t/x` into `//x`), no percent-encoded slash,
/// backslash or control character (decoded before routing, or by a later
/// hop), ASCII only, and at most 2048 bytes.
pub fn is_local_path(next: &str) -> bool {
    let bytes = next.as_bytes();
    if next.len() > 2048 || bytes.first() != Some(&b'/') || matches!(bytes.get(1), Some(b'/' | b'\\')) {
        return false;
    }
    // ASCII only: the path becomes a `Location` header value.
    if !next.is_ascii() || next.chars().any(|c| c == '\\' || c.is_control() || c.is_whitespace()) {
        return false;
    }
    let lower = next.to_ascii_lowercase();
    // %2f (/), %5c (\\), %09/%0a/%0d and any %0x/%1x control, %7f, %20 (space).
    let bad_escape = lower.match_indices('%').any(|(i, _)| {
        let code = lower.get(i + 1..i + 3).unwrap_or("");
        matches!(code, "2f" | "5c" | "7f" | "20" | "25") || code.starts_with('0') || code.starts_with('1')
    });
    !bad_escape
}

/// Signs in with email and password. On success the session id is rotated
/// and the browser is sent to `next` (a local path) or the user's home.
#[server(endpoint = "login")]
pub async fn login(email: String, password: String, next: Option<String>) -> Result<SessionUser, ConsoleError> {
    let state = crate::state::ConsoleState::current()?;
    let email = email.trim().to_lowercase();
    if email.is_empty() || password.is_empty() {
        return Err(ssr::with_status(ConsoleError::Invalid("Enter your email and password.".into())));
    }
    if password.len() > 1024 || email.len() > 254 {
        return Err(ssr::with_status(ConsoleError::InvalidCredentials));
    }
    let ip = ssr::client_ip().await;
    let Some(slot) = state.try_sign_in_slot() else {
        tracing::warn!(client_ip = ?ip, "console sign-in refused: too many sign-ins in flight");
        return Err(ssr::with_status(ConsoleError::TooManyAttempts(1)));
    };
    let verified = state.api().verify(&email, &password, ip.as_deref()).await;
    drop(slot);
    let user = verified.map_err(ssr::with_status)?;
    let user = SessionUser { id: user.id, email: user.email, role: user.role, tenant_id: user.tenant_id };
    let session = ssr::session().await?;
    ssr::start(&session, user.clone()).await?;
    tracing::info!(email = %user.email, role = user.role.as_str(), "console sign-in");
    let target = next
        .filter(|n| is_local_path(n) && !n.starts_with("/api/") && n != "/login" && !n.starts_with("/login?"))
        .filter(|n| {
            (user.role == Role::Tenant) == (n == "/portal" || n.starts_with("/portal/") || n.starts_with("/portal?"))
        })
        .unwrap_or_else(|| user.home().to_string());
    leptos_axum::redirect(&target);
    Ok(user)
}

/// Signs out: the session is deleted from the store and its cookie removed.
#[server(endpoint = "logout")]
pub async fn logout() -> Result<(), ConsoleError> {
    let session = ssr::session().await?;
    if let Ok(Some(u)) = ssr::current_user().await {
        tracing::info!(email = %u.email, "console sign-out");
    }
    ssr::end(&session).await?;
    leptos_axum::redirect("/login");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_local_path;

    #[test]
    fn local_paths_pass() {
        for ok in [
            "/",
            "/tenants",
            "/tenants/3f1c2a9e-8d7b-4c6a-9e5f-0123456789ab",
            "/costs?range=24h",
            "/portal/keys",
            "/audit?action=tenant.create#x",
        ] {
            assert!(is_local_path(ok), "{ok}");
        }
    }

    #[test]
    fn other_sites_never_pass() {
        for bad in [
            "",
            "tenants",
            "//evil.example",
            "///evil.example",
            "/\\evil.example",
            "\\/evil.example",
            "/\\/evil.example",
            "/%5Cevil.example",
            "/%5cevil.example",
            "/%2F/evil.example",
            "/%2f%2fevil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r/evil.example",
            "/%09/evil.example",
            "/%0a/evil.example",
            "/%0D/evil.example",
            "/ /evil.example",
            "/%20/evil.example",
            "/%252f%252fevil.example",
            "/\u{0}/evil.example",
            "/\u{7f}/evil.example",
            "/\u{3000}/evil.example",
            "https://evil.example",
            "https:evil.example",
            "http:/evil.example",
            "javascript:alert(1)",
            "data:text/html,x",
            " /tenants",
            "/tenants/é",
        ] {
            assert!(!is_local_path(bad), "{bad:?} must not pass");
        }
        assert!(!is_local_path(&format!("/{}", "a".repeat(2048))), "too long");
    }
}
