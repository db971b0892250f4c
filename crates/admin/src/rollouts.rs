//! Rollouts and upstream health under `/admin/v1` (SPEC §6): create, list,
//! report (both sides side by side, shadow diffs), advance, pause, resume,
//! roll back, history; breaker states of every upstream. The transitions the
//! gateway makes by itself (the guard's automatic rollbacks, the step plan's
//! progress) live in the data plane: `sheepdog_core::rollout::controller`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use sheepdog_types::{
    format_usd, AdvanceInput, BreakerView, CreateRollout, EventList, EventView, GuardView, PlanView, ReasonInput,
    RolloutList, RolloutReport, RolloutView, RouteView, SampleList, SampleView, SeriesPointView, SeriesSideView,
    SeriesView, ShadowView, SideView, UpstreamList, UpstreamView,
};

use crate::audit::{audit, current_actor};
use crate::body::parse_json;
use crate::error::AdminError;
use crate::lookup::find_tenant;
use crate::query::AdminQuery;
use sheepdog_core::rollout::guard::{GuardConfig, SideStats};
use sheepdog_core::rollout::plan::{Phase, StepPlan, FULL};
use sheepdog_core::rollout::series::{self, Bucket, SideBucket};
use sheepdog_core::rollout::{Action, Live, RolloutError, Snapshot, Totals};
use sheepdog_core::state::AppState;
use sheepdog_store::rollouts::{EventRow, RolloutRow, SampleRow};

// ---- conversions ----------------------------------------------------------------

fn percent_to_bp(name: &str, v: f64) -> Result<u32, AdminError> {
    if !v.is_finite() || !(0.0..=100.0).contains(&v) || (v * 100.0).fract().abs() > 1e-6 {
        return Err(AdminError::BadRequest(format!(
            "`{name}` must be a percent from 0 to 100 with at most two decimals."
        )));
    }
    Ok((v * 100.0).round() as u32)
}

fn bp_to_percent(bp: u32) -> f64 {
    f64::from(bp) / 100.0
}

/// `extra_cost_nanos`: cost of this side's requests not in `t` (the shadow
/// calls' cost, for `to`).
fn side_view(w: &SideStats, t: &Totals, extra_cost_nanos: i64, window_secs: u64) -> SideView {
    let per_1k = series::cost_per_1k_nanos(i128::from(t.cost_nanos) + i128::from(extra_cost_nanos), t.requests);
    SideView {
        window_requests: w.count,
        window_errors: w.errors,
        error_rate_percent: f64::from(w.error_rate_bp()) / 100.0,
        p50_ms: w.p50_ms,
        p99_ms: w.p99_ms,
        throughput_rpm: (f64::from(w.count) * 60.0 / window_secs.max(1) as f64 * 100.0).round() / 100.0,
        total_requests: t.requests,
        total_errors: t.errors,
        cost_per_1k_requests_usd: format_usd(per_1k.unwrap_or(0)),
    }
}

fn view(s: &Snapshot) -> RolloutView {
    let r = &s.row;
    let pairs = s.shadow.pairs;
    RolloutView {
        id: r.id.clone(),
        model: r.model.clone(),
        tenant_id: r.tenant_id.clone(),
        from: RouteView { provider: r.from_provider.clone(), upstream_model: r.from_upstream_model.clone() },
        to: RouteView { provider: r.to_provider.clone(), upstream_model: r.to_upstream_model.clone() },
        phase: r.phase.clone(),
        percent: bp_to_percent(s.current_bp),
        paused: r.paused_at_ms.is_some(),
        plan: PlanView {
            initial_percent: bp_to_percent(s.plan.initial_bp),
            step_percent: bp_to_percent(s.plan.step_bp),
            step_interval_secs: s.plan.interval_secs,
            manual: s.plan.manual,
        },
        guard: GuardView {
            max_error_rate_percent: f64::from(s.guard.max_error_rate_bp) / 100.0,
            max_p99_ratio: f64::from(s.guard.max_p99_ratio_pct) / 100.0,
            window_secs: s.guard.window_secs,
            min_samples: s.guard.min_samples,
        },
        window_secs: s.guard.window_secs,
        from_stats: side_view(&s.from_window, &s.from_totals, 0, s.guard.window_secs),
        to_stats: side_view(&s.to_window, &s.to_totals, s.shadow.shadow_cost_nanos, s.guard.window_secs),
        shadow: ShadowView {
            pairs,
            differing: s.shadow.differing,
            diff_rate_percent: if pairs == 0 {
                0.0
            } else {
                (s.shadow.differing as f64 * 10_000.0 / pairs as f64).round() / 100.0
            },
            tool_mismatches: s.shadow.tool_mismatches,
            to_errors: s.shadow.to_errors,
            shadow_spend_usd: format_usd(s.shadow.shadow_cost_nanos),
            skipped: s.shadow.skipped,
        },
        created_at: r.created_at.clone(),
        updated_at: r.updated_at.clone(),
    }
}

fn series_side_view(b: &SideBucket) -> SeriesSideView {
    SeriesSideView {
        requests: b.requests,
        errors: b.errors,
        error_rate_percent: f64::from(b.error_rate_bp()) / 100.0,
        p50_ms: b.latency.quantile(0.5),
        p99_ms: b.latency.quantile(0.99),
        throughput_rpm: (b.requests as f64 * 60_000.0 / series::BUCKET_MS as f64 * 100.0).round() / 100.0,
        cost_nanos: b.cost_nanos,
        cost_usd: format_usd(b.cost_nanos),
        cost_per_1k_requests_usd: b.cost_per_1k_nanos().map(format_usd),
    }
}

/// The series view of `buckets` (the last one holds `now_ms`).
pub fn series_view(buckets: &[Bucket], now_ms: i64) -> SeriesView {
    SeriesView {
        bucket_secs: (series::BUCKET_MS / 1000) as u64,
        points: buckets
            .iter()
            .map(|b| SeriesPointView {
                start: sheepdog_types::time::ms_to_rfc3339_secs(b.start_ms),
                start_ms: b.start_ms,
                complete: b.start_ms + series::BUCKET_MS <= now_ms,
                from: series_side_view(&b.from),
                to: series_side_view(&b.to),
                shadow_pairs: b.pairs,
                shadow_differing: b.differing,
                diff_rate_percent: (b.pairs > 0)
                    .then(|| (b.differing as f64 * 10_000.0 / b.pairs as f64).round() / 100.0),
            })
            .collect(),
    }
}

fn event_view(e: &EventRow) -> EventView {
    EventView {
        at: e.at.clone(),
        from_phase: e.from_phase.clone(),
        to_phase: e.to_phase.clone(),
        percent: bp_to_percent(e.percent_bp.clamp(0, i64::from(FULL)) as u32),
        actor: e.actor.clone(),
        reason: e.reason.clone(),
    }
}

fn sample_view(s: &SampleRow) -> SampleView {
    SampleView {
        at: sheepdog_types::time::ms_to_rfc3339(s.at_ms),
        request_id: s.request_id.clone(),
        from_latency_ms: s.from_latency_ms,
        to_latency_ms: s.to_latency_ms,
        from_ttft_ms: s.from_ttft_ms,
        to_ttft_ms: s.to_ttft_ms,
        from_error: s.from_error.clone(),
        to_error: s.to_error.clone(),
        from_tokens: [s.from_input_tokens, s.from_output_tokens],
        to_tokens: [s.to_input_tokens, s.to_output_tokens],
        exact_match: s.exact_match,
        similarity_percent: s.similarity_pct,
        same_tools: s.same_tools,
        from_text: s.from_text.clone(),
        to_text: s.to_text.clone(),
        to_cost_usd: format_usd(s.to_cost_nanos),
    }
}

fn price(name: &str, v: &Option<Value>) -> Result<Option<i64>, AdminError> {
    let text = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(AdminError::BadRequest(format!("`{name}` must be a number or a decimal string."))),
    };
    sheepdog_core::config::PriceValue::Text(text)
        .nanos_per_token()
        .map(Some)
        .map_err(|e| AdminError::BadRequest(format!("`{name}`: {e}.")))
}

fn live_or_404(state: &AppState, id: &str) -> Result<std::sync::Arc<Live>, AdminError> {
    state.rollouts().get(id).ok_or_else(|| AdminError::NotFound(format!("No rollout with id {id:?}.")))
}

// ---- handlers -----------------------------------------------------------------------

#[utoipa::path(post, path = "/admin/v1/rollouts", tag = "rollouts", request_body = CreateRollout,
    responses((status = 201, body = RolloutView), (status = 400, body = sheepdog_types::ErrorBody), (status = 409, body = sheepdog_types::ErrorBody)),
    security(("admin_token" = [])))]
pub async fn create(State(state): State<AppState>, body: Bytes) -> Result<Response, AdminError> {
    let req: CreateRollout = parse_json(&body)?;
    let model = state
        .models()
        .get(&req.model)
        .ok_or_else(|| AdminError::BadRequest(format!("`model` {:?} is not a configured model.", req.model)))?
        .clone();
    let tenant_id = match &req.tenant_id {
        Some(t) => Some(
            find_tenant(&state, t)
                .await
                .map_err(|_| AdminError::BadRequest(format!("`tenant_id`: no tenant with id or alias {t:?}.")))?
                .id,
        ),
        None => None,
    };
    let (from_provider, from_upstream) = match &req.from {
        Some(f) => (f.provider.clone(), f.upstream_model.clone()),
        None => (model.provider.name.clone(), model.target.upstream_model.clone()),
    };
    for (field, provider) in [("from.provider", &from_provider), ("to.provider", &req.to.provider)] {
        let Some(handle) = state.models().provider(provider) else {
            return Err(AdminError::BadRequest(format!("`{field}` {provider:?} is not a configured provider.")));
        };
        let embedding = model.model.mode == sheepdog_core::config::ModelMode::Embedding;
        if embedding && handle.client.kind() == sheepdog_core::config::ProviderKind::Anthropic {
            return Err(AdminError::BadRequest(format!(
                "`{field}` {provider:?} is an anthropic provider, which has no embeddings API; {:?} is an embedding model.",
                model.model.name
            )));
        }
    }
    if req.to.upstream_model.trim().is_empty() || from_upstream.trim().is_empty() {
        return Err(AdminError::BadRequest("`upstream_model` must not be empty.".into()));
    }
    if from_provider == req.to.provider && from_upstream == req.to.upstream_model {
        return Err(AdminError::BadRequest("`from` and `to` are the same route.".into()));
    }
    let prices =
        (price("to.input_per_mtok", &req.to.input_per_mtok)?, price("to.output_per_mtok", &req.to.output_per_mtok)?);
    if prices.0.is_some() != prices.1.is_some() {
        return Err(AdminError::BadRequest(
            "give both `to.input_per_mtok` and `to.output_per_mtok`, or neither.".into(),
        ));
    }
    let p = req.plan.unwrap_or_default();
    let plan = StepPlan {
        initial_bp: percent_to_bp("plan.initial_percent", p.initial_percent.unwrap_or(5.0))?,
        step_bp: percent_to_bp("plan.step_percent", p.step_percent.unwrap_or(20.0))?,
        interval_secs: p.step_interval_secs.unwrap_or(86_400),
        manual: p.manual.unwrap_or(false),
    };
    if !plan.manual && (plan.interval_secs == 0 || plan.step_bp == 0) {
        return Err(AdminError::BadRequest(
            "an automatic plan needs `step_percent` > 0 and `step_interval_secs` > 0.".into(),
        ));
    }
    let g = req.guard.unwrap_or_default();
    let ratio = g.max_p99_ratio.unwrap_or(2.0);
    if !ratio.is_finite() || !(1.0..=100.0).contains(&ratio) {
        return Err(AdminError::BadRequest("`guard.max_p99_ratio` must be from 1 to 100.".into()));
    }
    let guard = GuardConfig {
        max_error_rate_bp: percent_to_bp("guard.max_error_rate_percent", g.max_error_rate_percent.unwrap_or(1.0))?,
        max_p99_ratio_pct: (ratio * 100.0).round() as u32,
        window_secs: g.window_secs.unwrap_or(300).max(1),
        min_samples: g.min_samples.unwrap_or(20).max(1),
    };
    let phase = match req.phase.as_deref() {
        None | Some("shadow") => Phase::Shadow,
        Some("canary") => Phase::Canary,
        Some(other) => return Err(AdminError::BadRequest(format!("`phase` {other:?} must be shadow or canary."))),
    };
    let concurrency = req.shadow_max_concurrency.unwrap_or(8);
    if !(1..=1024).contains(&concurrency) {
        return Err(AdminError::BadRequest("`shadow_max_concurrency` must be from 1 to 1024.".into()));
    }
    let now = sheepdog_types::time::now_ms();
    let row = RolloutRow {
        id: format!("ro_{}", uuid::Uuid::new_v4().simple()),
        model: req.model.clone(),
        tenant_id,
        from_provider,
        from_upstream_model: from_upstream,
        to_provider: req.to.provider.clone(),
        to_upstream_model: req.to.upstream_model.clone(),
        to_input_nanos: prices.0,
        to_output_nanos: prices.1,
        phase: phase.as_str().into(),
        percent_bp: if phase == Phase::Canary { i64::from(plan.initial_bp) } else { 0 },
        since_ms: now,
        paused_at_ms: None,
        plan_json: serde_json::to_string(&plan).unwrap_or_default(),
        guard_json: serde_json::to_string(&guard).unwrap_or_default(),
        shadow_concurrency: i64::from(concurrency),
        created_at: sheepdog_types::time::ms_to_rfc3339(now),
        updated_at: sheepdog_types::time::ms_to_rfc3339(now),
    };
    let live =
        state.rollouts().create(state.store(), state.models(), row, &current_actor()).await.map_err(|e| match e {
            RolloutError::Invalid(m) => AdminError::Conflict(m),
            RolloutError::Store(s) => s.into(),
        })?;
    let v = view(&live.snapshot(now));
    audit(&state, "rollout.create", &live.id, None::<&Value>, Some(&v)).await;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

#[utoipa::path(get, path = "/admin/v1/rollouts", tag = "rollouts",
    responses((status = 200, body = RolloutList)), security(("admin_token" = [])))]
pub async fn list(State(state): State<AppState>) -> Json<RolloutList> {
    let now = sheepdog_types::time::now_ms();
    Json(RolloutList { data: state.rollouts().all().iter().rev().map(|l| view(&l.snapshot(now))).collect() })
}

#[utoipa::path(get, path = "/admin/v1/rollouts/{id}", tag = "rollouts",
    description = "The rollout with both sides side by side, its history, and the latest differing shadow pairs.",
    params(("id" = String, Path, description = "Rollout id")),
    responses((status = 200, body = RolloutReport), (status = 404, body = sheepdog_types::ErrorBody)), security(("admin_token" = [])))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<RolloutReport>, AdminError> {
    let live = live_or_404(&state, &id)?;
    let events = state.store().rollout_events(&id).await?;
    let samples = state.store().rollout_samples(&id, true, 10).await?;
    let now = sheepdog_types::time::now_ms();
    Ok(Json(RolloutReport {
        rollout: view(&live.snapshot(now)),
        events: events.iter().map(event_view).collect(),
        differing_samples: samples.iter().map(sample_view).collect(),
        series: series_view(&live.series(now), now),
    }))
}

#[utoipa::path(get, path = "/admin/v1/rollouts/{id}/series", tag = "rollouts",
    description = "Both sides over time, in 10-second buckets from the rollout's creation (at most the last 15 minutes): requests, errors, p50/p99 latency, throughput, cost (nano-USD) and cost per 1,000 requests, shadow pairs and diff rate. Also in `GET /admin/v1/rollouts/{id}` as `series`. Per gateway process.",
    params(("id" = String, Path, description = "Rollout id")),
    responses((status = 200, body = SeriesView), (status = 404, body = sheepdog_types::ErrorBody)), security(("admin_token" = [])))]
pub async fn series(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<SeriesView>, AdminError> {
    let live = live_or_404(&state, &id)?;
    let now = sheepdog_types::time::now_ms();
    Ok(Json(series_view(&live.series(now), now)))
}

async fn act(
    state: &AppState,
    id: &str,
    action: Action,
    reason: Option<String>,
    name: &str,
) -> Result<Json<RolloutView>, AdminError> {
    let live = live_or_404(state, id)?;
    let now = sheepdog_types::time::now_ms();
    let before = view(&live.snapshot(now));
    let (row, ev) =
        state.rollouts().act(&live, &action, &current_actor(), reason, now).map_err(AdminError::BadRequest)?;
    if matches!(action, Action::Rollback) {
        tracing::warn!(rollout = %row.id, reason = %ev.reason, "rollout rolled back by an operator");
        state.metrics().rollback(&row.id, "operator");
    }
    state.store().update_rollout(&row, Some(&ev)).await?;
    let after = view(&live.snapshot(now));
    audit(state, name, id, Some(&before), Some(&after)).await;
    Ok(Json(after))
}

#[utoipa::path(post, path = "/admin/v1/rollouts/{id}/advance", tag = "rollouts", request_body = AdvanceInput,
    description = "shadow → canary at the plan's first share; canary → the next step (or `percent`); 100 % → complete.",
    params(("id" = String, Path, description = "Rollout id")),
    responses((status = 200, body = RolloutView), (status = 400, body = sheepdog_types::ErrorBody), (status = 404, body = sheepdog_types::ErrorBody)),
    security(("admin_token" = [])))]
pub async fn advance(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<RolloutView>, AdminError> {
    let req: AdvanceInput =
        if body.iter().all(u8::is_ascii_whitespace) { AdvanceInput::default() } else { parse_json(&body)? };
    let percent_bp = req.percent.map(|p| percent_to_bp("percent", p)).transpose()?;
    act(&state, &id, Action::Advance { percent_bp }, req.reason, "rollout.advance").await
}

#[utoipa::path(post, path = "/admin/v1/rollouts/{id}/pause", tag = "rollouts", request_body = ReasonInput,
    params(("id" = String, Path, description = "Rollout id")),
    responses((status = 200, body = RolloutView), (status = 400, body = sheepdog_types::ErrorBody)), security(("admin_token" = [])))]
pub async fn pause(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<RolloutView>, AdminError> {
    let req: ReasonInput =
        if body.iter().all(u8::is_ascii_whitespace) { ReasonInput::default() } else { parse_json(&body)? };
    act(&state, &id, Action::Pause, req.reason, "rollout.pause").await
}

#[utoipa::path(post, path = "/admin/v1/rollouts/{id}/resume", tag = "rollouts", request_body = ReasonInput,
    params(("id" = String, Path, description = "Rollout id")),
    responses((status = 200, body = RolloutView), (status = 400, body = sheepdog_types::ErrorBody)), security(("admin_token" = [])))]
pub async fn resume(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<RolloutView>, AdminError> {
    let req: ReasonInput =
        if body.iter().all(u8::is_ascii_whitespace) { ReasonInput::default() } else { parse_json(&body)? };
    act(&state, &id, Action::Resume, req.reason, "rollout.resume").await
}

#[utoipa::path(post, path = "/admin/v1/rollouts/{id}/rollback", tag = "rollouts", request_body = ReasonInput,
    description = "Instant: the next request is served by `from`.",
    params(("id" = String, Path, description = "Rollout id")),
    responses((status = 200, body = RolloutView), (status = 400, body = sheepdog_types::ErrorBody), (status = 404, body = sheepdog_types::ErrorBody)),
    security(("admin_token" = [])))]
pub async fn rollback(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<RolloutView>, AdminError> {
    let req: ReasonInput =
        if body.iter().all(u8::is_ascii_whitespace) { ReasonInput::default() } else { parse_json(&body)? };
    act(&state, &id, Action::Rollback, req.reason, "rollout.rollback").await
}

#[utoipa::path(get, path = "/admin/v1/rollouts/{id}/events", tag = "rollouts",
    params(("id" = String, Path, description = "Rollout id")),
    responses((status = 200, body = EventList), (status = 404, body = sheepdog_types::ErrorBody)), security(("admin_token" = [])))]
pub async fn events(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<EventList>, AdminError> {
    live_or_404(&state, &id)?;
    let events = state.store().rollout_events(&id).await?;
    Ok(Json(EventList { data: events.iter().map(event_view).collect() }))
}

/// Query of `GET /admin/v1/rollouts/{id}/samples`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SamplesParams {
    /// Only pairs whose outputs differ.
    pub differing: Option<bool>,
    /// At most this many, newest first (default 50, max 500).
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/admin/v1/rollouts/{id}/samples", tag = "rollouts",
    params(("id" = String, Path, description = "Rollout id"), SamplesParams),
    responses((status = 200, body = SampleList), (status = 404, body = sheepdog_types::ErrorBody)), security(("admin_token" = [])))]
pub async fn samples(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AdminQuery(q): AdminQuery<SamplesParams>,
) -> Result<Json<SampleList>, AdminError> {
    live_or_404(&state, &id)?;
    let differing = q.differing.unwrap_or(false);
    let limit = match q.limit {
        None => 50,
        Some(n) if (1..=500).contains(&n) => n,
        Some(_) => return Err(AdminError::BadRequest("`limit` must be from 1 to 500.".into())),
    };
    let rows = state.store().rollout_samples(&id, differing, limit).await?;
    Ok(Json(SampleList { data: rows.iter().map(sample_view).collect() }))
}

#[utoipa::path(get, path = "/admin/v1/upstreams", tag = "rollouts",
    description = "Every configured upstream: circuit breaker state and capacity in use.",
    responses((status = 200, body = UpstreamList)), security(("admin_token" = [])))]
pub async fn upstreams(State(state): State<AppState>) -> Json<UpstreamList> {
    let now = tokio::time::Instant::now();
    let mut data: Vec<UpstreamView> = state
        .models()
        .providers()
        .map(|p| {
            let b = p.breaker.report(now);
            let (shared, reserved, queued) = match state.admission().upstream(&p.name) {
                Some(u) => {
                    let (s, r) = u.in_use();
                    (s, r, u.queued())
                }
                None => (0, 0, 0),
            };
            UpstreamView {
                provider: p.name.clone(),
                kind: p.client.kind().as_str().into(),
                breaker: BreakerView {
                    state: b.state.as_str().into(),
                    consecutive_failures: b.consecutive_failures,
                    window_calls: b.window_calls,
                    window_failures: b.window_failures,
                    opened_total: b.opened_total,
                    open_for_ms: b.open_for_ms,
                    last_reason: b.last_reason,
                },
                slots_in_use_shared: shared,
                slots_in_use_reserved: reserved,
                queued,
            }
        })
        .collect();
    data.sort_by(|a, b| a.provider.cmp(&b.provider));
    Json(UpstreamList { data })
}
