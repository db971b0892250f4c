//! An axum router served on a listener (the console) under its limits.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;

use axum::body::Body;
use hyper::body::Incoming;
use hyper::{Request, Response};

use super::connection::{serve_connection, ConnectionCap};
use super::shutdown::Phases;
use crate::config::ListenerLimits;

/// Serves `router` on `listener` (one runtime: the console) under `limits`
/// until the phases stop it; resolves when every connection has closed.
/// Handlers can extract `ConnectInfo<SocketAddr>` (the peer).
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: ListenerLimits,
    phases: Phases,
) -> io::Result<()> {
    let mut listener = listener;
    let cap = ConnectionCap::new(limits.max_connections);
    // Every connection task holds a receiver; all dropped = all finished.
    let (open_tx, open_rx) = tokio::sync::watch::channel(());
    loop {
        let slot = tokio::select! {
            biased;
            () = phases.stopped() => break,
            slot = cap.slot() => slot,
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = phases.stopped() => break,
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
        };
        let service = RouterService { router: router.clone(), peer };
        let (phases, open) = (phases.clone(), open_rx.clone());
        tokio::spawn(async move {
            serve_connection(stream, service, limits, phases).await;
            drop(slot);
            drop(open);
        });
    }
    drop(listener);
    drop(open_rx);
    open_tx.closed().await;
    Ok(())
}

/// An axum router as a connection's hyper service, with the peer's address.
#[derive(Clone)]
pub(super) struct RouterService {
    pub(super) router: axum::Router,
    pub(super) peer: SocketAddr,
}

impl hyper::service::Service<Request<Incoming>> for RouterService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(axum::extract::ConnectInfo(self.peer));
        let mut router = self.router.clone();
        Box::pin(async move { tower::Service::call(&mut router, request).await })
    }
}
