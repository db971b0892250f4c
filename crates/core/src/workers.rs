//! Thread-per-core serving of the gateway listener (`gateway.workers`).
//!
//! Each worker is an OS thread running its own single-threaded tokio runtime
//! that accepts connections from the shared listening socket and serves them
//! to the end: a connection, its request handlers and its upstream calls stay
//! on one thread, like nginx's worker processes. A work-stealing runtime
//! instead hands tasks between threads and wakes parked threads to steal
//! them, which on a loaded proxy costs more CPU than the proxying itself.
//!
//! Workers share one listening socket but keep their numbers of open
//! connections close: a worker holding two or more connections more than the
//! least loaded one does not accept until that changes.
//! Without it, the worker that happened to be awake took most of a burst of
//! new connections (two to one was measured with 64 keep-alive clients), and
//! it alone then ran out of CPU while the other idled.
//!
//! Each connection is served by hyper's HTTP/1.1 server directly (HTTP/1.1
//! only: the OpenAI-compatible clients speak it, and hyper-util's
//! auto-detecting server cost every request a per-request service clone, a
//! `oneshot` wrapper and a rewind buffer on every read), under the limits
//! and shutdown phases of [`crate::listener`]: header and idle timeouts, a
//! cap on open connections shared by all workers, and a graceful stop
//! (stop accepting, let each connection finish the request it is serving
//! within the grace, wait for all of them).
//!
//! Background work (accounting writer, catalog refresh, rollout sync) stays
//! on the runtime that called [`serve`]. Worker runtimes are kept running
//! until the caller has finished its shutdown (database connections opened on
//! a worker stay usable while accounting drains), and stop when the returned
//! future completes or is dropped.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::listener::{ConnectionCap, ListenerLimits, Phases};
use crate::service::GatewayService;
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

/// Starts `count` workers serving `app` on `listener` until `phases` stop
/// them; resolves when every worker has stopped accepting and finished
/// its in-flight requests (graceful), returning the workers (still alive, idle).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: GatewayService,
    count: usize,
    limits: ListenerLimits,
    phases: Phases,
) -> anyhow::Result<Workers> {
    let std_listener = listener.into_std()?;
    let addr: SocketAddr = std_listener.local_addr()?;
    let exit = CancellationToken::new();
    let mut workers = Workers { exit: exit.clone(), threads: Vec::with_capacity(count) };
    let mut done = Vec::with_capacity(count);
    let balance = Arc::new(Balance::new(count.max(1)));
    // One cap for the process's gateway listener, whichever worker accepts.
    let cap = ConnectionCap::new(limits.max_connections);
    for i in 0..count.max(1) {
        let socket = std_listener.try_clone()?;
        let (app, worker_phases, exit) = (app.clone(), phases.clone(), exit.clone());
        let (balance, cap) = (balance.clone(), cap.clone());
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
                let served = serve_one(socket, app, Limited { limits, cap, phases: worker_phases }, balance, i).await;
                let _ = done_tx.send(served);
                // Stay alive (and keep driving this runtime's I/O) until the
                // caller's shutdown is over.
                exit.cancelled().await;
            });
        });
        match thread {
            Ok(t) => workers.threads.push(t),
            Err(e) => {
                phases.begin_close();
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
                phases.begin_close();
                first_error.get_or_insert(e);
            }
            Err(_) => {
                phases.begin_close();
                first_error.get_or_insert(anyhow::anyhow!("a gateway worker stopped unexpectedly"));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(workers),
    }
}

/// A worker's share of the listener's limits.
struct Limited {
    limits: ListenerLimits,
    cap: ConnectionCap,
    phases: Phases,
}

async fn serve_one(
    socket: std::net::TcpListener,
    app: GatewayService,
    limited: Limited,
    balance: Arc<Balance>,
    me: usize,
) -> anyhow::Result<()> {
    let Limited { limits, cap, phases } = limited;
    let mut listener = Balanced { inner: TcpListener::from_std(socket)?, balance, me };
    // Every connection task holds a receiver; all dropped = all finished.
    let (open_tx, open_rx) = tokio::sync::watch::channel(());
    loop {
        // At the cap, stop accepting: new connections wait in the backlog.
        let slot = tokio::select! {
            biased;
            () = phases.stopped() => break,
            slot = cap.slot() => slot,
        };
        let (io, _addr) = tokio::select! {
            biased;
            () = phases.stopped() => break,
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
        };
        let service = app.clone();
        let (phases, open) = (phases.clone(), open_rx.clone());
        tokio::spawn(async move {
            crate::listener::serve_connection(io, service, limits, phases).await;
            drop(slot);
            drop(open);
        });
    }
    drop(listener);
    drop(open_rx);
    open_tx.closed().await;
    Ok(())
}

/// Open connections per worker, and a signal when they change.
struct Balance {
    open: Vec<AtomicUsize>,
    changed: Notify,
}

impl Balance {
    fn new(workers: usize) -> Self {
        Balance { open: (0..workers).map(|_| AtomicUsize::new(0)).collect(), changed: Notify::new() }
    }

    /// Whether worker `me` may take another connection: it holds at most one
    /// more than the least loaded worker.
    fn may_accept(&self, me: usize) -> bool {
        let least = self.open.iter().map(|n| n.load(Ordering::Relaxed)).min().unwrap_or(0);
        self.open.get(me).is_none_or(|n| n.load(Ordering::Relaxed) <= least + 1)
    }

    fn opened(&self, me: usize) {
        if let Some(n) = self.open.get(me) {
            n.fetch_add(1, Ordering::Relaxed);
        }
        self.changed.notify_waiters();
    }

    fn closed(&self, me: usize) {
        if let Some(n) = self.open.get(me) {
            n.fetch_sub(1, Ordering::Relaxed);
        }
        self.changed.notify_waiters();
    }
}

/// One worker's view of the shared listening socket (see the module docs).
struct Balanced {
    inner: TcpListener,
    balance: Arc<Balance>,
    me: usize,
}

impl axum::serve::Listener for Balanced {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Counted, SocketAddr) {
        loop {
            let changed = self.balance.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.balance.may_accept(self.me) {
                break;
            }
            // The timeout only bounds a missed signal; none is expected.
            let _ = tokio::time::timeout(Duration::from_millis(100), changed).await;
        }
        // Logs and retries failed accepts (axum's own loop).
        let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        // Streamed answers are many small writes: without TCP_NODELAY each one
        // after the first waits for the client's delayed ACK (~40 ms).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        self.balance.opened(self.me);
        (Counted { stream, balance: self.balance.clone(), me: self.me }, addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// An accepted connection, counted as its worker's until dropped.
struct Counted {
    stream: TcpStream,
    balance: Arc<Balance>,
    me: usize,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.balance.closed(self.me);
    }
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    crate::listener::delegate_async_write!(stream);
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener as _;

    #[test]
    fn a_worker_accepts_while_it_holds_at_most_one_more_than_the_least_loaded() {
        let balance = Balance::new(3);
        assert!((0..3).all(|w| balance.may_accept(w)));
        balance.opened(0);
        balance.opened(0);
        assert!(!balance.may_accept(0), "two ahead of the others");
        assert!(balance.may_accept(1) && balance.may_accept(2));
        balance.opened(1);
        balance.opened(2);
        assert!(balance.may_accept(0));
        balance.closed(1);
        assert!(!balance.may_accept(0) && balance.may_accept(1) && balance.may_accept(2));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn connections_spread_over_workers_sharing_a_socket() {
        let socket = match std::net::TcpListener::bind("127.0.0.1:0") {
            Ok(s) => s,
            Err(e) => panic!("bind: {e}"),
        };
        let addr = match socket.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("addr: {e}"),
        };
        if let Err(e) = socket.set_nonblocking(true) {
            panic!("nonblocking: {e}");
        }
        let balance = Arc::new(Balance::new(2));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for me in 0..2 {
            let inner = match socket.try_clone().map(TcpListener::from_std) {
                Ok(Ok(l)) => l,
                _ => panic!("clone the listening socket"),
            };
            let mut listener = Balanced { inner, balance: balance.clone(), me };
            let tx = tx.clone();
            tokio::spawn(async move {
                loop {
                    let (conn, _) = listener.accept().await;
                    if tx.send((me, conn)).is_err() {
                        return;
                    }
                }
            });
        }
        // Both workers wake for every connection and the first polled would
        // take them all; the balance keeps them within two of each other.
        let mut clients = Vec::new();
        let mut held = Vec::new();
        for _ in 0..20 {
            match TcpStream::connect(addr).await {
                Ok(c) => clients.push(c),
                Err(e) => panic!("connect: {e}"),
            }
        }
        for _ in 0..20 {
            match rx.recv().await {
                Some(h) => held.push(h),
                None => panic!("an acceptor stopped"),
            }
        }
        let per_worker = |held: &[(usize, Counted)]| [0, 1].map(|w| held.iter().filter(|(m, _)| *m == w).count());
        let [a, b] = per_worker(&held);
        assert_eq!(a + b, 20);
        assert!(a.abs_diff(b) <= 2, "{a} and {b}");
        assert_eq!(balance.open.iter().map(|n| n.load(Ordering::Relaxed)).sum::<usize>(), 20);

        // Worker 0's connections close: new ones go to it until it catches up.
        held.retain(|(m, _)| *m != 0);
        for _ in 0..6 {
            match TcpStream::connect(addr).await {
                Ok(c) => clients.push(c),
                Err(e) => panic!("connect: {e}"),
            }
            match rx.recv().await {
                Some(h) => held.push(h),
                None => panic!("an acceptor stopped"),
            }
        }
        let [a, _] = per_worker(&held);
        assert!(a >= 5, "worker 0 took {a} of the 6 new connections");
    }
}
