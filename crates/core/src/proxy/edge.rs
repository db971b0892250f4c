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
use axum::response::Response;
use futures::StreamExt;
use serde_json::Value;

use crate::error::GatewayError;
use crate::ingress::messages::{self, StreamTranslator};
use crate::providers::ChatRequest;

/// The formats clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingress {
    /// OpenAI Chat Completions (`POST /v1/chat/completions`): the internal format.
    Chat,
    /// Anthropic Messages (`POST /v1/messages`).
    Messages,
}

/// An answer of the gateway itself is never larger than this (a
/// non-streamed completion, an error).
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

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

/// The body's parser for `ingress`: the internal request, or the 400.
pub fn parser(ingress: Ingress) -> fn(Bytes) -> Result<ChatRequest, GatewayError> {
    match ingress {
        Ingress::Chat => crate::request::parse_chat,
        Ingress::Messages => parse_messages,
    }
}

/// A Messages body as the internal request.
pub fn parse_messages(raw: Bytes) -> Result<ChatRequest, GatewayError> {
    let v: Value = serde_json::from_slice(&raw)
        .map_err(|e| GatewayError::invalid(format!("The request body is not valid JSON: {e}."), None))?;
    internal(&v)
}

/// A `count_tokens` body (a Messages request without `max_tokens`) as the
/// internal request.
pub fn parse_count_tokens(raw: Bytes) -> Result<ChatRequest, GatewayError> {
    let mut v: Value = serde_json::from_slice(&raw)
        .map_err(|e| GatewayError::invalid(format!("The request body is not valid JSON: {e}."), None))?;
    if let Some(o) = v.as_object_mut() {
        o.entry("max_tokens").or_insert(Value::from(1));
    }
    internal(&v)
}

fn internal(v: &Value) -> Result<ChatRequest, GatewayError> {
    let chat = messages::to_chat(v).map_err(|i| GatewayError::invalid(i.message, Some(&i.field)))?;
    let bytes = serde_json::to_vec(&chat).map_err(|_| GatewayError::Internal)?;
    crate::request::parse_chat(Bytes::from(bytes))
}

fn json_response(mut parts: axum::http::response::Parts, v: &Value) -> Response {
    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, Body::from(v.to_string()))
}

/// The path's answer in `ingress`'s shape.
pub async fn answer(ingress: Ingress, response: Response) -> Response {
    if ingress == Ingress::Chat {
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
        return Response::from_parts(parts, Body::from_stream(events(body)));
    }
    let bytes = match axum::body::to_bytes(body, MAX_ANSWER_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            parts.status = axum::http::StatusCode::INTERNAL_SERVER_ERROR;
            return json_response(parts, &messages::error_body("api_error", "The answer could not be read."));
        }
    };
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status.is_success() {
        let model = v.get("model").and_then(Value::as_str).unwrap_or_default().to_string();
        return json_response(parts, &messages::from_chat(&v, &model));
    }
    let message = v.pointer("/error/message").and_then(Value::as_str).unwrap_or("The request failed.");
    json_response(parts, &messages::error_body(messages::error_type(status.as_u16()), message))
}

/// The Messages event stream of the path's Chat Completions stream.
fn events(body: Body) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    struct State {
        inner: axum::body::BodyDataStream,
        buf: Vec<u8>,
        translator: StreamTranslator,
        out: VecDeque<Bytes>,
        ended: bool,
    }
    let state = State {
        inner: body.into_data_stream(),
        buf: Vec::new(),
        translator: StreamTranslator::new(""),
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
                    while let Some(end) = find(&s.buf, b"\n\n") {
                        let event: Vec<u8> = s.buf.drain(..end + 2).collect();
                        translate_event(&mut s.translator, &event, &mut s.out, &mut s.ended);
                        if s.ended {
                            break;
                        }
                    }
                    // The gateway's own events are small: a runaway one ends the stream.
                    if s.buf.len() > MAX_ANSWER_BYTES {
                        s.out.push_back(error_event("api_error", "The stream could not be translated."));
                        s.ended = true;
                    }
                }
                Some(Err(e)) => return Some((Err(std::io::Error::other(e)), s)),
                None => {
                    // Cut without `[DONE]`: the message is closed as it stands.
                    for e in s.translator.finish() {
                        s.out.push_back(Bytes::from(messages::sse(&e)));
                    }
                    s.ended = true;
                }
            }
        }
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn error_event(error_type: &str, message: &str) -> Bytes {
    Bytes::from(messages::sse(&("error", messages::error_body(error_type, message))))
}

/// One Chat Completions SSE event as Messages events.
fn translate_event(t: &mut StreamTranslator, event: &[u8], out: &mut VecDeque<Bytes>, ended: &mut bool) {
    let text = String::from_utf8_lossy(event);
    for line in text.lines() {
        let Some(data) = line.strip_prefix("data:").map(str::trim) else { continue };
        if data == "[DONE]" {
            for e in t.finish() {
                out.push_back(Bytes::from(messages::sse(&e)));
            }
            *ended = true;
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else { continue };
        if let Some(err) = v.get("error") {
            let message = err.get("message").and_then(Value::as_str).unwrap_or("The upstream failed.");
            out.push_back(error_event("api_error", message));
            *ended = true;
            return;
        }
        if let Some(model) = v.get("model").and_then(Value::as_str) {
            t.set_model(model);
        }
        for e in t.chunk(&v) {
            out.push_back(Bytes::from(messages::sse(&e)));
        }
    }
}
