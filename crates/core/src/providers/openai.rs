//! OpenAI Chat Completions (also DeepSeek and any OpenAI-compatible server).
//! The client's body passes through (unknown fields included) with `model`
//! replaced by the upstream model; streams always ask the upstream for usage.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use super::http::{self, Step, StreamTranslate, Timeouts, MAX_RESPONSE_BYTES};
use super::sse::SseEvent;
use super::types::{
    ChatRequest, Completion, EventStream, RouteTarget, StreamEvent, UpstreamError, UpstreamErrorKind, Usage,
};
use crate::config::{ProviderSettings, Secret};
use crate::jsonscan;

#[derive(Debug)]
pub struct OpenAi {
    name: String,
    /// The chat completions URL, parsed once (an invalid one fails every call).
    target: http::Target,
    /// The embeddings URL, likewise.
    embeddings: http::Target,
    api_key: Option<Secret>,
    timeouts: Timeouts,
    http: super::http::HttpClient,
}

impl OpenAi {
    pub fn new(settings: &ProviderSettings, http: super::http::HttpClient) -> Self {
        OpenAi {
            name: settings.name.clone(),
            target: http::parse_uri(&format!("{}/chat/completions", settings.base_url)),
            embeddings: http::parse_uri(&format!("{}/embeddings", settings.base_url)),
            api_key: settings.api_key.clone(),
            timeouts: Timeouts::of(settings),
            http,
        }
    }

    fn request(&self, body: Vec<u8>) -> http::Post {
        self.post(self.target.clone(), body)
    }

    fn post(&self, target: http::Target, body: Vec<u8>) -> http::Post {
        let post = self.http.post(target, body);
        match &self.api_key {
            Some(key) => post.bearer(key.expose()),
            None => post,
        }
    }

    pub async fn complete(&self, req: &ChatRequest, target: &RouteTarget) -> Result<Completion, UpstreamError> {
        let body = upstream_body(req, &target.upstream_model, false);
        let (response, deadline) = http::send(&self.name, self.request(body), self.timeouts).await?;
        let bytes = http::read_body_until(&self.name, response, deadline, MAX_RESPONSE_BYTES).await?;
        let usage = parse_completion_usage(&self.name, &bytes)?;
        Ok(Completion { body: bytes, usage, native: false })
    }

    /// Embeddings: the client's body with `model` replaced, the answer as it came.
    pub async fn embed(&self, req: &ChatRequest, target: &RouteTarget) -> Result<Completion, UpstreamError> {
        let body = upstream_body(req, &target.upstream_model, false);
        let post = self.post(self.embeddings.clone(), body);
        let (response, deadline) = http::send(&self.name, post, self.timeouts).await?;
        let bytes = http::read_body_until(&self.name, response, deadline, MAX_RESPONSE_BYTES).await?;
        let usage = super::embeddings::parse_usage(&self.name, &bytes)?;
        Ok(Completion { body: bytes, usage, native: false })
    }

    pub async fn stream(&self, req: &ChatRequest, target: &RouteTarget) -> Result<EventStream, UpstreamError> {
        let body = upstream_body(req, &target.upstream_model, true);
        let (response, deadline) = http::send(&self.name, self.request(body), self.timeouts).await?;
        let events = http::sse_events(&self.name, response, self.timeouts, deadline);
        Ok(http::translate(events, StreamTranslator::new(&self.name)))
    }
}

/// The upstream body: the client's fields with `model` replaced and, for
/// streams, `stream_options.include_usage` forced on (see
/// [`super::types::rewrite_model`]).
pub fn upstream_body(req: &ChatRequest, upstream_model: &str, stream: bool) -> Vec<u8> {
    super::types::rewrite_model(&req.raw, upstream_model, stream)
}

#[derive(Deserialize)]
struct OaUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<OaPromptDetails>,
}

#[derive(Deserialize)]
struct OaPromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl From<OaUsage> for Usage {
    fn from(u: OaUsage) -> Self {
        Usage {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
            cached_tokens: u.prompt_tokens_details.and_then(|d| d.cached_tokens).unwrap_or(0),
        }
    }
}

/// Reads `usage` out of a `chat.completion` body (the body itself passes
/// through): the top-level members are walked, only `usage` is parsed.
pub fn parse_completion_usage(provider: &str, body: &[u8]) -> Result<Option<Usage>, UpstreamError> {
    let invalid = || UpstreamError::protocol(format!("upstream {provider} answered with invalid JSON"));
    let mut choices = false;
    let mut usage = None;
    jsonscan::members(body, |m| match m.key {
        b"choices" => choices = !jsonscan::is_null(body, &m.value),
        b"usage" if !jsonscan::is_null(body, &m.value) => usage = Some(m.value),
        _ => {}
    })
    .map_err(|_| invalid())?;
    if !choices {
        return Err(UpstreamError::protocol(format!("upstream {provider} answer has no choices")));
    }
    match usage {
        Some(range) => serde_json::from_slice::<OaUsage>(&body[range]).map(|u| Some(u.into())).map_err(|_| invalid()),
        None => Ok(None),
    }
}

/// What the stream translator reads of a chunk: whether it has choices,
/// and its `usage` and `error` members (parsed only when present).
struct ChunkPeek {
    has_choices: bool,
    usage: Option<OaUsage>,
    error: Option<Value>,
}

impl ChunkPeek {
    fn read(chunk: &[u8]) -> Option<ChunkPeek> {
        let mut peek = ChunkPeek { has_choices: false, usage: None, error: None };
        let (mut usage, mut error, mut malformed) = (None, None, false);
        jsonscan::members(chunk, |m| match m.key {
            b"choices" if jsonscan::is_null(chunk, &m.value) => {}
            // `choices` is an array or nothing.
            b"choices" if chunk[m.value.start] != b'[' => malformed = true,
            b"choices" => peek.has_choices = jsonscan::is_non_empty_array(chunk, &m.value),
            b"usage" if !jsonscan::is_null(chunk, &m.value) => usage = Some(m.value),
            b"error" if !jsonscan::is_null(chunk, &m.value) => error = Some(m.value),
            _ => {}
        })
        .ok()?;
        if malformed {
            return None;
        }
        if let Some(r) = usage {
            peek.usage = Some(serde_json::from_slice(&chunk[r]).ok()?);
        }
        if let Some(r) = error {
            peek.error = Some(serde_json::from_slice(&chunk[r]).ok()?);
        }
        Some(peek)
    }
}

/// Turns upstream stream events into gateway events.
#[derive(Debug)]
pub struct StreamTranslator {
    provider: String,
    usage_seen: bool,
}

impl StreamTranslator {
    pub fn new(provider: &str) -> Self {
        StreamTranslator { provider: provider.to_string(), usage_seen: false }
    }
}

impl StreamTranslate for StreamTranslator {
    fn event(&mut self, event: &SseEvent) -> Step {
        let provider = &self.provider;
        let trimmed = event.data.trim().as_bytes();
        if trimmed == b"[DONE]" {
            return Step::done(Vec::new());
        }
        if trimmed.is_empty() {
            return Step::default();
        }
        let Some(peek) = ChunkPeek::read(trimmed) else {
            return Step::fail(UpstreamError::protocol(format!("upstream {provider} sent a malformed stream event")));
        };
        if let Some(err) = peek.error {
            let msg = err.get("message").and_then(Value::as_str).unwrap_or("error event");
            return Step::fail(UpstreamError::new(
                UpstreamErrorKind::Status,
                format!("upstream {provider} reported an error mid-stream: {msg}"),
            ));
        }
        let mut out = Vec::new();
        match (peek.usage, peek.has_choices) {
            (Some(u), false) if !self.usage_seen => {
                self.usage_seen = true;
                out.push(Ok(StreamEvent::Usage { usage: u.into(), chunk: Bytes::copy_from_slice(trimmed) }));
            }
            (Some(u), true) if !self.usage_seen => {
                // Usage on a content chunk (some compatible servers): forward the
                // content without it and report usage as its own chunk.
                self.usage_seen = true;
                let usage: Usage = u.into();
                let mut v: Value = serde_json::from_slice(trimmed).unwrap_or(Value::Null);
                let (id, created, model) = (
                    v.get("id").and_then(Value::as_str).unwrap_or("").to_string(),
                    v.get("created").and_then(Value::as_i64).unwrap_or(0),
                    v.get("model").and_then(Value::as_str).unwrap_or("").to_string(),
                );
                if let Some(obj) = v.as_object_mut() {
                    obj.remove("usage");
                }
                out.push(Ok(StreamEvent::Chunk(Bytes::from(v.to_string()))));
                out.push(Ok(StreamEvent::Usage {
                    usage,
                    chunk: super::types::usage_chunk_bytes(&id, created, &model, &usage),
                }));
            }
            (_, true) => out.push(Ok(StreamEvent::Chunk(Bytes::copy_from_slice(trimmed)))),
            (_, false) => {}
        }
        Step::emit(out)
    }

    fn end(&mut self) -> Vec<Result<StreamEvent, UpstreamError>> {
        vec![Err(UpstreamError::new(
            UpstreamErrorKind::Connect,
            format!("upstream {} stream ended before [DONE]", self.provider),
        ))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(raw: &str) -> ChatRequest {
        let body: serde_json::Map<String, Value> = serde_json::from_str(raw).unwrap();
        ChatRequest {
            stream: body.get("stream") == Some(&Value::Bool(true)),
            raw: Bytes::copy_from_slice(raw.as_bytes()),
            requested_model: "alias".into(),
            include_usage: false,
            max_tokens: None,
            max_tokens_param: "max_tokens",
            user: None,
            prompt_tokens: 0,
            mode: crate::config::ModelMode::Chat,
            native: None,
        }
    }

    fn sent(raw: &str, stream: bool) -> String {
        String::from_utf8(upstream_body(&chat(raw), "gpt-4.1", stream)).unwrap()
    }

    #[test]
    fn body_passes_unknown_fields_and_forces_usage() {
        // Merged: the client's stream_options lack include_usage.
        let raw = r#"{"model":"alias","messages":[{"role":"user","content":"hi"}],"logit_bias":{"1":2},"stream":true,"stream_options":{"foo":1}}"#;
        let body: Value = serde_json::from_str(&sent(raw, true)).unwrap();
        assert_eq!(body["model"], "gpt-4.1");
        assert_eq!(body["logit_bias"]["1"], 2);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["stream_options"]["foo"], 1);
        // Built in code (no client bytes): the model and the stream options.
        let mut req = chat(raw);
        req.raw = Bytes::new();
        let again: Value = serde_json::from_slice(&upstream_body(&req, "gpt-4.1", true)).unwrap();
        assert_eq!(
            again,
            serde_json::json!({"model": "gpt-4.1", "stream": true, "stream_options": {"include_usage": true}})
        );
    }

    #[test]
    fn client_bytes_are_forwarded_with_only_the_model_replaced() {
        let raw = r#"{ "messages" : [{"role":"user","content":"a \"quoted\" }"}], "model":"alias",
            "temperature":0.50, "x_vendor":{"deep":[1,{"a":null}]} }"#;
        assert_eq!(
            sent(raw, false),
            r#"{"messages" : [{"role":"user","content":"a \"quoted\" }"}],"model":"gpt-4.1","temperature":0.50,"x_vendor":{"deep":[1,{"a":null}]}}"#
        );
        // Streams: usage requested when the client did not; kept when it did.
        let raw = r#"{"model":"alias","messages":[],"stream":true}"#;
        assert_eq!(
            sent(raw, true),
            r#"{"model":"gpt-4.1","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#
        );
        let raw = r#"{"model":"alias","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#;
        assert_eq!(sent(raw, true), raw.replace("alias", "gpt-4.1"));
        // The upstream model is escaped as JSON.
        assert_eq!(
            String::from_utf8(upstream_body(&chat(r#"{"model":"a"}"#), "we\"ird", false)).unwrap(),
            r#"{"model":"we\"ird"}"#
        );
    }

    #[test]
    fn escaped_keys_are_decoded() {
        // `mod\u0065l` is `model` once decoded: it must be replaced, not forwarded.
        let raw = r#"{"mod\u0065l":"alias","messages":[],"x\u0079":1}"#;
        let body: Value = serde_json::from_str(&sent(raw, false)).unwrap();
        assert_eq!(body, serde_json::json!({"model": "gpt-4.1", "messages": [], "xy": 1}));
        let raw =
            r#"{"model":"alias","messages":[],"stre\u0061m":true,"stream_options":{"include_usage":false,"a":1}}"#;
        let body: Value = serde_json::from_str(&sent(raw, true)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"model": "gpt-4.1", "messages": [], "stream": true, "stream_options": {"include_usage": true, "a": 1}})
        );
    }

    #[test]
    fn completion_usage_is_read() {
        let u = parse_completion_usage(
            "o",
            br#"{"id":"x","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10,"prompt_tokens_details":{"cached_tokens":2}}}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(u, Usage { input_tokens: 7, output_tokens: 3, cached_tokens: 2 });
        assert!(parse_completion_usage("o", b"not json").is_err());
        assert!(parse_completion_usage("o", b"{}").is_err());
        assert!(parse_completion_usage("o", br#"{"choices":null}"#).is_err());
        assert!(parse_completion_usage("o", br#"{"choices":[],"usage":{"prompt_tokens":"x"}}"#).is_err());
        assert!(parse_completion_usage("o", br#"{"choices":[{"a":1}],"usage":{"prompt_tokens":1}"#).is_err());
        assert_eq!(parse_completion_usage("o", br#"{"choices":[],"usage":null}"#).unwrap(), None);
    }

    fn ev(data: &str) -> SseEvent {
        SseEvent { event: String::new(), data: data.to_string() }
    }

    #[test]
    fn stream_translation() {
        let mut t = StreamTranslator::new("o");
        let out = t.event(&ev(r#"{"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}"#));
        assert!(matches!(&out.events[..], [Ok(StreamEvent::Chunk(_))]) && !out.done);
        let out = t.event(&ev(r#"{"id":"c","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1}}"#));
        match &out.events[..] {
            [Ok(StreamEvent::Usage { usage, .. })] => assert_eq!(usage.input_tokens, 5),
            other => panic!("{other:?}"),
        }
        assert!(t.event(&ev("[DONE]")).done);
        let out = t.event(&ev(r#"{"error":{"message":"overloaded"}}"#));
        assert!(out.done && matches!(&out.events[..], [Err(e)] if e.message.contains("overloaded")));
        let out = t.event(&ev("{bad"));
        assert!(matches!(&out.events[..], [Err(e)] if e.kind == UpstreamErrorKind::Protocol));
        for bad in [r#"{"choices":{"index":0}}"#, r#"{"choices":[],"usage":"x"}"#, r#"{"choices":[]} trailing"#] {
            let out = t.event(&ev(bad));
            assert!(matches!(&out.events[..], [Err(e)] if e.kind == UpstreamErrorKind::Protocol), "{bad}");
        }
        // A chunk without choices or usage (keep-alive metadata) is skipped.
        assert!(t.event(&ev(r#"{"id":"c","choices":null}"#)).events.is_empty());
        assert!(matches!(&t.end()[..], [Err(_)]));
    }

    #[test]
    fn usage_on_content_chunk_is_split() {
        let mut t = StreamTranslator::new("o");
        let out = t.event(&ev(r#"{"id":"c","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":2,"completion_tokens":4}}"#));
        assert_eq!(out.events.len(), 2);
        match &out.events[0] {
            Ok(StreamEvent::Chunk(b)) => assert!(!String::from_utf8_lossy(b).contains("usage")),
            other => panic!("{other:?}"),
        }
    }
}
