//! Gateway replicas (`GET /admin/v1/replicas`): the live ones, from their
//! heartbeats, and the state of what they share.

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// One live gateway replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Replica {
    /// Chosen by the replica at start (UUID v4).
    pub id: String,
    /// The `sheepdog` version it runs.
    pub version: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// Its last heartbeat, RFC 3339, UTC.
    pub last_seen_at: String,
    /// Requests it was serving at its last heartbeat.
    pub in_flight: u64,
}

/// `GET /admin/v1/replicas`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ReplicaList {
    pub data: Vec<Replica>,
    /// Shared state as the answering replica sees it: `"up"`, `"down"`, or
    /// `"off"` (no `[redis] url`: one process, in-memory state).
    pub redis: String,
    /// The database as the answering replica sees it: `"up"` or `"down"`.
    pub database: String,
}
