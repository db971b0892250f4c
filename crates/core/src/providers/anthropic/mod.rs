//! Anthropic Messages API (`POST /v1/messages`). The client's OpenAI Chat
//! Completions body is translated into a Messages request; the answer (or the
//! `message_start` … `message_stop` event stream) is translated back into
//! OpenAI `chat.completion` / `chat.completion.chunk` objects. A client's own
//! Messages request (`/v1/messages`) passes through instead: sent as it
//! came with its `anthropic-version` and `anthropic-beta`, answered as the
//! upstream answered.

mod request;
mod response;
mod stream;

pub use request::{to_anthropic, DEFAULT_MAX_TOKENS};
pub use response::{finish_reason, from_anthropic};
pub use stream::StreamTranslator;

use bytes::Bytes;

use super::http::{self, Step, StreamTranslate, Timeouts, MAX_RESPONSE_BYTES};
use super::sse::SseEvent;
use super::types::{ChatRequest, Completion, EventStream, NativeRequest, RouteTarget, StreamEvent, UpstreamError};
use crate::config::{ProviderSettings, Secret};

/// `anthropic-version` sent when the provider configures none.
pub const DEFAULT_API_VERSION: &str = "2023-06-01";

#[derive(Debug)]
pub struct Anthropic {
    name: String,
    /// The Messages endpoint, parsed once (an invalid one fails every call).
    target: http::Target,
    api_key: Option<Secret>,
    api_version: String,
    timeouts: Timeouts,
    http: super::http::HttpClient,
}

/// The Messages endpoint for a base URL (with or without its `/v1`).
pub fn messages_url(base_url: &str) -> String {
    let base = base_url.trim_end_matches('/');
    if base.ends_with("/v1") {
        format!("{base}/messages")
    } else {
        format!("{base}/v1/messages")
    }
}

impl Anthropic {
    pub fn new(settings: &ProviderSettings, http: super::http::HttpClient) -> Self {
        Anthropic {
            name: settings.name.clone(),
            target: http::parse_uri(&messages_url(&settings.base_url)),
            api_key: settings.api_key.clone(),
            api_version: settings.api_version.clone().unwrap_or_else(|| DEFAULT_API_VERSION.to_string()),
            timeouts: Timeouts::of(settings),
            http,
        }
    }

    /// The Messages call; a client's own Messages request brings its
    /// `anthropic-version` and `anthropic-beta`.
    fn request(&self, body: Vec<u8>, native: Option<&NativeRequest>) -> http::Post {
        let version = native.and_then(|n| n.version.as_deref()).unwrap_or(&self.api_version);
        let mut post = self.http.post(self.target.clone(), body).header("anthropic-version", version);
        if let Some(beta) = native.and_then(|n| n.beta.as_deref()) {
            post = post.header("anthropic-beta", beta);
        }
        match &self.api_key {
            Some(key) => post.secret_header("x-api-key", key.expose()),
            None => post,
        }
    }

    /// The provider's configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The upstream body: the client's own Messages request with `model`
    /// replaced, or the internal request translated.
    async fn body(&self, req: &ChatRequest, target: &RouteTarget, stream: bool) -> Vec<u8> {
        if let Some(native) = &req.native {
            return super::types::rewrite_model(&native.raw, &target.upstream_model, false);
        }
        let model = target.upstream_model.clone();
        super::types::translate_body(req, move |client| to_anthropic(client, &model, stream)).await
    }

    /// A non-streamed answer: a `chat.completion`, or for a client's own
    /// Messages request the upstream's `message` as it came (its usage read).
    pub async fn complete(&self, req: &ChatRequest, target: &RouteTarget) -> Result<Completion, UpstreamError> {
        let body = self.body(req, target, false).await;
        let post = self.request(body, req.native.as_ref());
        let (response, deadline) = http::send(&self.name, post, self.timeouts).await?;
        let bytes = http::read_body_until(&self.name, response, deadline, MAX_RESPONSE_BYTES).await?;
        let (body, usage) = from_anthropic(&self.name, &bytes, &target.upstream_model)?;
        if req.native.is_some() {
            return Ok(Completion { body: bytes, usage: Some(usage), native: true });
        }
        Ok(Completion { body: Bytes::from(body.to_string()), usage: Some(usage), native: false })
    }

    /// A streamed answer; for a client's own Messages request the
    /// upstream's events also pass as they came ([`Native`]).
    pub async fn stream(&self, req: &ChatRequest, target: &RouteTarget) -> Result<EventStream, UpstreamError> {
        let body = self.body(req, target, true).await;
        let post = self.request(body, req.native.as_ref());
        let (response, deadline) = http::send(&self.name, post, self.timeouts).await?;
        let events = http::sse_events(&self.name, response, self.timeouts, deadline);
        let translator = StreamTranslator::new(&self.name, &target.upstream_model);
        if req.native.is_some() {
            return Ok(http::translate(events, Native(translator)));
        }
        Ok(http::translate(events, translator))
    }
}

/// The events of a stream that answers a client's own Messages request:
/// each upstream event passes as it came ([`StreamEvent::Raw`]), followed
/// by its translation, which the gateway only counts (usage, streamed
/// text). An `error` event is not passed: the stream ends with the
/// gateway's own error event.
pub struct Native(pub StreamTranslator);

impl StreamTranslate for Native {
    fn event(&mut self, event: &SseEvent) -> Step {
        let mut step = self.0.event(event);
        if event.event != "error" && !step.events.iter().any(Result::is_err) {
            step.events.insert(0, Ok(StreamEvent::Raw(frame(event))));
        }
        step
    }

    fn end(&mut self) -> Vec<Result<StreamEvent, UpstreamError>> {
        self.0.end()
    }
}

/// An SSE event as it is written: its name, then its data line by line.
pub fn frame(event: &SseEvent) -> Bytes {
    let mut out = String::with_capacity(event.data.len() + event.event.len() + 16);
    if !event.event.is_empty() {
        out.push_str("event: ");
        out.push_str(&event.event);
        out.push('\n');
    }
    for line in event.data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

#[cfg(test)]
mod tests;
