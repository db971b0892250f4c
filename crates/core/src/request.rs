//! Reading and validating a client's Chat Completions request: body size,
//! UTF-8, JSON shape and the SPEC §3 request headers. Pure functions: bad
//! input gets a clear 4xx and nothing else happens.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName};
use futures::{Stream, StreamExt};
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use std::borrow::Cow;

use crate::admission::tokens::{Estimate, IMAGE_TOKENS};
use crate::error::GatewayError;
use crate::limited::{bounded, collect_limited_sized, CollectError};
use crate::providers::types::ChatRequest;

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

/// [`parse_chat`] of a body of any size without holding the event loop
/// (see [`bounded`]).
pub async fn parse_chat_bounded(raw: Bytes) -> Result<ChatRequest, GatewayError> {
    bounded(raw.len(), move || parse_chat(raw)).await.unwrap_or(Err(GatewayError::Internal))
}

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

/// The JSON type of a value, from its first byte (the value is well formed:
/// the whole body was parsed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl Kind {
    fn of(text: &str) -> Kind {
        match text.trim_start().as_bytes().first() {
            Some(b'{') => Kind::Object,
            Some(b'[') => Kind::Array,
            Some(b'"') => Kind::String,
            Some(b't' | b'f') => Kind::Bool,
            Some(b'n') => Kind::Null,
            _ => Kind::Number,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool => "a boolean",
            Kind::Number => "a number",
            Kind::String => "a string",
            Kind::Array => "an array",
            Kind::Object => "an object",
        }
    }
}

/// A member's JSON text as the client wrote it, borrowed from the body
/// (`null` included: an `Option<&RawValue>` would read `null` as absent).
/// Nothing is built for it until it is checked.
#[derive(Debug, Default, Clone, Copy)]
struct Raw<'a>(Option<&'a RawValue>);

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'a RawValue>::deserialize(d).map(|r| Raw(Some(r)))
    }
}

impl<'a> Raw<'a> {
    fn text(self) -> Option<&'a str> {
        self.0.map(RawValue::get)
    }

    /// The value's type; `None` when the member is absent.
    fn kind(self) -> Option<Kind> {
        self.text().map(Kind::of)
    }

    /// The value as a string (borrowed unless it holds escapes); `None` when
    /// it is not one.
    fn string(self) -> Option<Cow<'a, str>> {
        let text = self.text()?;
        match serde_json::from_str::<&str>(text) {
            Ok(s) => Some(Cow::Borrowed(s)),
            Err(_) => serde_json::from_str::<String>(text).ok().map(Cow::Owned),
        }
    }

    /// `null` or absent.
    fn is_none(self) -> bool {
        matches!(self.kind(), None | Some(Kind::Null))
    }
}

/// The top-level members that are checked, read in one pass; every other
/// member is skipped without being built.
#[derive(Deserialize)]
struct Top<'a> {
    #[serde(default, borrow)]
    model: Raw<'a>,
    #[serde(default, borrow)]
    messages: Raw<'a>,
    #[serde(default, borrow)]
    stream: Raw<'a>,
    #[serde(default, borrow)]
    stream_options: Raw<'a>,
    #[serde(default, borrow)]
    max_completion_tokens: Raw<'a>,
    #[serde(default, borrow)]
    max_tokens: Raw<'a>,
    #[serde(default, borrow)]
    n: Raw<'a>,
    #[serde(default, borrow)]
    temperature: Raw<'a>,
    #[serde(default, borrow)]
    top_p: Raw<'a>,
    #[serde(default, borrow)]
    presence_penalty: Raw<'a>,
    #[serde(default, borrow)]
    frequency_penalty: Raw<'a>,
    #[serde(default, borrow)]
    tools: Raw<'a>,
    #[serde(default, borrow)]
    stop: Raw<'a>,
    #[serde(default, borrow)]
    user: Raw<'a>,
}

/// The members of a message that are checked or counted.
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(default, borrow)]
    role: Raw<'a>,
    #[serde(default, borrow)]
    content: Raw<'a>,
    #[serde(default, borrow)]
    name: Raw<'a>,
    #[serde(default, borrow)]
    tool_calls: Raw<'a>,
}

/// The members of a content part that are counted.
#[derive(Deserialize)]
struct Part<'a> {
    #[serde(default, borrow, rename = "type")]
    kind: Raw<'a>,
    #[serde(default, borrow)]
    text: Raw<'a>,
}

#[derive(Deserialize)]
struct StreamOptions<'a> {
    #[serde(default, borrow)]
    include_usage: Raw<'a>,
}

fn wrong_type(param: &str, expected: &str, got: Kind) -> GatewayError {
    GatewayError::invalid(format!("`{param}` must be {expected}, got {}.", got.name()), Some(param))
}

fn not_json(e: serde_json::Error) -> GatewayError {
    GatewayError::invalid(format!("The request body is not valid JSON: {e}."), None)
}

fn optional_positive_int(value: Raw<'_>, param: &str) -> Result<Option<u64>, GatewayError> {
    let Some(text) = value.text().filter(|_| !value.is_none()) else { return Ok(None) };
    match serde_json::from_str::<u64>(text) {
        Ok(n) if n > 0 => Ok(Some(n)),
        _ => Err(GatewayError::invalid(format!("`{param}` must be a positive integer."), Some(param))),
    }
}

/// Calls `f` with each element of the JSON array `array`, in order, without
/// collecting them; returns how many there were.
fn for_each<'a>(
    array: &'a str,
    f: impl FnMut(usize, Raw<'a>) -> Result<(), GatewayError>,
) -> Result<usize, GatewayError> {
    struct Each<F> {
        f: F,
        n: usize,
        error: Option<GatewayError>,
    }
    impl<'a, F: FnMut(usize, Raw<'a>) -> Result<(), GatewayError>> Visitor<'a> for &mut Each<F> {
        type Value = ();
        fn expecting(&self, out: &mut std::fmt::Formatter) -> std::fmt::Result {
            out.write_str("an array")
        }
        fn visit_seq<A: SeqAccess<'a>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(item) = seq.next_element::<Raw<'a>>()? {
                if let Err(e) = (self.f)(self.n, item) {
                    self.error = Some(e);
                    return Err(serde::de::Error::custom("refused"));
                }
                self.n += 1;
            }
            Ok(())
        }
    }
    let mut each = Each { f, n: 0, error: None };
    let result = Deserializer::deserialize_seq(&mut serde_json::Deserializer::from_str(array), &mut each);
    match (result, each.error) {
        (_, Some(e)) => Err(e),
        (Err(e), None) => Err(not_json(e)),
        (Ok(()), None) => Ok(each.n),
    }
}

/// Checks one message and adds it to the estimate.
fn check_message(i: usize, message: Raw<'_>, estimate: &mut Estimate) -> Result<(), GatewayError> {
    // Named only when something is wrong: no allocation per valid message.
    let name = || format!("messages[{i}]");
    let (Some(text), Some(kind)) = (message.text(), message.kind()) else { return Ok(()) };
    if kind != Kind::Object {
        return Err(wrong_type(&name(), "an object", kind));
    }
    let m: Message<'_> = serde_json::from_str(text).map_err(|e| {
        let param = name();
        GatewayError::invalid(format!("`{param}` is not a valid message: {e}."), Some(&param))
    })?;
    match (m.role.kind(), m.role.string()) {
        (Some(Kind::String), Some(r)) if ROLES.contains(&r.as_ref()) => {}
        (Some(Kind::String), Some(r)) => {
            let param = name();
            return Err(GatewayError::invalid(
                format!("`{param}.role` {r:?} is not one of {}.", ROLES.join(", ")),
                Some(&format!("{param}.role")),
            ));
        }
        (Some(other), _) => return Err(wrong_type(&format!("{}.role", name()), "a string", other)),
        (None, _) => {
            let param = name();
            return Err(GatewayError::invalid(
                format!("Missing required parameter: `{param}.role`."),
                Some(&format!("{param}.role")),
            ));
        }
    }
    estimate.message();
    match m.content.kind() {
        None | Some(Kind::Null) => {}
        Some(Kind::String) => estimate.text(&m.content.string().unwrap_or_default()),
        Some(Kind::Array) => {
            for_each(m.content.text().unwrap_or("[]"), |_, part| {
                count_part(part, estimate);
                Ok(())
            })?;
        }
        Some(other) => return Err(wrong_type(&format!("{}.content", name()), "a string or an array of parts", other)),
    }
    if let Some(n) = m.name.string() {
        estimate.text(&n);
        estimate.add(1);
    }
    if let Some(calls) = m.tool_calls.text().filter(|_| !m.tool_calls.is_none()) {
        estimate.text(calls);
    }
    Ok(())
}

/// A content part's tokens: its text, an image's allowance, or for any
/// other part its JSON text.
fn count_part(part: Raw<'_>, estimate: &mut Estimate) {
    let Some(text) = part.text() else { return };
    let parsed = match part.kind() {
        Some(Kind::Object) => serde_json::from_str::<Part<'_>>(text).ok(),
        _ => None,
    };
    match parsed.as_ref().and_then(|p| p.kind.string()).as_deref() {
        Some("text") => estimate.text(&parsed.and_then(|p| p.text.string()).unwrap_or_default()),
        Some("image_url") | Some("image") => estimate.add(IMAGE_TOKENS),
        _ => estimate.text(text),
    }
}

/// Parses and validates a Chat Completions body (kept as
/// [`ChatRequest::raw`]), and estimates its prompt tokens. No JSON tree is
/// built: the checked members are read as borrowed slices of the body and
/// every other member is skipped, so the memory this takes is a small
/// fraction of the body (at most one unescaped copy of a string that holds
/// escapes), whatever the body holds.
pub fn parse_chat(raw: Bytes) -> Result<ChatRequest, GatewayError> {
    let Ok(text) = std::str::from_utf8(&raw) else {
        return Err(GatewayError::invalid("The request body is not valid UTF-8.", None));
    };
    if text.bytes().all(|b| b.is_ascii_whitespace()) {
        return Err(GatewayError::invalid("The request body is empty; send a JSON object.", None));
    }
    let kind = Kind::of(text);
    if kind != Kind::Object {
        serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(not_json)?;
        return Err(GatewayError::invalid(
            format!("The request body must be a JSON object, got {}.", kind.name()),
            None,
        ));
    }
    // From the checked text: serde does not check each string's UTF-8 again.
    let c: Top<'_> = serde_json::from_str(text).map_err(not_json)?;
    let model = match (c.model.kind(), c.model.string()) {
        (Some(Kind::String), Some(s)) if !s.trim().is_empty() => s.into_owned(),
        (Some(Kind::String), _) => return Err(GatewayError::invalid("`model` must not be empty.", Some("model"))),
        (Some(other), _) => return Err(wrong_type("model", "a string", other)),
        (None, _) => return Err(GatewayError::invalid("Missing required parameter: `model`.", Some("model"))),
    };
    let mut estimate = Estimate::default();
    match (c.messages.kind(), c.messages.text()) {
        (Some(Kind::Array), Some(msgs)) => {
            let empty = msgs.trim_start().strip_prefix('[').is_some_and(|rest| rest.trim_start().starts_with(']'));
            if empty {
                return Err(GatewayError::invalid("`messages` must not be empty.", Some("messages")));
            }
            for_each(msgs, |i, m| check_message(i, m, &mut estimate))?;
        }
        (Some(other), _) => return Err(wrong_type("messages", "an array", other)),
        (None, _) => return Err(GatewayError::invalid("Missing required parameter: `messages`.", Some("messages"))),
    }
    let stream = match c.stream.kind() {
        None | Some(Kind::Null) => false,
        Some(Kind::Bool) => c.stream.text() == Some("true"),
        Some(other) => return Err(wrong_type("stream", "a boolean", other)),
    };
    let include_usage = match (c.stream_options.kind(), c.stream_options.text()) {
        (None | Some(Kind::Null), _) => false,
        (Some(Kind::Object), Some(text)) => {
            let o: StreamOptions<'_> = serde_json::from_str(text).map_err(|e| {
                GatewayError::invalid(format!("`stream_options` is not valid: {e}."), Some("stream_options"))
            })?;
            match o.include_usage.kind() {
                None | Some(Kind::Null) => false,
                Some(Kind::Bool) => o.include_usage.text() == Some("true"),
                Some(other) => return Err(wrong_type("stream_options.include_usage", "a boolean", other)),
            }
        }
        (Some(other), _) => return Err(wrong_type("stream_options", "an object", other)),
    };
    let (max_tokens, max_tokens_param) = match optional_positive_int(c.max_completion_tokens, "max_completion_tokens")?
    {
        Some(n) => (Some(n), "max_completion_tokens"),
        None => (optional_positive_int(c.max_tokens, "max_tokens")?, "max_tokens"),
    };
    optional_positive_int(c.n, "n")?;
    for (p, value) in [
        ("temperature", c.temperature),
        ("top_p", c.top_p),
        ("presence_penalty", c.presence_penalty),
        ("frequency_penalty", c.frequency_penalty),
    ] {
        match value.kind() {
            None | Some(Kind::Null) | Some(Kind::Number) => {}
            Some(other) => return Err(wrong_type(p, "a number", other)),
        }
    }
    match c.tools.kind() {
        None | Some(Kind::Null) => {}
        Some(Kind::Array) => estimate.text(c.tools.text().unwrap_or_default()),
        Some(other) => return Err(wrong_type("tools", "an array", other)),
    }
    match c.stop.kind() {
        None | Some(Kind::Null) | Some(Kind::String) | Some(Kind::Array) => {}
        Some(other) => return Err(wrong_type("stop", "a string or an array of strings", other)),
    }
    let user = c.user.string().filter(|u| !u.is_empty()).map(Cow::into_owned);
    Ok(ChatRequest {
        raw: raw.clone(),
        requested_model: model,
        stream,
        include_usage,
        max_tokens,
        max_tokens_param,
        user,
        prompt_tokens: estimate.total(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(r.prompt_tokens, 1 + 3 + 3);
        assert_eq!(r.members(&["x_custom", "model"]).len(), 2);
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
