//! An incremental Server-Sent Events parser (WHATWG event-stream format), pure
//! and independent of any network type, plus a helper that applies it to an
//! upstream response body.

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};

use super::body::BodyError;
use super::types::{UpstreamError, UpstreamErrorKind};

/// One dispatched event: `event:` name (empty when absent) and joined `data:` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// Feeds bytes in, gets complete events out. Handles `\n`, `\r\n` and `\r`
/// line ends, comments (`:` lines), multi-line data and events split across
/// arbitrary chunk boundaries.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: BytesMut,
    event: String,
    data: String,
    has_data: bool,
}

/// The largest event we accept; a longer one is a protocol error.
pub const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes and returns the events they complete.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, UpstreamError> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', &self.buf) {
            // A lone '\r' at the very end may be the first half of "\r\n": wait for more.
            if self.buf[pos] == b'\r' && pos + 1 == self.buf.len() {
                break;
            }
            let line = self.buf.split_to(pos);
            let skip = if self.buf[0] == b'\r' && self.buf.get(1) == Some(&b'\n') { 2 } else { 1 };
            let _ = self.buf.split_to(skip);
            let line = std::str::from_utf8(&line)
                .map_err(|_| UpstreamError::protocol("upstream stream is not valid UTF-8"))?;
            if let Some(ev) = self.line(line) {
                out.push(ev);
            }
        }
        if self.buf.len() + self.data.len() > MAX_EVENT_BYTES {
            return Err(UpstreamError::protocol("upstream stream event too large"));
        }
        Ok(out)
    }

    /// Call at end of input: returns an event left without its blank line, if any.
    pub fn finish(&mut self) -> Option<SseEvent> {
        if !self.buf.is_empty() {
            let rest = self.buf.split();
            if let Ok(line) = std::str::from_utf8(&rest) {
                let line = line.to_string();
                if let Some(ev) = self.line(&line) {
                    return Some(ev);
                }
            }
        }
        self.dispatch()
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        if !self.has_data {
            self.event.clear();
            return None;
        }
        self.has_data = false;
        Some(SseEvent { event: std::mem::take(&mut self.event), data: std::mem::take(&mut self.data) })
    }
}

/// Turns an upstream body into SSE events. A transport error mid-way becomes an
/// `Err` item (the caller decides how to end the client's stream).
pub fn events<S>(provider: String, body: S) -> impl Stream<Item = Result<SseEvent, UpstreamError>> + Send
where
    S: Stream<Item = Result<Bytes, BodyError>> + Send + 'static,
{
    let state = (Box::pin(body), SseParser::new(), std::collections::VecDeque::new(), false);
    futures::stream::unfold(state, move |(mut body, mut parser, mut pending, mut done)| {
        let provider = provider.clone();
        async move {
            loop {
                if let Some(ev) = pending.pop_front() {
                    return Some((Ok(ev), (body, parser, pending, done)));
                }
                if done {
                    return None;
                }
                match body.next().await {
                    Some(Ok(chunk)) => match parser.push(&chunk) {
                        Ok(evs) => pending.extend(evs),
                        Err(e) => {
                            done = true;
                            return Some((Err(e), (body, parser, pending, done)));
                        }
                    },
                    Some(Err(e)) => {
                        done = true;
                        let mut err = UpstreamError::from_body(&provider, &e);
                        if err.kind != UpstreamErrorKind::Timeout {
                            err = UpstreamError::new(
                                UpstreamErrorKind::Connect,
                                format!("upstream {provider} stream broke before it finished"),
                            );
                        }
                        return Some((Err(err), (body, parser, pending, done)));
                    }
                    None => {
                        done = true;
                        if let Some(ev) = parser.finish() {
                            pending.push_back(ev);
                        }
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in input {
            out.extend(p.push(c).unwrap());
        }
        out.extend(p.finish());
        out
    }

    #[test]
    fn parses_events_split_anywhere() {
        let text = b"event: message_start\ndata: {\"a\":1}\n\n: ping\ndata: x\ndata: y\n\n";
        let whole = all(&[text]);
        assert_eq!(
            whole,
            vec![
                SseEvent { event: "message_start".into(), data: "{\"a\":1}".into() },
                SseEvent { event: "".into(), data: "x\ny".into() },
            ]
        );
        for split in 1..text.len() {
            let (a, b) = text.split_at(split);
            assert_eq!(all(&[a, b]), whole, "split at {split}");
        }
    }

    #[test]
    fn handles_crlf_and_trailing_event() {
        let evs = all(&[b"data: one\r\n\r\ndata: two\r", b"\n\r\ndata: three"]);
        let data: Vec<_> = evs.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, vec!["one", "two", "three"]);
    }

    #[test]
    fn rejects_invalid_utf8() {
        let mut p = SseParser::new();
        assert!(p.push(b"data: \xff\xfe\n\n").is_err());
    }
}
