//! The gateway listener's routes: `/v1` (chat completions, models), the
//! admin API nested under `/admin/v1`, health, readiness and metrics.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::error::GatewayError;
use crate::state::AppState;
use crate::{auth, proxy};

/// Data plane + the admin API (`admin`, nested under `/admin/v1`).
pub fn router(state: AppState, admin: Router<AppState>) -> Router {
    let v1 = Router::new()
        .route("/chat/completions", post(proxy::chat_completions))
        .route("/messages", post(proxy::messages))
        .route("/messages/count_tokens", post(proxy::count_tokens))
        .route("/responses", post(proxy::responses))
        .route("/embeddings", post(proxy::embeddings))
        .route("/models", get(list_models))
        .fallback(v1_not_found)
        .method_not_allowed_fallback(v1_method_not_allowed);
    let router = Router::new()
        .nest("/v1", v1)
        .nest("/admin/v1", admin)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    // With `gateway.metrics_listen`, `/metrics` lives on its own listener
    // only (the fallback answers 404 here).
    let router =
        if state.settings().gateway.metrics_listen.is_none() { router.route("/metrics", get(metrics)) } else { router };
    router.fallback(v1_not_found).with_state(state)
}

/// The `gateway.metrics_listen` listener's router: `/metrics` only.
pub(crate) fn metrics_router(state: AppState) -> Router {
    Router::new().route("/metrics", get(metrics)).fallback(v1_not_found).with_state(state)
}

/// Connections the metrics listener serves at once; more are closed at once.
const METRICS_MAX_CONNECTIONS: usize = 64;

/// Serves the metrics listener until `stop`: HTTP/1.1, a request head
/// within 10 s, a connection at most 60 s, at most
/// [`METRICS_MAX_CONNECTIONS`] at once.
pub(crate) async fn serve_metrics(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: tokio_util::sync::CancellationToken,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(METRICS_MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "metrics listener: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let router = router.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                tower::ServiceExt::oneshot(router.clone(), req.map(axum::body::Body::new))
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(Duration::from_secs(10));
            let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            }
            drop(permit);
        });
    }
}

async fn v1_not_found(uri: axum::http::Uri) -> Response {
    GatewayError::NotFound(uri.path().to_string()).into_response()
}

async fn v1_method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    GatewayError::MethodNotAllowed(format!("{method} {}", uri.path())).into_response()
}

/// `GET /v1/models`: the models this caller may use.
async fn list_models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let caller = match proxy::authenticate(&state, &headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let data: Vec<_> = state
        .models()
        .iter()
        .filter(|m| caller.tenant.may_use(&m.model.name))
        .map(|m| {
            json!({
                "id": m.model.name,
                "object": "model",
                "created": 1_735_689_600,
                "owned_by": if m.is_simulated() { "sheepdog-simulated".to_string() } else { m.provider.name.clone() },
                "mode": m.model.mode.as_str(),
            })
        })
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// Ready when the database answers within 2 s and the accounting writer's
/// last write succeeded; otherwise 503 with the reason (the data plane keeps
/// serving meanwhile: a load balancer may still route to it).
async fn readyz(State(state): State<AppState>) -> Response {
    let unavailable = |reason: &str| {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "reason": reason}))).into_response()
    };
    let probe = tokio::time::timeout(Duration::from_secs(2), sqlx::query("SELECT 1").execute(state.store().pool()));
    match probe.await {
        Ok(Ok(_)) if state.accountant().is_failing() => unavailable("database not writable: usage records are queued"),
        Ok(Ok(_)) => Json(json!({"status": "ready"})).into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            unavailable("database unreachable")
        }
        Err(_) => unavailable("database unreachable"),
    }
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.settings().metrics_token {
        // Compared as SHA-256 hashes, in constant time.
        let wanted = auth::hash_key(token.expose());
        let ok = auth::bearer(&headers)
            .ok()
            .is_some_and(|t| auth::hash_key(t).iter().zip(wanted.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0);
        if !ok {
            let body = json!({"error": {"message": "/metrics requires `Authorization: Bearer <metrics token>`.",
                "type": "authentication_error", "code": "invalid_metrics_token", "param": null}});
            return (StatusCode::UNAUTHORIZED, [(axum::http::header::WWW_AUTHENTICATE, "Bearer")], Json(body))
                .into_response();
        }
    }
    let now = tokio::time::Instant::now();
    let breakers: Vec<(String, u8)> =
        state.models().providers().map(|p| (p.name.clone(), p.breaker.report(now).state.gauge())).collect();
    let mut text = state.metrics().render(state.accountant().queue_depth(), &breakers);
    if let Some(shared) = state.shared() {
        shared_metrics(&mut text, shared, state.replica().live_replicas());
    }
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// The shared state's figures (`[redis] url` set).
fn shared_metrics(out: &mut String, shared: &crate::shared::SharedState, replicas: u64) {
    use std::fmt::Write;
    use std::sync::atomic::Ordering;
    let link = shared.link();
    let rows: [(&str, &str, &str, u64); 6] = [
        ("sheepdog_redis_up", "gauge", "Whether this replica reaches Redis (1) or not (0).", u64::from(link.is_up())),
        ("sheepdog_redis_errors_total", "counter", "Redis calls that failed or timed out.", link.failures()),
        (
            "sheepdog_shared_state_open_admissions_total",
            "counter",
            "Requests admitted against this replica's share while Redis was unreachable (on_failure = open).",
            shared.open_admissions.load(Ordering::Relaxed),
        ),
        (
            "sheepdog_shared_state_refusals_total",
            "counter",
            "Requests refused with shared_state_unavailable while Redis was unreachable (on_failure = closed).",
            shared.closed_refusals.load(Ordering::Relaxed),
        ),
        (
            "sheepdog_shared_state_slice_admissions_total",
            "counter",
            "Requests admitted from a slice of requests/min and tokens/min leased from Redis (no Redis call).",
            shared.slice_admissions.load(Ordering::Relaxed),
        ),
        ("sheepdog_replicas_live", "gauge", "Live gateway replicas at the last heartbeat.", replicas),
    ];
    for (name, kind, help, value) in rows {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    }
}
