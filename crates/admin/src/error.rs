//! The admin API's error boundary: [`AdminError`], its mapping from store
//! errors, and its JSON answer (the OpenAI-style error shape).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sheepdog_store::StoreError;
use sheepdog_types::{ErrorBody, ErrorDetail};

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

#[cfg(test)]
mod tests {
    use super::*;

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
