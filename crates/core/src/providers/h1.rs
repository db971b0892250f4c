//! The upstream client's path for plain `http://` upstreams (model servers
//! on the same host or network, sidecars, emulators): HTTP/1.1 spoken by the
//! request's own task over connections kept in an idle list per thread.
//!
//! There is no connection task: the request is written and its answer read
//! by the task that serves the client, so a call costs no channel hand-off
//! and no wake-up of another task (hyper's client connection, used before,
//! cost about an eighth of a proxied request's instructions). A request takes
//! the most recently used idle connection of its thread (or connects); the
//! connection goes back to the list when its answer has been read to the end
//! — or, when the answer is abandoned, if the rest of it is already on hand
//! (otherwise it is closed). A reused connection that the upstream closed
//! while it idled is noticed before the request is written, and the request
//! goes out on a new connection; a request that was written is never sent
//! twice.
//!
//! What is spoken: `POST` with a `Content-Length` body; answers framed by
//! `Content-Length`, by `Transfer-Encoding: chunked` (extensions and
//! trailers skipped) or by the connection's end; interim `1xx` answers
//! skipped; `Connection: close` and HTTP/1.0 answers honoured. Anything
//! malformed fails the call and closes the connection.

use std::cell::RefCell;
use std::io::{self, Write as _};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use futures::Stream;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use hyper::http::uri::Authority;
use hyper::{StatusCode, Uri};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::body::BodyError;

/// Idle connections kept per upstream (host:port) and thread.
const MAX_IDLE_PER_UPSTREAM: usize = 256;
/// An idle connection older than this is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// The largest answer head (status line and headers) accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most header lines an answer head may have.
const MAX_HEADERS: usize = 100;
/// Room made in the read buffer before each read.
const READ_SIZE: usize = 16 * 1024;
/// The longest chunk-size line accepted.
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// The most trailer bytes accepted after the last chunk.
const MAX_TRAILER_BYTES: usize = 64 * 1024;
/// The most of an abandoned answer's rest read (only what is already on hand)
/// to keep its connection.
const MAX_DRAIN_BYTES: usize = 64 * 1024;
/// A request body up to this size is written together with the head.
const INLINE_BODY_BYTES: usize = 64 * 1024;

/// An open connection and what has been read from it but not yet used.
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

impl Conn {
    /// Whether the upstream left this idle connection usable: nothing to
    /// read, neither its end nor bytes nobody asked for. (Readiness comes from
    /// the runtime's poller; a socket not marked readable costs no system call.)
    fn is_open(&mut self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Reads what the socket has into the buffer (0: the upstream closed).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.buf.reserve(READ_SIZE);
        loop {
            ready!(self.stream.poll_read_ready(cx))?;
            match self.stream.try_read_buf(&mut self.buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                result => return Poll::Ready(result),
            }
        }
    }
}

/// One upstream's idle connections on this thread, most recently used last.
struct IdleList {
    client: u64,
    authority: Authority,
    conns: Vec<(Conn, Instant)>,
}

thread_local! {
    static IDLE: RefCell<Vec<IdleList>> = const { RefCell::new(Vec::new()) };
}

/// Gives a connection whose last answer was read to the end back to this
/// thread's idle list.
fn give_back(client: u64, authority: &Authority, conn: Conn) {
    let now = Instant::now();
    let _ = IDLE.try_with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = match idle.iter().position(|l| l.client == client && &l.authority == authority) {
            Some(i) => &mut idle[i],
            None => {
                idle.push(IdleList { client, authority: authority.clone(), conns: Vec::new() });
                let last = idle.len() - 1;
                &mut idle[last]
            }
        };
        // The least recently used connection goes first when it has idled
        // too long or the list is full.
        if list.conns.first().is_some_and(|(_, since)| now.duration_since(*since) > IDLE_TIMEOUT)
            || list.conns.len() >= MAX_IDLE_PER_UPSTREAM
        {
            list.conns.remove(0);
        }
        list.conns.push((conn, now));
    });
}

/// The most recently used open idle connection to `authority`, if any.
fn checkout(client: u64, authority: &Authority) -> Option<Conn> {
    IDLE.try_with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.iter_mut().find(|l| l.client == client && &l.authority == authority)?;
        while let Some((mut conn, since)) = list.conns.pop() {
            if since.elapsed() <= IDLE_TIMEOUT && conn.is_open() {
                return Some(conn);
            }
        }
        None
    })
    .ok()
    .flatten()
}

/// Why a request got no answer head.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be made (resolution, refusal, timeout).
    Connect,
    /// The connection failed while sending or waiting for the answer.
    Io(io::Error),
    /// The upstream closed the connection or answered with a malformed head.
    Protocol(&'static str),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect => f.write_str("no connection"),
            SendError::Io(e) => write!(f, "{e}"),
            SendError::Protocol(why) => f.write_str(why),
        }
    }
}

/// Opens a connection to `uri`'s host and port (80 by default).
async fn connect(uri: &Uri, connect_timeout: Duration) -> Result<Conn, SendError> {
    let host = uri.host().ok_or(SendError::Connect)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(80);
    let attempt = async {
        let mut last = None;
        for addr in tokio::net::lookup_host((host, port)).await? {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address")))
    };
    let stream = match tokio::time::timeout(connect_timeout, attempt).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "upstream connect failed");
            return Err(SendError::Connect);
        }
        Err(_) => return Err(SendError::Connect),
    };
    // Streamed requests and answers are small writes: no Nagle delay.
    let _ = stream.set_nodelay(true);
    Ok(Conn { stream, buf: BytesMut::new() })
}

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

/// An answer's parsed head.
struct Head {
    status: StatusCode,
    headers: HeaderMap,
    framing: Framing,
    keep_alive: bool,
}

/// Parses a complete answer head at the start of `buf` (taking it out of the
/// buffer), skipping interim `1xx` answers; `None` while it is incomplete.
/// Headers are kept only for an answer that is not a success: the gateway
/// reads an upstream's headers only to report its errors (`Retry-After`).
fn parse_head(buf: &mut BytesMut) -> Result<Option<Head>, SendError> {
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
fn content_length(value: &[u8]) -> Option<u64> {
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

/// How an answer's body ends, and how much of it is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// This many bytes are left.
    Length(u64),
    Chunked(Chunk),
    /// The body ends with the connection.
    UntilClose,
    /// The body has been read to its end.
    Done,
}

/// Where a chunked body's reader stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// After a chunk's data, before its line end.
    DataEnd,
    /// After the last chunk, inside the trailer section; bytes of it seen.
    Trailers(usize),
}

/// What the buffer yields next.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Data(Bytes),
    /// More must be read first.
    NeedMore,
    /// The body is complete.
    End,
}

/// The position just past the next line end in `buf`, and the line without it.
fn line(buf: &[u8]) -> Option<(usize, &[u8])> {
    let end = memchr::memchr(b'\n', buf)?;
    let text = &buf[..end];
    Some((end + 1, text.strip_suffix(b"\r").unwrap_or(text)))
}

/// A chunk-size line's size (hex digits, optionally followed by extensions).
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.split(|&b| b == b';').next()?.trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| Some(n * 16 + u64::from(char::from(d).to_digit(16)?)))
}

impl Framing {
    /// Takes the next piece of the body out of `buf`.
    fn step(&mut self, buf: &mut BytesMut) -> Result<Step, &'static str> {
        loop {
            match self {
                Framing::Done | Framing::Length(0) => {
                    *self = Framing::Done;
                    return Ok(Step::End);
                }
                Framing::Length(left) | Framing::Chunked(Chunk::Data(left)) => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let take = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
                    *left -= take as u64;
                    if *self == Framing::Chunked(Chunk::Data(0)) {
                        *self = Framing::Chunked(Chunk::DataEnd);
                    }
                    return Ok(Step::Data(buf.split_to(take).freeze()));
                }
                Framing::UntilClose => {
                    return Ok(if buf.is_empty() { Step::NeedMore } else { Step::Data(buf.split().freeze()) });
                }
                Framing::Chunked(Chunk::Size) => {
                    let Some((used, text)) = line(buf) else {
                        return if buf.len() > MAX_CHUNK_LINE {
                            Err("a chunk size line is too long")
                        } else {
                            Ok(Step::NeedMore)
                        };
                    };
                    let size = chunk_size(text).ok_or("a chunk size is invalid")?;
                    buf.advance(used);
                    *self = Framing::Chunked(if size == 0 { Chunk::Trailers(0) } else { Chunk::Data(size) });
                }
                Framing::Chunked(Chunk::DataEnd) => {
                    let Some((used, text)) = line(buf) else {
                        return if buf.len() >= 2 {
                            Err("a chunk does not end where its size says")
                        } else {
                            Ok(Step::NeedMore)
                        };
                    };
                    if !text.is_empty() {
                        return Err("a chunk does not end where its size says");
                    }
                    buf.advance(used);
                    *self = Framing::Chunked(Chunk::Size);
                }
                Framing::Chunked(Chunk::Trailers(seen)) => {
                    let Some((used, text)) = line(buf) else {
                        return if *seen + buf.len() > MAX_TRAILER_BYTES {
                            Err("the trailer section is too long")
                        } else {
                            Ok(Step::NeedMore)
                        };
                    };
                    let end = text.is_empty();
                    *seen += used;
                    buf.advance(used);
                    if end {
                        *self = Framing::Done;
                    } else if *seen > MAX_TRAILER_BYTES {
                        return Err("the trailer section is too long");
                    }
                }
            }
        }
    }
}

/// An answer's body, read by whoever polls it (no task of its own). Read to
/// the end, or dropped with the rest already on hand, it gives its
/// connection back to the idle list of the thread it ends on.
pub struct Body {
    /// `None` once the body has ended or failed.
    conn: Option<Conn>,
    framing: Framing,
    keep_alive: bool,
    client: u64,
    authority: Authority,
}

impl Body {
    /// The body is complete: the connection goes back when it can be reused
    /// (kept alive, nothing unasked-for behind the answer).
    fn finish(&mut self) {
        self.framing = Framing::Done;
        if let Some(conn) = self.conn.take() {
            if self.keep_alive && conn.buf.is_empty() {
                give_back(self.client, &self.authority, conn);
            }
        }
    }

    fn fail(&mut self, err: BodyError) -> Poll<Option<Result<Bytes, BodyError>>> {
        self.conn = None;
        Poll::Ready(Some(Err(err)))
    }
}

impl Stream for Body {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else { return Poll::Ready(None) };
            match this.framing.step(&mut conn.buf) {
                Err(why) => return this.fail(BodyError::Protocol(why)),
                Ok(Step::Data(bytes)) => return Poll::Ready(Some(Ok(bytes))),
                Ok(Step::End) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(Step::NeedMore) => {}
            }
            match ready!(conn.poll_fill(cx)) {
                Ok(0) if this.framing == Framing::UntilClose => {
                    this.framing = Framing::Done;
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => return this.fail(BodyError::Protocol("the upstream closed the connection mid-answer")),
                Ok(_) => {}
                Err(e) => return this.fail(BodyError::Io(e)),
            }
        }
    }
}

impl Drop for Body {
    /// An abandoned answer keeps its connection only if the rest of it is
    /// already on hand (nothing is waited for).
    fn drop(&mut self) {
        if !self.keep_alive {
            return;
        }
        let mut drained = 0usize;
        while let Some(conn) = self.conn.as_mut() {
            match self.framing.step(&mut conn.buf) {
                Ok(Step::Data(bytes)) => {
                    drained += bytes.len();
                    if drained > MAX_DRAIN_BYTES {
                        return;
                    }
                }
                Ok(Step::End) => self.finish(),
                Ok(Step::NeedMore) => {
                    conn.buf.reserve(READ_SIZE);
                    if !matches!(conn.stream.try_read_buf(&mut conn.buf), Ok(1..)) {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    }
}

/// Entry points for the fuzz targets (crates/fuzz): the answer-head parser
/// and the body framing, driven over bytes in memory as [`exchange`] and
/// [`Body`] drive them over a connection.
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    use super::*;

    /// What was read of an answer.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Read {
        pub status: u16,
        pub keep_alive: bool,
        /// Headers kept (those of an answer that is not a success).
        pub headers: usize,
        pub body: Vec<u8>,
        /// Whether the body reached its end (false: the input ran out first).
        pub complete: bool,
        /// Bytes left in the buffer after the body's end.
        pub rest: usize,
    }

    /// Reads an answer (head, then body as its head frames it) out of
    /// `input` fed in pieces of `piece` bytes (at least 1). `Ok(None)`: the
    /// head is incomplete.
    pub fn read_answer(input: &[u8], piece: usize) -> Result<Option<Read>, String> {
        let mut pieces = input.chunks(piece.max(1));
        let mut buf = BytesMut::new();
        let head = loop {
            if let Some(head) = parse_head(&mut buf).map_err(|e| e.to_string())? {
                break head;
            }
            if buf.len() > MAX_HEAD_BYTES {
                return Err("head too large".into());
            }
            match pieces.next() {
                Some(p) => buf.extend_from_slice(p),
                None => return Ok(None),
            }
        };
        let mut framing = head.framing;
        let mut body = Vec::new();
        let complete = loop {
            match framing.step(&mut buf)? {
                Step::Data(d) => body.extend_from_slice(&d),
                Step::End => break true,
                Step::NeedMore => match pieces.next() {
                    Some(p) => buf.extend_from_slice(p),
                    None => break framing == Framing::UntilClose,
                },
            }
        };
        let rest = buf.len() + pieces.map(<[u8]>::len).sum::<usize>();
        Ok(Some(Read {
            status: head.status.as_u16(),
            keep_alive: head.keep_alive,
            headers: head.headers.len(),
            body,
            complete,
            rest,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// What the test upstream does for one request: write `reply` (in the
    /// given pieces, with a pause between), then close the connection if
    /// `close`.
    #[derive(Clone)]
    struct Reply {
        pieces: Vec<Vec<u8>>,
        close: bool,
    }

    fn reply(text: &str) -> Reply {
        Reply { pieces: vec![text.as_bytes().to_vec()], close: false }
    }

    /// What the test upstream saw: connections accepted, requests (whole,
    /// head and body) in arrival order.
    #[derive(Default)]
    struct Seen {
        connections: usize,
        requests: Vec<Vec<u8>>,
    }

    /// A raw HTTP/1.1 upstream answering its n-th request (over all
    /// connections) with `replies[n]` (the last one repeated).
    async fn server(replies: Vec<Reply>) -> (Uri, Arc<Mutex<Seen>>) {
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("bind: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("addr: {e}"),
        };
        let seen = Arc::new(Mutex::new(Seen::default()));
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                record.lock().map(|mut s| s.connections += 1).ok();
                let record = record.clone();
                let replies = replies.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let (head_end, length) = loop {
                            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                                let length = head
                                    .lines()
                                    .find_map(|l| l.strip_prefix("content-length:"))
                                    .and_then(|v| v.trim().parse::<usize>().ok())
                                    .unwrap_or(0);
                                break (end + 4, length);
                            }
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        while buf.len() < head_end + length {
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let request: Vec<u8> = buf.drain(..head_end + length).collect();
                        let n = match record.lock() {
                            Ok(mut s) => {
                                s.requests.push(request);
                                s.requests.len() - 1
                            }
                            Err(_) => return,
                        };
                        let Some(reply) = replies.get(n).or(replies.last()).cloned() else { return };
                        for (i, piece) in reply.pieces.iter().enumerate() {
                            if i > 0 {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            if socket.write_all(piece).await.is_err() {
                                return;
                            }
                        }
                        if reply.close {
                            return;
                        }
                    }
                });
            }
        });
        let uri = match format!("http://{addr}/v1/chat/completions").parse::<Uri>() {
            Ok(u) => u,
            Err(e) => panic!("uri: {e}"),
        };
        (uri, seen)
    }

    fn connections(seen: &Arc<Mutex<Seen>>) -> usize {
        seen.lock().map(|s| s.connections).unwrap_or(0)
    }

    fn requests(seen: &Arc<Mutex<Seen>>) -> Vec<Vec<u8>> {
        seen.lock().map(|s| s.requests.clone()).unwrap_or_default()
    }

    async fn send(client: u64, uri: &Uri, body: &[u8]) -> Result<Answer, SendError> {
        post(client, uri, &HeaderMap::new(), &Bytes::copy_from_slice(body), Duration::from_secs(2)).await
    }

    /// The whole body, or the error that ended it.
    async fn read(mut body: Body) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        while let Some(piece) = body.next().await {
            out.extend_from_slice(&piece.map_err(|e| e.to_string())?);
        }
        Ok(out)
    }

    /// Sends, expects `status`, and returns the body as text.
    async fn call(client: u64, uri: &Uri, status: u16) -> String {
        let answer = match send(client, uri, b"{}").await {
            Ok(a) => a,
            Err(e) => panic!("post: {e}"),
        };
        assert_eq!(answer.status.as_u16(), status);
        match read(answer.body).await {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => panic!("body: {e}"),
        }
    }

    /// Lets the runtime's poller see what the test upstream did.
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 8\r\n\r\n{\"ok\":1}";

    #[tokio::test(flavor = "current_thread")]
    async fn sequential_requests_reuse_one_connection() {
        let (uri, seen) = server(vec![reply(OK)]).await;
        for _ in 0..5 {
            assert_eq!(call(9_001, &uri, 200).await, r#"{"ok":1}"#);
        }
        assert_eq!(connections(&seen), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_request_goes_out_as_http_1_1_with_its_headers_and_body() {
        let (uri, seen) = server(vec![reply(OK)]).await;
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("authorization", HeaderValue::from_static("Bearer sk-test"));
        // Framing headers from the caller are not repeated.
        headers.insert("content-length", HeaderValue::from_static("999"));
        headers.insert("host", HeaderValue::from_static("elsewhere"));
        let small = Bytes::from_static(br#"{"model":"m"}"#);
        let large = Bytes::from(vec![b'x'; INLINE_BODY_BYTES + 10]);
        for body in [&small, &large] {
            match post(9_002, &uri, &headers, body, Duration::from_secs(2)).await {
                Ok(answer) => assert!(read(answer.body).await.is_ok()),
                Err(e) => panic!("post: {e}"),
            }
        }
        let sent = requests(&seen);
        assert_eq!(sent.len(), 2);
        let host = uri.authority().map(|a| a.as_str().to_string()).unwrap_or_default();
        let expected = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n\
             authorization: Bearer sk-test\r\ncontent-length: 13\r\n\r\n{{\"model\":\"m\"}}"
        );
        assert_eq!(String::from_utf8_lossy(&sent[0]), expected);
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n\
             authorization: Bearer sk-test\r\ncontent-length: {}\r\n\r\n",
            large.len()
        );
        assert_eq!(&sent[1][..head.len()], head.as_bytes());
        assert_eq!(&sent[1][head.len()..], &large[..]);
        assert_eq!(connections(&seen), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_connection_closed_while_idle_is_replaced() {
        let (uri, seen) = server(vec![Reply { close: true, ..reply(OK) }]).await;
        for _ in 0..3 {
            assert_eq!(call(9_003, &uri, 200).await, r#"{"ok":1}"#);
            settle().await;
        }
        assert_eq!(connections(&seen), 3);
        assert_eq!(requests(&seen).len(), 3, "no request is sent twice");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn chunked_answers_arriving_in_pieces_are_read_whole() {
        let chunked = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                       5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nx-trailer: t\r\n\r\n";
        let pieces: Vec<Vec<u8>> = chunked.as_bytes().chunks(7).map(<[u8]>::to_vec).collect();
        let (uri, seen) = server(vec![Reply { pieces, close: false }]).await;
        for _ in 0..2 {
            assert_eq!(call(9_004, &uri, 200).await, "hello, world");
        }
        assert_eq!(connections(&seen), 1, "a chunked answer read to its end keeps the connection");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn answers_ending_with_the_connection_or_saying_close_are_not_reused() {
        let until_close = Reply { close: true, ..reply("HTTP/1.1 200 OK\r\n\r\nall of it") };
        let says_close = reply("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok");
        let http10 = reply("HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok");
        let http10_kept = reply("HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok");
        let (uri, seen) = server(vec![until_close, says_close, http10, http10_kept.clone(), http10_kept]).await;
        assert_eq!(call(9_005, &uri, 200).await, "all of it");
        assert_eq!(call(9_005, &uri, 200).await, "ok");
        assert_eq!(call(9_005, &uri, 200).await, "ok");
        assert_eq!(call(9_005, &uri, 200).await, "ok");
        assert_eq!(call(9_005, &uri, 200).await, "ok");
        assert_eq!(connections(&seen), 4, "only the HTTP/1.0 keep-alive answer left its connection for the next");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn interim_answers_are_skipped_and_no_content_has_no_body() {
        // Interim answers, then the final one, in one reply.
        let (uri, seen) = server(vec![
            reply(&format!("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n{OK}")),
            reply("HTTP/1.1 204 No Content\r\n\r\n"),
            reply(OK),
        ])
        .await;
        assert_eq!(call(9_006, &uri, 200).await, r#"{"ok":1}"#);
        assert_eq!(call(9_006, &uri, 204).await, "");
        assert_eq!(call(9_006, &uri, 200).await, r#"{"ok":1}"#);
        assert_eq!(connections(&seen), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_error_answer_keeps_its_headers() {
        let (uri, _) =
            server(vec![reply("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\ncontent-length: 4\r\n\r\nslow")])
                .await;
        let answer = match send(9_015, &uri, b"{}").await {
            Ok(a) => a,
            Err(e) => panic!("post: {e}"),
        };
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(answer.headers.get("retry-after").map(|v| v.as_bytes()), Some(&b"7"[..]));
        assert_eq!(read(answer.body).await.as_deref(), Ok(&b"slow"[..]));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_abandoned_answer_keeps_its_connection_only_when_the_rest_is_on_hand() {
        // The whole answer arrives at once: dropping it unread keeps the connection.
        let (uri, seen) = server(vec![reply(OK)]).await;
        match send(9_007, &uri, b"{}").await {
            Ok(answer) => drop(answer),
            Err(e) => panic!("post: {e}"),
        }
        assert_eq!(call(9_007, &uri, 200).await, r#"{"ok":1}"#);
        assert_eq!(connections(&seen), 1);

        // The body is still coming: the connection is closed, the next call
        // gets a new one and its own answer.
        let slow = Reply {
            pieces: vec![b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n12345".to_vec(), b"67890".to_vec()],
            close: false,
        };
        let (uri, seen) = server(vec![slow, reply(OK)]).await;
        match send(9_008, &uri, b"{}").await {
            Ok(answer) => drop(answer),
            Err(e) => panic!("post: {e}"),
        }
        assert_eq!(call(9_008, &uri, 200).await, r#"{"ok":1}"#);
        assert_eq!(connections(&seen), 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn broken_answers_fail_the_call_and_are_not_reused() {
        let cut = Reply { close: true, ..reply("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n12345") };
        let (uri, seen) = server(vec![cut, reply(OK)]).await;
        let answer = match send(9_009, &uri, b"{}").await {
            Ok(a) => a,
            Err(e) => panic!("post: {e}"),
        };
        let err = read(answer.body).await.err().unwrap_or_default();
        assert!(err.contains("closed the connection mid-answer"), "{err}");
        assert_eq!(call(9_009, &uri, 200).await, r#"{"ok":1}"#);
        assert_eq!(connections(&seen), 2);

        for (bad, why) in [
            ("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", "chunk size is invalid"),
            ("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", "does not end"),
        ] {
            let (uri, _) = server(vec![reply(bad)]).await;
            let answer = match send(9_010, &uri, b"{}").await {
                Ok(a) => a,
                Err(e) => panic!("post: {e}"),
            };
            let err = read(answer.body).await.err().unwrap_or_default();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        for (bad, why) in [
            ("HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok", "conflicting"),
            ("HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n", "Content-Length is invalid"),
            ("HTTP/1.1 2x0 OK\r\n\r\n", "malformed"),
            ("not http at all\r\n\r\n", "malformed"),
            ("HTTP/1.1 101 Switching Protocols\r\n\r\n", "switched protocols"),
        ] {
            let (uri, _) = server(vec![Reply { close: true, ..reply(bad) }]).await;
            match send(9_011, &uri, b"{}").await {
                Ok(a) => panic!("{bad:?} was taken as an answer with status {}", a.status),
                Err(e) => assert!(e.to_string().contains(why), "{bad:?}: {e}"),
            }
        }
        let (uri, _) = server(vec![Reply { close: true, ..reply("") }]).await;
        match send(9_012, &uri, b"{}").await {
            Ok(a) => panic!("a closed connection answered {}", a.status),
            Err(e) => assert!(e.to_string().contains("without an answer"), "{e}"),
        }
        let huge = format!("HTTP/1.1 200 OK\r\nx-big: {}\r\n", "a".repeat(MAX_HEAD_BYTES + 1));
        let (uri, _) = server(vec![reply(&huge)]).await;
        match send(9_013, &uri, b"{}").await {
            Ok(a) => panic!("an oversized head was taken, status {}", a.status),
            Err(e) => assert!(e.to_string().contains("too large"), "{e}"),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn refused_connections_are_connect_errors() {
        let port = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
            Ok(a) => a.port(),
            Err(e) => panic!("bind: {e}"),
        };
        let uri = match format!("http://127.0.0.1:{port}/x").parse::<Uri>() {
            Ok(u) => u,
            Err(e) => panic!("uri: {e}"),
        };
        assert!(matches!(send(9_014, &uri, b"").await, Err(SendError::Connect)));
    }

    /// Feeds `input` to a chunked reader in pieces of `size` bytes.
    fn dechunk(input: &[u8], size: usize) -> Result<(Vec<u8>, usize), &'static str> {
        let mut framing = Framing::Chunked(Chunk::Size);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut pieces = input.chunks(size);
        loop {
            match framing.step(&mut buf)? {
                Step::Data(d) => out.extend_from_slice(&d),
                Step::End => return Ok((out, buf.len())),
                Step::NeedMore => match pieces.next() {
                    Some(p) => buf.extend_from_slice(p),
                    None => return Err("ran out of input"),
                },
            }
        }
    }

    #[test]
    fn the_chunked_reader_takes_input_split_anywhere() {
        let body =
            b"4\r\nWiki\r\n5;name=value\r\npedia\r\nE \r\n in\r\n\r\nchunks.\r\n0\r\nx-a: 1\r\nx-b: 2\r\n\r\nNEXT";
        for size in 1..body.len() {
            assert_eq!(
                dechunk(body, size),
                Ok((b"Wikipedia in\r\n\r\nchunks.".to_vec(), rest(body, size))),
                "pieces of {size}"
            );
        }
        // Bare line feeds are taken as line ends too.
        assert_eq!(dechunk(b"3\nabc\n0\n\n", 100), Ok((b"abc".to_vec(), 0)));
    }

    /// How many bytes after the body's end were already buffered when it
    /// ended, for input fed in pieces of `size`.
    fn rest(body: &[u8], size: usize) -> usize {
        let end = body.len() - b"NEXT".len();
        (end.div_ceil(size) * size).min(body.len()) - end
    }

    #[test]
    fn the_chunked_reader_refuses_broken_framing() {
        for (bad, why) in [
            (&b"g\r\n"[..], "a chunk size is invalid"),
            (b"\r\n", "a chunk size is invalid"),
            (b"1234567890abcdef0\r\n", "a chunk size is invalid"),
            (b"3\r\nabcd\r\n", "a chunk does not end where its size says"),
        ] {
            assert_eq!(dechunk(bad, 100).map(|(d, _)| d), Err(why), "{bad:?}");
        }
        let long_line = vec![b'1'; MAX_CHUNK_LINE + 1];
        assert_eq!(dechunk(&long_line, MAX_CHUNK_LINE + 1).map(|(d, _)| d), Err("a chunk size line is too long"));
        let mut trailers = b"0\r\n".to_vec();
        trailers.extend(std::iter::repeat_n(&b"x-t: 1\r\n"[..], MAX_TRAILER_BYTES / 8 + 1).flatten());
        assert_eq!(dechunk(&trailers, 4096).map(|(d, _)| d), Err("the trailer section is too long"));
    }

    #[test]
    fn content_length_values() {
        assert_eq!(content_length(b"0"), Some(0));
        assert_eq!(content_length(b" 42 "), Some(42));
        assert_eq!(content_length(b"42, 42"), Some(42));
        for bad in [&b""[..], b"-1", b"+1", b"4 2", b"42, 43", b"0x10", b"99999999999999999999"] {
            assert_eq!(content_length(bad), None, "{bad:?}");
        }
    }
}
