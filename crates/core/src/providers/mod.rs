//! Provider adapters: one file per upstream wire format, dispatched through the
//! [`Provider`] enum. Every adapter speaks OpenAI Chat Completions towards the
//! gateway: it takes the client's (validated) OpenAI request body and returns an
//! OpenAI `chat.completion` body, or a stream of OpenAI `chat.completion.chunk`
//! objects. Translation code is pure (body in, body out; event in, chunks out)
//! so it is unit-tested without a network; only `complete`/`stream` do I/O.

pub mod anthropic;
pub mod body;
pub mod embeddings;
pub mod gemini;
pub mod h1;
pub mod http;
pub mod openai;
pub mod simulated;
pub mod sse;
pub mod types;

pub use types::{
    chunk_bytes, new_completion_id, retry_after_of, translate_body, unix_now, usage_chunk_bytes, ChatRequest,
    Completion, EventStream, NativeRequest, RouteTarget, StreamEvent, UpstreamError, UpstreamErrorKind, Usage,
    TRANSLATED_MEMBERS,
};

use crate::config::{ModelMode, ProviderKind, ProviderSettings};

/// A configured upstream, dispatched by wire format.
#[derive(Debug)]
pub enum Provider {
    OpenAi(openai::OpenAi),
    Anthropic(anthropic::Anthropic),
    Gemini(gemini::Gemini),
    Simulated(simulated::Simulated),
}

impl Provider {
    pub fn new(settings: &ProviderSettings, http: http::HttpClient) -> Self {
        match settings.kind {
            ProviderKind::Openai => Provider::OpenAi(openai::OpenAi::new(settings, http)),
            ProviderKind::Anthropic => Provider::Anthropic(anthropic::Anthropic::new(settings, http)),
            ProviderKind::Gemini => Provider::Gemini(gemini::Gemini::new(settings, http)),
            ProviderKind::Simulated => Provider::Simulated(simulated::Simulated::new(settings)),
        }
    }

    pub fn kind(&self) -> ProviderKind {
        match self {
            Provider::OpenAi(_) => ProviderKind::Openai,
            Provider::Anthropic(_) => ProviderKind::Anthropic,
            Provider::Gemini(_) => ProviderKind::Gemini,
            Provider::Simulated(_) => ProviderKind::Simulated,
        }
    }

    /// A non-streamed completion, or embeddings when the request asks for them
    /// (`ChatRequest::mode`): the answer is then an OpenAI Embeddings `list`.
    pub async fn complete(&self, req: &ChatRequest, target: &RouteTarget) -> Result<Completion, UpstreamError> {
        if req.mode == ModelMode::Embedding {
            return self.embed(req, target).await;
        }
        match self {
            Provider::OpenAi(p) => p.complete(req, target).await,
            Provider::Anthropic(p) => p.complete(req, target).await,
            Provider::Gemini(p) => p.complete(req, target).await,
            Provider::Simulated(p) => p.complete(req, target).await,
        }
    }

    async fn embed(&self, req: &ChatRequest, target: &RouteTarget) -> Result<Completion, UpstreamError> {
        match self {
            Provider::OpenAi(p) => p.embed(req, target).await,
            Provider::Gemini(p) => p.embed(req, target).await,
            Provider::Simulated(p) => p.embed(req, target).await,
            // Refused when the configuration loads; a rollout's route may still name one.
            Provider::Anthropic(p) => Err(embeddings::unsupported(p.name())),
        }
    }

    /// Whether this upstream takes `req` in the client's own format (and
    /// answers in it): a Messages request to an Anthropic upstream.
    pub fn answers_natively(&self, req: &ChatRequest) -> bool {
        req.native.is_some() && matches!(self, Provider::Anthropic(_))
    }

    /// A streamed completion. The returned stream yields chunks, then exactly
    /// one `Usage` event when the upstream reports usage, then ends; a broken
    /// upstream stream yields an `Err` as its last item.
    pub async fn stream(&self, req: &ChatRequest, target: &RouteTarget) -> Result<EventStream, UpstreamError> {
        match self {
            Provider::OpenAi(p) => p.stream(req, target).await,
            Provider::Anthropic(p) => p.stream(req, target).await,
            Provider::Gemini(p) => p.stream(req, target).await,
            Provider::Simulated(p) => p.stream(req, target).await,
        }
    }
}
