//! Assembly: shared state, the gateway listener's router (data plane + admin
//! API), first-start bootstrap, background tasks and graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::accounting::{Accountant, Writer};
use crate::admin_tokens::AdminTokens;
use crate::admission::Admission;
use crate::catalog::CatalogHandle;
use crate::config::{Secret, Settings};
use crate::error::GatewayError;
use crate::listener::{Phases, ShutdownSignal, Stage};
use crate::metrics::Metrics;
use crate::rollout::Rollouts;
use crate::routing::Models;
use crate::shutdown::{self, Trigger};
use crate::store::Store;
use crate::{admin, auth, proxy};

/// State shared by every handler (cheap to clone).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    settings: Settings,
    store: Store,
    catalog: CatalogHandle,
    models: Models,
    accountant: Accountant,
    admission: Admission,
    rollouts: Rollouts,
    metrics: Metrics,
    admin_tokens: Arc<AdminTokens>,
    /// How far the gateway listener's shutdown has gone.
    shutdown: Stage,
}

impl AppState {
    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }
    pub fn store(&self) -> &Store {
        &self.0.store
    }
    pub fn catalog(&self) -> &CatalogHandle {
        &self.0.catalog
    }
    pub fn models(&self) -> &Models {
        &self.0.models
    }
    pub fn accountant(&self) -> &Accountant {
        &self.0.accountant
    }
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }
    pub fn admission(&self) -> &Admission {
        &self.0.admission
    }
    pub fn rollouts(&self) -> &Rollouts {
        &self.0.rollouts
    }
    /// The shutdown stage: [`Stage::closing`] once the grace is over.
    pub fn shutdown_stage(&self) -> &Stage {
        &self.0.shutdown
    }
    /// Whether `token` is an admin token (constant-time comparison of hashes; memory only).
    pub fn is_admin_token(&self, token: &str) -> bool {
        self.0.admin_tokens.accepts(token)
    }
    /// The admin tokens (rotation).
    pub fn admin_tokens(&self) -> &AdminTokens {
        &self.0.admin_tokens
    }
}

/// Secrets created on first start, to be shown once.
#[derive(Debug, Default)]
pub struct Bootstrap {
    pub admin_token: Option<Secret>,
    pub admin_user: Option<(String, Secret)>,
}

/// A built gateway, ready to serve.
pub struct Gateway {
    state: AppState,
    /// `gateway.metrics_listen`, bound at build time.
    metrics_listener: Option<tokio::net::TcpListener>,
    writer: Writer,
    trigger: Trigger,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    bootstrap: Option<Bootstrap>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

pub const FIRST_ADMIN_EMAIL: &str = "admin@sheepdog.local";

impl Gateway {
    /// Connects the database, migrates, bootstraps first-start secrets, loads
    /// the catalog and starts the background tasks.
    pub async fn build(settings: Settings) -> anyhow::Result<Gateway> {
        // Bound first: a wrong address fails the start before anything else.
        let metrics_listener = match settings.gateway.metrics_listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen on gateway.metrics_listen {addr}: {e}"))?,
            ),
            None => None,
        };
        if settings.metrics_token.is_none() {
            if let Some(var) = settings.gateway.metrics_token_env.as_deref().filter(|v| !v.trim().is_empty()) {
                tracing::warn!(
                    variable = var,
                    "gateway.metrics_token_env names an unset or empty variable: /metrics needs no token"
                );
            }
        }
        let store = Store::connect(&settings.database).await?;
        store.migrate().await?;
        let mut boot = Bootstrap::default();

        // Admin token: from the configured environment variable (which then
        // replaces the stored one), or the stored one, created on first start
        // (only its hash is stored).
        let (admin_tokens, created) = AdminTokens::bootstrap(&settings, &store).await?;
        boot.admin_token = created;
        let admin_tokens = Arc::new(admin_tokens);

        // First console admin.
        if store.count_users().await? == 0 {
            let password = auth::generate_key()[auth::KEY_PREFIX.len()..auth::KEY_PREFIX.len() + 20].to_string();
            match crate::users::create_user(&store, FIRST_ADMIN_EMAIL, "admin", None, &password).await {
                Ok(_) => boot.admin_user = Some((FIRST_ADMIN_EMAIL.to_string(), Secret::new(password))),
                Err(e) => tracing::warn!(error = %e, "could not create the first admin user"),
            }
        }

        let http = crate::providers::http::HttpClient::new(Duration::from_millis(
            settings.providers.iter().map(|p| p.connect_timeout_ms).max().unwrap_or(10_000),
        ))?;
        let models = Models::build(&settings, http);
        for m in models.iter() {
            if m.is_simulated() {
                tracing::info!(model = %m.model.name, "model served by the SIMULATED provider (no real upstream)");
            }
        }
        let catalog = CatalogHandle::load(store.clone()).await?;
        let admission = Admission::new(&settings);
        crate::admission::tokens::warm_up().await;
        let month_start = crate::time::month_bounds(crate::time::now_ms()).0;
        admission.load_month_spend(&store.spend_since(month_start).await?);
        for (pool, (credited, debited)) in store.pool_sums().await? {
            admission.load_pool(&pool, credited, debited);
        }
        let (accountant, writer) = Accountant::start(store.clone(), &settings.accounting);
        let (trigger, stop) = shutdown::channel();
        let refresher = catalog.spawn_refresher(Duration::from_millis(500), stop.clone());
        let token_refresher = admin_tokens.spawn_refresher(store.clone(), stop.clone());
        let rollouts = Rollouts::load(&store, &models).await?;
        let state = AppState(Arc::new(Inner {
            settings,
            store,
            catalog,
            models,
            accountant,
            admission,
            rollouts,
            metrics: Metrics::default(),
            admin_tokens,
            shutdown: Stage::default(),
        }));
        let bootstrap = (boot.admin_token.is_some() || boot.admin_user.is_some()).then_some(boot);
        let schedule = crate::admin::rollouts::spawn_schedule(state.clone(), stop);
        let tasks = [Some(refresher), Some(schedule), token_refresher].into_iter().flatten().collect();
        Ok(Gateway { state, metrics_listener, writer, trigger, tasks, bootstrap })
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Where `/metrics` is served when `gateway.metrics_listen` is set (the
    /// bound address: port 0 becomes the real port).
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// First-start secrets, if this start created any.
    pub fn bootstrap(&self) -> Option<&Bootstrap> {
        self.bootstrap.as_ref()
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests
    /// (within `gateway.shutdown_grace_secs`) and writes every queued usage
    /// record before returning. See [`Gateway::serve_until`].
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        self.serve_until(listener, ShutdownSignal::from_future(shutdown)).await
    }

    /// Serves until `signal` asks for a stop: then accepts nothing more,
    /// lets requests in flight run for the grace (a second request skips
    /// it), ends the streams still running with an error event (billed for
    /// what was streamed), closes every connection, and drains accounting —
    /// always, however the stop came. Connections are served by
    /// `gateway.workers` thread-per-core event loops (see [`crate::workers`])
    /// under the listener limits of [`crate::listener`]; dropping the
    /// returned future stops them too.
    pub async fn serve_until(
        mut self,
        listener: tokio::net::TcpListener,
        signal: ShutdownSignal,
    ) -> anyhow::Result<()> {
        let app = GatewayService::new(self.state.clone());
        let limits = self.state.settings().gateway.limits();
        let count = crate::workers::auto_count(self.state.settings().gateway.workers);
        let phases = Phases::start(signal, limits.shutdown_grace, self.state.shutdown_stage().clone());
        let _close_on_drop = phases.close_on_drop();
        let metrics_stop = tokio_util::sync::CancellationToken::new();
        let _metrics_stop_on_drop = metrics_stop.clone().drop_guard();
        let metrics_task = self
            .metrics_listener
            .take()
            .map(|l| tokio::spawn(serve_metrics(l, metrics_router(self.state.clone()), metrics_stop.clone())));
        let served = crate::workers::serve(listener, app, count, limits, phases).await;
        metrics_stop.cancel();
        if let Some(t) = metrics_task {
            t.abort();
        }
        tracing::info!("gateway listener closed; draining accounting");
        self.stop().await;
        tracing::info!("accounting drained");
        served?.finish().await;
        Ok(())
    }

    /// Stops background tasks and drains accounting.
    pub async fn stop(self) {
        self.trigger.fire();
        for t in self.tasks {
            let _ = t.await;
        }
        self.writer.drain().await;
        self.state.store().close().await;
    }
}

/// What serves the gateway listener: `POST /v1/chat/completions` goes
/// straight to its handler; everything else through [`router`]. The hot path
/// skips two routing passes (the `/v1` router is nested), the request
/// extensions they add and their future wrappers — about 5 % of a proxied
/// request's instructions. Answers are the same either way (the router routes
/// the same path to the same handler).
#[derive(Clone)]
pub struct GatewayService {
    state: AppState,
    router: Router,
}

impl GatewayService {
    pub fn new(state: AppState) -> GatewayService {
        GatewayService { router: router(state.clone()), state }
    }
}

/// hyper serves each gateway connection with this service directly (see
/// [`crate::workers`]): the request body becomes axum's `Body`; nothing is
/// cloned per request but what the handler keeps.
impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for GatewayService {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Response, std::convert::Infallible>>;

    fn call(&self, request: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        let request = request.map(axum::body::Body::new);
        if request.method() == axum::http::Method::POST && request.uri().path() == "/v1/chat/completions" {
            let state = self.state.clone();
            return Box::pin(async move { Ok(proxy::chat_completions(State(state), request).await) });
        }
        let mut router = self.router.clone();
        Box::pin(async move { tower::Service::call(&mut router, request).await })
    }
}

/// Data plane + admin API.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/chat/completions", post(proxy::chat_completions))
        .route("/models", get(list_models))
        .fallback(v1_not_found)
        .method_not_allowed_fallback(v1_method_not_allowed);
    let router = Router::new()
        .nest("/v1", v1)
        .nest("/admin/v1", admin::router(state.clone()))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    // With `gateway.metrics_listen`, `/metrics` lives on its own listener
    // only (the fallback answers 404 here).
    let router =
        if state.settings().gateway.metrics_listen.is_none() { router.route("/metrics", get(metrics)) } else { router };
    router.fallback(v1_not_found).with_state(state)
}

/// The `gateway.metrics_listen` listener's router: `/metrics` only.
fn metrics_router(state: AppState) -> Router {
    Router::new().route("/metrics", get(metrics)).fallback(v1_not_found).with_state(state)
}

/// Connections the metrics listener serves at once; more are closed at once.
const METRICS_MAX_CONNECTIONS: usize = 64;

/// Serves the metrics listener until `stop`: HTTP/1.1, a request head
/// within 10 s, a connection at most 60 s, at most
/// [`METRICS_MAX_CONNECTIONS`] at once.
async fn serve_metrics(listener: tokio::net::TcpListener, router: Router, stop: tokio_util::sync::CancellationToken) {
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
    let text = state.metrics().render(state.accountant().queue_depth(), &breakers);
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}
