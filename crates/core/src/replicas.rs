//! This replica's heartbeat: every [`HEARTBEAT`] it writes its id, version,
//! start time and requests in flight to the database, and reads how many
//! replicas are live (seen within [`LIVE_FOR`]). The count divides the limits
//! when Redis is unreachable and `[redis] on_failure = "open"`; the rows
//! answer `GET /admin/v1/replicas`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sheepdog_store::replicas::ReplicaRow;
use sheepdog_store::Store;
use sheepdog_types::time;

use crate::shutdown::Shutdown;

/// How often a replica writes its heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(2);

/// A replica is live while its last heartbeat is this recent.
pub const LIVE_FOR: Duration = Duration::from_secs(10);

/// This process as a replica.
#[derive(Debug)]
pub struct ThisReplica {
    pub id: String,
    pub version: String,
    pub started_at: String,
    /// Live replicas at the last heartbeat (this one included; at least 1).
    live: AtomicU64,
    /// Whether the last heartbeat reached the database.
    database_up: AtomicBool,
}

impl ThisReplica {
    pub fn new(version: &str) -> Arc<ThisReplica> {
        Arc::new(ThisReplica {
            id: crate::ids::new_uuid().to_string(),
            version: version.to_string(),
            started_at: time::now_rfc3339(),
            live: AtomicU64::new(1),
            database_up: AtomicBool::new(true),
        })
    }

    pub fn live_replicas(&self) -> u64 {
        self.live.load(Ordering::Relaxed).max(1)
    }

    #[cfg(test)]
    pub(crate) fn set_live(&self, n: u64) {
        self.live.store(n, Ordering::Relaxed);
    }

    pub fn database_up(&self) -> bool {
        self.database_up.load(Ordering::Relaxed)
    }

    /// One heartbeat: written, then the live count read back.
    pub async fn beat(&self, store: &Store, in_flight: i64) {
        let now = time::now_ms();
        let row = ReplicaRow {
            id: self.id.clone(),
            version: self.version.clone(),
            started_at: self.started_at.clone(),
            last_seen_ms: now,
            in_flight: in_flight.max(0),
        };
        let result = async {
            store.heartbeat(&row).await?;
            store.live_replicas(now - LIVE_FOR.as_millis() as i64).await
        }
        .await;
        match result {
            Ok(live) => {
                self.live.store(live.len().max(1) as u64, Ordering::Relaxed);
                self.database_up.store(true, Ordering::Relaxed);
            }
            Err(e) => {
                if self.database_up.swap(false, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "heartbeat not written: the database is unreachable");
                }
            }
        }
    }

    /// Beats every [`HEARTBEAT`] until `stop`, then removes its row.
    /// `in_flight` reads the requests being served now.
    pub fn spawn(
        self: Arc<Self>,
        store: Store,
        in_flight: impl Fn() -> i64 + Send + 'static,
        stop: Shutdown,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                self.beat(&store, in_flight()).await;
                tokio::select! {
                    () = stop.wait() => break,
                    () = tokio::time::sleep(HEARTBEAT) => {}
                }
            }
            if let Err(e) = store.forget_replica(&self.id).await {
                tracing::debug!(error = %e, "replica row not removed at stop");
            }
        })
    }
}
