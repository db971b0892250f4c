//! The Redis connection every replica shares its admission state through:
//! one multiplexed connection (concurrent calls pipelined on one socket),
//! every call bounded by `timeout_ms`, and a health flag that makes calls
//! fail at once while Redis is known to be unreachable (no request waits a
//! timeout per call during an outage). A background task reconnects and
//! clears the flag when Redis answers again (within 250 ms of its return).

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::runtime::{Handle, RuntimeFlavor};

use crate::locks::lock;
use crate::shutdown::Shutdown;

/// How often an unreachable Redis is tried again.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// Calls timing out in a row that mark Redis down (a refused or lost
/// connection marks it down at once). One slow call fails alone.
pub const TIMEOUTS_TO_DOWN: u32 = 3;

/// Why a shared-state call did not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SharedError {
    /// Known to be unreachable (an earlier call failed; not tried again yet).
    #[error("redis is unreachable")]
    Down,
    #[error("redis call timed out")]
    Timeout,
    #[error("redis call failed: {0}")]
    Failed(String),
}

static NEXT_LINK: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// A gateway worker thread's own connections, one per link (with the
    /// link's generation when it was opened): the connection's driver task
    /// runs on the worker's runtime, so a call never wakes another thread.
    /// `None`: opening one failed in that generation (the shared one serves).
    static LOCAL: RefCell<Vec<(u64, u64, Option<MultiplexedConnection>)>> = const { RefCell::new(Vec::new()) };
}

/// The connection and its health.
pub struct RedisLink {
    client: redis::Client,
    /// Tells this link's per-thread connections from another link's.
    id: u64,
    /// Bumped on every (re)connection and loss: per-thread connections of
    /// an older generation are replaced.
    generation: AtomicU64,
    conn: Mutex<Option<MultiplexedConnection>>,
    timeout: Duration,
    up: AtomicBool,
    /// Calls that failed (counted in `/metrics`).
    failures: AtomicU64,
    /// Calls timed out in a row.
    timeouts: AtomicU32,
    /// Loaded into Redis on every (re)connection, so the first call of each
    /// script after it needs no second round trip.
    scripts: Vec<redis::Script>,
}

impl std::fmt::Debug for RedisLink {
    // The URL may hold a password: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink").field("up", &self.up.load(Ordering::Relaxed)).finish_non_exhaustive()
    }
}

impl RedisLink {
    /// A link to `url` (not connected yet: [`RedisLink::connect`] or the
    /// probe task connects).
    pub fn new(url: &str, timeout: Duration, scripts: Vec<redis::Script>) -> Result<RedisLink, SharedError> {
        // The error text of a bad URL may repeat the URL (and its password).
        let client = redis::Client::open(url).map_err(|_| SharedError::Failed("invalid redis URL".into()))?;
        Ok(RedisLink {
            client,
            id: NEXT_LINK.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
            conn: Mutex::new(None),
            timeout,
            up: AtomicBool::new(false),
            failures: AtomicU64::new(0),
            timeouts: AtomicU32::new(0),
            scripts,
        })
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Connects (bounded by the call timeout, at least one second for the
    /// handshake) and checks with a PING.
    pub async fn connect(&self) -> Result<(), SharedError> {
        let budget = self.timeout.max(Duration::from_secs(1));
        let mut conn = match tokio::time::timeout(budget, self.client.get_multiplexed_async_connection()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(SharedError::Failed(format!("{:?}", e.kind()))),
            Err(_) => return Err(SharedError::Timeout),
        };
        match tokio::time::timeout(budget, redis::cmd("PING").query_async::<String>(&mut conn)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(SharedError::Failed(format!("{:?}", e.kind()))),
            Err(_) => return Err(SharedError::Timeout),
        }
        for script in &self.scripts {
            match tokio::time::timeout(budget, script.prepare_invoke().load_async(&mut conn)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(SharedError::Failed(format!("{:?}", e.kind()))),
                Err(_) => return Err(SharedError::Timeout),
            }
        }
        self.timeouts.store(0, Ordering::Relaxed);
        *lock(&self.conn) = Some(conn);
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.up.store(true, Ordering::Release);
        Ok(())
    }

    /// The connection a call on this thread uses: on a single-threaded
    /// runtime (a gateway worker) its own, opened on first use; elsewhere
    /// the shared one.
    async fn connection(&self) -> Option<MultiplexedConnection> {
        let shared = lock(&self.conn).clone()?;
        let single = Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::CurrentThread);
        if !single {
            return Some(shared);
        }
        let generation = self.generation.load(Ordering::Acquire);
        let known = LOCAL.with(|l| {
            l.borrow().iter().find(|(id, g, _)| *id == self.id && *g == generation).map(|(_, _, c)| c.clone())
        });
        if let Some(mine) = known {
            return Some(mine.unwrap_or(shared));
        }
        // Scripts are loaded server-wide already: the new connection only
        // connects. A failure is remembered until the next (re)connection,
        // so calls do not each wait for another attempt.
        let opened = tokio::time::timeout(self.timeout, self.client.get_multiplexed_async_connection()).await;
        let mine = match opened {
            Ok(Ok(c)) => Some(c),
            _ => None,
        };
        LOCAL.with(|l| {
            let mut l = l.borrow_mut();
            l.retain(|(id, _, _)| *id != self.id);
            l.push((self.id, generation, mine.clone()));
        });
        Some(mine.unwrap_or(shared))
    }

    /// Runs one call (a script invocation or a pipeline) within the timeout.
    /// A failure marks Redis down until the probe task reconnects.
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T, SharedError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if !self.is_up() {
            return Err(SharedError::Down);
        }
        let Some(conn) = self.connection().await else {
            return Err(SharedError::Down);
        };
        let result = match tokio::time::timeout(self.timeout, f(conn)).await {
            Ok(Ok(v)) => {
                self.timeouts.store(0, Ordering::Relaxed);
                return Ok(v);
            }
            Ok(Err(e)) if !is_connection_error(&e) => {
                // Redis answered with an error (a script bug, wrong type):
                // Redis itself is up.
                self.failures.fetch_add(1, Ordering::Relaxed);
                return Err(SharedError::Failed(e.to_string()));
            }
            Ok(Err(e)) => SharedError::Failed(format!("{:?}", e.kind())),
            Err(_) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                if self.timeouts.fetch_add(1, Ordering::Relaxed) + 1 >= TIMEOUTS_TO_DOWN {
                    self.mark_down();
                }
                return Err(SharedError::Timeout);
            }
        };
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.mark_down();
        Err(result)
    }

    fn mark_down(&self) {
        if self.up.swap(false, Ordering::AcqRel) {
            tracing::warn!("redis unreachable: shared admission state unavailable until it answers again");
        }
        *lock(&self.conn) = None;
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Reconnects while Redis is down, every [`PROBE_INTERVAL`], until `stop`.
    pub async fn probe(self: std::sync::Arc<Self>, stop: Shutdown) {
        loop {
            if !self.is_up() {
                match self.connect().await {
                    Ok(()) => tracing::info!("redis reachable again: shared admission state restored"),
                    Err(e) => tracing::debug!(error = %e, "redis still unreachable"),
                }
            }
            tokio::select! {
                () = stop.wait() => return,
                () = tokio::time::sleep(PROBE_INTERVAL) => {}
            }
        }
    }
}

fn is_connection_error(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}
