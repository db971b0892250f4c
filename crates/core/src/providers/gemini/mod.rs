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

use super::embeddings::{self, EmbeddingsRequest, Inputs};
use super::http::{self, Timeouts, MAX_RESPONSE_BYTES};
use super::types::{ChatRequest, Completion, EventStream, RouteTarget, UpstreamError, Usage};
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
        Ok(Completion { body: Bytes::from(body.to_string()), usage, native: false })
    }

    /// Embeddings through `batchEmbedContents` (at most
    /// [`EMBED_BATCH`] inputs per call; more are sent in several calls, in
    /// order). Gemini reports no token usage for embeddings: the input is
    /// billed at the gateway's estimate (`ChatRequest::prompt_tokens`).
    pub async fn embed(&self, req: &ChatRequest, target: &RouteTarget) -> Result<Completion, UpstreamError> {
        let e = EmbeddingsRequest::of(req);
        let Inputs::Texts(texts) = &e.inputs else {
            return Err(embeddings::tokens_unsupported(&self.name));
        };
        let url = model_url(&self.base, &target.upstream_model, "batchEmbedContents");
        let mut vectors: Vec<Vec<f32>> = Vec::with_capacity(texts.len());
        for batch in texts.chunks(EMBED_BATCH) {
            let body = embed_body(&target.upstream_model, batch, e.dimensions);
            let (response, deadline) = http::send(&self.name, self.request(url.clone(), body), self.timeouts).await?;
            let bytes = http::read_body_until(&self.name, response, deadline, MAX_RESPONSE_BYTES).await?;
            vectors.extend(embed_vectors(&self.name, &bytes, batch.len())?);
        }
        let usage = Usage { input_tokens: req.prompt_tokens, output_tokens: 0, cached_tokens: 0 };
        let body = embeddings::openai_answer(&vectors, &target.upstream_model, usage.input_tokens, e.base64);
        Ok(Completion { body, usage: Some(usage), native: false })
    }

    pub async fn stream(&self, req: &ChatRequest, target: &RouteTarget) -> Result<EventStream, UpstreamError> {
        let body = super::types::translate_body(req, to_gemini).await;
        let url = model_url(&self.base, &target.upstream_model, "streamGenerateContent?alt=sse");
        let (response, deadline) = http::send(&self.name, self.request(url, body), self.timeouts).await?;
        let events = http::sse_events(&self.name, response, self.timeouts, deadline);
        Ok(http::translate(events, StreamTranslator::new(&self.name, &target.upstream_model)))
    }
}

/// Inputs per `batchEmbedContents` call (Gemini's limit).
pub const EMBED_BATCH: usize = 100;

/// A `BatchEmbedContentsRequest` of `texts`.
pub fn embed_body(model: &str, texts: &[String], dimensions: Option<u64>) -> Vec<u8> {
    let resource = if model.contains('/') { model.to_string() } else { format!("models/{model}") };
    let requests: Vec<serde_json::Value> = texts
        .iter()
        .map(|t| {
            let mut r = serde_json::json!({"model": resource, "content": {"parts": [{"text": t}]}});
            if let Some(d) = dimensions {
                r["outputDimensionality"] = serde_json::json!(d);
            }
            r
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "requests": requests })).unwrap_or_default()
}

/// The vectors of a `BatchEmbedContentsResponse` (`embeddings[].values`),
/// which must hold one per input sent.
pub fn embed_vectors(provider: &str, body: &[u8], sent: usize) -> Result<Vec<Vec<f32>>, UpstreamError> {
    #[derive(serde::Deserialize)]
    struct Embedding {
        #[serde(default)]
        values: Vec<f32>,
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(default)]
        embeddings: Vec<Embedding>,
    }
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|_| UpstreamError::protocol(format!("upstream {provider} answered with invalid JSON")))?;
    if answer.embeddings.len() != sent {
        return Err(UpstreamError::protocol(format!(
            "upstream {provider} answered {} embeddings for {sent} inputs",
            answer.embeddings.len()
        )));
    }
    Ok(answer.embeddings.into_iter().map(|e| e.values).collect())
}

#[cfg(test)]
mod tests;
