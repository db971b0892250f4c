//! `GET /admin/v1/replicas`: the live gateway replicas, from their
//! heartbeats, and the state of Redis and the database as this replica sees
//! them.

use axum::extract::State;
use axum::Json;
use sheepdog_types::{ErrorBody, Replica, ReplicaList};

use crate::error::AdminError;
use sheepdog_core::replicas::LIVE_FOR;
use sheepdog_core::state::AppState;

#[utoipa::path(get, path = "/admin/v1/replicas", tag = "replicas",
    description = "The live gateway replicas (a heartbeat within the last 10 s; each replica writes one every 2 s): \
                   id, version, start time, last heartbeat and requests in flight. `redis` and `database` say how \
                   the answering replica sees them: `up`, `down`, or for `redis` `off` when no `[redis] url` is set.",
    responses((status = 200, body = ReplicaList), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list(State(state): State<AppState>) -> Result<Json<ReplicaList>, AdminError> {
    let since = sheepdog_types::time::now_ms() - LIVE_FOR.as_millis() as i64;
    let rows = state.store().live_replicas(since).await?;
    let data = rows
        .into_iter()
        .map(|r| Replica {
            id: r.id,
            version: r.version,
            started_at: r.started_at,
            last_seen_at: sheepdog_types::time::ms_to_rfc3339(r.last_seen_ms),
            in_flight: r.in_flight.max(0) as u64,
        })
        .collect();
    let redis = match state.shared() {
        None => "off",
        Some(s) if s.link().is_up() => "up",
        Some(_) => "down",
    };
    Ok(Json(ReplicaList { data, redis: redis.into(), database: "up".into() }))
}
