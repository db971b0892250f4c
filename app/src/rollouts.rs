//! Rollouts: the list with a create form, and the rollout page (both sides
//! side by side, the shadow comparison, the history, and Advance / Pause /
//! Resume / Roll back, each confirmed before it is sent).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use serde::{Deserialize, Serialize};

use crate::auth::SessionUser;
use crate::components::{action_result, Empty, ErrorBox, Loading, PageHeader};
use crate::format::{datetime, millis, short_id, thousands, usd};
use crate::ConsoleError;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RouteSide {
    pub provider: String,
    pub upstream_model: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SideStats {
    pub window_requests: u64,
    pub window_errors: u64,
    pub error_rate_percent: f64,
    pub p50_ms: u64,
    pub p99_ms: u64,
    pub throughput_rpm: f64,
    pub total_requests: u64,
    pub total_errors: u64,
    pub cost_per_1k_requests_usd: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ShadowStats {
    pub pairs: u64,
    pub differing: u64,
    pub diff_rate_percent: f64,
    pub tool_mismatches: u64,
    pub to_errors: u64,
    pub shadow_spend_usd: String,
    pub skipped: u64,
}

/// A rollout as `GET /admin/v1/rollouts` shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Rollout {
    pub id: String,
    pub model: String,
    pub tenant_id: Option<String>,
    pub from: RouteSide,
    pub to: RouteSide,
    pub phase: String,
    pub percent: f64,
    pub paused: bool,
    pub window_secs: u64,
    pub from_stats: SideStats,
    pub to_stats: SideStats,
    pub shadow: ShadowStats,
    pub created_at: String,
    pub updated_at: String,
}

/// One phase change in a rollout's history.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RolloutEvent {
    pub at: String,
    pub from_phase: Option<String>,
    pub to_phase: String,
    pub percent: f64,
    pub actor: String,
    pub reason: String,
}

/// `GET /admin/v1/rollouts/{id}`: the rollout and its history.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RolloutDetail {
    #[serde(flatten)]
    pub rollout: Rollout,
    #[serde(default)]
    pub events: Vec<RolloutEvent>,
}

/// The actions the rollout page offers: (API path segment, button label).
pub const ACTIONS: [(&str, &str); 4] =
    [("advance", "Advance"), ("pause", "Pause"), ("resume", "Resume"), ("rollback", "Roll back")];

/// Every rollout.
#[server(endpoint = "rollouts")]
pub async fn list_rollouts() -> Result<Vec<Rollout>, ConsoleError> {
    use crate::auth::ssr::{require_staff, with_status};
    require_staff().await?;
    crate::ConsoleState::current()?.api().rollouts().await.map_err(with_status)
}

/// One rollout with its history.
#[server(endpoint = "rollout_detail")]
pub async fn get_rollout(id: String) -> Result<RolloutDetail, ConsoleError> {
    use crate::auth::ssr::{require_staff, with_status};
    require_staff().await?;
    crate::ConsoleState::current()?.api().rollout(&id).await.map_err(with_status)
}

/// Starts a rollout of `model` to another provider and upstream model.
#[server(endpoint = "create_rollout")]
pub async fn create_rollout(
    model: String,
    provider: String,
    upstream_model: String,
    phase: Option<String>,
) -> Result<Rollout, ConsoleError> {
    use crate::auth::ssr::{require_operator, with_status};
    let user = require_operator().await?;
    let (model, provider, upstream_model) = (model.trim(), provider.trim(), upstream_model.trim());
    if model.is_empty() || provider.is_empty() || upstream_model.is_empty() {
        return Err(with_status(ConsoleError::Invalid("Model, provider and upstream model are required.".into())));
    }
    let mut body = serde_json::json!({"model": model, "to": {"provider": provider, "upstream_model": upstream_model}});
    match phase.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        None => {}
        Some(p @ ("shadow" | "canary")) => body["phase"] = serde_json::json!(p),
        Some(_) => return Err(with_status(ConsoleError::Invalid("Phase must be shadow or canary.".into()))),
    }
    let state = crate::ConsoleState::current()?;
    state.api().create_rollout(&crate::api::actor_for(&user.email), &body).await.map_err(with_status)
}

/// Advances, pauses, resumes or rolls back a rollout.
#[server(endpoint = "rollout_action")]
pub async fn rollout_action(id: String, action: String, reason: Option<String>) -> Result<Rollout, ConsoleError> {
    use crate::auth::ssr::{require_operator, with_status};
    let user = require_operator().await?;
    if !ACTIONS.iter().any(|(a, _)| *a == action) {
        return Err(with_status(ConsoleError::Invalid("Unknown rollout action.".into())));
    }
    let reason = reason.map(|r| r.trim().to_string()).filter(|r| !r.is_empty());
    let state = crate::ConsoleState::current()?;
    state
        .api()
        .rollout_action(&crate::api::actor_for(&user.email), &id, &action, reason.as_deref())
        .await
        .map_err(with_status)
}

fn can_operate() -> bool {
    use_context::<SessionUser>().is_some_and(|u| u.can_operate())
}

fn pct(p: f64) -> String {
    format!("{p:.1} %")
}

fn scope(r: &Rollout) -> String {
    r.tenant_id.as_deref().map(short_id).unwrap_or_else(|| "all tenants".into())
}

#[component]
fn PhaseBadge(phase: String, paused: bool) -> impl IntoView {
    let class = format!("badge badge-phase phase-{phase}");
    let data_phase = phase.clone();
    view! {
        <span class=class data-testid="rollout-phase" data-phase=data_phase>{phase}</span>
        {paused.then(|| view! { <span class="pill" data-testid="rollout-paused">"paused"</span> })}
    }
}

#[component]
pub fn RolloutsPage() -> impl IntoView {
    let create = ServerAction::<CreateRollout>::new();
    let rollouts = Resource::new(move || create.version().get(), |_| list_rollouts());
    let operate = can_operate();
    view! {
        <Title text="Rollouts"/>
        <PageHeader title="Rollouts" subtitle="Move a model to another provider or upstream model: shadow, canary, full."/>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match rollouts.await {
                    Ok(list) if list.is_empty() => {
                        view! { <Empty title="No rollouts yet" hint="Start one below to shadow or canary a new upstream."/> }.into_any()
                    }
                    Ok(list) => view! { <RolloutTable rollouts=list/> }.into_any(),
                    Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                }
            })}
        </Transition>
        {operate.then(|| view! {
            <ActionForm action=create attr:class="card form form-grid" attr:data-testid="rollout-form">
                <fieldset>
                    <legend>"Start a rollout"</legend>
                    <label>"Model " <span class="muted">"(as clients name it)"</span> <input name="model" required=true data-testid="rollout-model"/></label>
                    <label>"To provider" <input name="provider" required=true data-testid="rollout-provider"/></label>
                    <label>"To upstream model" <input name="upstream_model" required=true data-testid="rollout-upstream-model"/></label>
                    <label>
                        "Phase"
                        <select name="phase" data-testid="rollout-phase-select">
                            <option value="shadow">"shadow — mirror traffic, compare, serve nothing"</option>
                            <option value="canary">"canary — send a share of traffic"</option>
                        </select>
                    </label>
                </fieldset>
                <div class="form-actions">
                    <button type="submit" class="button" data-testid="rollout-create">
                        {move || if create.pending().get() { "Starting…" } else { "Start rollout" }}
                    </button>
                </div>
            </ActionForm>
            {move || action_result(create.value().get(), "Rollout started.")}
        })}
    }
}

#[component]
fn RolloutTable(rollouts: Vec<Rollout>) -> impl IntoView {
    view! {
        <div class="card card-flush">
            <table class="table" data-testid="rollout-table">
                <thead>
                    <tr>
                        <th>"Model"</th>
                        <th>"Scope"</th>
                        <th>"From → to"</th>
                        <th>"Phase"</th>
                        <th class="num">"Percent"</th>
                        <th>"Updated"</th>
                    </tr>
                </thead>
                <tbody>
                    {rollouts
                        .into_iter()
                        .map(|r| {
                            let route = format!(
                                "{}/{} → {}/{}",
                                r.from.provider, r.from.upstream_model, r.to.provider, r.to.upstream_model
                            );
                            view! {
                                <tr data-testid="rollout-row" data-rollout-id=r.id.clone()>
                                    <td><a href=format!("/rollouts/{}", r.id) data-testid="rollout-link">{r.model.clone()}</a></td>
                                    <td class="muted">{scope(&r)}</td>
                                    <td class="mono">{route}</td>
                                    <td><PhaseBadge phase=r.phase.clone() paused=r.paused/></td>
                                    <td class="num">{pct(r.percent)}</td>
                                    <td class="muted">{datetime(&r.updated_at)}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}

#[component]
pub fn RolloutDetailPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.with(|p| p.get("id").unwrap_or_default());
    let act = ServerAction::<RolloutAction>::new();
    let detail = Resource::new(move || (id(), act.version().get()), |(id, _)| get_rollout(id));
    let operate = can_operate();
    view! {
        <Title text="Rollout"/>
        {move || action_result(act.value().get(), "Done.")}
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(d) => view! { <RolloutBody d=d operate=operate act=act/> }.into_any(),
                    Err(e) => view! { <PageHeader title="Rollout"/> <ErrorBox error=e/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn RolloutBody(d: RolloutDetail, operate: bool, act: ServerAction<RolloutAction>) -> impl IntoView {
    let r = d.rollout;
    let confirm = RwSignal::new(None::<(&'static str, &'static str)>);
    let id = r.id.clone();
    let (f, t, s) = (r.from_stats.clone(), r.to_stats.clone(), r.shadow.clone());
    let row = |label: &'static str, a: String, b: String| {
        view! { <tr><th scope="row">{label}</th><td class="num">{a}</td><td class="num">{b}</td></tr> }
    };
    let cost = |c: &str| if c.is_empty() { "—".to_string() } else { usd(c) };
    view! {
        <PageHeader
            title=format!("Rollout of {}", r.model)
            subtitle=format!("{} · {} · created {}", r.id, scope(&r), datetime(&r.created_at))
        >
            <PhaseBadge phase=r.phase.clone() paused=r.paused/>
            <span class="pill" data-testid="rollout-percent">{pct(r.percent)}</span>
        </PageHeader>
        {operate.then(|| {
            let id = id.clone();
            view! {
                <div class="rollout-actions" data-testid="rollout-actions">
                    {ACTIONS
                        .iter()
                        .map(|&(a, label)| {
                            let class = if a == "rollback" { "button button-danger" } else { "button button-quiet" };
                            view! {
                                <button type="button" class=class data-testid=format!("rollout-{a}") on:click=move |_| confirm.set(Some((a, label)))>
                                    {label}
                                </button>
                            }
                        })
                        .collect_view()}
                    {move || confirm.get().map(|(a, label)| {
                        let id = id.clone();
                        view! {
                            <ActionForm action=act attr:class="card form confirm-box" attr:data-testid="rollout-confirm">
                                <input type="hidden" name="id" value=id/>
                                <input type="hidden" name="action" value=a/>
                                <p><strong>{format!("{label} this rollout?")}</strong></p>
                                <label>"Reason " <span class="muted">"(optional, kept in the history)"</span> <input name="reason" data-testid="rollout-reason"/></label>
                                <div class="form-actions">
                                    <button type="button" class="button button-quiet" data-testid="rollout-confirm-cancel" on:click=move |_| confirm.set(None)>"Cancel"</button>
                                    <button type="submit" class="button" data-testid="rollout-confirm-submit">{format!("Yes, {}", label.to_lowercase())}</button>
                                </div>
                            </ActionForm>
                        }
                    })}
                </div>
            }
        })}
        <section class="card card-flush">
            <table class="table" data-testid="rollout-compare">
                <thead>
                    <tr>
                        <th>{format!("Last {} s", r.window_secs)}</th>
                        <th class="num">{format!("From {}/{}", r.from.provider, r.from.upstream_model)}</th>
                        <th class="num">{format!("To {}/{}", r.to.provider, r.to.upstream_model)}</th>
                    </tr>
                </thead>
                <tbody>
                    {row("Requests", thousands(f.window_requests), thousands(t.window_requests))}
                    {row("Error rate", pct(f.error_rate_percent), pct(t.error_rate_percent))}
                    {row("p50 latency", millis(f.p50_ms as f64), millis(t.p50_ms as f64))}
                    {row("p99 latency", millis(f.p99_ms as f64), millis(t.p99_ms as f64))}
                    {row("Throughput", format!("{:.1} req/min", f.throughput_rpm), format!("{:.1} req/min", t.throughput_rpm))}
                    {row("Cost per 1k requests", cost(&f.cost_per_1k_requests_usd), cost(&t.cost_per_1k_requests_usd))}
                    {row("Total requests", thousands(f.total_requests), thousands(t.total_requests))}
                    {row("Diff rate (shadow)", "—".into(), pct(s.diff_rate_percent))}
                </tbody>
            </table>
        </section>
        <h2>"Shadow comparison"</h2>
        <section class="card card-flush">
            <table class="table" data-testid="rollout-shadow">
                <tbody>
                    <tr><th scope="row">"Compared pairs"</th><td class="num">{thousands(s.pairs)}</td></tr>
                    <tr><th scope="row">"Differing"</th><td class="num">{format!("{} ({})", thousands(s.differing), pct(s.diff_rate_percent))}</td></tr>
                    <tr><th scope="row">"Tool-call mismatches"</th><td class="num">{thousands(s.tool_mismatches)}</td></tr>
                    <tr><th scope="row">"Errors on the new side"</th><td class="num">{thousands(s.to_errors)}</td></tr>
                    <tr><th scope="row">"Skipped (concurrency cap)"</th><td class="num">{thousands(s.skipped)}</td></tr>
                    <tr><th scope="row">"Shadow spend"</th><td class="num">{cost(&s.shadow_spend_usd)}</td></tr>
                </tbody>
            </table>
        </section>
        <h2>"History"</h2>
        {if d.events.is_empty() {
            view! { <Empty title="No history yet"/> }.into_any()
        } else {
            view! {
                <div class="card card-flush">
                    <table class="table" data-testid="rollout-history">
                        <thead>
                            <tr><th>"When"</th><th>"Phase"</th><th class="num">"Percent"</th><th>"Who"</th><th>"Reason"</th></tr>
                        </thead>
                        <tbody>
                            {d.events
                                .into_iter()
                                .map(|e| {
                                    let phases = match &e.from_phase {
                                        Some(p) => format!("{p} → {}", e.to_phase),
                                        None => e.to_phase.clone(),
                                    };
                                    view! {
                                        <tr data-testid="rollout-event">
                                            <td class="muted">{datetime(&e.at)}</td>
                                            <td>{phases}</td>
                                            <td class="num">{pct(e.percent)}</td>
                                            <td class="mono">{e.actor}</td>
                                            <td>{e.reason}</td>
                                        </tr>
                                    }
                                })
                                .collect_view()}
                        </tbody>
                    </table>
                </div>
            }
            .into_any()
        }}
    }
}
