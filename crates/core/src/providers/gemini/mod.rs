//! Google Gemini (`models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`). The client's OpenAI Chat Completions body
//! is translated into a GenerateContentRequest; answers (and each streamed
//! GenerateContentResponse) are translated back into OpenAI objects.

mod request;
mod response;
mod stream;

pub use request::{mime_from_url, to_gemini};
pub use response::{finish_reason, from_gemini};
pub use stream::StreamTranslator;

use bytes::Bytes;

use super::http::{self, Timeouts, MAX_RESPONSE_BYTES};
use super::types::{ChatRequest, Completion, EventStream, RouteTarget, UpstreamError};
use crate::config::{ProviderSettings, Secret};

#[derive(Debug)]
pub struct Gemini {
    name: String,
    base: String,
    api_key: Option<Secret>,
    timeouts: Timeouts,
    http: super::http::HttpClient,
}

/// The URL of `method` (`generateContent`, `streamGenerateContent?alt=sse`)
/// for `model` under a base URL with or without its API version.
pub fn model_url(base_url: &str, model: &str, method: &str) -> String {
    let base = base_url.trim_end_matches('/');
    let versioned = ["/v1beta", "/v1", "/v1alpha"].iter().any(|v| base.ends_with(v));
    let prefix = if versioned { base.to_string() } else { format!("{base}/v1beta") };
    // `models/x` and `tunedModels/x` are full resource names already.
    let resource = if model.contains('/') { model.to_string() } else { format!("models/{model}") };
    format!("{prefix}/{resource}:{method}")
}

impl Gemini {
    pub fn new(settings: &ProviderSettings, http: super::http::HttpClient) -> Self {
        Gemini {
            name: settings.name.clone(),
            base: settings.base_url.clone(),
            api_key: settings.api_key.clone(),
            timeouts: Timeouts::of(settings),
            http,
        }
    }

    fn request(&self, url: String, body: Vec<u8>) -> http::Post {
        let post = self.http.post_url(&url, body);
        match &self.api_key {
            Some(key) => post.secret_header("x-goog-api-key", key.expose()),
            None => post,
        }
    }

    pub async fn complete(&self, req: &ChatRequest, target: &RouteTarget) -> Result<Completion, UpstreamError> {
        let body = super::types::translate_body(req, to_gemini).await;
        let url = model_url(&self.base, &target.upstream_model, "generateContent");
        let (response, deadline) = http::send(&self.name, self.request(url, body), self.timeouts).await?;
        let bytes = http::read_body_until(&self.name, response, deadline, MAX_RESPONSE_BYTES).await?;
        let (body, usage) = from_gemini(&self.name, &bytes, &target.upstream_model)?;
        Ok(Completion { body: Bytes::from(body.to_string()), usage })
    }

    pub async fn stream(&self, req: &ChatRequest, target: &RouteTarget) -> Result<EventStream, UpstreamError> {
        let body = super::types::translate_body(req, to_gemini).await;
        let url = model_url(&self.base, &target.upstream_model, "streamGenerateContent?alt=sse");
        let (response, deadline) = http::send(&self.name, self.request(url, body), self.timeouts).await?;
        let events = http::sse_events(&self.name, response, self.timeouts, deadline);
        Ok(http::translate(events, StreamTranslator::new(&self.name, &target.upstream_model)))
    }
}

#[cfg(test)]
mod tests;
