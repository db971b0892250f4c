//! The gateway's own rollout transitions, off the request path: the guard's
//! automatic rollback (stored, logged, counted, audited) and the schedule
//! that advances step plans and picks up other replicas' changes.

use std::time::Duration;

use super::guard::{Side, Trip};
use super::Live;
use crate::shutdown::Shutdown;
use crate::state::AppState;
use sheepdog_store::rollouts::{EventRow, RolloutRow};
use sheepdog_store::AuditEntry;

/// Feeds one side's outcome to the rollout's guard; an automatic rollback is
/// stored, logged, counted and audited (off the request path).
pub fn observe(state: &AppState, live: &Live, side: Side, latency_ms: u64, error: bool, cost_nanos: i64) {
    let now = sheepdog_types::time::now_ms();
    let Some((row, ev, trip)) = state.rollouts().observe(live, side, latency_ms, error, cost_nanos, now) else {
        return;
    };
    store_rollback(state, row, ev, trip);
}

/// An automatic rollback: alerted, counted, stored and audited (off the
/// request path).
fn store_rollback(state: &AppState, row: RolloutRow, ev: EventRow, trip: Trip) {
    tracing::error!(rollout = %row.id, model = %row.model, reason = %trip.reason, "ALERT: rollout rolled back automatically");
    state.metrics().rollback(&row.id, "guard");
    let state = state.clone();
    tokio::spawn(async move {
        if let Err(e) = state.store().update_rollout(&row, Some(&ev)).await {
            tracing::error!(error = %e, rollout = %row.id, "could not store an automatic rollback");
        }
        let after = serde_json::json!({"phase": row.phase, "reason": ev.reason});
        let entry = AuditEntry {
            id: uuid::Uuid::new_v4().to_string(),
            at: sheepdog_types::time::now_rfc3339(),
            actor: "guard".into(),
            action: "rollout.rollback".into(),
            target: row.id.clone(),
            before_json: None,
            after_json: Some(after.to_string()),
        };
        if let Err(e) = state.store().insert_audit(&entry).await {
            tracing::error!(error = %e, rollout = %row.id, "could not write the audit log");
        }
    });
}

/// Twice a second: picks up other replicas' rollout changes (so a rollback
/// reaches every replica within a second), advances step plans and stores
/// the transitions.
pub fn spawn_schedule(state: AppState, shutdown: Shutdown) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = shutdown.ticks(Duration::from_millis(500));
        while ticks.next().await {
            if let Err(e) = state.rollouts().sync(state.store(), state.models()).await {
                tracing::warn!(error = %e, "could not sync rollouts from the database");
            }
            for (row, ev) in state.rollouts().tick(sheepdog_types::time::now_ms()) {
                tracing::info!(rollout = %row.id, reason = %ev.reason, "rollout step");
                if let Err(e) = state.store().update_rollout(&row, Some(&ev)).await {
                    tracing::error!(error = %e, rollout = %row.id, "could not store a rollout step");
                }
            }
        }
    })
}

/// Every second (with shared state): shares this replica's rollout
/// measurements with the others and applies the deployment's guard
/// ([`super::global`]).
pub fn spawn_sharing(state: AppState, shutdown: Shutdown) -> Option<tokio::task::JoinHandle<()>> {
    let shared = state.shared()?.clone();
    Some(tokio::spawn(async move {
        let mut ticks = shutdown.ticks(Duration::from_secs(1));
        while ticks.next().await {
            let now = sheepdog_types::time::now_ms();
            for (row, ev, trip) in super::global::share_all(state.rollouts(), &shared, now).await {
                store_rollback(&state, row, ev, trip);
            }
        }
    }))
}
