//! Shutdown: the process's signals ([`ShutdownSignal`]), how far a stop has
//! gone ([`Stage`]), and a listener's phases ([`Phases`]): stop accepting,
//! the grace, then close.

use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// After the grace, how long a connection with a request in flight may take
/// to write what its request ends with (a stream's error event) before it
/// is closed regardless.
pub const CLOSE_FLUSH: Duration = Duration::from_secs(1);

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
pub(super) const DRAINING: u8 = 1;
pub(super) const CLOSING: u8 = 2;

impl Stage {
    /// The grace is over: what is still in flight ends now.
    pub fn closing(&self) -> bool {
        self.0.load(Ordering::Acquire) >= CLOSING
    }

    pub(super) fn level(&self) -> u8 {
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
    pub(super) stage: Stage,
    pub(super) stop: CancellationToken,
    pub(super) close: CancellationToken,
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
