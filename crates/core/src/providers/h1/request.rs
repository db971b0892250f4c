//! A request: its head written (with a small body inline), the exchange on
//! a reused or new connection, and the answer's head read.

use std::io::Write as _;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderMap, CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use hyper::http::uri::Authority;
use hyper::{StatusCode, Uri};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::body::Body;
use super::conn::{checkout, connect, Conn, READ_SIZE};
use super::error::SendError;
use super::head::{parse_head, MAX_HEAD_BYTES};

/// A request body up to this size is written together with the head.
pub(super) const INLINE_BODY_BYTES: usize = 64 * 1024;

/// An upstream's answer: status, headers (of an answer that is not a
/// success; empty otherwise), and the body still to be read.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Body,
}

/// Sends a POST with `body` to `uri` (which must be `http://…`) and reads the
/// answer's head. `headers` must not hold `Host`, `Content-Length`,
/// `Transfer-Encoding` or `Connection` (they are written here; such entries
/// are skipped).
pub async fn post(
    client: u64,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    connect_timeout: Duration,
) -> Result<Answer, SendError> {
    let authority = uri.authority().ok_or(SendError::Connect)?;
    let inline = body.len() <= INLINE_BODY_BYTES;
    let head = request_head(uri, authority, headers, body, inline);
    let rest: &[u8] = if inline { &[] } else { body };

    // A reused connection the upstream closed while it idled is set aside
    // before anything is written (checkout), or when its first write fails.
    while let Some(mut conn) = checkout(client, authority) {
        if let Ok(n @ 1..) = conn.stream.write(&head).await {
            return exchange(conn, &head[n..], rest, client, authority).await;
        }
    }
    let conn = connect(uri, connect_timeout).await?;
    exchange(conn, &head, rest, client, authority).await
}

/// Writes the rest of a request and reads its answer's head.
async fn exchange(
    mut conn: Conn,
    head: &[u8],
    body: &[u8],
    client: u64,
    authority: &Authority,
) -> Result<Answer, SendError> {
    conn.stream.write_all(head).await.map_err(SendError::Io)?;
    if !body.is_empty() {
        conn.stream.write_all(body).await.map_err(SendError::Io)?;
    }
    let head = loop {
        if let Some(head) = parse_head(&mut conn.buf)? {
            break head;
        }
        if conn.buf.len() > MAX_HEAD_BYTES {
            return Err(SendError::Protocol("the upstream's answer head is too large"));
        }
        conn.buf.reserve(READ_SIZE);
        match conn.stream.read_buf(&mut conn.buf).await {
            Ok(0) => return Err(SendError::Protocol("the upstream closed the connection without an answer")),
            Ok(_) => {}
            Err(e) => return Err(SendError::Io(e)),
        }
    };
    let body = Body {
        conn: Some(conn),
        framing: head.framing,
        keep_alive: head.keep_alive,
        client,
        authority: authority.clone(),
    };
    Ok(Answer { status: head.status, headers: head.headers, body })
}

/// The request line, headers and (when `inline`) body of a POST.
fn request_head(uri: &Uri, authority: &Authority, headers: &HeaderMap, body: &[u8], inline: bool) -> Vec<u8> {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let path = if path.is_empty() { "/" } else { path };
    let mut out = Vec::with_capacity(96 + path.len() + headers.len() * 48 + if inline { body.len() } else { 0 });
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(authority.as_str().as_bytes());
    for (name, value) in headers {
        if name == HOST || name == CONTENT_LENGTH || name == TRANSFER_ENCODING || name == CONNECTION {
            continue;
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
    }
    let _ = write!(out, "\r\ncontent-length: {}\r\n\r\n", body.len());
    if inline {
        out.extend_from_slice(body);
    }
    out
}
