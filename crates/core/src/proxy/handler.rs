//! The handler and its phases strung together: request id, authentication,
//! the cheap limits, the body, the route (or a rollout's), admission, then a
//! complete answer or a stream.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::admit::{admit, authenticate, route, take_request};
use super::attempts::Attempts;
use super::complete::complete_response;
use super::edge::{self, Ingress};
use super::pending::{Pending, RequestMeta};
use super::stream::stream_response;
use crate::admission;
use crate::admission::limiter::RateInfo;
use crate::auth::Caller;
use crate::error::GatewayError;
use crate::providers::ChatRequest;
use crate::request::{self, X_REQUEST_ID};
use crate::rollout::shadow;
use crate::state::AppState;

/// The handler. Takes the whole request (a `HeaderMap` extractor would clone
/// every header).
pub async fn chat_completions(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    serve_in(state, request, Ingress::Chat).await
}

/// `POST /v1/messages`: the same path, the Messages format at its edge
/// (the key may come as `x-api-key`).
pub async fn messages(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    let (mut parts, body) = request.into_parts();
    edge::messages_auth(&mut parts.headers);
    let response = serve_in(state, axum::extract::Request::from_parts(parts, body), Ingress::Messages).await;
    edge::answer(Ingress::Messages, response).await
}

/// `POST /v1/responses`: the same path, the Responses format at its edge.
pub async fn responses(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    let response = serve_in(state, request, Ingress::Responses).await;
    edge::answer(Ingress::Responses, response).await
}

/// `POST /v1/embeddings`: the same path for models with `mode = "embedding"`
/// (the Embeddings body is the internal request's `raw`; OpenAI-shaped
/// answers and errors, as for Chat Completions).
pub async fn embeddings(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    serve_in(state, request, Ingress::Embeddings).await
}

/// `POST /v1/messages/count_tokens`: the prompt tokens of a Messages
/// request, counted as admission counts them (nothing is called or billed).
pub async fn count_tokens(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    let (mut parts, body) = request.into_parts();
    edge::messages_auth(&mut parts.headers);
    let counted = async {
        let caller = authenticate(&state, &parts.headers)?;
        let limit = state.settings().gateway.max_body_bytes;
        let bytes = request::read_body(&parts.headers, body, limit).await?;
        let chat = crate::limited::bounded(bytes.len(), move || edge::parse_count_tokens(bytes))
            .await
            .unwrap_or(Err(GatewayError::Internal))?;
        route(&state, &caller, &chat)?;
        Ok::<_, GatewayError>(chat.prompt_tokens)
    };
    match counted.await {
        Ok(n) => axum::Json(serde_json::json!({"input_tokens": n})).into_response(),
        Err(e) => edge::answer(Ingress::Messages, e.into_response()).await,
    }
}

/// The path for a request in `ingress`'s format (its answer still in the
/// internal format: [`edge::answer`] turns it).
async fn serve_in(state: AppState, request: axum::extract::Request, ingress: Ingress) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let mut rate: Option<RateInfo> = None;
    let (request_id, result) = match request::request_id(headers) {
        Ok(id) => {
            let r = handle(&state, headers, body, &id, started, &mut rate, ingress).await;
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
    ingress: Ingress,
) -> Result<Response, GatewayError> {
    let caller = authenticate(state, headers)?;
    // Boxed: the phases' state machine is ~7.6 KB, and held inline it was
    // laid out twice over in the handler's future (16.5 KB, copied whole into
    // its box for every request); boxed here, that future is 1.6 KB.
    let result = Box::pin(serve(state, &caller, headers, body, request_id, started, rate, ingress)).await;
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
#[allow(clippy::too_many_arguments)]
async fn serve(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: Body,
    request_id: &str,
    started: Instant,
    rate: &mut Option<RateInfo>,
    ingress: Ingress,
) -> Result<Response, GatewayError> {
    let cost_center = request::cost_center(headers)?;
    let limit = state.settings().gateway.max_body_bytes;
    let parse = edge::parser(ingress);
    let (ticket, chat) = if request::declared_small(headers) {
        let bytes = request::read_body(headers, body, limit).await?;
        let native = edge::native(ingress, headers, &bytes);
        let mut chat = parse(bytes)?;
        chat.native = native;
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
        let native = edge::native(ingress, headers, &bytes);
        let mut chat = match ingress {
            Ingress::Chat => request::parse_chat_bounded(bytes).await?,
            Ingress::Messages | Ingress::Responses | Ingress::Embeddings => {
                crate::limited::bounded(bytes.len(), move || parse(bytes))
                    .await
                    .unwrap_or(Err(GatewayError::Internal))?
            }
        };
        chat.native = native;
        (ticket, chat)
    };
    let requested = route(state, caller, &chat)?;
    admission::check_max_tokens(&chat, &requested.model)?;
    // A rollout may choose the first route; fallbacks follow it.
    let sticky = || sticky_key(headers, &chat, request_id);
    let decision =
        state.rollouts().decide(&caller.tenant.id, &chat.requested_model, sticky, sheepdog_types::time::now_ms());
    let first = decision.as_ref().map(|d| d.route.clone()).unwrap_or_else(|| requested.clone());
    let plan = state.models().plan(&requested, first);
    let permit = admit(state, caller, ticket, &plan, &chat, rate).await?;
    let meta = RequestMeta { request_id: request_id.to_string(), cost_center, started, ingress };
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
