//! The SPEC §3 request headers: `X-Request-ID`, `X-Cost-Center` (and the
//! names of `X-Tenant-ID` and `X-Session-ID`).

use axum::http::{HeaderMap, HeaderName};

use crate::error::GatewayError;

pub const MAX_COST_CENTER_CHARS: usize = 64;
pub const MAX_REQUEST_ID_CHARS: usize = 128;

/// The SPEC §3 request headers, named once: looking a header up by a
/// `HeaderName` skips parsing and lower-casing the name on every request.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static X_COST_CENTER: HeaderName = HeaderName::from_static("x-cost-center");
pub static X_TENANT_ID: HeaderName = HeaderName::from_static("x-tenant-id");
pub static X_SESSION_ID: HeaderName = HeaderName::from_static("x-session-id");

/// `X-Request-ID`: echoed when valid, generated when absent.
pub fn request_id(headers: &HeaderMap) -> Result<String, GatewayError> {
    match headers.get(&X_REQUEST_ID) {
        None => Ok(crate::ids::new_uuid().to_string()),
        Some(v) => {
            let text = v
                .to_str()
                .ok()
                .map(str::trim)
                .filter(|t| !t.is_empty() && t.len() <= MAX_REQUEST_ID_CHARS && t.chars().all(|c| c.is_ascii_graphic()))
                .ok_or_else(|| {
                    GatewayError::invalid(
                        format!(
                            "X-Request-ID must be 1 to {MAX_REQUEST_ID_CHARS} visible ASCII characters without spaces."
                        ),
                        Some("X-Request-ID"),
                    )
                })?;
            Ok(text.to_string())
        }
    }
}

/// `X-Cost-Center`: a free label of at most 64 printable characters.
pub fn cost_center(headers: &HeaderMap) -> Result<Option<String>, GatewayError> {
    let Some(v) = headers.get(&X_COST_CENTER) else { return Ok(None) };
    let bad = || {
        GatewayError::invalid(
            format!("X-Cost-Center must be 1 to {MAX_COST_CENTER_CHARS} printable characters."),
            Some("X-Cost-Center"),
        )
    };
    let text = std::str::from_utf8(v.as_bytes()).map_err(|_| bad())?.trim();
    if text.is_empty() || text.chars().count() > MAX_COST_CENTER_CHARS || text.chars().any(|c| c.is_control()) {
        return Err(bad());
    }
    Ok(Some(text.to_string()))
}
