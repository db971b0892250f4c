//! The attempt loop: each route of the plan in order, its capacity, its
//! breaker, retries with backoff; and the answer when no route answered.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};

use super::admit::refused;
use super::pending::{Outcome, Pending};
use crate::catalog::TenantEntry;
use crate::error::GatewayError;
use crate::providers::{ChatRequest, UpstreamError, UpstreamErrorKind};
use crate::resilience::retry::is_upstream_fault;
use crate::routing::ModelRoute;
use crate::state::AppState;

/// What the attempt loop needs.
pub(super) struct Attempts<'a> {
    pub(super) state: &'a AppState,
    pub(super) tenant: &'a TenantEntry,
    pub(super) plan: &'a [Arc<ModelRoute>],
    pub(super) chat: &'a ChatRequest,
}

/// Why no route answered.
pub(super) enum Failed {
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
    pub(super) async fn run<T, F, Fut>(&self, pending: &mut Pending, call: F) -> Result<(Arc<ModelRoute>, T), Failed>
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

pub(super) async fn failure_response(failed: Failed, pending: &mut Pending) -> Response {
    let err = match failed {
        Failed::Client(e) | Failed::Upstream(e) => GatewayError::Upstream(e),
        Failed::Capacity(e) => e,
    };
    pending.finish(Outcome::UpstreamError, err.status().as_u16(), Some(err.code()));
    pending.queue().await;
    err.into_response()
}

pub(super) fn kind_label(e: &UpstreamError) -> &'static str {
    use crate::providers::UpstreamErrorKind as K;
    match e.kind {
        K::Connect => "connect",
        K::Timeout => "timeout",
        K::Status => "status",
        K::Protocol => "protocol",
        K::ContentBlocked => "content_blocked",
    }
}

pub(super) fn log_upstream_failure(route: &ModelRoute, e: &UpstreamError, request_id: &str) {
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
