//! Reading and validating a client's Chat Completions request: body size,
//! UTF-8, JSON shape and the SPEC §3 request headers. Pure functions: bad
//! input gets a clear 4xx and nothing else happens.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName};
use futures::{Stream, StreamExt};
use serde_json::{Map, Value};

use crate::error::GatewayError;
use crate::providers::ChatRequest;

pub const MAX_COST_CENTER_CHARS: usize = 64;
pub const MAX_REQUEST_ID_CHARS: usize = 128;

/// The SPEC §3 request headers, named once: looking a header up by a
/// `HeaderName` skips parsing and lower-casing the name on every request.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static X_COST_CENTER: HeaderName = HeaderName::from_static("x-cost-center");
pub static X_TENANT_ID: HeaderName = HeaderName::from_static("x-tenant-id");
pub static X_SESSION_ID: HeaderName = HeaderName::from_static("x-session-id");

const ROLES: [&str; 6] = ["system", "developer", "user", "assistant", "tool", "function"];

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
    match collect_limited(&mut stream, limit).await {
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

/// Why [`collect_limited`] stopped.
#[derive(Debug)]
pub enum CollectError<E> {
    /// More than the limit arrived (the rest is left unread).
    TooLarge,
    Read(E),
}

/// Collects a body, at most `limit` bytes. A body that arrives as one chunk
/// (most do) is returned without a copy. Serves the client's request body
/// and the upstream's answer alike.
pub async fn collect_limited<S, E>(stream: &mut S, limit: u64) -> Result<Bytes, CollectError<E>>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let mut first: Option<Bytes> = None;
    let mut more: Option<bytes::BytesMut> = None;
    let mut total: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(CollectError::Read)?;
        total += chunk.len() as u64;
        if total > limit {
            return Err(CollectError::TooLarge);
        }
        match (&first, &mut more) {
            (None, _) => first = Some(chunk),
            (Some(f), None) => {
                let mut buf = bytes::BytesMut::with_capacity(f.len() + chunk.len());
                buf.extend_from_slice(f);
                buf.extend_from_slice(&chunk);
                more = Some(buf);
            }
            (Some(_), Some(buf)) => buf.extend_from_slice(&chunk),
        }
    }
    Ok(match more {
        Some(buf) => buf.freeze(),
        None => first.unwrap_or_default(),
    })
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

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(param: &str, expected: &str, got: &Value) -> GatewayError {
    GatewayError::invalid(format!("`{param}` must be {expected}, got {}.", type_name(got)), Some(param))
}

fn optional_positive_int(value: Option<&Value>, param: &str) -> Result<Option<u64>, GatewayError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 => Ok(Some(n)),
            _ => Err(GatewayError::invalid(format!("`{param}` must be a positive integer."), Some(param))),
        },
    }
}

/// The members of a chat body that are checked, found in one pass over the
/// body instead of one map lookup each.
#[derive(Default)]
struct Checked<'a> {
    model: Option<&'a Value>,
    messages: Option<&'a Value>,
    stream: Option<&'a Value>,
    stream_options: Option<&'a Value>,
    max_completion_tokens: Option<&'a Value>,
    max_tokens: Option<&'a Value>,
    n: Option<&'a Value>,
    temperature: Option<&'a Value>,
    top_p: Option<&'a Value>,
    presence_penalty: Option<&'a Value>,
    frequency_penalty: Option<&'a Value>,
    tools: Option<&'a Value>,
    stop: Option<&'a Value>,
}

impl<'a> Checked<'a> {
    fn of(body: &'a Map<String, Value>) -> Self {
        let mut c = Checked::default();
        for (k, v) in body {
            let slot = match k.as_str() {
                "model" => &mut c.model,
                "messages" => &mut c.messages,
                "stream" => &mut c.stream,
                "stream_options" => &mut c.stream_options,
                "max_completion_tokens" => &mut c.max_completion_tokens,
                "max_tokens" => &mut c.max_tokens,
                "n" => &mut c.n,
                "temperature" => &mut c.temperature,
                "top_p" => &mut c.top_p,
                "presence_penalty" => &mut c.presence_penalty,
                "frequency_penalty" => &mut c.frequency_penalty,
                "tools" => &mut c.tools,
                "stop" => &mut c.stop,
                _ => continue,
            };
            *slot = Some(v);
        }
        c
    }
}

/// Parses and validates a Chat Completions body (kept as
/// [`ChatRequest::raw`]).
pub fn parse_chat(raw: Bytes) -> Result<ChatRequest, GatewayError> {
    let Ok(text) = std::str::from_utf8(&raw) else {
        return Err(GatewayError::invalid("The request body is not valid UTF-8.", None));
    };
    if text.bytes().all(|b| b.is_ascii_whitespace()) {
        return Err(GatewayError::invalid("The request body is empty; send a JSON object.", None));
    }
    // From the checked text: serde does not check each string's UTF-8 again.
    let value: Value = serde_json::from_str(text)
        .map_err(|e| GatewayError::invalid(format!("The request body is not valid JSON: {e}."), None))?;
    let Value::Object(body) = value else {
        return Err(GatewayError::invalid(
            format!("The request body must be a JSON object, got {}.", type_name(&value)),
            None,
        ));
    };
    let c = Checked::of(&body);
    let model = match c.model {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) => return Err(GatewayError::invalid("`model` must not be empty.", Some("model"))),
        Some(other) => return Err(wrong_type("model", "a string", other)),
        None => return Err(GatewayError::invalid("Missing required parameter: `model`.", Some("model"))),
    };
    match c.messages {
        Some(Value::Array(msgs)) if !msgs.is_empty() => {
            for (i, m) in msgs.iter().enumerate() {
                // Named only when something is wrong: no allocation per valid message.
                let name = || format!("messages[{i}]");
                let Value::Object(obj) = m else { return Err(wrong_type(&name(), "an object", m)) };
                match obj.get("role") {
                    Some(Value::String(r)) if ROLES.contains(&r.as_str()) => {}
                    Some(Value::String(r)) => {
                        let param = name();
                        return Err(GatewayError::invalid(
                            format!("`{param}.role` {r:?} is not one of {}.", ROLES.join(", ")),
                            Some(&format!("{param}.role")),
                        ));
                    }
                    Some(other) => return Err(wrong_type(&format!("{}.role", name()), "a string", other)),
                    None => {
                        let param = name();
                        return Err(GatewayError::invalid(
                            format!("Missing required parameter: `{param}.role`."),
                            Some(&format!("{param}.role")),
                        ));
                    }
                }
                match obj.get("content") {
                    None | Some(Value::Null) | Some(Value::String(_)) | Some(Value::Array(_)) => {}
                    Some(other) => {
                        return Err(wrong_type(&format!("{}.content", name()), "a string or an array of parts", other))
                    }
                }
            }
        }
        Some(Value::Array(_)) => return Err(GatewayError::invalid("`messages` must not be empty.", Some("messages"))),
        Some(other) => return Err(wrong_type("messages", "an array", other)),
        None => return Err(GatewayError::invalid("Missing required parameter: `messages`.", Some("messages"))),
    }
    let stream = match c.stream {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(wrong_type("stream", "a boolean", other)),
    };
    let include_usage = match c.stream_options {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) => match o.get("include_usage") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(wrong_type("stream_options.include_usage", "a boolean", other)),
        },
        Some(other) => return Err(wrong_type("stream_options", "an object", other)),
    };
    let max_tokens = match optional_positive_int(c.max_completion_tokens, "max_completion_tokens")? {
        Some(n) => Some(n),
        None => optional_positive_int(c.max_tokens, "max_tokens")?,
    };
    optional_positive_int(c.n, "n")?;
    for (p, value) in [
        ("temperature", c.temperature),
        ("top_p", c.top_p),
        ("presence_penalty", c.presence_penalty),
        ("frequency_penalty", c.frequency_penalty),
    ] {
        match value {
            None | Some(Value::Null) | Some(Value::Number(_)) => {}
            Some(other) => return Err(wrong_type(p, "a number", other)),
        }
    }
    match c.tools {
        None | Some(Value::Null) | Some(Value::Array(_)) => {}
        Some(other) => return Err(wrong_type("tools", "an array", other)),
    }
    match c.stop {
        None | Some(Value::Null) | Some(Value::String(_)) | Some(Value::Array(_)) => {}
        Some(other) => return Err(wrong_type("stop", "a string or an array of strings", other)),
    }
    Ok(ChatRequest { body, raw, requested_model: model, stream, include_usage, max_tokens })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(
        parts: Vec<Result<&'static [u8], &'static str>>,
    ) -> impl Stream<Item = Result<Bytes, &'static str>> + Unpin {
        futures::stream::iter(parts.into_iter().map(|p| p.map(Bytes::from_static)))
    }

    #[tokio::test]
    async fn collect_limited_keeps_one_chunk_joins_many_and_stops_at_the_limit() {
        static ONE: &[u8] = b"{\"a\":1}";
        let got = collect_limited(&mut chunks(vec![Ok(ONE)]), 7).await;
        assert!(matches!(&got, Ok(b) if b.as_ptr() == ONE.as_ptr() && b.len() == 7), "{got:?}");
        let got = collect_limited(&mut chunks(vec![Ok(b"ab"), Ok(b""), Ok(b"cd"), Ok(b"e")]), 5).await;
        assert!(matches!(&got, Ok(b) if &b[..] == b"abcde"), "{got:?}");
        let got = collect_limited(&mut chunks(vec![Ok(b"ab"), Ok(b"cd")]), 3).await;
        assert!(matches!(got, Err(CollectError::TooLarge)), "{got:?}");
        let got = collect_limited(&mut chunks(vec![Ok(b"ab"), Err("reset")]), 10).await;
        assert!(matches!(got, Err(CollectError::Read("reset"))), "{got:?}");
        let got = collect_limited(&mut chunks(vec![]), 0).await;
        assert!(matches!(&got, Ok(b) if b.is_empty()), "{got:?}");
    }

    fn err(body: &[u8]) -> String {
        match parse_chat(Bytes::copy_from_slice(body)) {
            Ok(_) => "ok".into(),
            Err(e) => format!("{}|{}", e.code(), e.message()),
        }
    }

    #[test]
    fn accepts_a_valid_request() {
        let r = parse_chat(Bytes::from_static(br#"{"model":"gpt-4.1","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true},"max_tokens":5,"x_custom":1}"#)).unwrap();
        assert!(r.stream && r.include_usage);
        assert_eq!(r.max_tokens, Some(5));
        assert_eq!(r.requested_model, "gpt-4.1");
        assert!(r.body.contains_key("x_custom"));
    }

    #[test]
    fn refuses_bad_input_clearly() {
        assert!(err(b"{not json").contains("not valid JSON"));
        assert!(err(b"\xff\xfe").contains("UTF-8"));
        assert!(err(b"").contains("empty"));
        assert!(err(b"[1]").contains("JSON object"));
        assert!(err(br#"{"messages":[{"role":"user","content":"x"}]}"#).contains("`model`"));
        assert!(err(br#"{"model":5,"messages":[{"role":"user","content":"x"}]}"#)
            .contains("`model` must be a string, got a number"));
        assert!(err(br#"{"model":"m"}"#).contains("`messages`"));
        assert!(err(br#"{"model":"m","messages":[]}"#).contains("must not be empty"));
        assert!(err(br#"{"model":"m","messages":"hi"}"#).contains("must be an array"));
        assert!(err(br#"{"model":"m","messages":[{"content":"x"}]}"#).contains("messages[0].role"));
        assert!(err(br#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#).contains("is not one of"));
        assert!(err(br#"{"model":"m","messages":[{"role":"user","content":5}]}"#).contains("messages[0].content"));
        assert!(err(br#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#)
            .contains("`stream` must be a boolean"));
        assert!(err(br#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":-1}"#)
            .contains("positive integer"));
        assert!(err(br#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#)
            .contains("`temperature`"));
        for e in [err(b"{"), err(br#"{"model":1}"#)] {
            assert!(e.starts_with("invalid_request_error|"), "{e}");
        }
    }

    #[test]
    fn headers() {
        let mut h = HeaderMap::new();
        assert_eq!(request_id(&h).unwrap().len(), 36);
        h.insert("x-request-id", "abc-123".parse().unwrap());
        assert_eq!(request_id(&h).unwrap(), "abc-123");
        h.insert("x-request-id", "a b".parse().unwrap());
        assert!(request_id(&h).is_err());
        assert_eq!(cost_center(&h).unwrap(), None);
        h.insert("x-cost-center", "team-search".parse().unwrap());
        assert_eq!(cost_center(&h).unwrap().as_deref(), Some("team-search"));
        h.insert("x-cost-center", "x".repeat(65).parse().unwrap());
        assert!(cost_center(&h).is_err());
        h.insert("x-cost-center", axum::http::HeaderValue::from_bytes(b"caf\xe9").unwrap());
        assert!(cost_center(&h).is_err());
        h.insert("content-length", "100".parse().unwrap());
        assert!(check_content_length(&h, 99).is_err());
        assert!(check_content_length(&h, 100).is_ok());
    }
}
