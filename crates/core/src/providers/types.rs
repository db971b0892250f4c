//! The types every adapter shares: the client's request as the adapters
//! see it ([`ChatRequest`]), what comes back ([`Completion`], [`StreamEvent`],
//! [`Usage`]), why an upstream call failed ([`UpstreamError`]), and the
//! helpers that build OpenAI answers. Re-exported by [`super`] (the
//! dispatch), which the adapters never import back.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use serde_json::{Map, Value};

use super::body::BodyError;
use crate::jsonscan;

/// The client's request as the adapters see it: its bytes and the few
/// fields the gateway itself needs, read while validating. No JSON tree of
/// the body is built: the OpenAI adapter forwards [`ChatRequest::raw`] with
/// `model` replaced; the translating adapters parse the members they
/// translate ([`ChatRequest::members`]) after admission, and unknown
/// top-level members never become a `Value`.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// The body's bytes as the client sent them: a JSON object, validated
    /// (a string `model`, a non-empty `messages` array of objects with a
    /// `role`; see `request::parse_chat`).
    pub raw: Bytes,
    /// `model` as the client sent it.
    pub requested_model: String,
    pub stream: bool,
    /// The client asked for `stream_options.include_usage`.
    pub include_usage: bool,
    /// `max_completion_tokens` or `max_tokens` when given.
    pub max_tokens: Option<u64>,
    /// Which of the two named `max_tokens` (for errors about it).
    pub max_tokens_param: &'static str,
    /// The request's `user`, when a non-empty string.
    pub user: Option<String>,
    /// Prompt tokens estimated while validating (`admission::tokens`).
    pub prompt_tokens: u64,
    /// What is asked: a completion (`raw` is a Chat Completions body) or
    /// embeddings (`raw` is an Embeddings body: `stream` is false and
    /// `max_tokens` is `Some(0)`, no output is produced).
    pub mode: crate::config::ModelMode,
    /// The client's own request when it came in an upstream's format (a
    /// Messages request): an upstream of that format gets it as it came,
    /// and answers in it ([`Completion::native`], [`StreamEvent::Raw`]).
    pub native: Option<NativeRequest>,
}

/// A request in an upstream's own format (Anthropic Messages), as the
/// client sent it, with the headers that go with it.
#[derive(Debug, Clone)]
pub struct NativeRequest {
    pub raw: Bytes,
    /// `anthropic-version`, when the client sent one.
    pub version: Option<String>,
    /// `anthropic-beta`, when the client sent one.
    pub beta: Option<String>,
}

/// The top-level members the translating adapters (Anthropic, Gemini, the
/// simulator) read.
pub const TRANSLATED_MEMBERS: [&str; 17] = [
    "messages",
    "max_completion_tokens",
    "max_tokens",
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "stop",
    "n",
    "seed",
    "user",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "stream",
    "stream_options",
];

impl ChatRequest {
    /// The top-level members named in `names`, parsed; every other member
    /// is skipped without being built (the last of duplicate members wins).
    pub fn members(&self, names: &[&str]) -> Map<String, Value> {
        let raw = &self.raw[..];
        let mut out = Map::new();
        let _ = crate::jsonscan::members(raw, |m| {
            let key: std::borrow::Cow<'_, str> = if m.key_escaped() {
                let quoted = &raw[m.span.start..m.span.start + m.key.len() + 2];
                match serde_json::from_slice::<String>(quoted) {
                    Ok(k) => k.into(),
                    Err(_) => return,
                }
            } else {
                match std::str::from_utf8(m.key) {
                    Ok(k) => k.into(),
                    Err(_) => return,
                }
            };
            if !names.contains(&key.as_ref()) {
                return;
            }
            if let Ok(v) = serde_json::from_slice::<Value>(&raw[m.value]) {
                out.insert(key.into_owned(), v);
            }
        });
        out
    }

    /// [`ChatRequest::members`] for the translating adapters.
    pub fn translated(&self) -> Map<String, Value> {
        self.members(&TRANSLATED_MEMBERS)
    }
}

/// An upstream body's bytes, translated by `f` from the members of the
/// client's body that the adapters read: inline for a small body, on the
/// bounded blocking pool for a large one (see `limited::bounded`), so a
/// large prompt never holds an event loop.
pub async fn translate_body(
    req: &ChatRequest,
    f: impl FnOnce(&Map<String, Value>) -> Value + Send + 'static,
) -> Vec<u8> {
    let req = req.clone();
    crate::limited::bounded(req.raw.len(), move || serde_json::to_vec(&f(&req.translated())).unwrap_or_default())
        .await
        .unwrap_or_default()
}

/// A JSON object body (the client's) with `model` replaced and, for
/// streams, `stream_options.include_usage` forced on (OpenAI's way to get
/// a stream's usage). The bytes are copied member by member with only
/// `model` rewritten (`stream_options` merged with `include_usage: true` or
/// appended when `stream`); no member is parsed but `stream_options` when
/// it must be merged, so a body costs one copy of itself whatever it holds.
pub fn rewrite_model(raw: &[u8], upstream_model: &str, stream: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + upstream_model.len() + 48);
    out.push(b'{');
    let (mut model_seen, mut stream_seen, mut options_seen) = (false, false, false);
    let result = jsonscan::members(raw, |m| {
        let escaped;
        let key: &[u8] = if m.key_escaped() {
            let quoted = &raw[m.span.start..m.span.start + m.key.len() + 2];
            escaped = serde_json::from_slice::<String>(quoted).unwrap_or_default();
            escaped.as_bytes()
        } else {
            m.key
        };
        if out.len() > 1 {
            out.push(b',');
        }
        match key {
            b"model" if !model_seen => {
                model_seen = true;
                out.extend_from_slice(b"\"model\":");
                // A JSON string always serializes.
                let _ = serde_json::to_writer(&mut out, upstream_model);
            }
            b"stream" if stream => {
                stream_seen = true;
                out.extend_from_slice(b"\"stream\":true");
            }
            b"stream_options" if stream => {
                options_seen = true;
                let mut options =
                    serde_json::from_slice::<Map<String, Value>>(&raw[m.value.clone()]).unwrap_or_default();
                if options.get("include_usage") == Some(&Value::Bool(true)) {
                    out.extend_from_slice(&raw[m.span]);
                } else {
                    options.insert("include_usage".into(), Value::Bool(true));
                    out.extend_from_slice(b"\"stream_options\":");
                    let _ = serde_json::to_writer(&mut out, &options);
                }
            }
            _ => out.extend_from_slice(&raw[m.span]),
        }
    });
    if result.is_err() {
        // Not a JSON object (a request built in code without a body).
        out.truncate(1);
        (model_seen, stream_seen, options_seen) = (false, false, false);
    }
    let mut add = |member: &[u8]| {
        if out.len() > 1 {
            out.push(b',');
        }
        out.extend_from_slice(member);
    };
    if !model_seen {
        let mut m = b"\"model\":".to_vec();
        let _ = serde_json::to_writer(&mut m, upstream_model);
        add(&m);
    }
    if stream && !stream_seen {
        add(b"\"stream\":true");
    }
    if stream && !options_seen {
        add(b"\"stream_options\":{\"include_usage\":true}");
    }
    out.push(b'}');
    out
}

/// Where a request goes: the upstream model name on the chosen provider.
#[derive(Debug, Clone)]
pub struct RouteTarget {
    pub upstream_model: String,
}

/// Token usage reported by the upstream (or computed by the simulator).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// All prompt tokens, cached ones included (OpenAI `prompt_tokens`).
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Prompt tokens served from the provider's cache (a subset of `input_tokens`).
    pub cached_tokens: u64,
}

impl Usage {
    /// The OpenAI `usage` object for this usage.
    pub fn to_openai(&self) -> Value {
        let mut u = serde_json::json!({
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.input_tokens.saturating_add(self.output_tokens),
        });
        if self.cached_tokens > 0 {
            u["prompt_tokens_details"] = serde_json::json!({ "cached_tokens": self.cached_tokens });
        }
        u
    }
}

/// A non-streamed answer.
#[derive(Debug, Clone)]
pub struct Completion {
    /// OpenAI `chat.completion` JSON, ready for the client (it includes `usage`).
    pub body: Bytes,
    /// Usage, when the upstream reported it.
    pub usage: Option<Usage>,
    /// `body` is in the client's own format (the upstream was given the
    /// [`NativeRequest`]), not a `chat.completion`.
    pub native: bool,
}

/// One item of a streamed answer.
#[derive(Debug, Clone)]
pub enum StreamEvent {
    /// One OpenAI `chat.completion.chunk` JSON object (serialized, no `data:` prefix).
    Chunk(Bytes),
    /// The final usage, with the OpenAI usage chunk (`choices: []`, `usage: {...}`)
    /// that the gateway forwards only to clients that asked for it.
    Usage { usage: Usage, chunk: Bytes },
    /// One upstream event as the client gets it, framed (`event:` and
    /// `data:` lines): the stream answers a [`NativeRequest`]. Its content
    /// also comes as `Chunk`s, which are then only counted, not sent.
    Raw(Bytes),
}

pub type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, UpstreamError>> + Send>>;

/// Why an upstream call failed. `message` must be safe to show to the client:
/// never a provider key, never our request headers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct UpstreamError {
    pub kind: UpstreamErrorKind,
    pub message: String,
    /// HTTP status the upstream answered with, for `Status`.
    pub status: Option<u16>,
    /// The upstream's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    /// Could not connect or the connection broke before an answer.
    Connect,
    /// Timed out (connect, first byte, stream idle gap or total).
    Timeout,
    /// The upstream answered with a non-2xx status.
    Status,
    /// The upstream answered something we could not understand (bad JSON, bad SSE),
    /// or a stream ended without its terminal event.
    Protocol,
    /// The upstream refused the content (e.g. a Gemini safety block).
    ContentBlocked,
}

impl UpstreamError {
    pub fn new(kind: UpstreamErrorKind, message: impl Into<String>) -> Self {
        UpstreamError { kind, message: message.into(), status: None, retry_after: None }
    }

    pub fn protocol(message: impl Into<String>) -> Self {
        Self::new(UpstreamErrorKind::Protocol, message)
    }

    /// Builds the error for a non-2xx answer, keeping the upstream's own message
    /// (`error.message`, `message`, or `error` as a string) when its body has one.
    pub fn from_status(provider: &str, status: u16, body: &[u8], retry_after: Option<Duration>) -> Self {
        let upstream_message = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
            let candidates =
                [v.pointer("/error/message"), v.get("message"), v.get("error"), v.pointer("/0/error/message")];
            candidates.into_iter().flatten().find_map(|m| m.as_str().map(|s| s.to_string()))
        });
        let mut message = match upstream_message {
            Some(m) => format!("upstream {provider} returned HTTP {status}: {m}"),
            None => format!("upstream {provider} returned HTTP {status}"),
        };
        truncate_chars(&mut message, 1000);
        UpstreamError { kind: UpstreamErrorKind::Status, message, status: Some(status), retry_after }
    }

    /// Maps an error of the upstream client (connecting, sending, reading
    /// the response head) without exposing URLs or headers.
    pub fn from_client(provider: &str, err: &hyper_util::client::legacy::Error) -> Self {
        if err.is_connect() {
            Self::connect_failed(provider)
        } else {
            Self::request_failed(provider)
        }
    }

    /// No connection to the upstream could be made.
    pub fn connect_failed(provider: &str) -> Self {
        Self::new(UpstreamErrorKind::Connect, format!("could not connect to upstream {provider}"))
    }

    /// The connection failed while sending or before the answer's head.
    pub fn request_failed(provider: &str) -> Self {
        Self::new(UpstreamErrorKind::Connect, format!("request to upstream {provider} failed"))
    }

    /// Maps an error while reading an upstream's response body.
    pub fn from_body(provider: &str, err: &BodyError) -> Self {
        tracing::debug!(error = %err, provider, "upstream answer body failed");
        if err.is_timeout() {
            Self::new(UpstreamErrorKind::Timeout, format!("upstream {provider} timed out"))
        } else {
            Self::new(UpstreamErrorKind::Connect, format!("connection to upstream {provider} broke"))
        }
    }
}

fn truncate_chars(s: &mut String, max: usize) {
    if let Some((idx, _)) = s.char_indices().nth(max) {
        s.truncate(idx);
    }
}

/// Reads `Retry-After` (seconds, or an HTTP date which we treat as 1 s) from a response.
pub fn retry_after_of(headers: &hyper::HeaderMap) -> Option<Duration> {
    let v = headers.get(hyper::header::RETRY_AFTER)?.to_str().ok()?;
    match v.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => Some(Duration::from_secs_f64(secs.min(3600.0))),
        _ => Some(Duration::from_secs(1)),
    }
}

/// `chatcmpl-…` id for answers we assemble ourselves.
pub fn new_completion_id() -> String {
    format!("chatcmpl-{}", crate::ids::new_uuid().simple())
}

/// Seconds since the Unix epoch, for `created`.
pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Builds one OpenAI chunk object (serialized) with the given choices.
pub fn chunk_bytes(id: &str, created: i64, model: &str, choices: Value) -> Bytes {
    let v = serde_json::json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": choices,
    });
    Bytes::from(v.to_string())
}

/// Builds the OpenAI usage chunk (`choices: []`).
pub fn usage_chunk_bytes(id: &str, created: i64, model: &str, usage: &Usage) -> Bytes {
    let v = serde_json::json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage.to_openai(),
    });
    Bytes::from(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_error_keeps_upstream_message() {
        let e = UpstreamError::from_status("openai", 400, br#"{"error":{"message":"bad temperature"}}"#, None);
        assert_eq!(e.status, Some(400));
        assert!(e.message.contains("bad temperature"), "{}", e.message);
        let e = UpstreamError::from_status("gemini", 503, b"<html>oops</html>", None);
        assert_eq!(e.message, "upstream gemini returned HTTP 503");
    }

    #[test]
    fn usage_totals_saturate() {
        let u = Usage { input_tokens: u64::MAX, output_tokens: 2, cached_tokens: 0 };
        assert_eq!(u.to_openai()["total_tokens"], u64::MAX);
    }

    #[test]
    fn usage_object_has_totals() {
        let u = Usage { input_tokens: 10, output_tokens: 5, cached_tokens: 3 };
        let v = u.to_openai();
        assert_eq!(v["total_tokens"], 15);
        assert_eq!(v["prompt_tokens_details"]["cached_tokens"], 3);
    }
}
