//! The typed client of the gateway's admin API (`/admin/v1`, SPEC §5) that
//! every console server function goes through, also when the console and
//! the gateway run in one process. Changes name the signed-in user in
//! `X-Sheepdog-Actor`, so the audit log says who made them.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use sheepdog_types::{
    AdvanceInput, AnalysisResponse, AuditList, AuditRecord, BudgetInput, ConsoleUser, CreateRollout, CreateTenantKey,
    ErrorBody, KeyCreated, KeyInfo, KeyList, LimitsInput, Overview, PatchTenant, PatchUserRequest, Pool, PoolList,
    ReasonInput, ReplicaList, RolloutList, RolloutReport, RolloutView, Tenant, TenantList, TenantMetrics, UsageReport,
    UsageSeries, UserList,
};

use crate::error::ConsoleError;

/// The admin API client (cheap to clone).
#[derive(Clone)]
pub struct AdminApi {
    http: reqwest::Client,
    base: Arc<str>,
    token: Arc<str>,
}

impl std::fmt::Debug for AdminApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminApi").field("base", &self.base).finish_non_exhaustive()
    }
}

/// Why `POST /admin/v1/analyses` did not answer with a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnalyzeFailure {
    /// The gateway answered with an error status and its message.
    Refused { status: u16, code: String, message: String },
    /// The call did not complete (gateway unreachable, upload aborted, timeout).
    Transport(String),
    /// The gateway answered success with a body that is not an analysis.
    Unreadable(String),
}

/// Who a change is attributed to in the audit log.
pub fn actor_for(email: &str) -> String {
    format!("console:{email}")
}

/// The body of `POST /admin/v1/auth/verify`. Built as JSON because
/// [`sheepdog_types::VerifyRequest`] is never serializable (it carries a
/// password); a test checks that it reads back as that type.
pub fn verify_body(email: &str, password: &str, client_ip: Option<&str>) -> Value {
    json!({"email": email, "password": password, "client_ip": client_ip})
}

/// The body of `POST /admin/v1/users`, as JSON for the same reason as
/// [`verify_body`] ([`sheepdog_types::CreateUserRequest`]).
pub fn create_user_body(email: &str, role: &str, tenant_id: Option<&str>, password: &str) -> Value {
    json!({"email": email, "role": role, "tenant_id": tenant_id, "password": password})
}

/// Percent-encodes one path segment or query value.
pub fn enc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether `id` may name a resource in an admin API path: a UUID, a key or
/// rollout id, or a tenant alias — 1 to 64 of `[A-Za-z0-9._-]` — and never
/// `.` or `..` (which a URL parser resolves, so `/tenants/../keys` would
/// become `/keys`).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id != "."
        && id != ".."
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `id` as one percent-encoded path segment; an id that cannot exist is "not found"
/// (nothing is sent to the gateway).
pub fn seg(id: &str) -> Result<String, ConsoleError> {
    if valid_id(id) {
        Ok(enc(id))
    } else {
        tracing::warn!(id = %id.escape_debug(), "refused an invalid id in an admin API path");
        Err(ConsoleError::NotFound)
    }
}

/// `?a=1&b=2` from the present pairs (empty when none).
pub fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> =
        pairs.iter().filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| format!("{k}={}", enc(v)))).collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

impl AdminApi {
    pub fn new(http: reqwest::Client, gateway_url: &str, token: &str) -> AdminApi {
        AdminApi { http, base: format!("{}/admin/v1", gateway_url.trim_end_matches('/')).into(), token: token.into() }
    }

    async fn call<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        actor: Option<&str>,
        body: Option<&B>,
    ) -> Result<T, ConsoleError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url).bearer_auth(&*self.token);
        if let Some(a) = actor {
            req = req.header("x-sheepdog-actor", a);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            tracing::warn!(%method, path, error = %e, "admin API unreachable");
            ConsoleError::Unavailable
        })?;
        let status = resp.status();
        if status.is_success() {
            return resp.json::<T>().await.map_err(|e| {
                tracing::error!(%method, path, error = %e, "admin API answered an unexpected body");
                ConsoleError::Internal
            });
        }
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let (code, message) =
            resp.json::<ErrorBody>().await.map(|b| (b.error.code, b.error.message)).unwrap_or_default();
        Err(match status {
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => ConsoleError::Invalid(message),
            StatusCode::NOT_FOUND => ConsoleError::NotFound,
            StatusCode::CONFLICT => ConsoleError::Conflict(message),
            StatusCode::TOO_MANY_REQUESTS => ConsoleError::TooManyAttempts(retry_after.unwrap_or(60)),
            StatusCode::UNAUTHORIZED if code == "invalid_credentials" => ConsoleError::InvalidCredentials,
            StatusCode::UNAUTHORIZED => {
                tracing::error!(path, "the gateway refused the console's admin token");
                ConsoleError::Unavailable
            }
            s if s.is_server_error() => {
                tracing::warn!(%method, path, status = s.as_u16(), %message, "admin API error");
                ConsoleError::Unavailable
            }
            s => {
                tracing::error!(%method, path, status = s.as_u16(), %message, "admin API: unexpected status");
                ConsoleError::Internal
            }
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ConsoleError> {
        self.call(Method::GET, path, None, None::<&()>).await
    }

    // ---- sign-in and users -----------------------------------------------

    /// Checks a sign-in: the user, `InvalidCredentials`, or `TooManyAttempts`.
    pub async fn verify(
        &self,
        email: &str,
        password: &str,
        client_ip: Option<&str>,
    ) -> Result<ConsoleUser, ConsoleError> {
        let body = verify_body(email, password, client_ip);
        self.call(Method::POST, "/auth/verify", None, Some(&body)).await
    }

    pub async fn user(&self, id: &str) -> Result<ConsoleUser, ConsoleError> {
        self.get(&format!("/users/{}", seg(id)?)).await
    }

    /// One page of console users by e-mail, and how many there are.
    pub async fn users_page(&self, limit: u64, offset: u64) -> Result<(Vec<ConsoleUser>, u64), ConsoleError> {
        let list = self.get::<UserList>(&format!("/users?limit={limit}&offset={offset}")).await?;
        let total = list.total.unwrap_or(list.data.len() as u64);
        Ok((list.data, total))
    }

    pub async fn create_user(
        &self,
        actor: &str,
        email: &str,
        role: &str,
        tenant_id: Option<&str>,
        password: &str,
    ) -> Result<ConsoleUser, ConsoleError> {
        let body = create_user_body(email, role, tenant_id, password);
        self.call(Method::POST, "/users", Some(actor), Some(&body)).await
    }

    pub async fn set_user_disabled(&self, actor: &str, id: &str, disabled: bool) -> Result<ConsoleUser, ConsoleError> {
        let body = PatchUserRequest { disabled: Some(disabled), role: None };
        self.call(Method::PATCH, &format!("/users/{}", seg(id)?), Some(actor), Some(&body)).await
    }

    // ---- tenants ---------------------------------------------------------

    pub async fn tenants(&self) -> Result<Vec<Tenant>, ConsoleError> {
        Ok(self.get::<TenantList>("/tenants").await?.data)
    }

    /// One page of tenants matching the filters, ordered by name, and how many match.
    pub async fn tenants_page(
        &self,
        filters: &[(&str, Option<&str>)],
        limit: u64,
        offset: u64,
    ) -> Result<(Vec<Tenant>, u64), ConsoleError> {
        let (limit, offset) = (limit.to_string(), offset.to_string());
        let mut pairs = filters.to_vec();
        pairs.extend([("limit", Some(limit.as_str())), ("offset", Some(offset.as_str()))]);
        let list = self.get::<TenantList>(&format!("/tenants{}", query(&pairs))).await?;
        let total = list.total.unwrap_or(list.data.len() as u64);
        Ok((list.data, total))
    }

    pub async fn tenant(&self, id: &str) -> Result<Tenant, ConsoleError> {
        self.get(&format!("/tenants/{}", seg(id)?)).await
    }

    pub async fn create_tenant(
        &self,
        actor: &str,
        body: &sheepdog_types::CreateTenant,
    ) -> Result<Tenant, ConsoleError> {
        self.call(Method::POST, "/tenants", Some(actor), Some(body)).await
    }

    pub async fn patch_tenant(&self, actor: &str, id: &str, body: &PatchTenant) -> Result<Tenant, ConsoleError> {
        self.call(Method::PATCH, &format!("/tenants/{}", seg(id)?), Some(actor), Some(body)).await
    }

    pub async fn put_limits(&self, actor: &str, id: &str, body: &LimitsInput) -> Result<Tenant, ConsoleError> {
        self.call(Method::PUT, &format!("/tenants/{}/limits", seg(id)?), Some(actor), Some(body)).await
    }

    pub async fn put_budget(&self, actor: &str, id: &str, body: &BudgetInput) -> Result<Tenant, ConsoleError> {
        self.call(Method::PUT, &format!("/tenants/{}/budget", seg(id)?), Some(actor), Some(body)).await
    }

    pub async fn metrics(&self, id: &str, period: &str) -> Result<TenantMetrics, ConsoleError> {
        self.get(&format!("/tenants/{}/metrics{}", seg(id)?, query(&[("period", Some(period))]))).await
    }

    // ---- keys ------------------------------------------------------------

    pub async fn tenant_keys(&self, id: &str) -> Result<Vec<KeyInfo>, ConsoleError> {
        Ok(self.get::<KeyList>(&format!("/tenants/{}/keys", seg(id)?)).await?.data)
    }

    /// One page of a tenant's keys, newest first, and how many it has.
    pub async fn tenant_keys_page(
        &self,
        id: &str,
        limit: u64,
        offset: u64,
    ) -> Result<(Vec<KeyInfo>, u64), ConsoleError> {
        let list = self.get::<KeyList>(&format!("/tenants/{}/keys?limit={limit}&offset={offset}", seg(id)?)).await?;
        let total = list.total.unwrap_or(list.data.len() as u64);
        Ok((list.data, total))
    }

    pub async fn create_key(
        &self,
        actor: &str,
        tenant_id: &str,
        name: Option<&str>,
    ) -> Result<KeyCreated, ConsoleError> {
        let body = CreateTenantKey { name: name.map(str::to_string) };
        self.call(Method::POST, &format!("/tenants/{}/keys", seg(tenant_id)?), Some(actor), Some(&body)).await
    }

    pub async fn revoke_key(&self, actor: &str, key_id: &str) -> Result<KeyInfo, ConsoleError> {
        self.call(Method::DELETE, &format!("/keys/{}", seg(key_id)?), Some(actor), None::<&()>).await
    }

    // ---- pools -----------------------------------------------------------

    pub async fn pools(&self) -> Result<Vec<Pool>, ConsoleError> {
        Ok(self.get::<PoolList>("/pools").await?.data)
    }

    pub async fn pool(&self, id: &str) -> Result<Pool, ConsoleError> {
        self.get(&format!("/pools/{}", seg(id)?)).await
    }

    // ---- reports ---------------------------------------------------------

    /// Totals over `from`..`to` (RFC 3339).
    pub async fn overview(&self, from: &str, to: &str) -> Result<Overview, ConsoleError> {
        self.get(&format!("/overview{}", query(&[("from", Some(from)), ("to", Some(to))]))).await
    }

    pub async fn replicas(&self) -> Result<ReplicaList, ConsoleError> {
        self.get("/replicas").await
    }

    pub async fn usage(
        &self,
        group_by: &str,
        from: Option<&str>,
        to: Option<&str>,
        tenant_id: Option<&str>,
    ) -> Result<UsageReport, ConsoleError> {
        let q = query(&[("group_by", Some(group_by)), ("from", from), ("to", to), ("tenant_id", tenant_id)]);
        self.get(&format!("/usage{q}")).await
    }

    /// Usage over time by group; with `top`, the groups beyond the largest
    /// `top` are summed in one row by the gateway.
    pub async fn usage_series(
        &self,
        group_by: &str,
        from: &str,
        to: &str,
        bucket: Option<&str>,
        tenant_id: Option<&str>,
        top: Option<usize>,
    ) -> Result<UsageSeries, ConsoleError> {
        let top = top.map(|t| t.to_string());
        let q = query(&[
            ("group_by", Some(group_by)),
            ("from", Some(from)),
            ("to", Some(to)),
            ("bucket", bucket),
            ("tenant_id", tenant_id),
            ("top", top.as_deref()),
        ]);
        self.get(&format!("/usage/series{q}")).await
    }

    // ---- rollouts ---------------------------------------------------------

    pub async fn rollouts(&self) -> Result<Vec<RolloutView>, ConsoleError> {
        Ok(self.get::<RolloutList>("/rollouts").await?.data)
    }

    pub async fn rollout(&self, id: &str) -> Result<RolloutReport, ConsoleError> {
        self.get(&format!("/rollouts/{}", seg(id)?)).await
    }

    pub async fn create_rollout(&self, actor: &str, body: &CreateRollout) -> Result<RolloutView, ConsoleError> {
        self.call(Method::POST, "/rollouts", Some(actor), Some(body)).await
    }

    /// `action` is one of advance, pause, resume, rollback.
    pub async fn rollout_action(
        &self,
        actor: &str,
        id: &str,
        action: &str,
        reason: Option<&str>,
    ) -> Result<RolloutView, ConsoleError> {
        if !matches!(action, "advance" | "pause" | "resume" | "rollback") {
            return Err(ConsoleError::Invalid("Unknown rollout action.".into()));
        }
        let path = format!("/rollouts/{}/{}", seg(id)?, seg(action)?);
        let reason = reason.map(str::to_string);
        if action == "advance" {
            let body = AdvanceInput { percent: None, reason };
            self.call(Method::POST, &path, Some(actor), Some(&body)).await
        } else {
            self.call(Method::POST, &path, Some(actor), Some(&ReasonInput { reason })).await
        }
    }

    // ---- analyses -----------------------------------------------------------

    /// `POST /admin/v1/analyses`: streams `body` (the log file) to the
    /// gateway and returns its answer (the report and its page). `query` is the
    /// encoded query string (`?…` or empty). Longer than the other calls:
    /// `timeout` covers the upload and the analysis.
    pub async fn analyze(
        &self,
        actor: &str,
        query: &str,
        body: reqwest::Body,
        content_length: Option<u64>,
        timeout: std::time::Duration,
    ) -> Result<AnalysisResponse, AnalyzeFailure> {
        let url = format!("{}/analyses{query}", self.base);
        let mut req = self
            .http
            .post(&url)
            .bearer_auth(&*self.token)
            .header("x-sheepdog-actor", actor)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .timeout(timeout)
            .body(body);
        if let Some(n) = content_length {
            req = req.header(reqwest::header::CONTENT_LENGTH, n);
        }
        let resp = req.send().await.map_err(|e| AnalyzeFailure::Transport(e.to_string()))?;
        let status = resp.status();
        if status.is_success() {
            let bytes = resp.bytes().await.map_err(|e| AnalyzeFailure::Transport(e.to_string()))?;
            return serde_json::from_slice(&bytes).map_err(|e| AnalyzeFailure::Unreadable(e.to_string()));
        }
        let (code, message) =
            resp.json::<ErrorBody>().await.map(|b| (b.error.code, b.error.message)).unwrap_or_default();
        Err(AnalyzeFailure::Refused { status: status.as_u16(), code, message })
    }

    /// Audit entries matching the filters (give `offset` to get `total`, the number that match).
    pub async fn audit(&self, filters: &[(&str, Option<&str>)]) -> Result<(Vec<AuditRecord>, u64), ConsoleError> {
        let list = self.get::<AuditList>(&format!("/audit{}", query(filters))).await?;
        let total = list.total.unwrap_or(list.data.len() as u64);
        Ok((list.data, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_query_values() {
        assert_eq!(enc("a b/c"), "a%20b%2Fc");
        assert_eq!(query(&[("a", Some("1")), ("b", None), ("c", Some(""))]), "?a=1");
        assert_eq!(query(&[]), "");
        assert_eq!(actor_for("x@y.z"), "console:x@y.z");
    }

    /// The JSON-built bodies read back as the gateway's request types
    /// (which deny unknown fields): a renamed field fails here.
    #[test]
    fn password_bodies_are_the_gateway_request_types() {
        let v: sheepdog_types::VerifyRequest =
            serde_json::from_value(verify_body("a@b.c", "pw", Some("10.0.0.1"))).unwrap();
        assert_eq!((v.email.as_str(), v.password.as_str(), v.client_ip.as_deref()), ("a@b.c", "pw", Some("10.0.0.1")));
        let u: sheepdog_types::CreateUserRequest =
            serde_json::from_value(create_user_body("a@b.c", "tenant", Some("t1"), "pw")).unwrap();
        assert_eq!(
            (u.role, u.tenant_id.as_deref(), u.password.as_str()),
            (sheepdog_types::Role::Tenant, Some("t1"), "pw")
        );
    }

    #[test]
    fn ids_are_validated_before_they_become_path_segments() {
        for ok in [
            "3f1c2a9e-8d7b-4c6a-9e5f-0123456789ab",
            "key_0123456789abcdef0123456789abcdef",
            "acme",
            "acme.eu",
            "a..b",
            "_x-1",
        ] {
            assert!(valid_id(ok), "{ok}");
            assert_eq!(seg(ok).unwrap(), ok, "unreserved characters stay as they are");
        }
        for bad in [
            "",
            ".",
            "..",
            "../keys",
            "a/b",
            "a%2F",
            "%2e%2e",
            "a b",
            "a\\b",
            "a?b",
            "a#b",
            "a\nb",
            "é",
            &"x".repeat(65),
        ] {
            assert!(!valid_id(bad), "{bad:?}");
            assert!(matches!(seg(bad), Err(ConsoleError::NotFound)), "{bad:?}");
        }
    }

    /// The path the client would request for `tenant_keys("..")` if ids were
    /// not validated: `/tenants/../keys` resolves to `/keys` (every key,
    /// platform keys included). With validation nothing is requested.
    #[tokio::test]
    async fn dot_segments_never_reach_the_gateway() {
        let url = reqwest::Url::parse("http://gw.invalid/admin/v1/tenants/../keys").unwrap();
        assert_eq!(url.path(), "/admin/v1/keys", "why `..` must be refused");
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let api = AdminApi::new(reqwest::Client::new(), &format!("http://{closed}"), "t");
        for id in [".", "..", "%2e%2e", "../keys"] {
            assert!(matches!(api.tenant_keys(id).await, Err(ConsoleError::NotFound)), "{id}");
            assert!(matches!(api.revoke_key("a", id).await, Err(ConsoleError::NotFound)), "{id}");
            assert!(matches!(api.create_key("a", id, None).await, Err(ConsoleError::NotFound)), "{id}");
            assert!(matches!(api.tenant(id).await, Err(ConsoleError::NotFound)), "{id}");
        }
        // A valid id is sent (and here fails to connect: nothing listens there).
        assert!(matches!(api.tenant("acme").await, Err(ConsoleError::Unavailable)));
        assert!(matches!(api.rollout_action("a", "ro_1", "delete", None).await, Err(ConsoleError::Invalid(_))));
    }
}
