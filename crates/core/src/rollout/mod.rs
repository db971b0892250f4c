//! Staged provider migration (SPEC §6): a rollout moves a model's traffic,
//! for one tenant or all, from a `from` route to a `to` route — `shadow`
//! (served by `from`, mirrored to `to` and compared), then `canary` at a
//! share that follows a step plan, then `complete`. A guard rolls back by
//! itself when `to` misbehaves; an operator can roll back at any time.
//! Every transition is stored with its reason.
//!
//! The registry lives in memory (decisions never wait on the database);
//! transitions are written through and take effect on the next request.

pub mod compare;
pub mod controller;
pub mod global;
pub mod guard;
pub mod plan;
pub mod series;
pub mod shadow;

use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::Semaphore;

use crate::routing::{ModelRoute, Models};
use guard::{GuardConfig, Sample, Side, SideStats, Trip, Window};
use plan::{canary_bp, Phase, StepPlan, FULL};
use series::{Delta, Series, View};
pub use series::{ShadowTotals, Totals};
use sheepdog_store::rollouts::{EventRow, RolloutRow};
use sheepdog_store::{Store, StoreError};

/// Running totals of one side since the rollout started.
#[derive(Debug)]
struct State {
    row: RolloutRow,
    plan: StepPlan,
    guard: GuardConfig,
    window: Window,
    from_totals: Totals,
    to_totals: Totals,
    shadow: ShadowTotals,
    /// Both sides over time (the console's live charts), as this replica saw them.
    series: Series,
    /// With shared state: what this replica measured since it last shared
    /// it, and the deployment's figures as last read ([`global`]).
    pending: Option<Delta>,
    view: Option<View>,
    /// When the rollout was created, epoch ms (where its series starts).
    created_ms: i64,
    /// The canary share last recorded as an event (for step events).
    reported_bp: u32,
}

/// One rollout in memory.
#[derive(Debug)]
pub struct Live {
    pub id: String,
    pub model: String,
    pub tenant_id: Option<String>,
    pub from: Arc<ModelRoute>,
    pub to: Arc<ModelRoute>,
    state: Mutex<State>,
    pub shadow_slots: Arc<Semaphore>,
}

/// A routing decision for one request.
#[derive(Debug, Clone)]
pub struct Decision {
    pub rollout: Arc<Live>,
    pub side: Side,
    pub route: Arc<ModelRoute>,
    /// Mirror this request to `to` (shadow phase).
    pub shadow: bool,
}

/// A snapshot for the admin API.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub row: RolloutRow,
    pub plan: StepPlan,
    pub guard: GuardConfig,
    pub current_bp: u32,
    pub from_window: SideStats,
    pub to_window: SideStats,
    pub from_totals: Totals,
    pub to_totals: Totals,
    pub shadow: ShadowTotals,
}

impl Live {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        crate::locks::lock(&self.state)
    }

    pub fn phase(&self) -> Phase {
        Phase::parse(&self.lock().row.phase).unwrap_or(Phase::RolledBack)
    }

    /// The canary share now (0 outside canary, 100 % once complete).
    fn share(s: &State, now_ms: i64) -> u32 {
        match Phase::parse(&s.row.phase) {
            Some(Phase::Canary) => {
                let at = s.row.paused_at_ms.unwrap_or(now_ms);
                canary_bp(&s.plan, s.row.percent_bp.clamp(0, i64::from(FULL)) as u32, s.row.since_ms, at)
            }
            Some(Phase::Complete) => FULL,
            _ => 0,
        }
    }

    /// The deployment's figures with this replica's unshared ones, while
    /// they are fresh ([`series::STALE_MS`]).
    fn global_view(s: &State, now_ms: i64) -> Option<View> {
        let view = s.view.as_ref().filter(|_| Self::view_fresh(s, now_ms))?;
        Some(match &s.pending {
            Some(p) => view.with(p),
            None => view.clone(),
        })
    }

    /// Whether the deployment's figures were read recently enough to judge.
    fn view_fresh(s: &State, now_ms: i64) -> bool {
        s.view.as_ref().is_some_and(|v| now_ms - v.at_ms <= series::STALE_MS)
    }

    pub fn snapshot(&self, now_ms: i64) -> Snapshot {
        let mut s = self.lock();
        let current_bp = Self::share(&s, now_ms);
        let guard = s.guard;
        if let Some(v) = Self::global_view(&s, now_ms) {
            return Snapshot {
                row: s.row.clone(),
                plan: s.plan,
                guard,
                current_bp,
                from_window: v.window_stats(Side::From, now_ms, guard.window_secs),
                to_window: v.window_stats(Side::To, now_ms, guard.window_secs),
                from_totals: v.from,
                to_totals: v.to,
                shadow: v.shadow,
            };
        }
        let from_window = s.window.stats(Side::From, now_ms, &guard);
        let to_window = s.window.stats(Side::To, now_ms, &guard);
        Snapshot {
            row: s.row.clone(),
            plan: s.plan,
            guard,
            current_bp,
            from_window,
            to_window,
            from_totals: s.from_totals,
            to_totals: s.to_totals,
            shadow: s.shadow,
        }
    }

    /// The time series from the rollout's creation (at most the last
    /// [`series::BUCKETS`] buckets) to the bucket holding `now_ms`.
    pub fn series(&self, now_ms: i64) -> Vec<series::Bucket> {
        let s = self.lock();
        match Self::global_view(&s, now_ms) {
            Some(v) => v.series().report(s.created_ms, now_ms),
            None => s.series.report(s.created_ms, now_ms),
        }
    }
}

/// Every rollout, newest last.
#[derive(Debug, Default)]
pub struct Rollouts {
    live: RwLock<Vec<Arc<Live>>>,
    /// Measurements are shared with the other replicas (`[redis] url`).
    global: std::sync::atomic::AtomicBool,
    /// The stored rollouts version this replica last synced with.
    version: std::sync::atomic::AtomicI64,
}

fn event(rollout: &str, from: Option<&str>, to: Phase, bp: u32, actor: &str, reason: String, now_ms: i64) -> EventRow {
    EventRow {
        id: uuid::Uuid::new_v4().to_string(),
        rollout_id: rollout.to_string(),
        at: sheepdog_types::time::ms_to_rfc3339(now_ms),
        at_ms: now_ms,
        from_phase: from.map(str::to_string),
        to_phase: to.as_str().to_string(),
        percent_bp: i64::from(bp),
        actor: actor.to_string(),
        reason,
    }
}

/// An operator's action on a rollout.
#[derive(Debug, Clone)]
pub enum Action {
    /// shadow → canary at the plan's first share (or `percent`); canary → the
    /// next step (or `percent`); 100 % → complete.
    Advance {
        percent_bp: Option<u32>,
    },
    Pause,
    Resume,
    Rollback,
}

#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Rollouts {
    /// Loads every rollout whose routes still exist in the configuration.
    /// `global`: their measurements are shared with the other replicas.
    pub async fn load(store: &Store, models: &Models, global: bool) -> Result<Rollouts, StoreError> {
        let r = Rollouts { global: global.into(), ..Rollouts::default() };
        for row in store.list_rollouts().await? {
            match r.build_live(row, models) {
                Ok(live) => r.insert(live),
                Err(e) => tracing::warn!(error = %e, "rollout skipped: its routes are no longer configured"),
            }
        }
        Ok(r)
    }

    /// Picks up changes other replicas made (new rollouts, transitions),
    /// keeping this replica's measurements. Called about once a second.
    pub async fn sync(&self, store: &Store, models: &Models) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        let version = store.rollouts_version().await?;
        if version == self.version.load(Ordering::Relaxed) {
            return Ok(());
        }
        for row in store.list_rollouts().await? {
            match self.get(&row.id) {
                Some(live) => {
                    let mut s = live.lock();
                    if row.updated_at > s.row.updated_at {
                        s.row = row;
                        s.reported_bp = Live::share(&s, sheepdog_types::time::now_ms());
                    }
                }
                None => match self.build_live(row, models) {
                    Ok(live) => self.insert(live),
                    Err(e) => tracing::warn!(error = %e, "rollout skipped: its routes are no longer configured"),
                },
            }
        }
        self.version.store(version, Ordering::Relaxed);
        Ok(())
    }

    fn insert(&self, live: Arc<Live>) {
        let mut v = match self.live.write() {
            Ok(v) => v,
            Err(p) => p.into_inner(),
        };
        v.push(live);
    }

    pub fn all(&self) -> Vec<Arc<Live>> {
        match self.live.read() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<Live>> {
        self.all().into_iter().find(|l| l.id == id)
    }

    /// Builds the in-memory rollout for a stored row.
    pub fn build_live(&self, row: RolloutRow, models: &Models) -> Result<Arc<Live>, String> {
        let model = models.get(&row.model).ok_or_else(|| format!("model {:?} is not configured", row.model))?;
        let from = models
            .route_on(&model.model, &row.from_provider, &row.from_upstream_model, None)
            .ok_or_else(|| format!("provider {:?} is not configured", row.from_provider))?;
        let prices = row.to_input_nanos.zip(row.to_output_nanos);
        let to = models
            .route_on(&model.model, &row.to_provider, &row.to_upstream_model, prices)
            .ok_or_else(|| format!("provider {:?} is not configured", row.to_provider))?;
        let plan: StepPlan = serde_json::from_str(&row.plan_json).unwrap_or_default();
        let guard: GuardConfig = serde_json::from_str(&row.guard_json).unwrap_or_default();
        let now = sheepdog_types::time::now_ms();
        let created_ms = sheepdog_types::time::parse_rfc3339_ms(&row.created_at).unwrap_or(now);
        let mut state = State {
            plan,
            guard,
            window: Window::default(),
            from_totals: Totals::default(),
            to_totals: Totals::default(),
            shadow: ShadowTotals::default(),
            series: Series::default(),
            pending: self.global.load(std::sync::atomic::Ordering::Relaxed).then(Delta::default),
            view: None,
            created_ms,
            reported_bp: 0,
            row,
        };
        state.reported_bp = Live::share(&state, now);
        let slots = state.row.shadow_concurrency.clamp(1, 1024) as usize;
        Ok(Arc::new(Live {
            id: state.row.id.clone(),
            model: state.row.model.clone(),
            tenant_id: state.row.tenant_id.clone(),
            from,
            to,
            state: Mutex::new(state),
            shadow_slots: Arc::new(Semaphore::new(slots)),
        }))
    }

    /// Stores and activates a new rollout (refused while another one for the
    /// same model and tenant scope is in shadow or canary).
    pub async fn create(
        &self,
        store: &Store,
        models: &Models,
        row: RolloutRow,
        actor: &str,
    ) -> Result<Arc<Live>, RolloutError> {
        let clash = self
            .all()
            .into_iter()
            .any(|l| l.model == row.model && l.tenant_id == row.tenant_id && l.phase().is_active());
        if clash {
            return Err(RolloutError::Invalid(format!(
                "model {:?} already has a rollout in shadow or canary for this tenant scope; complete or roll it back first",
                row.model
            )));
        }
        let live = self.build_live(row.clone(), models).map_err(RolloutError::Invalid)?;
        let phase = Phase::parse(&row.phase).unwrap_or(Phase::Shadow);
        let bp = row.percent_bp.clamp(0, i64::from(FULL)) as u32;
        let ev = event(&row.id, None, phase, bp, actor, "created".into(), sheepdog_types::time::now_ms());
        store.insert_rollout(&row, &ev).await?;
        self.insert(live.clone());
        Ok(live)
    }

    /// The decision for a request of `model` by `tenant`: a tenant's own
    /// rollout wins over one for all tenants; the newest wins among equals.
    /// `sticky_key` is asked for only when a canary splits the traffic.
    pub fn decide(
        &self,
        tenant_id: &str,
        model: &str,
        sticky_key: impl FnOnce() -> String,
        now_ms: i64,
    ) -> Option<Decision> {
        let all = self.all();
        let pick = |scope_tenant: bool| {
            all.iter()
                .rev()
                .filter(|l| l.model == model)
                .filter(
                    |l| if scope_tenant { l.tenant_id.as_deref() == Some(tenant_id) } else { l.tenant_id.is_none() },
                )
                .find(|l| l.phase() != Phase::RolledBack)
                .cloned()
        };
        let live = pick(true).or_else(|| pick(false))?;
        let s = live.lock();
        let phase = Phase::parse(&s.row.phase)?;
        let (side, shadow) = match phase {
            Phase::Shadow => (Side::From, true),
            Phase::Canary => {
                let share = Live::share(&s, now_ms);
                if plan::bucket(&live.id, &sticky_key()) < share {
                    (Side::To, false)
                } else {
                    (Side::From, false)
                }
            }
            Phase::Complete => (Side::To, false),
            Phase::RolledBack => return None,
        };
        drop(s);
        let route = match side {
            Side::From => live.from.clone(),
            Side::To => live.to.clone(),
        };
        Some(Decision { rollout: live, side, route, shadow })
    }

    /// Records one served request of a side; may trip the guard. Returns the
    /// trip so the caller can alert and persist the rollback.
    pub fn observe(
        &self,
        live: &Live,
        side: Side,
        latency_ms: u64,
        error: bool,
        cost_nanos: i64,
        now_ms: i64,
    ) -> Option<(RolloutRow, EventRow, Trip)> {
        let mut s = live.lock();
        let totals = match side {
            Side::From => &mut s.from_totals,
            Side::To => &mut s.to_totals,
        };
        let one = Totals { requests: 1, errors: u64::from(error), cost_nanos };
        totals.add(&one);
        let phase = Phase::parse(&s.row.phase);
        // In shadow, `to` only answers mirrored calls: their cost comes with
        // the compared pair (`observe_shadow`).
        let cost = (!(phase == Some(Phase::Shadow) && side == Side::To)).then_some(cost_nanos);
        s.series.request(now_ms, side, latency_ms, error, cost);
        if let Some(p) = &mut s.pending {
            p.series.request(now_ms, side, latency_ms, error, cost);
            match side {
                Side::From => p.from.add(&one),
                Side::To => p.to.add(&one),
            }
        }
        let phase = phase?;
        // The deployment's guard judges every replica's traffic ([`global`]);
        // this replica's own window decides only while that view is stale.
        if !phase.is_active() || Live::view_fresh(&s, now_ms) {
            return None;
        }
        let guard = s.guard;
        s.window.push(Sample { at_ms: now_ms, side, latency_ms, error }, &guard);
        let trip = s.window.evaluate(now_ms, &guard)?;
        Some(Self::roll_back(&mut s, "guard", format!("automatic rollback: {}", trip.reason), now_ms))
            .map(|(r, e)| (r, e, trip))
    }

    /// Records a shadow pair's comparison.
    pub fn observe_shadow(
        &self,
        live: &Live,
        to_error: bool,
        differing: bool,
        tool_mismatch: bool,
        cost_nanos: i64,
        now_ms: i64,
    ) {
        let mut s = live.lock();
        s.series.shadow_pair(now_ms, differing, cost_nanos);
        let one = ShadowTotals {
            pairs: 1,
            differing: u64::from(differing),
            tool_mismatches: u64::from(tool_mismatch),
            to_errors: u64::from(to_error),
            shadow_cost_nanos: cost_nanos,
            skipped: 0,
        };
        s.shadow.add(&one);
        if let Some(p) = &mut s.pending {
            p.series.shadow_pair(now_ms, differing, cost_nanos);
            p.shadow.add(&one);
        }
    }

    pub fn shadow_skipped(&self, live: &Live) {
        let mut s = live.lock();
        s.shadow.skipped += 1;
        if let Some(p) = &mut s.pending {
            p.shadow.skipped += 1;
        }
    }

    fn roll_back(s: &mut State, actor: &str, reason: String, now_ms: i64) -> (RolloutRow, EventRow) {
        let bp = Live::share(s, now_ms);
        s.row.paused_at_ms = None;
        transition(s, Phase::RolledBack, bp, actor, reason, now_ms)
    }

    /// Applies an operator's action (in memory at once), returning what to store.
    pub fn act(
        &self,
        live: &Live,
        action: &Action,
        actor: &str,
        reason: Option<String>,
        now_ms: i64,
    ) -> Result<(RolloutRow, EventRow), String> {
        let mut s = live.lock();
        let phase = Phase::parse(&s.row.phase).unwrap_or(Phase::RolledBack);
        let current = Live::share(&s, now_ms);
        let note = |default: String| reason.clone().filter(|r| !r.trim().is_empty()).unwrap_or(default);
        match (action, phase) {
            (Action::Rollback, Phase::RolledBack) => Err("the rollout is already rolled back".into()),
            (Action::Rollback, _) => {
                Ok(Self::roll_back(&mut s, actor, note("rolled back by an operator".into()), now_ms))
            }
            (Action::Advance { .. }, Phase::Complete | Phase::RolledBack) => {
                Err(format!("a {} rollout cannot advance", phase.as_str()))
            }
            (Action::Advance { percent_bp }, Phase::Shadow) => {
                let bp = percent_bp.unwrap_or(s.plan.initial_bp).min(FULL);
                s.row.paused_at_ms = None;
                set_share(&mut s, bp, now_ms);
                Ok(transition(&mut s, Phase::Canary, bp, actor, note(format!("canary at {}", pct(bp))), now_ms))
            }
            (Action::Advance { percent_bp }, Phase::Canary) => {
                let bp = percent_bp.unwrap_or(current.saturating_add(s.plan.step_bp)).min(FULL);
                if bp < current {
                    return Err(format!("the canary is at {} already; roll back instead of lowering it", pct(current)));
                }
                set_share(&mut s, bp, now_ms);
                let (to, default) = if bp >= FULL {
                    (Phase::Complete, "complete: all traffic on `to`".to_string())
                } else {
                    (Phase::Canary, format!("canary at {}", pct(bp)))
                };
                Ok(transition(&mut s, to, bp, actor, note(default), now_ms))
            }
            (Action::Pause, Phase::Canary) if s.row.paused_at_ms.is_none() => {
                s.row.paused_at_ms = Some(now_ms);
                Ok(transition(
                    &mut s,
                    Phase::Canary,
                    current,
                    actor,
                    note(format!("paused at {}", pct(current))),
                    now_ms,
                ))
            }
            (Action::Resume, Phase::Canary) => {
                let Some(paused_at) = s.row.paused_at_ms else { return Err("the rollout is not paused".into()) };
                // The pause does not count towards the next step.
                s.row.since_ms += now_ms - paused_at;
                s.row.paused_at_ms = None;
                Ok(transition(
                    &mut s,
                    Phase::Canary,
                    current,
                    actor,
                    note(format!("resumed at {}", pct(current))),
                    now_ms,
                ))
            }
            (Action::Pause | Action::Resume, _) => {
                Err(format!("only a running canary can be paused or resumed (this one is {})", phase.as_str()))
            }
        }
    }

    /// Records the step plan's progress: a step event when the share grows,
    /// `complete` when it reaches 100 %. Called about once a second.
    pub fn tick(&self, now_ms: i64) -> Vec<(RolloutRow, EventRow)> {
        let mut out = Vec::new();
        for live in self.all() {
            let mut s = live.lock();
            if Phase::parse(&s.row.phase) != Some(Phase::Canary) || s.row.paused_at_ms.is_some() {
                continue;
            }
            let share = Live::share(&s, now_ms);
            if share <= s.reported_bp {
                continue;
            }
            s.reported_bp = share;
            let (to, reason) = if share >= FULL {
                set_share(&mut s, FULL, now_ms);
                (Phase::Complete, "step plan reached 100 %: complete".to_string())
            } else {
                (Phase::Canary, format!("step plan: canary at {}", pct(share)))
            };
            out.push(transition(&mut s, to, share, "schedule", reason, now_ms));
        }
        out
    }
}

/// Moves a rollout to `to` (or keeps its phase) and returns the row to store
/// with the event that records why.
fn transition(s: &mut State, to: Phase, bp: u32, actor: &str, reason: String, now_ms: i64) -> (RolloutRow, EventRow) {
    let from_phase = std::mem::replace(&mut s.row.phase, to.as_str().to_string());
    s.row.updated_at = sheepdog_types::time::ms_to_rfc3339(now_ms);
    let ev = event(&s.row.id, Some(&from_phase), to, bp, actor, reason, now_ms);
    (s.row.clone(), ev)
}

/// Sets the canary share the step plan grows from, starting now.
fn set_share(s: &mut State, bp: u32, now_ms: i64) {
    s.row.percent_bp = i64::from(bp);
    s.row.since_ms = now_ms;
    s.reported_bp = bp;
}

pub fn pct(bp: u32) -> String {
    if bp.is_multiple_of(100) {
        format!("{} %", bp / 100)
    } else {
        format!("{:.2} %", f64::from(bp) / 100.0)
    }
}
