//! The state every handler shares: settings, the in-memory catalog, models,
//! admission, rollouts, metrics and the handles to accounting and the store.

use std::sync::Arc;

use crate::accounting::Accountant;
use crate::admin_tokens::AdminTokens;
use crate::admission::Admission;
use crate::catalog::CatalogHandle;
use crate::config::Settings;
use crate::listener::Stage;
use crate::metrics::Metrics;
use crate::replicas::ThisReplica;
use crate::rollout::Rollouts;
use crate::routing::Models;
use crate::shared::SharedState;
use sheepdog_store::Store;

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
    replica: Arc<ThisReplica>,
    shared: Option<Arc<SharedState>>,
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
    /// This process as a replica (its heartbeat, the live count).
    pub fn replica(&self) -> &Arc<ThisReplica> {
        &self.0.replica
    }
    /// The state shared with other replicas in Redis (`[redis] url` set).
    pub fn shared(&self) -> Option<&Arc<SharedState>> {
        self.0.shared.as_ref()
    }
}

/// What [`AppState::new`] assembles (metrics and the shutdown stage start empty).
#[derive(Debug)]
pub struct Parts {
    pub settings: Settings,
    pub store: Store,
    pub catalog: CatalogHandle,
    pub models: Models,
    pub accountant: Accountant,
    pub admission: Admission,
    pub rollouts: Rollouts,
    pub admin_tokens: Arc<AdminTokens>,
    pub replica: Arc<ThisReplica>,
    pub shared: Option<Arc<SharedState>>,
}

impl AppState {
    pub fn new(p: Parts) -> AppState {
        AppState(Arc::new(Inner {
            settings: p.settings,
            store: p.store,
            catalog: p.catalog,
            models: p.models,
            accountant: p.accountant,
            admission: p.admission,
            rollouts: p.rollouts,
            metrics: Metrics::default(),
            admin_tokens: p.admin_tokens,
            replica: p.replica,
            shared: p.shared,
            shutdown: Stage::default(),
        }))
    }
}
