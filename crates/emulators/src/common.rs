//! Pieces shared by the three emulators: the marker script, token counting,
//! the reply text and response builders (JSON, SSE with a real abort).

use std::collections::VecDeque;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// What the markers in the last user message ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script {
    /// `[emu:usage=IN,OUT]`
    pub usage: Option<(u64, u64)>,
    /// `[emu:cached=N]`
    pub cached: Option<u64>,
    /// `[emu:error=STATUS]`
    pub error: Option<u16>,
    /// `[emu:tool]`
    pub tool: bool,
    /// `[emu:break]`
    pub break_stream: bool,
    /// `[emu:stall_ms=N]`
    pub stall_ms: Option<u64>,
    /// `[emu:malformed]`
    pub malformed: bool,
    /// `[emu:safety]`
    pub safety: bool,
    /// `[emu:trickle_ms=N]`: streams wait N ms before every piece but the first.
    pub trickle_ms: Option<u64>,
    /// `[emu:reset]`: answer 200, then break the connection before any body.
    pub reset: bool,
}

impl Script {
    /// Reads every `[emu:…]` marker in `text`; unknown or malformed markers are ignored.
    pub fn parse(text: &str) -> Script {
        let mut s = Script::default();
        let mut rest = text;
        while let Some(start) = rest.find("[emu:") {
            let after = &rest[start + 5..];
            let Some(end) = after.find(']') else { break };
            let marker = after[..end].trim();
            rest = &after[end + 1..];
            let (name, value) = match marker.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (marker, None),
            };
            match (name, value) {
                ("usage", Some(v)) => {
                    if let Some((a, b)) = v.split_once(',') {
                        if let (Ok(a), Ok(b)) = (a.trim().parse(), b.trim().parse()) {
                            s.usage = Some((a, b));
                        }
                    }
                }
                ("cached", Some(v)) => s.cached = v.parse().ok(),
                ("error", Some(v)) => s.error = v.parse().ok().filter(|c| (400..=599).contains(c)),
                ("stall_ms", Some(v)) => s.stall_ms = v.parse().ok(),
                ("trickle_ms", Some(v)) => s.trickle_ms = v.parse().ok(),
                ("reset", None) => s.reset = true,
                ("tool", None) => s.tool = true,
                ("break", None) => s.break_stream = true,
                ("malformed", None) => s.malformed = true,
                ("safety", None) => s.safety = true,
                _ => {}
            }
        }
        s
    }

    /// This script with every field that `forced` sets taken from `forced`.
    pub fn overlay(mut self, forced: &Script) -> Script {
        if forced.usage.is_some() {
            self.usage = forced.usage;
        }
        if forced.cached.is_some() {
            self.cached = forced.cached;
        }
        if forced.error.is_some() {
            self.error = forced.error;
        }
        if forced.stall_ms.is_some() {
            self.stall_ms = forced.stall_ms;
        }
        if forced.trickle_ms.is_some() {
            self.trickle_ms = forced.trickle_ms;
        }
        self.tool |= forced.tool;
        self.break_stream |= forced.break_stream;
        self.malformed |= forced.malformed;
        self.safety |= forced.safety;
        self.reset |= forced.reset;
        self
    }

    /// `(prompt tokens incl. cached, completion tokens, cached tokens)`.
    pub fn usage(&self, prompt_default: u64, completion_default: u64) -> (u64, u64, u64) {
        let (p, c) = self.usage.unwrap_or((prompt_default, completion_default));
        (p, c, self.cached.unwrap_or(0).min(p))
    }

    pub async fn stall(&self) {
        if let Some(ms) = self.stall_ms.filter(|ms| *ms > 0) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
}

/// Whitespace-separated words in `text`.
pub fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The default prompt token count: words over all texts + 5.
pub fn prompt_tokens<'a>(texts: impl IntoIterator<Item = &'a str>) -> u64 {
    texts.into_iter().map(words).sum::<u64>() + 5
}

/// The default reply, split into stream pieces (one per word, spaces kept).
pub fn reply_pieces(display_name: &str) -> Vec<String> {
    let text = format!("Hello from the {display_name} emulator.");
    text.split(' ').enumerate().map(|(i, w)| if i == 0 { w.to_string() } else { format!(" {w}") }).collect()
}

/// Completion tokens of a tool-call answer when no usage marker says otherwise.
pub const TOOL_CALL_TOKENS: u64 = 10;

/// The arguments of the emulated tool call.
pub fn tool_args() -> Value {
    serde_json::json!({ "city": "Paris" })
}

/// A JSON response with the given status.
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, Bytes::from(body.to_string())).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Adds `Retry-After: 1` for 429 and 503.
pub fn with_retry_after(mut r: Response, status: u16) -> Response {
    if status == 429 || status == 503 {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

/// The message of a scripted error.
pub fn emulated_message(status: u16) -> String {
    format!("emulated error {status}")
}

pub fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// One piece of a streamed body.
#[derive(Debug, Clone)]
pub enum Piece {
    Data(Bytes),
    /// Break the connection: the body stream fails, so the client sees a
    /// truncated body rather than a clean end.
    Abort,
}

impl Piece {
    pub fn text(s: impl Into<String>) -> Piece {
        Piece::Data(Bytes::from(s.into()))
    }
}

/// A streamed response made of `pieces` with the given content type.
pub fn streamed_response(content_type: &'static str, pieces: Vec<Piece>) -> Response {
    streamed_response_paced(content_type, pieces, None)
}

/// 200 with headers, then a broken connection before any body byte.
pub fn reset_response() -> Response {
    streamed_response("application/json", vec![Piece::Abort])
}

/// Like [`streamed_response`], waiting `gap_ms` before every piece but the
/// first (a slow trickle, or a stall mid-stream).
pub fn streamed_response_paced(content_type: &'static str, pieces: Vec<Piece>, gap_ms: Option<u64>) -> Response {
    let queue: VecDeque<Piece> = pieces.into();
    let total = queue.len();
    let gap = gap_ms.map(Duration::from_millis);
    let stream = futures::stream::unfold(queue, move |mut queue| async move {
        if let Some(gap) = gap.filter(|_| queue.len() < total) {
            tokio::time::sleep(gap).await;
        }
        match queue.pop_front()? {
            Piece::Data(b) => Some((Ok::<Bytes, std::io::Error>(b), queue)),
            Piece::Abort => {
                // Give the server a moment to flush what was written, so the
                // client really receives the pieces before the break.
                tokio::time::sleep(Duration::from_millis(30)).await;
                queue.clear();
                Some((Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "emulated break")), queue))
            }
        }
    });
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// Text of an OpenAI / Anthropic style `content` (a string, or parts/blocks
/// with `text`; nested `content` of tool results included).
pub fn content_texts<'a>(content: &'a Value, out: &mut Vec<&'a str>) {
    match content {
        Value::String(s) => out.push(s),
        Value::Array(parts) => {
            for p in parts {
                if let Some(t) = p.get("text").and_then(Value::as_str) {
                    out.push(t);
                }
                if let Some(c) = p.get("content") {
                    content_texts(c, out);
                }
            }
        }
        _ => {}
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_markers() {
        let s = Script::parse("hi [emu:usage=100,20] [emu:cached=30][emu:tool] [emu:error=429] [emu:stall_ms=5] [emu:break] [emu:malformed] [emu:safety] [emu:nope]");
        assert_eq!(s.usage, Some((100, 20)));
        assert_eq!(s.cached, Some(30));
        assert_eq!(s.error, Some(429));
        assert_eq!(s.stall_ms, Some(5));
        assert!(s.tool && s.break_stream && s.malformed && s.safety);
        assert_eq!(s.usage(1, 2), (100, 20, 30));
        assert_eq!(Script::parse("plain [emu:error=abc] [emu:usage=1]"), Script::default());
        assert_eq!(Script::parse("[emu:cached=9]").usage(4, 2), (4, 2, 4));
    }

    #[test]
    fn reply_and_counts() {
        let p = reply_pieces("OpenAI");
        assert_eq!(p.concat(), "Hello from the OpenAI emulator.");
        assert_eq!(p.len(), 5);
        assert_eq!(prompt_tokens(["a b", " c "]), 8);
    }
}
