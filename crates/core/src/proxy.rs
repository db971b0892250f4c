//! `POST /v1/chat/completions`: the request path, one phase per function:
//! authenticate → admit → route → call the provider → respond, with
//! accounting on the side (a [`Pending`] record that is finished exactly once:
//! on success, on failure, or when the client goes away).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use crate::accounting::{cost_nanos, Event};
use crate::admission::limiter::RateInfo;
use crate::admission::{self, Permit};
use crate::auth::{self, Caller};
use crate::catalog::TenantEntry;
use crate::error::GatewayError;
use crate::listener::Stage;
use crate::providers::EventStream;
use crate::providers::{ChatRequest, StreamEvent, UpstreamError, UpstreamErrorKind, Usage};
use crate::request;
use crate::resilience::retry::is_upstream_fault;
use crate::rollout::guard::Side;
use crate::rollout::{compare, shadow, Live};
use crate::routing::ModelRoute;
use crate::state::AppState;
use sheepdog_store::UsageRecord;

pub use crate::request::X_REQUEST_ID;
pub static X_SHEEPDOG_MODEL: HeaderName = HeaderName::from_static("x-sheepdog-model");
pub static X_SHEEPDOG_PROVIDER: HeaderName = HeaderName::from_static("x-sheepdog-provider");

/// The handler. Takes the whole request (a `HeaderMap` extractor would clone
/// every header).
pub async fn chat_completions(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let mut rate: Option<RateInfo> = None;
    let (request_id, result) = match request::request_id(headers) {
        Ok(id) => {
            let r = handle(&state, headers, body, &id, started, &mut rate).await;
            (id, r)
        }
        Err(e) => (crate::ids::new_uuid().to_string(), Err(e)),
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
            h.insert(name, value);
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
    // Boxed: the phases' state machine is ~7.6 KB, and held inline it was
    // laid out twice over in the handler's future (16.5 KB, copied whole into
    // its box for every request); boxed here, that future is 1.6 KB.
    let result = Box::pin(serve(state, &caller, headers, body, request_id, started, rate)).await;
    // Refused other than by a limit (whose answer carries the values after
    // its decision): the answer still shows the tenant's limits, read after
    // whatever the request held was given back (asked for only now, so a
    // served request does not pay for it).
    if let Err(e) = &result {
        let by_limit = matches!(e, GatewayError::RateLimited { .. } | GatewayError::InsufficientQuota(_));
        if rate.is_none() || !by_limit {
            *rate = Some(state.admission().peek(&caller.tenant).await);
        }
    }
    result
}

/// The phases after authentication: the cheap limits (requests/min, in
/// flight) are taken before a large body is read or parsed; a small one
/// (declared at most `request::CHECKED_BEFORE_LIMITS_BYTES`) is read and checked
/// first, which costs less than the limits' lock and answers bad input 400
/// before 429. Any refusal gives back what the request took.
async fn serve(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: Body,
    request_id: &str,
    started: Instant,
    rate: &mut Option<RateInfo>,
) -> Result<Response, GatewayError> {
    let cost_center = request::cost_center(headers)?;
    let limit = state.settings().gateway.max_body_bytes;
    let (ticket, chat) = if request::declared_small(headers) {
        let bytes = request::read_body(headers, body, limit).await?;
        let chat = request::parse_chat(bytes)?;
        (take_request(state, caller, rate).await?, chat)
    } else {
        let ticket = match take_request(state, caller, rate).await {
            Ok(ticket) => ticket,
            Err(e) => {
                request::discard_briefly(body).await;
                return Err(e);
            }
        };
        let bytes = request::read_body(headers, body, limit).await?;
        (ticket, request::parse_chat_bounded(bytes).await?)
    };
    let requested = route(state, caller, &chat)?;
    admission::check_max_tokens(&chat, &requested.model)?;
    // A rollout may choose the first route; fallbacks follow it.
    let sticky = || sticky_key(headers, &chat, request_id);
    let decision =
        state.rollouts().decide(&caller.tenant.id, &chat.requested_model, sticky, sheepdog_types::time::now_ms());
    let first = decision.as_ref().map(|d| d.route.clone()).unwrap_or_else(|| requested.clone());
    let plan = state.models().plan(&requested, first);
    let permit = admit(state, caller, ticket, &plan, &chat, rate)?;
    let meta = RequestMeta { request_id: request_id.to_string(), cost_center, started };
    let mut pending = Pending::new(state.clone(), caller, &requested, &chat, meta, permit);
    if let Some(d) = decision {
        pending.rollout = Some((d.rollout.clone(), d.side));
        if d.shadow {
            pending.shadow = shadow::start(state, &d.rollout, &caller.tenant.id, request_id, &chat);
        }
    }
    let attempts = Attempts { state, tenant: &caller.tenant, plan: &plan, chat: &chat };
    if chat.stream {
        Ok(stream_response(attempts, pending).await)
    } else {
        Ok(complete_response(attempts, pending).await)
    }
}

/// The key that keeps a conversation on one side of a rollout: the
/// `X-Session-ID` header, else the request's `user` field, else the request id.
fn sticky_key(headers: &HeaderMap, chat: &ChatRequest, request_id: &str) -> String {
    if let Some(v) = headers.get(&request::X_SESSION_ID).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty()) {
        return v.to_string();
    }
    match &chat.user {
        Some(u) => u.clone(),
        None => request_id.to_string(),
    }
}

/// The cheap limits (requests in flight, requests/min), before the body.
async fn take_request(
    state: &AppState,
    caller: &Caller,
    rate: &mut Option<RateInfo>,
) -> Result<admission::Ticket, GatewayError> {
    match state.admission().take_request(&caller.tenant).await {
        Ok((ticket, info)) => {
            *rate = Some(info);
            Ok(ticket)
        }
        Err(r) => Err(refused(state, &caller.tenant.id, r, rate)),
    }
}

/// Admission: the tenant's tokens/min, budget and pool (the worst case over
/// every route that may serve the request). Refusals by a limit count as
/// rate-limit hits.
fn admit(
    state: &AppState,
    caller: &Caller,
    ticket: admission::Ticket,
    plan: &[Arc<ModelRoute>],
    chat: &ChatRequest,
    rate: &mut Option<RateInfo>,
) -> Result<Permit, GatewayError> {
    match state.admission().admit_with(ticket, &caller.tenant, plan, chat) {
        Ok((permit, info)) => {
            *rate = Some(info);
            Ok(permit)
        }
        Err(r) => Err(refused(state, &caller.tenant.id, r, rate)),
    }
}

fn refused(state: &AppState, tenant_id: &str, r: admission::Refused, rate: &mut Option<RateInfo>) -> GatewayError {
    if let Some(info) = r.info {
        *rate = Some(info);
    }
    if r.rate_limited {
        state
            .accountant()
            .record(Event::RateLimitHit { tenant_id: tenant_id.to_string(), at_ms: sheepdog_types::time::now_ms() });
    }
    r.error
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

/// The model's route, if it exists and the tenant may use it.
fn route(state: &AppState, caller: &Caller, chat: &ChatRequest) -> Result<Arc<ModelRoute>, GatewayError> {
    match state.models().get(&chat.requested_model) {
        Some(r) if caller.tenant.may_use(&chat.requested_model) => Ok(r.clone()),
        _ => Err(GatewayError::ModelNotFound(chat.requested_model.clone())),
    }
}

fn answer_headers(resp: &mut Response, route: &ModelRoute) {
    let h = resp.headers_mut();
    if let Some(v) = &route.model_header {
        h.insert(X_SHEEPDOG_MODEL.clone(), v.clone());
    }
    if let Some(v) = &route.provider_header {
        h.insert(X_SHEEPDOG_PROVIDER.clone(), v.clone());
    }
}

/// Headers an answer ends up with: content type, request id, six
/// rate-limit headers, model and provider (and three more for streams);
/// sized once instead of grown twice.
const ANSWER_HEADERS: usize = 16;

/// A `200` answer with its content type, its header map sized for the
/// headers added later.
fn ok_answer(content_type: &'static str, body: Body) -> Response {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    // Sixteen headers always fit; the map stays as it is otherwise.
    let _ = h.try_reserve(ANSWER_HEADERS);
    h.insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// What the attempt loop needs.
struct Attempts<'a> {
    state: &'a AppState,
    tenant: &'a TenantEntry,
    plan: &'a [Arc<ModelRoute>],
    chat: &'a ChatRequest,
}

/// Why no route answered.
enum Failed {
    /// The client's own request was refused upstream (no retry, no fallback).
    Client(UpstreamError),
    /// Every route and retry failed.
    Upstream(UpstreamError),
    /// No capacity could be had on any route.
    Capacity(GatewayError),
}

impl Attempts<'_> {
    /// Tries each route of the plan in order — skipping one whose breaker is
    /// open, retrying retryable failures with backoff — until `call`
    /// succeeds. Nothing has reached the client yet while this runs.
    async fn run<T, F, Fut>(&self, pending: &mut Pending, call: F) -> Result<(Arc<ModelRoute>, T), Failed>
    where
        F: Fn(Arc<ModelRoute>) -> Fut,
        Fut: std::future::Future<Output = Result<T, UpstreamError>>,
    {
        let mut failures: Vec<String> = Vec::new();
        let mut all_timeouts = true;
        let mut capacity: Option<GatewayError> = None;
        let mut called = false;
        for route in self.plan {
            let name = || format!("{} ({})", route.provider.name, route.target.upstream_model);
            if let Some(permit) = pending.permit.as_mut() {
                if let Err(r) = permit.wait_for_capacity(self.tenant, route, self.chat.max_tokens).await {
                    failures.push(format!("{}: no capacity", name()));
                    capacity = Some(refused(self.state, &self.tenant.id, r, &mut None));
                    continue;
                }
            }
            let mut attempt = 0u32;
            loop {
                if !route.provider.breaker.allow(tokio::time::Instant::now()) {
                    failures.push(format!("{}: circuit breaker open", name()));
                    self.state.metrics().breaker_skip(&route.provider.name);
                    break;
                }
                called = true;
                pending.attempts += 1;
                match call(route.clone()).await {
                    Ok(v) => {
                        route.provider.breaker.record(tokio::time::Instant::now(), true);
                        return Ok((route.clone(), v));
                    }
                    Err(e) => {
                        let fault = is_upstream_fault(&e);
                        route.provider.breaker.record(tokio::time::Instant::now(), !fault);
                        log_upstream_failure(route, &e, &pending.request_id);
                        self.state.metrics().upstream_error(&route.provider.name, kind_label(&e));
                        if !fault {
                            return Err(Failed::Client(e));
                        }
                        all_timeouts &= e.kind == UpstreamErrorKind::Timeout;
                        attempt += 1;
                        match route.provider.retry.delay(attempt, &e, rand::random::<f64>()) {
                            Some(wait) => {
                                self.state.metrics().retry(&route.provider.name);
                                tokio::time::sleep(wait).await;
                            }
                            None => {
                                failures.push(format!("{}: {}", name(), e.message));
                                break;
                            }
                        }
                    }
                }
            }
        }
        if !called {
            if let Some(c) = capacity {
                return Err(Failed::Capacity(c));
            }
        }
        let message = if self.plan.len() == 1 && failures.len() == 1 {
            failures.remove(0)
        } else {
            format!("every route failed: {}", failures.join("; "))
        };
        let kind = if called && all_timeouts { UpstreamErrorKind::Timeout } else { UpstreamErrorKind::Status };
        tracing::warn!(request_id = %pending.request_id, message = %message, "no upstream route answered");
        Err(Failed::Upstream(UpstreamError { kind, message, status: Some(502), retry_after: None }))
    }
}

async fn failure_response(failed: Failed, pending: &mut Pending) -> Response {
    let err = match failed {
        Failed::Client(e) | Failed::Upstream(e) => GatewayError::Upstream(e),
        Failed::Capacity(e) => e,
    };
    pending.finish(Outcome::UpstreamError, err.status().as_u16(), Some(err.code()));
    pending.queue().await;
    err.into_response()
}

async fn complete_response(attempts: Attempts<'_>, mut pending: Pending) -> Response {
    let chat = attempts.chat;
    let stage = attempts.state.shutdown_stage().clone();
    let result = until_closing(
        &stage,
        attempts.run(&mut pending, |route: Arc<ModelRoute>| async move {
            route.provider.client.complete(chat, &route.target).await
        }),
    )
    .await;
    let Some(result) = result else {
        return shut_down(&mut pending).await.into_response();
    };
    match result {
        Ok((route, c)) => {
            let usage = c.usage.unwrap_or_else(|| {
                tracing::warn!(provider = %route.provider.name, "upstream answer had no usage; estimating tokens");
                Usage {
                    input_tokens: pending.permit.as_ref().map(|p| p.estimated_prompt_tokens).unwrap_or(0),
                    output_tokens: estimate_completion_tokens(&c.body),
                    cached_tokens: 0,
                }
            });
            pending.served = Some(route.clone());
            pending.usage = Some(usage);
            if pending.shadow.is_some() {
                pending.output = Some(compare::Output::from_completion(&c.body));
            }
            pending.finish(Outcome::Ok, 200, None);
            pending.queue().await;
            let mut resp = ok_answer("application/json", Body::from(c.body));
            answer_headers(&mut resp, &route);
            resp
        }
        Err(failed) => failure_response(failed, &mut pending).await,
    }
}

/// Opens a stream and waits for its first event, so that a stream failing
/// before its first byte can still be retried or fall back.
async fn open_stream(route: Arc<ModelRoute>, chat: &ChatRequest) -> Result<EventStream, UpstreamError> {
    let mut events = route.provider.client.stream(chat, &route.target).await?;
    match events.next().await {
        Some(Ok(first)) => Ok(Box::pin(futures::stream::once(async move { Ok(first) }).chain(events))),
        Some(Err(e)) => Err(e),
        None => Err(UpstreamError::protocol(format!("upstream {} sent an empty stream", route.provider.name))),
    }
}

async fn stream_response(attempts: Attempts<'_>, mut pending: Pending) -> Response {
    let chat = attempts.chat;
    let include_usage = chat.include_usage;
    let stage = attempts.state.shutdown_stage().clone();
    let opened = until_closing(&stage, attempts.run(&mut pending, |route: Arc<ModelRoute>| open_stream(route, chat)));
    let (route, events) = match opened.await {
        Some(Ok(ok)) => ok,
        Some(Err(failed)) => return failure_response(failed, &mut pending).await,
        None => return shut_down(&mut pending).await.into_response(),
    };
    pending.served = Some(route.clone());
    if pending.shadow.is_some() {
        pending.output = Some(compare::Output::default());
    }
    let sse = futures::stream::unfold((events, Some(pending), stage), move |(mut events, pending, stage)| async move {
        let mut pending = pending?;
        loop {
            let Some(next) = next_or_closing(&mut events, &stage).await else {
                // The shutdown grace is over: billed for what was streamed.
                let body = serde_json::to_vec(&shut_down(&mut pending).await.body()).unwrap_or_default();
                return Some((Ok(sse_data(&body)), (events, None, stage)));
            };
            match next {
                Some(Ok(StreamEvent::Chunk(chunk))) => {
                    pending.saw_chunk(&chunk);
                    return Some((Ok::<Bytes, Infallible>(sse_data(&chunk)), (events, Some(pending), stage)));
                }
                Some(Ok(StreamEvent::Usage { usage, chunk })) => {
                    pending.usage = Some(usage);
                    if include_usage {
                        return Some((Ok(sse_data(&chunk)), (events, Some(pending), stage)));
                    }
                }
                Some(Err(e)) => {
                    let err = GatewayError::Upstream(e.clone());
                    if let Some(route) = pending.served.clone() {
                        log_upstream_failure(&route, &e, &pending.request_id);
                        pending.state.metrics().upstream_error(&route.provider.name, kind_label(&e));
                        if is_upstream_fault(&e) {
                            route.provider.breaker.record(tokio::time::Instant::now(), false);
                        }
                    }
                    pending.finish(Outcome::UpstreamError, err.status().as_u16(), Some(err.code()));
                    pending.queue().await;
                    let body = serde_json::to_vec(&err.body()).unwrap_or_default();
                    return Some((Ok(sse_data(&body)), (events, None, stage)));
                }
                None => {
                    pending.finish(Outcome::Ok, 200, None);
                    pending.queue().await;
                    return Some((Ok(Bytes::from_static(b"data: [DONE]\n\n")), (events, None, stage)));
                }
            }
        }
    });
    let mut resp = ok_answer("text/event-stream", Body::from_stream(coalesce(sse)));
    let h = resp.headers_mut();
    h.insert(axum::http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no"));
    answer_headers(&mut resp, &route);
    resp
}

/// `work`, unless the shutdown grace ends first (`None`): one atomic load
/// per poll.
async fn until_closing<F: std::future::Future>(stage: &Stage, work: F) -> Option<F::Output> {
    let mut work = std::pin::pin!(work);
    futures::future::poll_fn(|cx| {
        if stage.closing() {
            return std::task::Poll::Ready(None);
        }
        work.as_mut().poll(cx).map(Some)
    })
    .await
}

/// The next upstream event, unless the shutdown grace ends first (`None`).
async fn next_or_closing(
    events: &mut EventStream,
    stage: &Stage,
) -> Option<Option<Result<StreamEvent, UpstreamError>>> {
    futures::future::poll_fn(|cx| {
        if stage.closing() {
            return std::task::Poll::Ready(None);
        }
        events.poll_next_unpin(cx).map(Some)
    })
    .await
}

/// Ends a request cut by the end of the shutdown grace: finished (billed
/// for what was streamed) and queued; returns the error it ends with.
async fn shut_down(pending: &mut Pending) -> GatewayError {
    let err = GatewayError::ShuttingDown;
    pending.finish(Outcome::ServerShutdown, err.status().as_u16(), Some(err.code()));
    pending.queue().await;
    err
}

/// At most this many bytes of ready chunks go out in one write.
const COALESCE_LIMIT: usize = 64 * 1024;

/// Chunks that are ready one after another go to the client in one write.
///
/// hyper hands an upstream's body over one HTTP chunk at a time, each after a
/// turn of the upstream connection's task: an upstream that sends six events
/// in one packet still reaches the client as six writes (six packets for the
/// client to read) unless the events are gathered. After each chunk this takes
/// what is ready; when nothing is, it lets the other tasks run (the upstream
/// connection's task hands over one chunk per turn, and measured, needs up to
/// three turns) before sending what it has. A chunk never waits for a later
/// one: nothing is delayed by more than three scheduler turns.
fn coalesce<S>(inner: S) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static
where
    S: futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
{
    use futures::FutureExt;
    futures::stream::unfold((Box::pin(inner), false), |(mut inner, ended)| async move {
        if ended {
            return None;
        }
        let first = match inner.next().await? {
            Ok(chunk) => chunk,
            Err(never) => match never {},
        };
        let mut gathered: Option<bytes::BytesMut> = None;
        let mut ended = false;
        // A poll that finds nothing asks the upstream connection for more; a
        // few scheduler turns later it is there if it had already arrived.
        let mut turns = 0u32;
        while gathered.as_ref().map_or(first.len(), |g| g.len()) < COALESCE_LIMIT {
            match inner.next().now_or_never() {
                Some(Some(Ok(more))) => {
                    gathered.get_or_insert_with(|| bytes::BytesMut::from(&first[..])).extend_from_slice(&more);
                    turns = 0;
                }
                Some(Some(Err(never))) => match never {},
                Some(None) => {
                    ended = true;
                    break;
                }
                None if turns >= 3 => break,
                None => {
                    tokio::task::yield_now().await;
                    turns += 1;
                }
            }
        }
        let chunk = gathered.map_or(first, bytes::BytesMut::freeze);
        Some((Ok(chunk), (inner, ended)))
    })
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
        provider = %route.provider.name,
        kind = kind_label(e),
        status = e.status,
        message = %e.message,
        "upstream call failed"
    );
}

/// Characters of content in one streamed chunk (for estimates when a stream
/// is cut). A scan of the chunk's JSON for the `"content":"…"` strings (an
/// escape counts as one character) instead of a parse: it runs for every
/// chunk of every stream.
fn content_chars(chunk: &[u8]) -> u64 {
    const KEY: &[u8] = b"\"content\"";
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(KEY));
    let mut total = 0u64;
    let mut i = 0;
    while let Some(at) = chunk.get(i..).and_then(|rest| FINDER.find(rest)) {
        i += at + KEY.len();
        while chunk.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        if chunk.get(i) != Some(&b':') {
            continue;
        }
        i += 1;
        while chunk.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        if chunk.get(i) != Some(&b'"') {
            continue;
        }
        i += 1;
        while let Some(&b) = chunk.get(i) {
            match b {
                b'"' => {
                    i += 1;
                    break;
                }
                b'\\' => {
                    total += 1;
                    i += if chunk.get(i + 1) == Some(&b'u') { 6 } else { 2 };
                }
                // UTF-8 continuation bytes are part of the character before.
                _ => {
                    if b & 0xC0 != 0x80 {
                        total += 1;
                    }
                    i += 1;
                }
            }
        }
    }
    total
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
    /// Cut by the end of the shutdown grace.
    ServerShutdown,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::UpstreamError => "upstream_error",
            Outcome::ClientCancelled => "client_cancelled",
            Outcome::ServerShutdown => "server_shutdown",
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
    /// The model the client asked for.
    requested: Arc<ModelRoute>,
    /// The route that answered (after any fallback), once one did.
    served: Option<Arc<ModelRoute>>,
    attempts: u32,
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
    /// The rollout that chose the route, and the side it chose.
    rollout: Option<(Arc<Live>, Side)>,
    /// The shadow call waiting for this (`from`) side's result.
    shadow: Option<shadow::Pending>,
    /// What this side answered, kept only while shadowing.
    output: Option<compare::Output>,
    tool_args: Vec<(String, String)>,
    /// The finished usage event, until it is queued.
    event: Option<Event>,
    done: bool,
}

impl Pending {
    fn new(
        state: AppState,
        caller: &Caller,
        requested: &Arc<ModelRoute>,
        chat: &ChatRequest,
        meta: RequestMeta,
        permit: Permit,
    ) -> Pending {
        let RequestMeta { request_id, cost_center, started } = meta;
        state.metrics().in_flight(1);
        Pending {
            state,
            requested: requested.clone(),
            served: None,
            attempts: 0,
            request_id,
            tenant_id: caller.tenant.id.clone(),
            key_id: caller.key_id.clone(),
            cost_center,
            stream: chat.stream,
            started,
            created_ms: sheepdog_types::time::now_ms(),
            first_chunk: None,
            streamed_chars: 0,
            usage: None,
            pool_id: match caller.tenant.tier {
                sheepdog_types::Tier::Pooled => caller.tenant.pool_id.clone(),
                _ => None,
            },
            permit: Some(permit),
            rollout: None,
            shadow: None,
            output: None,
            tool_args: Vec::new(),
            event: None,
            done: false,
        }
    }

    fn saw_chunk(&mut self, chunk: &[u8]) {
        if self.first_chunk.is_none() {
            self.first_chunk = Some(Instant::now());
        }
        self.streamed_chars += content_chars(chunk);
        if let Some(out) = self.output.as_mut() {
            out.add_chunk(chunk, &mut self.tool_args);
        }
    }

    fn finish(&mut self, outcome: Outcome, status: u16, error_code: Option<&str>) {
        if self.done {
            return;
        }
        self.done = true;
        self.state.metrics().in_flight(-1);
        let usage = match (self.usage, outcome) {
            (Some(u), _) => u,
            // Cut before the upstream reported usage: bill what we can see.
            (None, Outcome::ClientCancelled | Outcome::UpstreamError | Outcome::ServerShutdown)
                if self.first_chunk.is_some() =>
            {
                Usage {
                    input_tokens: self.permit.as_ref().map(|p| p.estimated_prompt_tokens).unwrap_or(0),
                    output_tokens: self.streamed_chars.div_ceil(4),
                    cached_tokens: 0,
                }
            }
            (None, _) => Usage::default(),
        };
        // Priced at the route that answered (a fallback or rollout side may differ).
        let priced = self.served.clone().unwrap_or_else(|| self.requested.clone());
        let cost = cost_nanos(&priced.model, &usage);
        if let Some(mut permit) = self.permit.take() {
            permit.settle(&usage, cost);
        }
        let latency = self.started.elapsed();
        let ttft_ms = self.first_chunk.map(|t| t.duration_since(self.started).as_millis() as i64);
        let record = UsageRecord {
            id: crate::ids::new_record_id(self.created_ms).to_string(),
            // `finish` runs once (`done`) and nothing reads these afterwards:
            // they move into the record instead of being copied.
            request_id: std::mem::take(&mut self.request_id),
            tenant_id: std::mem::take(&mut self.tenant_id),
            key_id: Some(std::mem::take(&mut self.key_id)),
            cost_center: self.cost_center.take(),
            model_requested: self.requested.model.name.clone(),
            model_served: self.served.as_ref().map(|r| r.model.name.clone()),
            provider: Some(priced.provider.name.clone()),
            input_tokens: usage.input_tokens as i64,
            output_tokens: usage.output_tokens as i64,
            cached_tokens: usage.cached_tokens as i64,
            cost_nanos: cost,
            latency_ms: latency.as_millis() as i64,
            ttft_ms,
            status_code: i64::from(status),
            outcome: outcome.as_str().to_string(),
            error_code: error_code.map(str::to_string),
            stream: self.stream,
            created_ms: self.created_ms,
            pool_id: self.pool_id.take(),
        };
        let metrics = self.state.metrics();
        metrics.request(&priced.model.name, &priced.provider.name, status, latency.as_secs_f64());
        metrics.tokens(&priced.model.name, usage.input_tokens, usage.output_tokens, usage.cached_tokens, cost);
        self.event = Some(Event::Usage(Box::new(record)));

        // The rollout's guard sees this side's outcome; a request the
        // chosen side did not answer (a fallback did) counts as its error.
        if let Some((live, side)) = self.rollout.take() {
            let chosen = match side {
                Side::From => &live.from,
                Side::To => &live.to,
            };
            let answered_by_side = self.served.as_ref().is_some_and(|r| {
                r.provider.name == chosen.provider.name && r.target.upstream_model == chosen.target.upstream_model
            });
            // Neither a client going away nor a shutdown is the side's fault.
            if !matches!(outcome, Outcome::ClientCancelled | Outcome::ServerShutdown) {
                let error = outcome != Outcome::Ok || !answered_by_side;
                crate::rollout::controller::observe(&self.state, &live, side, latency.as_millis() as u64, error, cost);
            }
        }
        if let Some(shadow) = self.shadow.take() {
            let mut output = self.output.take().unwrap_or_default();
            if !self.tool_args.is_empty() {
                output.finish_tools(std::mem::take(&mut self.tool_args));
            }
            shadow.complete(shadow::Side {
                latency_ms: latency.as_millis() as i64,
                ttft_ms,
                error: (outcome != Outcome::Ok).then(|| error_code.unwrap_or("error").to_string()),
                usage,
                output,
            });
        }
    }
}

impl Pending {
    /// Queues the finished usage event (waiting for queue space if needed).
    async fn queue(&mut self) {
        let accountant = self.state.accountant().clone();
        accountant.record_from(&mut self.event).await;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            self.finish(Outcome::ClientCancelled, 499, Some("client_cancelled"));
        }
        if let Some(ev) = self.event.take() {
            self.state.accountant().record(ev);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{coalesce, content_chars};
    use axum::body::Bytes;
    use futures::StreamExt;
    use std::convert::Infallible;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn ready_chunks_go_out_together_and_late_ones_alone() {
        // Three chunks ready at once, then one after a pause, then the end.
        let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Bytes, Infallible>>();
        for part in ["a", "b", "c"] {
            let _ = tx.unbounded_send(Ok(Bytes::from_static(part.as_bytes())));
        }
        let late = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let _ = tx.unbounded_send(Ok(Bytes::from_static(b"d")));
        });
        let out: Vec<Bytes> = coalesce(rx).map(|c| c.unwrap_or_default()).collect().await;
        assert_eq!(out, vec![Bytes::from_static(b"abc"), Bytes::from_static(b"d")]);
        let _ = late.await;
    }

    #[test]
    fn content_chars_counts_characters_of_every_content_string() {
        assert_eq!(content_chars(br#"{"choices":[{"delta":{"content":"Hello"}}]}"#), 5);
        assert_eq!(content_chars(br#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#), 0);
        assert_eq!(content_chars(br#"{"choices":[{"delta":{"content":null}}]}"#), 0);
        // Escapes count once; multi-byte characters count once.
        assert_eq!(content_chars(r#"{"choices":[{"delta":{"content":"a\n\"b\u00e9 é—"}}]}"#.as_bytes()), 8);
        assert_eq!(
            content_chars(
                br#"{"choices":[{"index":0,"delta":{"content" : "ab"}},{"index":1,"delta":{"content":"c"}}]}"#
            ),
            3
        );
        assert_eq!(content_chars(b"not json"), 0);
        assert_eq!(content_chars(br#"{"content":"unterminated"#), 12);
        // A chunk cut inside an escape is counted without reading past its end.
        assert_eq!(content_chars(br#"{"content":"ab\u"#), 3);
        assert_eq!(content_chars(br#"{"content":"ab\"#), 3);
    }
}
