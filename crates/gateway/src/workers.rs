//! Thread-per-core serving of the gateway listener (`gateway.workers`).
//!
//! Each worker is an OS thread running its own single-threaded tokio runtime
//! that accepts connections from the shared listening socket and serves them
//! to the end: a connection, its request handlers and its upstream calls stay
//! on one thread, like nginx's worker processes. A work-stealing runtime
//! instead hands tasks between threads and wakes parked threads to steal
//! them, which on a loaded proxy costs more CPU than the proxying itself.
//!
//! Background work (accounting writer, catalog refresh, rollout sync) stays
//! on the runtime that called [`serve`]. Worker runtimes are kept running
//! until the caller has finished its shutdown (database connections opened on
//! a worker stay usable while accounting drains), and stop when the returned
//! future completes or is dropped.

use std::future::Future;
use std::net::SocketAddr;

use crate::gateway::GatewayService;
use tokio_util::sync::CancellationToken;

/// How many workers `gateway.workers = 0` means: one per available core.
pub fn auto_count(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Running workers: [`Workers::finish`] lets them exit and joins them;
/// dropping it does the same without waiting.
pub struct Workers {
    exit: CancellationToken,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    /// Lets the workers' runtimes stop and waits for their threads.
    pub async fn finish(mut self) {
        self.exit.cancel();
        let threads = std::mem::take(&mut self.threads);
        let joined = tokio::task::spawn_blocking(move || {
            for t in threads {
                if t.join().is_err() {
                    tracing::error!("a gateway worker thread panicked");
                }
            }
        })
        .await;
        if let Err(e) = joined {
            tracing::error!(error = %e, "could not join the gateway worker threads");
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.exit.cancel();
    }
}

/// Starts `count` workers serving `app` on `listener` until `stop` is
/// cancelled; resolves when every worker has stopped accepting and finished
/// its in-flight requests (graceful), returning the workers (still alive, idle).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: GatewayService,
    count: usize,
    stop: CancellationToken,
) -> anyhow::Result<Workers> {
    let std_listener = listener.into_std()?;
    let addr: SocketAddr = std_listener.local_addr()?;
    let exit = CancellationToken::new();
    let mut workers = Workers { exit: exit.clone(), threads: Vec::with_capacity(count) };
    let mut done = Vec::with_capacity(count);
    for i in 0..count.max(1) {
        let socket = std_listener.try_clone()?;
        let (app, worker_stop, exit) = (app.clone(), stop.clone(), exit.clone());
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<anyhow::Result<()>>();
        done.push(done_rx);
        let thread = std::thread::Builder::new().name(format!("sheepdog-gw-{i}")).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = done_tx.send(Err(e.into()));
                    return;
                }
            };
            runtime.block_on(async move {
                let served = serve_one(socket, app, worker_stop).await;
                let _ = done_tx.send(served);
                // Stay alive (and keep driving this runtime's I/O) until the
                // caller's shutdown is over.
                exit.cancelled().await;
            });
        });
        match thread {
            Ok(t) => workers.threads.push(t),
            Err(e) => {
                stop.cancel();
                return Err(anyhow::anyhow!("cannot start gateway worker thread {i}: {e}"));
            }
        }
    }
    tracing::info!(%addr, workers = workers.threads.len(), "gateway workers serving");
    let mut first_error = None;
    for rx in done {
        match rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                stop.cancel();
                first_error.get_or_insert(e);
            }
            Err(_) => {
                stop.cancel();
                first_error.get_or_insert(anyhow::anyhow!("a gateway worker stopped unexpectedly"));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(workers),
    }
}

async fn serve_one(socket: std::net::TcpListener, app: GatewayService, stop: CancellationToken) -> anyhow::Result<()> {
    use axum::serve::ListenerExt;
    use axum::ServiceExt;
    let listener = tokio::net::TcpListener::from_std(socket)?;
    // Streamed answers are many small writes: without TCP_NODELAY each one
    // after the first waits for the client's delayed ACK (~40 ms).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, app.into_make_service()).with_graceful_shutdown(stop.cancelled_owned()).await?;
    Ok(())
}

/// Forwards `shutdown` to `token` (on the calling runtime).
pub fn forward(shutdown: impl Future<Output = ()> + Send + 'static, token: CancellationToken) {
    tokio::spawn(async move {
        shutdown.await;
        token.cancel();
    });
}
