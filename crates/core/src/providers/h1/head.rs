//! An answer's head: status line and headers parsed, interim answers
//! skipped, the body's framing and the connection's reuse decided.

use bytes::{Buf, BytesMut};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::StatusCode;

use super::error::SendError;
use super::framing::{Chunk, Framing};

/// The largest answer head (status line and headers) accepted.
pub(super) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most header lines an answer head may have.
const MAX_HEADERS: usize = 100;

/// An answer's parsed head.
pub(super) struct Head {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) framing: Framing,
    pub(super) keep_alive: bool,
}

/// Parses a complete answer head at the start of `buf` (taking it out of the
/// buffer), skipping interim `1xx` answers; `None` while it is incomplete.
/// Headers are kept only for an answer that is not a success: the gateway
/// reads an upstream's headers only to report its errors (`Retry-After`).
pub(super) fn parse_head(buf: &mut BytesMut) -> Result<Option<Head>, SendError> {
    const MALFORMED: SendError = SendError::Protocol("the upstream's answer head is malformed");
    loop {
        if buf.is_empty() {
            return Ok(None);
        }
        // Slots left uninitialised: httparse fills only the ones it uses
        // (initialising all of them cost more than parsing a short head).
        let mut slots = [const { std::mem::MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut []);
        let len =
            match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut parsed, buf, &mut slots) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(_) => return Err(MALFORMED),
            };
        let status = parsed.code.and_then(|c| StatusCode::from_u16(c).ok()).ok_or(MALFORMED)?;
        if status.is_informational() {
            if status == StatusCode::SWITCHING_PROTOCOLS {
                return Err(SendError::Protocol("the upstream switched protocols"));
            }
            buf.advance(len);
            continue;
        }
        let http10 = parsed.version == Some(0);
        let mut keep_alive = !http10;
        let mut length: Option<u64> = None;
        let mut transfer_encoding = false;
        let mut chunked = false;
        let keep_headers = !status.is_success();
        let mut headers = HeaderMap::new();
        for h in parsed.headers.iter() {
            let name = h.name.as_bytes();
            if name.eq_ignore_ascii_case(b"content-length") {
                let n =
                    content_length(h.value).ok_or(SendError::Protocol("the upstream's Content-Length is invalid"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(SendError::Protocol("the upstream sent conflicting Content-Length values"));
                }
                length = Some(n);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                transfer_encoding = true;
                // Only the last coding frames the body.
                chunked = tokens(h.value).last().is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
            } else if name.eq_ignore_ascii_case(b"connection") {
                for token in tokens(h.value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        keep_alive = false;
                    } else if http10 && token.eq_ignore_ascii_case(b"keep-alive") {
                        keep_alive = true;
                    }
                }
            }
            if keep_headers {
                let name = HeaderName::from_bytes(name).map_err(|_| MALFORMED)?;
                let value = HeaderValue::from_bytes(h.value).map_err(|_| MALFORMED)?;
                headers.append(name, value);
            }
        }
        buf.advance(len);
        let framing = if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            Framing::Done
        } else if transfer_encoding {
            // Transfer-Encoding wins over Content-Length; a message with both
            // is suspect, so its connection is not reused.
            if length.is_some() || !chunked {
                keep_alive = false;
            }
            if chunked {
                Framing::Chunked(Chunk::Size)
            } else {
                Framing::UntilClose
            }
        } else if let Some(n) = length {
            Framing::Length(n)
        } else {
            keep_alive = false;
            Framing::UntilClose
        };
        return Ok(Some(Head { status, headers, framing, keep_alive }));
    }
}

/// The comma-separated tokens of a header value, trimmed, empty ones left out.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(|t| t.trim_ascii()).filter(|t| !t.is_empty())
}

/// A `Content-Length` value: digits, or a list of the same digits repeated.
pub(super) fn content_length(value: &[u8]) -> Option<u64> {
    let mut found: Option<u64> = None;
    for part in value.split(|&b| b == b',') {
        let part = part.trim_ascii();
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = part.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        if found.is_some_and(|f| f != n) {
            return None;
        }
        found = Some(n);
    }
    found
}
