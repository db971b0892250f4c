//! The analysis upload proxy (`POST /analyses/upload`, server only): the
//! browser's log file is piped to the gateway's `POST /admin/v1/analyses`
//! chunk by chunk (never held in memory, at most
//! `gateway.max_analysis_upload_bytes`), after the same session and role
//! check as the server functions; the CSRF guard in front of the console
//! checks its origin.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use leptos::prelude::*;
use leptos::reactive::computed::ScopedFuture;

use super::{plans, too_large_message, AnalysisResult, PARAMS};
use crate::api::{actor_for, enc, AnalyzeFailure};
use crate::error::ConsoleError;
use crate::state::ConsoleState;

/// The longest an upload and its analysis may take.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(15 * 60);

fn fail(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = serde_json::json!({"error": code, "message": message.into()});
    (status, axum::Json(body)).into_response()
}

fn refused(e: ConsoleError) -> Response {
    match e {
        ConsoleError::Unauthenticated => {
            fail(StatusCode::UNAUTHORIZED, e.code(), "Your session has ended; sign in again.")
        }
        ConsoleError::Forbidden => {
            fail(StatusCode::FORBIDDEN, e.code(), "Only admins and operators can run an analysis.")
        }
        other => fail(StatusCode::SERVICE_UNAVAILABLE, other.code(), other.to_string()),
    }
}

/// `%XX` and `+` decoding of one query component.
fn decode(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The gateway's query string from the page's: only the known
/// parameters, empty values dropped, each re-encoded.
pub fn gateway_query(query: &str) -> Result<String, String> {
    let mut parts = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (decode(k), decode(v));
        if !PARAMS.contains(&k.as_str()) {
            return Err(format!("Unknown option `{k}`; accepted: {}.", PARAMS.join(", ")));
        }
        let v = v.trim();
        if !v.is_empty() {
            parts.push(format!("{k}={}", enc(v)));
        }
    }
    Ok(if parts.is_empty() { String::new() } else { format!("?{}", parts.join("&")) })
}

/// `POST /analyses/upload`: the signed-in admin or operator's log file,
/// piped to the gateway as it arrives (never buffered whole), at most
/// [`ConsoleState::max_upload_bytes`]. Answers [`AnalysisResult`] as
/// JSON, or `{"error", "message"}` with 400, 401, 403, 413, 502 or 503.
pub async fn upload(state: ConsoleState, request: Request<Body>) -> Response {
    let (parts, body) = request.into_parts();
    let query = parts.uri.query().unwrap_or("").to_string();
    let declared =
        parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    // The same check as every operator server function: session, then role.
    let owner = Owner::new();
    let user = {
        let state = state.clone();
        owner
            .with(|| {
                ScopedFuture::new(async move {
                    provide_context(parts);
                    provide_context(state);
                    crate::auth::ssr::require_operator().await
                })
            })
            .await
    };
    let user = match user {
        Ok(u) => u,
        Err(e) => return refused(e),
    };
    let query = match gateway_query(&query) {
        Ok(q) => q,
        Err(m) => return fail(StatusCode::BAD_REQUEST, "invalid", m),
    };
    let limit = state.max_upload_bytes();
    if declared.is_some_and(|n| n > limit) {
        return fail(StatusCode::PAYLOAD_TOO_LARGE, "too_large", too_large_message(declared, limit));
    }
    if declared == Some(0) {
        return fail(StatusCode::BAD_REQUEST, "invalid", "The file is empty: choose a log file.");
    }
    // Counted as it streams: a body without a length (or lying about it)
    // is cut off at the limit.
    let over = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(AtomicU64::new(0));
    let stream = {
        let (over, seen) = (over.clone(), seen.clone());
        body.into_data_stream().map(move |chunk| {
            let chunk = chunk.map_err(|e| std::io::Error::other(e.to_string()))?;
            let total = seen.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
            if total > limit {
                over.store(true, Ordering::Relaxed);
                return Err(std::io::Error::other("the upload is over the size limit"));
            }
            Ok(chunk)
        })
    };
    let actor = actor_for(&user.email);
    tracing::info!(email = %user.email, bytes = ?declared, "analysis upload");
    let answer =
        state.api().analyze(&actor, &query, reqwest::Body::wrap_stream(stream), declared, UPLOAD_TIMEOUT).await;
    let sheepdog_types::AnalysisResponse { report, html } = match answer {
        Ok(v) => v,
        Err(_) if over.load(Ordering::Relaxed) => {
            return fail(StatusCode::PAYLOAD_TOO_LARGE, "too_large", too_large_message(None, limit));
        }
        Err(AnalyzeFailure::Refused { status: 413, message, .. }) => {
            return fail(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message);
        }
        Err(AnalyzeFailure::Refused { status: 400 | 422, message, .. }) => {
            return fail(StatusCode::BAD_REQUEST, "invalid", message);
        }
        Err(AnalyzeFailure::Refused { status: 401, .. }) => {
            tracing::error!("the gateway refused the console's admin token");
            return fail(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "The gateway refused the console.");
        }
        Err(AnalyzeFailure::Refused { status, message, .. }) => {
            tracing::warn!(status, %message, "the analysis failed");
            return fail(StatusCode::BAD_GATEWAY, "unavailable", format!("The analysis failed: {message}"));
        }
        Err(AnalyzeFailure::Unreadable(e)) => {
            tracing::error!(error = %e, "the gateway's analysis has no readable report");
            return fail(StatusCode::BAD_GATEWAY, "internal", "The gateway answered without a report.");
        }
        Err(AnalyzeFailure::Transport(e)) => {
            tracing::warn!(error = %e, "analysis upload: the gateway did not answer");
            return fail(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The gateway did not answer the upload; try again.",
            );
        }
    };
    let tenants = match state.api().tenants().await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "analysis: tenants could not be read for matching");
            Vec::new()
        }
    };
    let plans = plans(&report, &tenants);
    axum::Json(AnalysisResult { report, html, plans }).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_options_reach_the_gateway() {
        assert_eq!(gateway_query("").unwrap(), "");
        assert_eq!(
            gateway_query("map=gpt-4.1%3Ddeepseek-v3.2&margin=10&tenant_field=&format=jsonl").unwrap(),
            "?map=gpt-4.1%3Ddeepseek-v3.2&margin=10&format=jsonl"
        );
        assert_eq!(gateway_query("tenant_field=metadata.tenant+id").unwrap(), "?tenant_field=metadata.tenant%20id");
        assert!(gateway_query("colour=blue").unwrap_err().contains("colour"));
        assert_eq!(decode("a%2"), "a%2");
        assert_eq!(decode("%zz%41"), "%zzA");
    }
}
