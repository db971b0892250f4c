//! Connection limits and shutdown of both listeners (SPEC §10), shared by
//! the gateway's workers ([`crate::workers`]) and the console
//! ([`serve_router`]).
//!
//! Each connection is served by hyper's HTTP/1.1 server under a watchdog:
//!
//! - **`header_read_timeout`**: a connection that has not sent a whole
//!   request head this long after it opened, or after the first byte of its
//!   next request, is closed.
//! - **`idle_timeout`**: a keep-alive connection with no request for this
//!   long after its last answer ended is closed. A request in flight (a
//!   long stream, a slow upstream) never counts as idle.
//! - **`max_connections`**: at the cap the listener stops accepting; more
//!   connections wait in the kernel's backlog (none is accepted and closed).
//! - **shutdown**: see [`Phases`].
//!
//! Cost per request. hyper's own header timer (`Builder::header_read_timeout`)
//! allocates a boxed `Sleep` for every request head and registers it in (and
//! removes it from) the runtime's timer wheel; it also runs while a
//! keep-alive connection waits for its next request, so it cannot be told
//! apart from the idle timeout. It is not used. Instead each connection has
//! one word of state — head / busy / idle, and since when — written as the
//! connection moves: the first byte read while idle (head, clock read), the
//! service called (busy, one store), the answer's body dropped (idle, clock
//! read). One `Sleep` per connection, armed when the connection opens,
//! enforces the deadline lazily: when it fires it reads the state and either
//! closes the connection or re-arms for the state's deadline. It re-arms at
//! most `min(header_read_timeout, idle_timeout)` ahead, so that a deadline
//! moving earlier (an idle connection starting a head) is still met exactly.
//! Per request that is two monotonic clock reads (vDSO, ~20 ns each), four
//! relaxed atomic stores and loads, and one `Arc` clone — no timer
//! registration, no allocation; per connection, one timer registration per
//! ten seconds (the default header timeout) at most. The shutdown stage is
//! a relaxed atomic load per wake-up instead of polling a cancellation
//! future (which locks a mutex shared by every connection of the process).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use crate::config::ListenerLimits;

/// After the grace, how long a connection with a request in flight may take
/// to write what its request ends with (a stream's error event) before it
/// is closed regardless.
pub const CLOSE_FLUSH: Duration = Duration::from_secs(1);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The shutdown requests a process receives: the first (SIGTERM, Ctrl-C)
/// starts a graceful stop; the second ends the grace at once. Accounting
/// always drains, whichever came.
#[derive(Clone, Debug, Default)]
pub struct ShutdownSignal {
    requested: CancellationToken,
    immediate: CancellationToken,
}

impl ShutdownSignal {
    pub fn new() -> ShutdownSignal {
        ShutdownSignal::default()
    }

    /// A graceful stop once `shutdown` resolves (no second stage).
    pub fn from_future(shutdown: impl Future<Output = ()> + Send + 'static) -> ShutdownSignal {
        let signal = ShutdownSignal::new();
        let s = signal.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown => s.request(),
                () = s.requested.cancelled() => {}
            }
        });
        signal
    }

    /// Starts a graceful stop (requests in flight get the grace).
    pub fn request(&self) {
        self.requested.cancel();
    }

    /// Ends the grace now (starting the stop if it had not started).
    pub fn request_immediate(&self) {
        self.requested.cancel();
        self.immediate.cancel();
    }

    pub fn is_requested(&self) -> bool {
        self.requested.is_cancelled()
    }
}

/// How far a shutdown has gone, readable with one atomic load (the request
/// path checks it: a stream still running when the grace ends stops).
#[derive(Clone, Debug, Default)]
pub struct Stage(Arc<AtomicU8>);

// 0: serving.
const DRAINING: u8 = 1;
const CLOSING: u8 = 2;

impl Stage {
    /// The grace is over: what is still in flight ends now.
    pub fn closing(&self) -> bool {
        self.0.load(Ordering::Acquire) >= CLOSING
    }

    fn level(&self) -> u8 {
        self.0.load(Ordering::Acquire)
    }

    fn raise(&self, to: u8) {
        self.0.fetch_max(to, Ordering::AcqRel);
    }
}

/// A listener's shutdown: on the first signal it stops accepting and lets
/// every connection finish the request it is serving (idle keep-alive
/// connections close at once); when the grace is over (or on a second
/// signal) the [`Stage`] says closing — streams end with an error event and
/// are billed — and connections close after at most [`CLOSE_FLUSH`].
#[derive(Clone, Debug)]
pub struct Phases {
    stage: Stage,
    stop: CancellationToken,
    close: CancellationToken,
}

impl Phases {
    /// Follows `signal`, raising `stage` (which the request path reads).
    pub fn start(signal: ShutdownSignal, grace: Duration, stage: Stage) -> Phases {
        let phases = Phases { stage, stop: CancellationToken::new(), close: CancellationToken::new() };
        let p = phases.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = signal.requested.cancelled() => {}
                () = p.stop.cancelled() => {}
            }
            p.begin_stop();
            tokio::select! {
                () = tokio::time::sleep(grace) => {
                    if !p.close.is_cancelled() {
                        tracing::info!(grace_secs = grace.as_secs(), "shutdown grace over: ending the requests still in flight");
                    }
                }
                () = signal.immediate.cancelled() => {
                    tracing::info!("second shutdown signal: ending the requests in flight now (accounting still drains)");
                }
                () = p.close.cancelled() => {}
            }
            p.begin_close();
        });
        phases
    }

    /// Phases that only `stop`/`close` (or dropping) move.
    pub fn manual() -> Phases {
        Phases { stage: Stage::default(), stop: CancellationToken::new(), close: CancellationToken::new() }
    }

    /// Stop accepting; in-flight requests finish.
    pub fn begin_stop(&self) {
        self.stage.raise(DRAINING);
        self.stop.cancel();
    }

    /// The grace is over.
    pub fn begin_close(&self) {
        self.stage.raise(CLOSING);
        self.stop.cancel();
        self.close.cancel();
    }

    pub fn stage(&self) -> &Stage {
        &self.stage
    }

    /// Resolves when the listener must stop accepting.
    pub async fn stopped(&self) {
        self.stop.cancelled().await
    }

    /// Stops everything when dropped (a dropped `serve` future).
    pub fn close_on_drop(&self) -> CloseOnDrop {
        CloseOnDrop(self.clone())
    }
}

/// See [`Phases::close_on_drop`].
pub struct CloseOnDrop(Phases);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.begin_close();
    }
}

/// The cap on open connections of one listener (shared by its workers).
#[derive(Clone, Debug)]
pub struct ConnectionCap(Arc<Semaphore>);

impl ConnectionCap {
    pub fn new(max_connections: usize) -> ConnectionCap {
        ConnectionCap(Arc::new(Semaphore::new(max_connections.min(Semaphore::MAX_PERMITS))))
    }

    /// Waits for room for one more connection; the slot is freed when the
    /// returned permit is dropped (when the connection closes).
    pub async fn slot(&self) -> tokio::sync::OwnedSemaphorePermit {
        match self.0.clone().acquire_owned().await {
            Ok(p) => p,
            // Never closed; wait for shutdown instead of spinning.
            Err(_) => std::future::pending().await,
        }
    }
}

/// What a connection is doing, and since when: one word, `(micros << 2) | state`.
#[derive(Debug)]
struct Watch {
    epoch: Instant,
    word: AtomicU64,
}

/// Waiting for (the rest of) a request head: the header timeout runs.
const HEAD: u64 = 0;
/// A request is being served (its body read or its answer written).
const BUSY: u64 = 1;
/// Keep-alive, between requests: the idle timeout runs.
const IDLE: u64 = 2;

impl Watch {
    fn new(now: Instant) -> Watch {
        Watch { epoch: now, word: AtomicU64::new(HEAD) }
    }

    fn set(&self, state: u64, at: Instant) {
        let micros = at.saturating_duration_since(self.epoch).as_micros() as u64;
        self.word.store((micros << 2) | state, Ordering::Relaxed);
    }

    fn state(&self) -> u64 {
        self.word.load(Ordering::Relaxed) & 3
    }

    /// Bytes arrived: an idle connection starts its next request head.
    #[inline]
    fn read_some(&self) {
        if self.state() == IDLE {
            self.set(HEAD, Instant::now());
        }
    }

    #[inline]
    fn busy(&self) {
        self.word.store(BUSY, Ordering::Relaxed);
    }

    #[inline]
    fn idle(&self) {
        self.set(IDLE, Instant::now());
    }

    /// When the connection is to be closed if nothing changes (none while busy).
    fn deadline(&self, limits: &ListenerLimits) -> Option<Instant> {
        let word = self.word.load(Ordering::Relaxed);
        let since = self.epoch + Duration::from_micros(word >> 2);
        match word & 3 {
            HEAD => Some(since + limits.header_read_timeout),
            IDLE => Some(since + limits.idle_timeout),
            _ => None,
        }
    }
}

/// The connection's socket, telling the watch when bytes arrive.
struct WatchedIo<I> {
    io: I,
    watch: Arc<Watch>,
}

impl<I: AsyncRead + Unpin> AsyncRead for WatchedIo<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.watch.read_some();
        }
        polled
    }
}

/// The methods of an `AsyncWrite` that only passes every call on to its
/// field `$field` (an `AsyncWrite + Unpin`): writes need no watching.
macro_rules! delegate_async_write {
    ($field:ident) => {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            std::pin::Pin::new(&mut self.$field).poll_write(cx, buf)
        }

        fn poll_write_vectored(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> std::task::Poll<std::io::Result<usize>> {
            std::pin::Pin::new(&mut self.$field).poll_write_vectored(cx, bufs)
        }

        fn is_write_vectored(&self) -> bool {
            self.$field.is_write_vectored()
        }

        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.$field).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.$field).poll_shutdown(cx)
        }
    };
}
pub(crate) use delegate_async_write;

impl<I: AsyncWrite + Unpin> AsyncWrite for WatchedIo<I> {
    delegate_async_write!(io);
}

/// The connection's service: busy from the call until the answer's body is dropped.
struct Watched<S> {
    inner: S,
    watch: Arc<Watch>,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Watched<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
    S::Future: Unpin,
{
    type Response = Response<Tracked<B>>;
    type Error = S::Error;
    type Future = WatchedCall<S::Future>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.watch.busy();
        WatchedCall { inner: self.inner.call(request), watch: Some(self.watch.clone()) }
    }
}

struct WatchedCall<F> {
    inner: F,
    watch: Option<Arc<Watch>>,
}

impl<F, B, E> Future for WatchedCall<F>
where
    F: Future<Output = Result<Response<B>, E>> + Unpin,
{
    type Output = Result<Response<Tracked<B>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                let watch = this.watch.take();
                Poll::Ready(result.map(|r| r.map(|body| Tracked { inner: body, watch })))
            }
        }
    }
}

/// An answer's body; when hyper drops it (written, or abandoned) the
/// connection is idle.
pub struct Tracked<B> {
    inner: B,
    watch: Option<Arc<Watch>>,
}

impl<B> Drop for Tracked<B> {
    fn drop(&mut self) {
        if let Some(w) = &self.watch {
            w.idle();
        }
    }
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// How a connection ended (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The client or hyper closed it (or it finished after a graceful stop).
    Served,
    /// No whole request head in time.
    HeaderTimeout,
    /// Idle keep-alive for too long.
    IdleTimeout,
    /// Closed by the end of the shutdown grace.
    Shutdown,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Serving,
    Draining,
    Closing,
}

/// Serves one accepted connection under the listener's limits and shutdown
/// phases (see the module docs); resolves when it is closed.
pub async fn serve_connection<I, S, B>(io: I, service: S, limits: ListenerLimits, phases: Phases) -> Ended
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>,
    S::Future: Unpin,
    B: hyper::body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let opened = Instant::now();
    let watch = Arc::new(Watch::new(opened));
    // No timer: hyper's header timeout stays off (see the module docs).
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(
        TokioIo::new(WatchedIo { io, watch: watch.clone() }),
        Watched { inner: service, watch: watch.clone() },
    );
    let mut conn = pin!(conn);
    let recheck = limits.header_read_timeout.min(limits.idle_timeout);
    let mut timer = pin!(tokio::time::sleep_until(opened + limits.header_read_timeout));
    let mut timer_registered = false;
    let mut stopped = pin!(phases.stop.clone().cancelled_owned());
    let mut closed = pin!(phases.close.clone().cancelled_owned());
    let (mut stop_registered, mut close_registered) = (false, false);
    let mut part = Part::Serving;
    std::future::poll_fn(|cx| loop {
        let level = phases.stage.level();
        if part == Part::Serving && level >= DRAINING {
            // Idle connections close; one serving a request closes after it.
            conn.as_mut().graceful_shutdown();
            part = Part::Draining;
        }
        if part == Part::Draining && level >= CLOSING {
            if watch.state() != BUSY {
                return Poll::Ready(Ended::Shutdown);
            }
            part = Part::Closing;
            timer.as_mut().reset(Instant::now() + CLOSE_FLUSH);
            timer_registered = false;
        }
        match conn.as_mut().poll(cx) {
            Poll::Ready(Ok(())) => return Poll::Ready(Ended::Served),
            Poll::Ready(Err(e)) => {
                tracing::trace!(error = %e, "connection ended with an error");
                return Poll::Ready(Ended::Served);
            }
            Poll::Pending => {}
        }
        // The timer is polled only to register it and once it fired.
        if !timer_registered || timer.is_elapsed() {
            if timer.as_mut().poll(cx).is_ready() {
                if part == Part::Closing {
                    return Poll::Ready(Ended::Shutdown);
                }
                let now = Instant::now();
                match watch.deadline(&limits) {
                    Some(deadline) if deadline <= now => {
                        let why = if watch.state() == HEAD { Ended::HeaderTimeout } else { Ended::IdleTimeout };
                        tracing::debug!(ended = ?why, "connection closed by its timeout");
                        return Poll::Ready(why);
                    }
                    deadline => {
                        let next = now + recheck;
                        timer.as_mut().reset(deadline.map_or(next, |d| d.min(next)));
                        timer_registered = false;
                        continue;
                    }
                }
            }
            timer_registered = true;
        }
        // Phase changes wake this task; the stage says which (above).
        if part == Part::Serving && !stop_registered {
            if stopped.as_mut().poll(cx).is_ready() {
                stop_registered = true;
                continue;
            }
            stop_registered = true;
        }
        if part == Part::Draining && !close_registered {
            if closed.as_mut().poll(cx).is_ready() {
                close_registered = true;
                continue;
            }
            close_registered = true;
        }
        return Poll::Pending;
    })
    .await
}

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
struct RouterService {
    router: axum::Router,
    peer: SocketAddr,
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn limits(header_ms: u64, idle_ms: u64) -> ListenerLimits {
        ListenerLimits {
            header_read_timeout: Duration::from_millis(header_ms),
            idle_timeout: Duration::from_millis(idle_ms),
            max_connections: 10,
            shutdown_grace: Duration::from_secs(1),
        }
    }

    fn hello() -> axum::Router {
        axum::Router::new().route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "slow"
            }),
        )
    }

    /// A connection over an in-memory pipe; returns the client end and the
    /// connection's task.
    fn connect(
        limits: ListenerLimits,
        phases: &Phases,
    ) -> (tokio::io::DuplexStream, tokio::task::JoinHandle<(Ended, Duration)>) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let service = RouterService { router: hello(), peer: SocketAddr::from(([127, 0, 0, 1], 1)) };
        let phases = phases.clone();
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let ended = serve_connection(server, service, limits, phases).await;
            (ended, start.elapsed())
        });
        (client, task)
    }

    async fn answer(client: &mut tokio::io::DuplexStream) -> String {
        let mut buf = vec![0u8; 4096];
        let n = client.read(&mut buf).await.unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_half_sent_head_is_closed_at_the_header_timeout() {
        let phases = Phases::manual();
        let (mut client, task) = connect(limits(300, 5_000), &phases);
        client.write_all(b"GET /nothing HTTP/1.1\r\nHost: x\r\n").await.unwrap_or(());
        let (ended, after) = task.await.unwrap_or((Ended::Served, Duration::ZERO));
        assert_eq!(ended, Ended::HeaderTimeout);
        assert!(after >= Duration::from_millis(300) && after < Duration::from_millis(310), "{after:?}");

        // Silent from the start: the same.
        let (_client, task) = connect(limits(300, 5_000), &phases);
        let (ended, after) = task.await.unwrap_or((Ended::Served, Duration::ZERO));
        assert_eq!((ended, after.as_millis()), (Ended::HeaderTimeout, 300));
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn idle_keep_alive_closes_at_the_idle_timeout_and_a_next_head_gets_the_header_timeout() {
        let phases = Phases::manual();
        let (mut client, task) = connect(limits(300, 2_000), &phases);
        // Requests keep it open well past both timeouts.
        for _ in 0..12 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            client.write_all(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap_or(());
            assert!(answer(&mut client).await.starts_with("HTTP/1.1 404"));
        }
        let last = Instant::now();
        // Idle 700 ms, then half a head: closed 300 ms after its first byte,
        // long before the idle timeout would have (2 s).
        tokio::time::sleep(Duration::from_millis(700)).await;
        client.write_all(b"GET /nothing HTTP/1.1\r\n").await.unwrap_or(());
        let (ended, _) = task.await.unwrap_or((Ended::Served, Duration::ZERO));
        assert_eq!(ended, Ended::HeaderTimeout);
        assert_eq!(last.elapsed().as_millis(), 1_000);

        // Idle: closed exactly at the idle timeout after the answer.
        let (mut client, task) = connect(limits(300, 2_000), &phases);
        client.write_all(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap_or(());
        assert!(answer(&mut client).await.starts_with("HTTP/1.1 404"));
        let answered = Instant::now();
        let (ended, _) = task.await.unwrap_or((Ended::Served, Duration::ZERO));
        assert_eq!((ended, answered.elapsed().as_millis()), (Ended::IdleTimeout, 2_000));
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_request_in_flight_is_never_idle_and_the_shutdown_ends_it_after_the_flush() {
        let phases = Phases::manual();
        let (mut client, task) = connect(limits(300, 1_000), &phases);
        client.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap_or(());
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!task.is_finished(), "a request in flight for 5 s (idle timeout 1 s)");
        phases.begin_stop();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(!task.is_finished(), "the grace lets it run");
        let closing = Instant::now();
        phases.begin_close();
        let (ended, _) = task.await.unwrap_or((Ended::Served, Duration::ZERO));
        assert_eq!((ended, closing.elapsed()), (Ended::Shutdown, CLOSE_FLUSH));

        // With nothing in flight a stop closes at once.
        let phases = Phases::manual();
        let (mut client, task) = connect(limits(300, 1_000), &phases);
        client.write_all(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap_or(());
        assert!(answer(&mut client).await.starts_with("HTTP/1.1 404"));
        phases.begin_stop();
        let (ended, after) = task.await.unwrap_or((Ended::Shutdown, Duration::MAX));
        assert_eq!(ended, Ended::Served);
        assert!(after < Duration::from_millis(10), "{after:?}");
    }
}
