//! The client's format at the edge of the one request path: a request in
//! another format is translated into the internal (Chat Completions)
//! request before anything else reads it, and the answer — errors
//! included — back into that format after the path produced it (see
//! [`crate::ingress`]). Authentication, limits, admission, routing and
//! accounting never see the difference.

use std::collections::VecDeque;

use axum::body::{Body, Bytes};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::Value;

use super::answer::NativeAnswer;
use crate::error::GatewayError;
use crate::ingress::{self, messages, responses};
use crate::providers::{ChatRequest, NativeRequest};

/// The formats clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingress {
    /// OpenAI Chat Completions (`POST /v1/chat/completions`): the internal format.
    Chat,
    /// Anthropic Messages (`POST /v1/messages`).
    Messages,
    /// OpenAI Responses (`POST /v1/responses`), stateless.
    Responses,
    /// OpenAI Embeddings (`POST /v1/embeddings`): models with `mode = "embedding"`.
    Embeddings,
}

impl Ingress {
    /// The name recorded in usage records (`ingress`).
    pub fn as_str(self) -> &'static str {
        match self {
            Ingress::Chat => "chat",
            Ingress::Messages => "messages",
            Ingress::Responses => "responses",
            Ingress::Embeddings => "embeddings",
        }
    }
}

/// An answer of the gateway itself is never larger than this (a
/// non-streamed completion, an error).
const MAX_ANSWER_BYTES: usize = crate::providers::http::MAX_RESPONSE_BYTES;

/// One event of the gateway's own stream, at most: an upstream event (at
/// most [`crate::providers::sse::MAX_EVENT_BYTES`]) with room for its
/// translation into a Chat Completions chunk.
const MAX_EVENT_BYTES: usize = 2 * crate::providers::sse::MAX_EVENT_BYTES;

/// Anthropic clients send their key as `x-api-key`: taken as the bearer
/// token when no `Authorization` header is present.
pub fn messages_auth(headers: &mut HeaderMap) {
    if headers.contains_key(AUTHORIZATION) {
        return;
    }
    let bearer = headers.get("x-api-key").and_then(|k| k.to_str().ok()).map(|k| format!("Bearer {}", k.trim()));
    if let Some(v) = bearer.and_then(|b| HeaderValue::from_str(&b).ok()) {
        headers.insert(AUTHORIZATION, v);
    }
}

/// The client's own request, kept for upstreams of its format: a Messages
/// request with its `anthropic-version` and `anthropic-beta` (Anthropic
/// upstreams get it as it came).
pub fn native(ingress: Ingress, headers: &HeaderMap, raw: &Bytes) -> Option<NativeRequest> {
    if ingress != Ingress::Messages {
        return None;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    Some(NativeRequest { raw: raw.clone(), version: header("anthropic-version"), beta: header("anthropic-beta") })
}

/// A stream's error event in the client's format, for a stream passed
/// through from an upstream of that format (a Messages stream).
pub fn native_error_event(status: u16, message: &str) -> Bytes {
    Bytes::from(ingress::sse(&("error", messages::error_body(messages::error_type(status), message))))
}

/// The body's parser for `ingress`: the internal request, or the 400.
pub fn parser(ingress: Ingress) -> fn(Bytes) -> Result<ChatRequest, GatewayError> {
    match ingress {
        Ingress::Chat => crate::request::parse_chat,
        Ingress::Messages => parse_messages,
        Ingress::Responses => parse_responses,
        Ingress::Embeddings => crate::request::parse_embeddings,
    }
}

/// A Responses body as the internal request.
pub fn parse_responses(raw: Bytes) -> Result<ChatRequest, GatewayError> {
    internal(responses::to_chat(&json_body(&raw)?))
}

/// A request body as JSON, or the 400 saying why not.
fn json_body(raw: &Bytes) -> Result<Value, GatewayError> {
    serde_json::from_slice(raw)
        .map_err(|e| GatewayError::invalid(format!("The request body is not valid JSON: {e}."), None))
}

/// A translated request (or why it could not be) as the internal request.
fn internal(translated: Result<Value, crate::ingress::messages::Invalid>) -> Result<ChatRequest, GatewayError> {
    let chat = translated.map_err(|i| GatewayError::invalid(i.message, Some(&i.field)))?;
    let bytes = serde_json::to_vec(&chat).map_err(|_| GatewayError::Internal)?;
    crate::request::parse_chat(Bytes::from(bytes))
}

/// A Messages body as the internal request.
pub fn parse_messages(raw: Bytes) -> Result<ChatRequest, GatewayError> {
    internal(messages::to_chat(&json_body(&raw)?))
}

/// A `count_tokens` body (a Messages request without `max_tokens`) as the
/// internal request.
pub fn parse_count_tokens(raw: Bytes) -> Result<ChatRequest, GatewayError> {
    let mut v = json_body(&raw)?;
    if let Some(o) = v.as_object_mut() {
        o.entry("max_tokens").or_insert(Value::from(1));
    }
    internal(messages::to_chat(&v))
}

fn json_response(mut parts: axum::http::response::Parts, v: &Value) -> Response {
    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, Body::from(v.to_string()))
}

/// The path's answer in `ingress`'s shape.
pub async fn answer(ingress: Ingress, response: Response) -> Response {
    if matches!(ingress, Ingress::Chat | Ingress::Embeddings) || response.extensions().get::<NativeAnswer>().is_some() {
        return response;
    }
    let status = response.status();
    let (mut parts, body) = response.into_parts();
    let streamed = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if streamed && status.is_success() {
        parts.headers.remove(CONTENT_LENGTH);
        let translator = match ingress {
            Ingress::Responses => Translator::Responses(responses::StreamTranslator::new()),
            _ => Translator::Messages(messages::StreamTranslator::new("")),
        };
        return Response::from_parts(parts, Body::from_stream(events(body, translator)));
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ANSWER_BYTES).await else {
        tracing::error!("the gateway's own answer could not be read for translation");
        return internal_error(ingress);
    };
    if ingress == Ingress::Responses && !status.is_success() {
        // Errors are shaped as Chat Completions' already.
        return Response::from_parts(parts, Body::from(bytes));
    }
    // A large answer is parsed and rebuilt off the event loop.
    match crate::limited::bounded(bytes.len(), move || translate_answer(ingress, status, &bytes)).await {
        Some(body) => json_response(parts, &body),
        None => {
            tracing::error!("the gateway's own answer could not be translated");
            internal_error(ingress)
        }
    }
}

/// The gateway's internal error (500) in `ingress`'s shape.
fn internal_error(ingress: Ingress) -> Response {
    let e = GatewayError::Internal;
    match ingress {
        Ingress::Messages => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(messages::error_body(messages::error_type(500), &e.message())),
        )
            .into_response(),
        Ingress::Chat | Ingress::Responses | Ingress::Embeddings => e.into_response(),
    }
}

/// A complete answer (or error) of the path in `ingress`'s shape.
fn translate_answer(ingress: Ingress, status: axum::http::StatusCode, bytes: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    if ingress == Ingress::Responses {
        return responses::from_chat(&v);
    }
    if status.is_success() {
        let model = v.get("model").and_then(Value::as_str).unwrap_or_default();
        return messages::from_chat(&v, model);
    }
    let message = v.pointer("/error/message").and_then(Value::as_str).unwrap_or("The request failed.");
    messages::error_body(messages::error_type(status.as_u16()), message)
}

/// A client format's stream translator.
enum Translator {
    Messages(messages::StreamTranslator),
    Responses(responses::StreamTranslator),
}

impl Translator {
    fn chunk(&mut self, v: &Value, out: &mut VecDeque<Bytes>) {
        let events = match self {
            Translator::Messages(t) => {
                if let Some(model) = v.get("model").and_then(Value::as_str) {
                    t.set_model(model);
                }
                t.chunk(v)
            }
            Translator::Responses(t) => t.chunk(v),
        };
        out.extend(events.iter().map(|e| Bytes::from(ingress::sse(e))));
    }

    fn finish(&mut self, out: &mut VecDeque<Bytes>) {
        let events = match self {
            Translator::Messages(t) => t.finish(),
            Translator::Responses(t) => t.finish(),
        };
        out.extend(events.iter().map(|e| Bytes::from(ingress::sse(e))));
    }

    fn error(&self, message: &str) -> Bytes {
        let event = match self {
            Translator::Messages(_) => ("error", messages::error_body("api_error", message)),
            Translator::Responses(_) => (
                "error",
                serde_json::json!({"type": "error", "code": "upstream_error", "message": message, "param": null}),
            ),
        };
        Bytes::from(ingress::sse(&event))
    }
}

/// The client format's event stream of the path's Chat Completions stream.
fn events(body: Body, translator: Translator) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    struct State {
        inner: axum::body::BodyDataStream,
        buf: Vec<u8>,
        /// How much of `buf` holds no event boundary (not searched again).
        scanned: usize,
        translator: Translator,
        out: VecDeque<Bytes>,
        ended: bool,
    }
    let state = State {
        inner: body.into_data_stream(),
        buf: Vec::new(),
        scanned: 0,
        translator,
        out: VecDeque::new(),
        ended: false,
    };
    futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(b) = s.out.pop_front() {
                return Some((Ok(b), s));
            }
            if s.ended {
                return None;
            }
            match s.inner.next().await {
                Some(Ok(bytes)) => {
                    s.buf.extend_from_slice(&bytes);
                    // A boundary may straddle the previous read: one byte back.
                    while let Some(at) = find(&s.buf[s.scanned.saturating_sub(1)..], b"\n\n") {
                        let end = s.scanned.saturating_sub(1) + at + 2;
                        let event: Vec<u8> = s.buf.drain(..end).collect();
                        s.scanned = 0;
                        translate_event(&mut s.translator, &event, &mut s.out, &mut s.ended);
                        if s.ended {
                            break;
                        }
                    }
                    s.scanned = s.buf.len();
                    // What one read produced leaves in one write.
                    if s.out.len() > 1 {
                        let mut merged = Vec::with_capacity(s.out.iter().map(Bytes::len).sum());
                        for b in s.out.drain(..) {
                            merged.extend_from_slice(&b);
                        }
                        s.out.push_back(Bytes::from(merged));
                    }
                    // One of the gateway's own events is at most an upstream
                    // event translated: a larger one ends the stream.
                    if s.buf.len() > MAX_EVENT_BYTES {
                        let e = s.translator.error("The stream could not be translated.");
                        s.out.push_back(e);
                        s.ended = true;
                    }
                }
                Some(Err(e)) => return Some((Err(std::io::Error::other(e)), s)),
                None => {
                    // Cut without `[DONE]`: the answer is closed as it stands.
                    s.translator.finish(&mut s.out);
                    s.ended = true;
                }
            }
        }
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One Chat Completions SSE event as the client format's events.
fn translate_event(t: &mut Translator, event: &[u8], out: &mut VecDeque<Bytes>, ended: &mut bool) {
    let text = String::from_utf8_lossy(event);
    for line in text.lines() {
        let Some(data) = line.strip_prefix("data:").map(str::trim) else { continue };
        if data == "[DONE]" {
            t.finish(out);
            *ended = true;
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else { continue };
        if let Some(err) = v.get("error") {
            let message = err.get("message").and_then(Value::as_str).unwrap_or("The upstream failed.");
            out.push_back(t.error(message));
            *ended = true;
            return;
        }
        t.chunk(&v, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events split anywhere across reads, a boundary included, come out whole.
    #[tokio::test]
    async fn events_split_across_reads_are_translated_whole() {
        let chunk = r#"data: {"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#;
        let text = format!("{chunk}\n\n{chunk}\n\ndata: [DONE]\n\n");
        for cut in [1, chunk.len(), chunk.len() + 1, chunk.len() + 2, text.len() - 1] {
            let pieces: Vec<Result<Bytes, std::io::Error>> =
                vec![Ok(Bytes::from(text[..cut].to_string())), Ok(Bytes::from(text[cut..].to_string()))];
            let body = Body::from_stream(futures::stream::iter(pieces));
            let out: Vec<Bytes> = events(body, Translator::Messages(messages::StreamTranslator::new("")))
                .map(|b| b.unwrap_or_default())
                .collect()
                .await;
            let all = String::from_utf8(out.concat()).unwrap_or_default();
            let deltas = all.matches("event: content_block_delta").count();
            assert_eq!(deltas, 2, "cut at {cut}: {all}");
            assert!(all.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"), "cut at {cut}");
        }
    }
}
