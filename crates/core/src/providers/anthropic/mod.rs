//! Anthropic Messages API (`POST /v1/messages`). The client's OpenAI Chat
//! Completions body is translated into a Messages request; the answer (or the
//! `message_start` … `message_stop` event stream) is translated back into
//! OpenAI `chat.completion` / `chat.completion.chunk` objects.

mod request;
mod response;
mod stream;

pub use request::{to_anthropic, DEFAULT_MAX_TOKENS};
pub use response::{finish_reason, from_anthropic};
pub use stream::StreamTranslator;

use bytes::Bytes;

use super::http::{self, Timeouts, MAX_RESPONSE_BYTES};
use super::types::{ChatRequest, Completion, EventStream, RouteTarget, UpstreamError};
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

    fn request(&self, body: Vec<u8>) -> http::Post {
        let post = self.http.post(self.target.clone(), body).header("anthropic-version", &self.api_version);
        match &self.api_key {
            Some(key) => post.secret_header("x-api-key", key.expose()),
            None => post,
        }
    }

    /// The provider's configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub async fn complete(&self, req: &ChatRequest, target: &RouteTarget) -> Result<Completion, UpstreamError> {
        let model = target.upstream_model.clone();
        let body = super::types::translate_body(req, move |client| to_anthropic(client, &model, false)).await;
        let (response, deadline) = http::send(&self.name, self.request(body), self.timeouts).await?;
        let bytes = http::read_body_until(&self.name, response, deadline, MAX_RESPONSE_BYTES).await?;
        let (body, usage) = from_anthropic(&self.name, &bytes, &target.upstream_model)?;
        Ok(Completion { body: Bytes::from(body.to_string()), usage: Some(usage) })
    }

    pub async fn stream(&self, req: &ChatRequest, target: &RouteTarget) -> Result<EventStream, UpstreamError> {
        let model = target.upstream_model.clone();
        let body = super::types::translate_body(req, move |client| to_anthropic(client, &model, true)).await;
        let (response, deadline) = http::send(&self.name, self.request(body), self.timeouts).await?;
        let events = http::sse_events(&self.name, response, self.timeouts, deadline);
        Ok(http::translate(events, StreamTranslator::new(&self.name, &target.upstream_model)))
    }
}

#[cfg(test)]
mod tests;
