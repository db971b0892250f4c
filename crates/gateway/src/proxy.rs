//! `POST /v1/chat/completions`: the request path, one phase per function:
//! authenticate → admit → route → call the provider → respond, with
//! accounting on the side (a [`Pending`] record that is finished exactly once:
//! on success, on failure, or when the client goes away).

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use crate::accounting::{cost_nanos, Event};
use crate::admission::limiter::RateInfo;
use crate::admission::{self, Permit};
use crate::auth::{self, Caller};
use crate::error::GatewayError;
use crate::gateway::AppState;
use crate::providers::{simulated, ChatRequest, StreamEvent, UpstreamError, Usage};
use crate::request;
use crate::routing::ModelRoute;
use crate::store::UsageRecord;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static X_SHEEPDOG_MODEL: HeaderName = HeaderName::from_static("x-sheepdog-model");
pub static X_SHEEPDOG_PROVIDER: HeaderName = HeaderName::from_static("x-sheepdog-provider");

/// The handler.
pub async fn chat_completions(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let mut rate: Option<RateInfo> = None;
    let (request_id, result) = match request::request_id(&headers) {
        Ok(id) => {
            let r = handle(&state, &headers, body, &id, started, &mut rate).await;
            (id, r)
        }
        Err(e) => (uuid::Uuid::new_v4().to_string(), Err(e)),
    };
    let mut response = match result {
        Ok(r) => r,
        Err(e) => {
            state.metrics().rejected(e.code());
            e.into_response()
        }
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert(X_REQUEST_ID.clone(), v);
    }
    if let Some(info) = rate {
        for (name, value) in admission::rate_headers(&info) {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(HeaderName::from_static(name), v);
            }
        }
    }
    response
}

/// Phases before the upstream call; errors here are never billed.
async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    request_id: &str,
    started: Instant,
    rate: &mut Option<RateInfo>,
) -> Result<Response, GatewayError> {
    let caller = authenticate(state, headers)?;
    *rate = Some(state.admission().peek(&caller.tenant).await);
    let cost_center = request::cost_center(headers)?;
    let bytes = read_body(headers, body, state.settings().gateway.max_body_bytes).await?;
    let chat = request::parse_chat(&bytes)?;
    let route = route(state, &caller, &chat)?;
    let permit = admit(state, &caller, &route, &chat, rate).await?;
    let meta = RequestMeta { request_id: request_id.to_string(), cost_center, started };
    let pending = Pending::new(state.clone(), &caller, &route, &chat, meta, permit);
    if chat.stream {
        Ok(stream_response(route, chat, pending).await)
    } else {
        Ok(complete_response(route, chat, pending).await)
    }
}

/// Admission: the tenant's limits, budget and pool, then a fair share of the
/// upstream's capacity. Refusals by a limit count as rate-limit hits.
async fn admit(
    state: &AppState,
    caller: &Caller,
    route: &ModelRoute,
    chat: &ChatRequest,
    rate: &mut Option<RateInfo>,
) -> Result<Permit, GatewayError> {
    let refused = |r: admission::Refused, rate: &mut Option<RateInfo>| {
        if let Some(info) = r.info {
            *rate = Some(info);
        }
        if r.rate_limited {
            state
                .accountant()
                .record(Event::RateLimitHit { tenant_id: caller.tenant.id.clone(), at_ms: crate::time::now_ms() });
        }
        r.error
    };
    let (mut permit, info) =
        state.admission().admit(&caller.tenant, route, chat).await.map_err(|r| refused(r, rate))?;
    *rate = Some(info);
    permit.wait_for_capacity(&caller.tenant, route, chat.max_tokens).await.map_err(|r| refused(r, rate))?;
    Ok(permit)
}

/// Authentication and the tenant's status (admission of suspended tenants).
pub fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Caller, GatewayError> {
    let catalog = state.catalog().snapshot();
    let caller = auth::authenticate(&catalog, headers)?;
    if caller.tenant.status == sheepdog_types::TenantStatus::Suspended {
        return Err(GatewayError::TenantSuspended);
    }
    Ok(caller)
}

async fn read_body(headers: &HeaderMap, body: Body, limit: u64) -> Result<Bytes, GatewayError> {
    request::check_content_length(headers, limit)?;
    let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
    match axum::body::to_bytes(body, limit_usize).await {
        Ok(b) => Ok(b),
        Err(e) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(s) = source {
                if s.is::<http_body_util::LengthLimitError>() {
                    return Err(GatewayError::RequestTooLarge(limit));
                }
                source = s.source();
            }
            Err(GatewayError::invalid("The request body could not be read completely.", None))
        }
    }
}

/// The model's route, if it exists and the tenant may use it.
fn route(state: &AppState, caller: &Caller, chat: &ChatRequest) -> Result<Arc<ModelRoute>, GatewayError> {
    match state.models().get(&chat.requested_model) {
        Some(r) if caller.tenant.may_use(&chat.requested_model) => Ok(r.clone()),
        _ => Err(GatewayError::ModelNotFound(chat.requested_model.clone())),
    }
}

fn answer_headers(resp: &mut Response, route: &ModelRoute) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&route.model.name) {
        h.insert(X_SHEEPDOG_MODEL.clone(), v);
    }
    if let Ok(v) = HeaderValue::from_str(&route.provider_name) {
        h.insert(X_SHEEPDOG_PROVIDER.clone(), v);
    }
}

async fn complete_response(route: Arc<ModelRoute>, chat: ChatRequest, mut pending: Pending) -> Response {
    match route.provider.complete(&chat, &route.target).await {
        Ok(c) => {
            let usage = c.usage.unwrap_or_else(|| {
                tracing::warn!(provider = %route.provider_name, "upstream answer had no usage; estimating tokens");
                Usage {
                    input_tokens: simulated::estimate_prompt_tokens(&chat.body),
                    output_tokens: estimate_completion_tokens(&c.body),
                    cached_tokens: 0,
                }
            });
            pending.usage = Some(usage);
            pending.finish(Outcome::Ok, 200, None);
            let mut resp =
                (StatusCode::OK, [(axum::http::header::CONTENT_TYPE, "application/json")], c.body).into_response();
            answer_headers(&mut resp, &route);
            resp
        }
        Err(e) => {
            let err = GatewayError::Upstream(e.clone());
            log_upstream_failure(&route, &e, &pending.request_id);
            pending.state.metrics().upstream_error(&route.provider_name, kind_label(&e));
            pending.finish(Outcome::UpstreamError, err.status().as_u16(), Some(err.code()));
            let mut resp = err.into_response();
            answer_headers(&mut resp, &route);
            resp
        }
    }
}

async fn stream_response(route: Arc<ModelRoute>, chat: ChatRequest, mut pending: Pending) -> Response {
    let events = match route.provider.stream(&chat, &route.target).await {
        Ok(s) => s,
        Err(e) => {
            let err = GatewayError::Upstream(e.clone());
            log_upstream_failure(&route, &e, &pending.request_id);
            pending.state.metrics().upstream_error(&route.provider_name, kind_label(&e));
            pending.finish(Outcome::UpstreamError, err.status().as_u16(), Some(err.code()));
            let mut resp = err.into_response();
            answer_headers(&mut resp, &route);
            return resp;
        }
    };
    let include_usage = chat.include_usage;
    let route_for_log = route.clone();
    let sse = futures::stream::unfold((events, Some(pending)), move |(mut events, pending)| {
        let route = route_for_log.clone();
        async move {
            let mut pending = pending?;
            loop {
                match events.next().await {
                    Some(Ok(StreamEvent::Chunk(chunk))) => {
                        pending.saw_chunk(&chunk);
                        return Some((Ok::<Bytes, Infallible>(sse_data(&chunk)), (events, Some(pending))));
                    }
                    Some(Ok(StreamEvent::Usage { usage, chunk })) => {
                        pending.usage = Some(usage);
                        if include_usage {
                            return Some((Ok(sse_data(&chunk)), (events, Some(pending))));
                        }
                    }
                    Some(Err(e)) => {
                        let err = GatewayError::Upstream(e.clone());
                        log_upstream_failure(&route, &e, &pending.request_id);
                        pending.state.metrics().upstream_error(&route.provider_name, kind_label(&e));
                        pending.finish(Outcome::UpstreamError, err.status().as_u16(), Some(err.code()));
                        let body = serde_json::to_vec(&err.body()).unwrap_or_default();
                        return Some((Ok(sse_data(&body)), (events, None)));
                    }
                    None => {
                        pending.finish(Outcome::Ok, 200, None);
                        return Some((Ok(Bytes::from_static(b"data: [DONE]\n\n")), (events, None)));
                    }
                }
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(sse));
    let h = resp.headers_mut();
    h.insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(axum::http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no"));
    answer_headers(&mut resp, &route);
    resp
}

fn sse_data(json: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(json.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

fn kind_label(e: &UpstreamError) -> &'static str {
    use crate::providers::UpstreamErrorKind as K;
    match e.kind {
        K::Connect => "connect",
        K::Timeout => "timeout",
        K::Status => "status",
        K::Protocol => "protocol",
        K::ContentBlocked => "content_blocked",
    }
}

fn log_upstream_failure(route: &ModelRoute, e: &UpstreamError, request_id: &str) {
    tracing::warn!(
        request_id,
        model = %route.model.name,
        provider = %route.provider_name,
        kind = kind_label(e),
        status = e.status,
        message = %e.message,
        "upstream call failed"
    );
}

#[derive(serde::Deserialize)]
struct ChunkText {
    #[serde(default)]
    choices: Vec<ChoiceText>,
}

#[derive(serde::Deserialize)]
struct ChoiceText {
    #[serde(default)]
    delta: Option<DeltaText>,
}

#[derive(serde::Deserialize)]
struct DeltaText {
    #[serde(default)]
    content: Option<String>,
}

/// Characters of content in one streamed chunk (for estimates when a stream is cut).
fn content_chars(chunk: &[u8]) -> u64 {
    serde_json::from_slice::<ChunkText>(chunk)
        .map(|c| {
            c.choices
                .iter()
                .filter_map(|ch| ch.delta.as_ref().and_then(|d| d.content.as_ref()))
                .map(|t| t.chars().count() as u64)
                .sum()
        })
        .unwrap_or(0)
}

/// Output tokens of a completion body without usage: ~4 characters a token.
fn estimate_completion_tokens(body: &[u8]) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = v.pointer("/choices/0/message/content").and_then(|c| c.as_str()).unwrap_or("");
    (text.chars().count() as u64).div_ceil(4)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    UpstreamError,
    ClientCancelled,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::UpstreamError => "upstream_error",
            Outcome::ClientCancelled => "client_cancelled",
        }
    }
}

/// What the request said about itself (headers) and when it started.
struct RequestMeta {
    request_id: String,
    cost_center: Option<String>,
    started: Instant,
}

/// The usage record of one routed request, finished exactly once. Dropping it
/// unfinished (the client went away) records a `client_cancelled` request
/// with the usage known so far (or estimated from what was streamed).
struct Pending {
    state: AppState,
    route: Arc<ModelRoute>,
    request_id: String,
    tenant_id: String,
    key_id: String,
    cost_center: Option<String>,
    stream: bool,
    started: Instant,
    created_ms: i64,
    first_chunk: Option<Instant>,
    streamed_chars: u64,
    usage: Option<Usage>,
    permit: Option<Permit>,
    pool_id: Option<String>,
    done: bool,
}

impl Pending {
    fn new(
        state: AppState,
        caller: &Caller,
        route: &Arc<ModelRoute>,
        chat: &ChatRequest,
        meta: RequestMeta,
        permit: Permit,
    ) -> Pending {
        let RequestMeta { request_id, cost_center, started } = meta;
        state.metrics().in_flight.fetch_add(1, Ordering::Relaxed);
        Pending {
            state,
            route: route.clone(),
            request_id,
            tenant_id: caller.tenant.id.clone(),
            key_id: caller.key_id.clone(),
            cost_center,
            stream: chat.stream,
            started,
            created_ms: crate::time::now_ms(),
            first_chunk: None,
            streamed_chars: 0,
            usage: None,
            pool_id: match caller.tenant.tier {
                sheepdog_types::Tier::Pooled => caller.tenant.pool_id.clone(),
                _ => None,
            },
            permit: Some(permit),
            done: false,
        }
    }

    fn saw_chunk(&mut self, chunk: &[u8]) {
        if self.first_chunk.is_none() {
            self.first_chunk = Some(Instant::now());
        }
        self.streamed_chars += content_chars(chunk);
    }

    fn finish(&mut self, outcome: Outcome, status: u16, error_code: Option<&str>) {
        if self.done {
            return;
        }
        self.done = true;
        self.state.metrics().in_flight.fetch_sub(1, Ordering::Relaxed);
        let usage = match (self.usage, outcome) {
            (Some(u), _) => u,
            // Cut before the upstream reported usage: bill what we can see.
            (None, Outcome::ClientCancelled) | (None, Outcome::UpstreamError) if self.first_chunk.is_some() => Usage {
                input_tokens: self.permit.as_ref().map(|p| p.estimated_prompt_tokens).unwrap_or(0),
                output_tokens: self.streamed_chars.div_ceil(4),
                cached_tokens: 0,
            },
            (None, _) => Usage::default(),
        };
        let model = &self.route.model;
        let cost = cost_nanos(model, &usage);
        if let Some(mut permit) = self.permit.take() {
            permit.settle(&usage, cost);
        }
        let latency = self.started.elapsed();
        let record = UsageRecord {
            id: uuid::Uuid::new_v4().to_string(),
            request_id: self.request_id.clone(),
            tenant_id: self.tenant_id.clone(),
            key_id: Some(self.key_id.clone()),
            cost_center: self.cost_center.clone(),
            model_requested: model.name.clone(),
            model_served: Some(model.name.clone()),
            provider: Some(self.route.provider_name.clone()),
            input_tokens: usage.input_tokens as i64,
            output_tokens: usage.output_tokens as i64,
            cached_tokens: usage.cached_tokens as i64,
            cost_nanos: cost,
            latency_ms: latency.as_millis() as i64,
            ttft_ms: self.first_chunk.map(|t| t.duration_since(self.started).as_millis() as i64),
            status_code: i64::from(status),
            outcome: outcome.as_str().to_string(),
            error_code: error_code.map(str::to_string),
            stream: self.stream,
            created_at: crate::time::ms_to_rfc3339(self.created_ms),
            created_ms: self.created_ms,
            pool_id: self.pool_id.clone(),
        };
        let metrics = self.state.metrics();
        metrics.request(&model.name, &self.route.provider_name, status, latency.as_secs_f64());
        metrics.tokens(&model.name, usage.input_tokens, usage.output_tokens, usage.cached_tokens, cost);
        self.state.accountant().record(Event::Usage(Box::new(record)));
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            self.finish(Outcome::ClientCancelled, 499, Some("client_cancelled"));
        }
    }
}
