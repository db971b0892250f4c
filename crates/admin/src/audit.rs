//! The audit log: who made each admin change ([`ACTOR`], from
//! `X-Sheepdog-Actor`) and what changed (before → after).

use sheepdog_core::state::AppState;
use sheepdog_store::AuditEntry;

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
        at: sheepdog_types::time::now_rfc3339(),
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

tokio::task_local! {
    /// Who the audit log names for this admin request: `X-Sheepdog-Actor`
    /// (e.g. `console:ops@example.com`) or `admin-token`.
    pub(crate) static ACTOR: String;
}

/// Who is making the current admin request (as the audit log names it):
/// the console user (`console:…`) or `admin-token`.
pub(crate) fn current_actor() -> String {
    ACTOR.try_with(String::clone).unwrap_or_else(|_| "admin-token".into())
}

/// The `X-Sheepdog-Actor` header when present and sane (1 to 200 printable characters).
pub(crate) fn actor_of(headers: &axum::http::HeaderMap) -> String {
    headers
        .get("x-sheepdog-actor")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|a| !a.is_empty() && a.chars().count() <= 200 && !a.chars().any(char::is_control))
        .map(str::to_string)
        .unwrap_or_else(|| "admin-token".into())
}
