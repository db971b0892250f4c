//! The gateway's life cycle: build (database, migrations, first-start
//! secrets, catalog, background tasks), serve on the thread-per-core
//! workers, and stop (grace, drain accounting).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;

use crate::accounting::{Accountant, Writer};
use crate::admin_tokens::AdminTokens;
use crate::admission::Admission;
use crate::catalog::CatalogHandle;
use crate::config::{Secret, Settings};
use crate::journal::{self, Journal};
use crate::listener::{Phases, ShutdownSignal};
use crate::replicas::ThisReplica;
use crate::rollout::Rollouts;
use crate::routes::{metrics_router, serve_metrics};
use crate::routing::Models;
use crate::service::GatewayService;
use crate::shared::{OnFailure, SharedState};
use crate::shutdown::{self, Shutdown, Trigger};
use crate::state::{AppState, Parts};
use sheepdog_store::Store;

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
        let replica = ThisReplica::new(env!("CARGO_PKG_VERSION"));
        let (trigger, stop) = shutdown::channel();
        let mut tasks = Vec::new();
        let journal = open_journal(&settings, &store, &replica, &stop, &mut tasks).await;
        let shared = match &settings.redis {
            Some(r) => {
                let on_failure = if r.on_failure == "open" { OnFailure::Open } else { OnFailure::Closed };
                let shared = SharedState::new(
                    &r.url,
                    &r.key_prefix,
                    Duration::from_millis(r.timeout_ms),
                    on_failure,
                    &replica.id,
                )
                .map_err(|e| anyhow::anyhow!("redis.url: {e}"))?;
                tasks.extend(shared.start(stop.clone()).await);
                Some(shared)
            }
            None => None,
        };
        let admission = Admission::new(&settings, shared.clone(), replica.clone());
        crate::admission::tokens::warm_up().await;
        let month_start = sheepdog_types::time::month_bounds(sheepdog_types::time::now_ms()).0;
        admission.load_month_spend(&store.spend_since(month_start).await?);
        for (pool, (credited, debited)) in store.pool_sums().await? {
            admission.load_pool(&pool, credited, debited);
        }
        let (accountant, writer) = Accountant::start(store.clone(), &settings.accounting, journal.clone());
        let refresher = catalog.spawn_refresher(Duration::from_millis(500), stop.clone());
        let token_refresher = admin_tokens.spawn_refresher(store.clone(), stop.clone());
        let rollouts = Rollouts::load(&store, &models, shared.is_some()).await?;
        let state = AppState::new(Parts {
            settings,
            store,
            catalog,
            models,
            accountant,
            admission,
            rollouts,
            admin_tokens,
            replica: replica.clone(),
            shared,
        });
        let bootstrap = (boot.admin_token.is_some() || boot.admin_user.is_some()).then_some(boot);
        let in_flight = {
            let state = state.clone();
            move || state.metrics().in_flight_now()
        };
        tasks.push(replica.spawn(state.store().clone(), in_flight, stop.clone()));
        tasks.extend(crate::rollout::controller::spawn_sharing(state.clone(), stop.clone()));
        tasks.push(crate::rollout::controller::spawn_schedule(state.clone(), stop));
        tasks.extend([Some(refresher), token_refresher].into_iter().flatten());
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

    /// Records the first console admin created by the assembly (shown once
    /// with the other first-start secrets).
    pub fn set_first_admin(&mut self, email: String, password: Secret) {
        self.bootstrap.get_or_insert_with(Bootstrap::default).admin_user = Some((email, password));
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests
    /// (within `gateway.shutdown_grace_secs`) and writes every queued usage
    /// record before returning. See [`Gateway::serve_until`].
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
        admin: Router<AppState>,
    ) -> anyhow::Result<()> {
        self.serve_until(listener, ShutdownSignal::from_future(shutdown), admin).await
    }

    /// Serves the data plane and `admin` (the admin API's router, nested
    /// under `/admin/v1`) until `signal` asks for a stop: then accepts nothing more,
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
        admin: Router<AppState>,
    ) -> anyhow::Result<()> {
        let app = GatewayService::new(self.state.clone(), admin);
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
        // Every record is in the database now (or the journal keeps it).
        if let Some(j) = self.state.accountant().journal() {
            j.close();
        }
        self.state.store().close().await;
    }
}

/// Recovers the journals no live process holds (this machine's earlier runs,
/// a crashed replica's), opens this replica's, and keeps recovering every
/// [`RECOVER_EVERY`] in the background (a database that was down at start,
/// a replica that died since). `None` when `accounting.journal_dir` is empty
/// or cannot be written (logged: the gateway still serves).
async fn open_journal(
    settings: &Settings,
    store: &Store,
    replica: &ThisReplica,
    stop: &Shutdown,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Option<Arc<Journal>> {
    let dir = settings.accounting.journal_dir.trim();
    if dir.is_empty() {
        return None;
    }
    let dir = std::path::PathBuf::from(dir);
    let tag = journal::database_tag(&settings.database.url);
    if let Err(e) = crate::accounting::recover_journal(&dir, &tag, store).await {
        tracing::error!(error = %e, "usage journal not recovered yet; retrying in the background");
    }
    let journal = match Journal::open(&dir, &format!("{tag}-{}", replica.id)) {
        Ok(j) => j,
        Err(e) => {
            tracing::error!(error = %e, dir = %dir.display(), "usage journal cannot be opened; serving without it");
            return None;
        }
    };
    tasks.push(journal.spawn_sync(stop.clone()));
    let (store, stop) = (store.clone(), stop.clone());
    tasks.push(tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.wait() => return,
                () = tokio::time::sleep(RECOVER_EVERY) => {}
            }
            if let Err(e) = crate::accounting::recover_journal(&dir, &tag, &store).await {
                tracing::debug!(error = %e, "usage journal recovery failed; trying again later");
            }
        }
    }));
    Some(journal)
}

/// How often journals left by dead processes are looked for.
pub const RECOVER_EVERY: Duration = Duration::from_secs(10);
