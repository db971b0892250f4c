//! The body: its size limit (declared and read), what is read before the
//! cheap limits, and what an early refusal discards.

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use futures::{Stream, StreamExt};

use crate::error::GatewayError;
use crate::limited::{collect_limited_sized, CollectError};

/// Largest body (declared by `Content-Length`) read and checked before the
/// cheap limits: small enough that its validation and token estimate cost
/// less than a refusal would save (bad input is answered `400` before `429`),
/// so a tenant over its limits cannot make the gateway parse or tokenize
/// more than this per request.
pub const CHECKED_BEFORE_LIMITS_BYTES: usize = 4 * 1024;

/// Whether the declared body (`Content-Length`) is small enough to read and
/// check before the cheap limits ([`CHECKED_BEFORE_LIMITS_BYTES`]).
pub fn declared_small(headers: &HeaderMap) -> bool {
    content_length(headers).is_some_and(|n| n <= CHECKED_BEFORE_LIMITS_BYTES as u64)
}

/// Refuses a body whose declared length is over the limit before reading it.
pub fn check_content_length(headers: &HeaderMap, limit: u64) -> Result<(), GatewayError> {
    if let Some(len) = content_length(headers) {
        if len > limit {
            return Err(GatewayError::RequestTooLarge(limit));
        }
    }
    Ok(())
}

/// Most of an oversized body read and discarded before the 413 is sent.
pub const DRAIN_BYTES: u64 = 16 * 1024 * 1024;
/// Longest time spent discarding an oversized body.
pub const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads the whole body, at most `limit` bytes (`413 request_too_large`
/// beyond, from `Content-Length` or while reading).
pub async fn read_body(headers: &HeaderMap, body: Body, limit: u64) -> Result<Bytes, GatewayError> {
    let mut stream = body.into_data_stream();
    if refuse_declared_oversize(headers, &mut stream, limit).await {
        return Err(GatewayError::RequestTooLarge(limit));
    }
    // The declared length (at most the limit) is reserved at once: a large
    // body read in many chunks is not copied again each time its buffer grows.
    let declared = content_length(headers).filter(|n| *n <= limit).unwrap_or(0);
    match collect_limited_sized(&mut stream, limit, usize::try_from(declared).unwrap_or(0)).await {
        Ok(bytes) => Ok(bytes),
        Err(CollectError::TooLarge) => {
            discard_rest(&mut stream).await;
            Err(GatewayError::RequestTooLarge(limit))
        }
        Err(CollectError::Read(_)) => {
            Err(GatewayError::invalid("The request body could not be read completely.", None))
        }
    }
}

/// True when the declared `Content-Length` is over `limit` (the body is
/// refused before it is read); the upload is first drained when the excess
/// is small enough to be worth it (see [`discard_rest`]).
pub async fn refuse_declared_oversize<S, E>(headers: &HeaderMap, stream: &mut S, limit: u64) -> bool
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    if check_content_length(headers, limit).is_ok() {
        return false;
    }
    if content_length(headers).is_some_and(|n| n.saturating_sub(limit) <= DRAIN_BYTES) {
        discard_rest(stream).await;
    }
    true
}

/// Reads and discards what the client is still sending (at most
/// [`DRAIN_BYTES`], for at most [`DRAIN_TIME`]) before an early refusal:
/// answering while the client is still writing closes the connection under
/// it, and most clients then report a broken connection, not the answer.
pub async fn discard_rest<S, E>(stream: &mut S)
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let drain = async {
        let mut drained: u64 = 0;
        while let Some(Ok(chunk)) = stream.next().await {
            drained += chunk.len() as u64;
            if drained > DRAIN_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
}

/// How long [`discard_briefly`] waits for more of a body before it answers.
pub const DRAIN_IDLE: std::time::Duration = std::time::Duration::from_millis(100);

/// Discards what of an unread body is arriving — at most [`DRAIN_BYTES`],
/// for at most [`DRAIN_TIME`], and only while it keeps arriving (a pause of
/// [`DRAIN_IDLE`] ends it) — before a refusal that came before the body was
/// read (a client still writing would otherwise see its connection reset
/// instead of the answer). Nothing is kept or parsed.
pub async fn discard_briefly(body: Body) {
    let mut stream = body.into_data_stream();
    let drain = async {
        let mut drained: u64 = 0;
        while let Ok(Some(Ok(chunk))) = tokio::time::timeout(DRAIN_IDLE, stream.next()).await {
            drained += chunk.len() as u64;
            if drained > DRAIN_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
}
