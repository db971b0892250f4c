//! HTTP/1.1 on a plain socket: the request bytes exactly as written, for
//! what a client library would normalise or refuse, for processes tested
//! from blocking code, and for kept-alive connections.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::admin::parse_json_or_text;

/// One request on its own connection (`Connection: close`), blocking.
#[derive(Clone, Debug)]
pub struct RawRequest<'a> {
    addr: String,
    method: &'a str,
    path: &'a str,
    bearer: Option<&'a str>,
    body: &'a [u8],
    timeout: Duration,
}

/// The answer: status, the whole text (head and body) and the body.
#[derive(Clone, Debug)]
pub struct RawResponse {
    pub status: u16,
    pub text: String,
    pub body: String,
}

impl RawResponse {
    /// The body as JSON, or as a JSON string (see [`parse_json_or_text`]).
    pub fn json(&self) -> Value {
        parse_json_or_text(&self.body)
    }
}

impl<'a> RawRequest<'a> {
    /// `method path` to `addr` (`host:port`); the path is sent as given.
    pub fn new(addr: &str, method: &'a str, path: &'a str) -> RawRequest<'a> {
        RawRequest { addr: addr.to_string(), method, path, bearer: None, body: b"", timeout: Duration::from_secs(120) }
    }

    /// `method path` to `127.0.0.1:port`.
    pub fn local(port: u16, method: &'a str, path: &'a str) -> RawRequest<'a> {
        RawRequest::new(&format!("127.0.0.1:{port}"), method, path)
    }

    pub fn bearer(mut self, token: &'a str) -> Self {
        self.bearer = Some(token);
        self
    }

    /// A JSON body (sent with `Content-Type: application/json`).
    pub fn json(mut self, body: &'a [u8]) -> Self {
        self.body = body;
        self
    }

    /// How long a read may wait (default 120 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn send(self) -> RawResponse {
        let path = self.path;
        let mut s = std::net::TcpStream::connect(&self.addr).unwrap_or_else(|e| panic!("{path}: connect: {e}"));
        s.set_read_timeout(Some(self.timeout)).unwrap();
        let mut head = format!("{} {path} HTTP/1.1\r\nHost: {}\r\n", self.method, self.addr);
        if let Some(token) = self.bearer {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if !self.body.is_empty() {
            head.push_str("Content-Type: application/json\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", self.body.len()));
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(self.body).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap_or_else(|e| panic!("{path}: connection failed: {e}"));
        let text = String::from_utf8_lossy(&out).to_string();
        let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("{path}: {text:?}"));
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        RawResponse { status, text, body }
    }
}

/// Reads one HTTP/1.1 answer (with a Content-Length) from a kept-alive connection.
pub async fn read_answer(conn: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed before a whole answer: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                .unwrap_or(0);
            if body.len() >= len {
                return text;
            }
        }
    }
}

/// How long from `from` until the server closes `conn` (reading and
/// discarding what it sends); fails the test after 10 s.
pub async fn time_to_close(conn: &mut TcpStream, from: Instant) -> Duration {
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return from.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("still open after 10 s"),
        }
    }
}
