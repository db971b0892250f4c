//! Sheepdog assembled: the data plane ([`sheepdog_core`]) serving the admin
//! API ([`sheepdog_admin`]) on the gateway listener, and the first console
//! admin created on first start. The `sheepdog` binary and the integration
//! tests use this crate; it re-exports the layers' public modules under one
//! name.

use std::future::Future;

use sheepdog_core::config::{Secret, Settings};
use sheepdog_core::listener::ShutdownSignal;

pub use sheepdog_admin as admin;
pub use sheepdog_admin::{accounts as users, signin};
pub use sheepdog_core::{
    accounting, admin_tokens, admission, auth, catalog, config, error, ids, journal, jsonscan, listener, metrics,
    providers, proxy, replicas, request, resilience, rollout, routes, routing, service, shared, shutdown, state,
    telemetry, workers,
};
pub use sheepdog_core::{AppState, Bootstrap};
pub use sheepdog_store as store;
pub use sheepdog_types::time;

/// The console admin created on first start (its password is printed once).
pub const FIRST_ADMIN_EMAIL: &str = "admin@sheepdog.local";

/// A built gateway, ready to serve: [`sheepdog_core::Gateway`] with the
/// admin API on its listener.
#[derive(Debug)]
pub struct Gateway(sheepdog_core::Gateway);

impl Gateway {
    /// Builds the data plane (database, migrations, catalog, background
    /// tasks) and, when the database has no console user yet, creates the
    /// first admin ([`FIRST_ADMIN_EMAIL`]) with a random password.
    pub async fn build(settings: Settings) -> anyhow::Result<Gateway> {
        let mut gateway = sheepdog_core::Gateway::build(settings).await?;
        let store = gateway.state().store().clone();
        if store.count_users().await? == 0 {
            let key = auth::generate_key();
            let password = key.get(auth::KEY_PREFIX.len()..auth::KEY_PREFIX.len() + 20).unwrap_or(&key).to_string();
            match users::create_user(&store, FIRST_ADMIN_EMAIL, "admin", None, &password).await {
                Ok(_) => gateway.set_first_admin(FIRST_ADMIN_EMAIL.to_string(), Secret::new(password)),
                Err(e) => tracing::warn!(error = %e, "could not create the first admin user"),
            }
        }
        Ok(Gateway(gateway))
    }

    pub fn state(&self) -> &AppState {
        self.0.state()
    }

    /// Where `/metrics` is served when `gateway.metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.0.metrics_addr()
    }

    /// First-start secrets, if this start created any.
    pub fn bootstrap(&self) -> Option<&Bootstrap> {
        self.0.bootstrap()
    }

    /// Serves until `shutdown` resolves (see [`Gateway::serve_until`]).
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        self.serve_until(listener, ShutdownSignal::from_future(shutdown)).await
    }

    /// Serves the data plane and the admin API until `signal` asks for a
    /// stop, then drains (see [`sheepdog_core::Gateway::serve_until`]).
    pub async fn serve_until(self, listener: tokio::net::TcpListener, signal: ShutdownSignal) -> anyhow::Result<()> {
        let admin = sheepdog_admin::router(self.0.state().clone());
        self.0.serve_until(listener, signal, admin).await
    }

    /// Stops background tasks and drains accounting.
    pub async fn stop(self) {
        self.0.stop().await
    }
}
