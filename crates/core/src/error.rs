//! The data plane's error boundary: every failure a client can see, with its
//! HTTP status and OpenAI-shaped body (SPEC §3). Internal causes are logged
//! where they happen and never put in a message.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sheepdog_types::{ErrorBody, ErrorDetail};

use crate::providers::types::{UpstreamError, UpstreamErrorKind};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error("missing, unknown or revoked API key")]
    InvalidApiKey(&'static str),
    #[error("invalid tenant id")]
    InvalidTenantId(String),
    #[error("tenant mismatch")]
    TenantMismatch,
    #[error("tenant required")]
    TenantRequired,
    #[error("tenant suspended")]
    TenantSuspended,
    #[error("invalid request: {message}")]
    InvalidRequest { message: String, param: Option<String> },
    #[error("request too large")]
    RequestTooLarge(u64),
    #[error("model not found")]
    ModelNotFound(String),
    #[error("rate limited")]
    RateLimited { message: String, retry_after: Duration },
    #[error("insufficient quota")]
    InsufficientQuota(String),
    #[error("upstream failed: {0}")]
    Upstream(UpstreamError),
    #[error("not found")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed(String),
    #[error("internal error")]
    Internal,
    /// The shutdown grace ended while the request was in flight.
    #[error("server shutting down")]
    ShuttingDown,
    /// Redis (the replicas' shared admission state) is unreachable and
    /// `redis.on_failure = "closed"`.
    #[error("shared state unavailable")]
    SharedStateUnavailable,
}

impl GatewayError {
    pub fn invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        GatewayError::InvalidRequest { message: message.into(), param: param.map(str::to_string) }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::InvalidApiKey(_) => StatusCode::UNAUTHORIZED,
            GatewayError::InvalidTenantId(_) | GatewayError::TenantMismatch | GatewayError::TenantSuspended => {
                StatusCode::FORBIDDEN
            }
            GatewayError::TenantRequired | GatewayError::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            GatewayError::RequestTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::ModelNotFound(_) | GatewayError::NotFound(_) => StatusCode::NOT_FOUND,
            GatewayError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::RateLimited { .. } | GatewayError::InsufficientQuota(_) => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::Upstream(e) => upstream_status(e),
            GatewayError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            GatewayError::ShuttingDown | GatewayError::SharedStateUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `error.code` of the body.
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::InvalidApiKey(_) => "invalid_api_key",
            GatewayError::InvalidTenantId(_) => "invalid_tenant_id",
            GatewayError::TenantMismatch => "tenant_mismatch",
            GatewayError::TenantRequired => "tenant_required",
            GatewayError::TenantSuspended => "tenant_suspended",
            GatewayError::InvalidRequest { .. } => "invalid_request_error",
            GatewayError::RequestTooLarge(_) => "request_too_large",
            GatewayError::ModelNotFound(_) => "model_not_found",
            GatewayError::RateLimited { .. } => "rate_limit_exceeded",
            GatewayError::InsufficientQuota(_) => "insufficient_quota",
            GatewayError::Upstream(e) => match upstream_status(e) {
                StatusCode::GATEWAY_TIMEOUT => "upstream_timeout",
                StatusCode::BAD_REQUEST => "invalid_request_error",
                _ => "upstream_error",
            },
            GatewayError::NotFound(_) => "not_found",
            GatewayError::MethodNotAllowed(_) => "method_not_allowed",
            GatewayError::Internal => "internal_error",
            GatewayError::ShuttingDown => "server_shutting_down",
            GatewayError::SharedStateUnavailable => "shared_state_unavailable",
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            GatewayError::InvalidApiKey(_) => "authentication_error",
            GatewayError::InvalidTenantId(_) | GatewayError::TenantMismatch | GatewayError::TenantSuspended => {
                "permission_error"
            }
            GatewayError::RateLimited { .. } => "rate_limit_error",
            GatewayError::InsufficientQuota(_) => "insufficient_quota",
            GatewayError::Upstream(e) if upstream_status(e) == StatusCode::BAD_REQUEST => "invalid_request_error",
            GatewayError::Upstream(_) => "upstream_error",
            GatewayError::Internal => "server_error",
            GatewayError::ShuttingDown | GatewayError::SharedStateUnavailable => "service_unavailable",
            _ => "invalid_request_error",
        }
    }

    pub fn message(&self) -> String {
        match self {
            GatewayError::InvalidApiKey(why) => format!("Invalid API key: {why}. Send `Authorization: Bearer <key>` with a valid Sheepdog key."),
            GatewayError::InvalidTenantId(why) => format!(
                "Invalid X-Tenant-ID: {why}. The header must be a tenant's UUID v4 (or one of its registered aliases)."
            ),
            GatewayError::TenantMismatch => "This API key belongs to another tenant than the one named by X-Tenant-ID.".into(),
            GatewayError::TenantRequired => {
                "A platform key must name the tenant it acts for in the X-Tenant-ID header (a UUID v4 or registered alias).".into()
            }
            GatewayError::TenantSuspended => "This tenant is suspended.".into(),
            GatewayError::InvalidRequest { message, .. } => message.clone(),
            GatewayError::RequestTooLarge(limit) => format!("Request body is larger than the limit of {limit} bytes."),
            GatewayError::ModelNotFound(model) => {
                format!("The model `{model}` does not exist or you do not have access to it.")
            }
            GatewayError::RateLimited { message, .. } => message.clone(),
            GatewayError::InsufficientQuota(message) => message.clone(),
            GatewayError::Upstream(e) => e.message.clone(),
            GatewayError::NotFound(path) => format!("Unknown request URL: {path}."),
            GatewayError::MethodNotAllowed(what) => format!("Method not allowed: {what}."),
            GatewayError::Internal => "The gateway had an internal error; it has been logged.".into(),
            GatewayError::ShuttingDown => {
                "The gateway is shutting down and ended this request; retry it (another replica, or after the restart).".into()
            }
            GatewayError::SharedStateUnavailable => {
                "The gateway cannot reach its shared limit state (Redis) and refuses requests until it returns; retry shortly.".into()
            }
        }
    }

    pub fn param(&self) -> Option<String> {
        match self {
            GatewayError::InvalidRequest { param, .. } => param.clone(),
            GatewayError::InvalidTenantId(_) | GatewayError::TenantRequired | GatewayError::TenantMismatch => {
                Some("X-Tenant-ID".into())
            }
            _ => None,
        }
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                message: self.message(),
                kind: self.kind().to_string(),
                code: self.code().to_string(),
                param: self.param(),
            },
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GatewayError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// How an upstream failure reaches the client: timeouts are 504, the
/// client's own bad request (upstream 400/413/422) is 400, everything else 502.
fn upstream_status(e: &UpstreamError) -> StatusCode {
    match e.kind {
        UpstreamErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        UpstreamErrorKind::ContentBlocked => StatusCode::BAD_REQUEST,
        UpstreamErrorKind::Status if matches!(e.status, Some(400 | 413 | 422)) => StatusCode::BAD_REQUEST,
        _ => StatusCode::BAD_GATEWAY,
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut resp = (self.status(), [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response();
        if let Some(ra) = self.retry_after() {
            let secs = ra.as_secs() + u64::from(ra.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                resp.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_table() {
        let cases = [
            (GatewayError::InvalidApiKey("missing"), 401, "invalid_api_key"),
            (GatewayError::invalid("bad", None), 400, "invalid_request_error"),
            (GatewayError::RequestTooLarge(1), 413, "request_too_large"),
            (GatewayError::ModelNotFound("x".into()), 404, "model_not_found"),
            (
                GatewayError::RateLimited { message: "slow".into(), retry_after: Duration::from_millis(1500) },
                429,
                "rate_limit_exceeded",
            ),
            (GatewayError::InsufficientQuota("broke".into()), 429, "insufficient_quota"),
            (GatewayError::TenantSuspended, 403, "tenant_suspended"),
            (GatewayError::InvalidTenantId("x".into()), 403, "invalid_tenant_id"),
            (GatewayError::TenantMismatch, 403, "tenant_mismatch"),
            (GatewayError::TenantRequired, 400, "tenant_required"),
            (GatewayError::Upstream(UpstreamError::from_status("p", 500, b"", None)), 502, "upstream_error"),
            (GatewayError::Upstream(UpstreamError::from_status("p", 429, b"", None)), 502, "upstream_error"),
            (GatewayError::Upstream(UpstreamError::from_status("p", 400, b"", None)), 400, "invalid_request_error"),
            (GatewayError::Upstream(UpstreamError::new(UpstreamErrorKind::Timeout, "t")), 504, "upstream_timeout"),
            (GatewayError::ShuttingDown, 503, "server_shutting_down"),
            (GatewayError::SharedStateUnavailable, 503, "shared_state_unavailable"),
        ];
        for (err, status, code) in cases {
            assert_eq!(err.status().as_u16(), status, "{err:?}");
            assert_eq!(err.code(), code);
            let resp = err.clone().into_response();
            assert_eq!(resp.status().as_u16(), status);
            if status == 429 && code == "rate_limit_exceeded" {
                assert_eq!(resp.headers()["retry-after"], "2");
            }
        }
    }
}
