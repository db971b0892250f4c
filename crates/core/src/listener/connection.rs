//! One connection served under the listener's limits and shutdown phases
//! (the watchdog), and the cap on open connections.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::shutdown::{Phases, CLOSE_FLUSH, CLOSING, DRAINING};
use super::watch::{Watch, Watched, WatchedIo, BUSY, HEAD};
use crate::config::ListenerLimits;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

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

#[cfg(test)]
mod tests {
    use super::super::router::RouterService;
    use super::*;
    use std::net::SocketAddr;
    use std::time::Duration;
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
