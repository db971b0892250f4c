//! Rollouts: the list with a create form, and the rollout page (both sides
//! side by side, live charts of both sides over time, the shadow
//! comparison, the history, and Advance / Pause / Resume / Roll back, each
//! confirmed before it is sent). The rollout page refreshes itself every
//! [`REFRESH_SECS`] seconds while it is open.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use serde::{Deserialize, Serialize};

use crate::auth::SessionUser;
use crate::charts::{LineChart, Series};
use crate::components::{action_result, Empty, ErrorBox, Loading, PageHeader};
use crate::format::{compact, datetime, millis, parse_usd_nanos, short_id, thousands, usd, usd_nanos};
use crate::ConsoleError;

/// How often the rollout page re-reads the rollout (table and charts).
pub const REFRESH_SECS: u64 = 3;

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

/// One side in one bucket of the rollout's time series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeriesSide {
    pub requests: u64,
    pub errors: u64,
    pub error_rate_percent: f64,
    pub p50_ms: Option<u64>,
    pub p99_ms: Option<u64>,
    pub throughput_rpm: f64,
    pub cost_nanos: i64,
    pub cost_per_1k_requests_usd: Option<String>,
}

/// One bucket of the rollout's time series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeriesPoint {
    pub start: String,
    pub complete: bool,
    pub from: SeriesSide,
    pub to: SeriesSide,
    pub shadow_pairs: u64,
    pub shadow_differing: u64,
    pub diff_rate_percent: Option<f64>,
}

/// Both sides over time (`series` of `GET /admin/v1/rollouts/{id}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RolloutSeries {
    pub bucket_secs: u64,
    pub points: Vec<SeriesPoint>,
}

/// `GET /admin/v1/rollouts/{id}`: the rollout, its history and its time series.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RolloutDetail {
    #[serde(flatten)]
    pub rollout: Rollout,
    #[serde(default)]
    pub events: Vec<RolloutEvent>,
    #[serde(default)]
    pub series: RolloutSeries,
}

/// The values of one live chart: `from` and `to` (or one series), a value
/// per bucket; `NaN` where a bucket has nothing to show (a gap in the line).
#[derive(Debug, Clone)]
pub struct ChartData {
    pub key: &'static str,
    pub title: &'static str,
    pub series: Vec<(String, Vec<f64>)>,
    pub fmt: fn(f64) -> String,
}

fn money_axis(v: f64) -> String {
    usd_nanos((v * 1e9).round() as i64)
}

/// Up to two decimals, trailing zeros trimmed: `0.25`, `0.5`, `12`.
fn trim2(v: f64) -> String {
    let t = format!("{v:.2}");
    t.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn pct_axis(v: f64) -> String {
    format!("{} %", trim2(v))
}

/// Latency ticks: `0.25 ms` below 10 ms (fast upstreams), else `42 ms`, `1.25 s`.
fn ms_axis(v: f64) -> String {
    if v < 10.0 && v.fract() != 0.0 {
        format!("{} ms", trim2(v))
    } else {
        millis(v)
    }
}

fn rpm_axis(v: f64) -> String {
    format!("{}/min", compact(v))
}

/// `hh:mm:ss` of an RFC 3339 UTC time.
fn clock(start: &str) -> String {
    start.get(11..19).unwrap_or(start).to_string()
}

/// The x labels and the six live charts of a series: error rate, p50 and p99
/// latency, throughput and cost per 1,000 requests (from vs to), and the
/// shadow diff rate.
pub fn live_charts(series: &RolloutSeries, from: &str, to: &str) -> (Vec<String>, Vec<ChartData>) {
    let p = &series.points;
    let labels = p.iter().map(|x| clock(&x.start)).collect();
    let nan = f64::NAN;
    let both = |f: &dyn Fn(&SeriesSide) -> f64| {
        vec![
            (format!("from {from}"), p.iter().map(|x| f(&x.from)).collect::<Vec<_>>()),
            (format!("to {to}"), p.iter().map(|x| f(&x.to)).collect::<Vec<_>>()),
        ]
    };
    let ms = |v: Option<u64>| v.map_or(nan, |v| v as f64);
    let charts = vec![
        ChartData {
            key: "error-rate",
            title: "Error rate",
            series: both(&|s| if s.requests == 0 { nan } else { s.error_rate_percent }),
            fmt: pct_axis,
        },
        ChartData { key: "p50", title: "p50 latency", series: both(&|s| ms(s.p50_ms)), fmt: ms_axis },
        ChartData { key: "p99", title: "p99 latency", series: both(&|s| ms(s.p99_ms)), fmt: ms_axis },
        ChartData { key: "throughput", title: "Throughput", series: both(&|s| s.throughput_rpm), fmt: rpm_axis },
        ChartData {
            key: "cost",
            title: "Cost per 1,000 requests",
            series: both(&|s| s.cost_per_1k_requests_usd.as_deref().map_or(nan, |c| parse_usd_nanos(c) as f64 / 1e9)),
            fmt: money_axis,
        },
        ChartData {
            key: "diff-rate",
            title: "Diff rate (shadow pairs whose outputs differ)",
            series: vec![("diff rate".into(), p.iter().map(|x| x.diff_rate_percent.unwrap_or(nan)).collect())],
            fmt: pct_axis,
        },
    ];
    (labels, charts)
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
    tenant: Option<String>,
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
    if let Some(t) = tenant.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        body["tenant_id"] = serde_json::json!(t);
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
    let text = phase.replace('_', " ");
    view! {
        <span class=class data-testid="rollout-phase" data-phase=phase>{text}</span>
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
                        "Tenant " <span class="muted">"(id or alias; empty: every tenant)"</span>
                        <input name="tenant" data-testid="rollout-tenant"/>
                    </label>
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

/// Bumps `tick` every `every` while the page is open (in the browser only:
/// effects do not run on the server).
fn poll(tick: RwSignal<u64>, every: std::time::Duration) {
    Effect::new(move |_| {
        let handle = set_interval_with_handle(move || tick.update(|t| *t += 1), every).ok();
        on_cleanup(move || {
            if let Some(h) = handle {
                h.clear();
            }
        });
    });
}

#[component]
pub fn RolloutDetailPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.with(|p| p.get("id").unwrap_or_default());
    let act = ServerAction::<RolloutAction>::new();
    let tick = RwSignal::new(0u64);
    poll(tick, std::time::Duration::from_secs(REFRESH_SECS));
    let detail = Resource::new(move || (id(), act.version().get(), tick.get()), |(id, _, _)| get_rollout(id));
    let operate = can_operate();
    // The confirmation lives outside the refreshing parts, so a refresh
    // never closes it (or loses a reason being typed).
    let confirm = RwSignal::new(None::<(&'static str, &'static str)>);
    Effect::new(move |_| {
        if matches!(act.value().get(), Some(Ok(_))) {
            confirm.set(None);
        }
    });
    view! {
        <Title text="Rollout"/>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(d) => view! { <RolloutHeader r=d.rollout/> }.into_any(),
                    Err(e) => view! { <PageHeader title="Rollout"/> <ErrorBox error=e/> }.into_any(),
                }
            })}
        </Transition>
        {move || action_result(act.value().get(), "Done.")}
        {operate.then(|| view! { <RolloutActions id=Signal::derive(id) act=act confirm=confirm/> })}
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(d) => view! { <RolloutBody d=d/> }.into_any(),
                    Err(_) => ().into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn RolloutHeader(r: Rollout) -> impl IntoView {
    view! {
        <PageHeader
            title=format!("Rollout of {}", r.model)
            subtitle=format!("{} · {} · created {}", r.id, scope(&r), datetime(&r.created_at))
        >
            <PhaseBadge phase=r.phase.clone() paused=r.paused/>
            <span class="pill" data-testid="rollout-percent">{pct(r.percent)}</span>
            <span class="pill pill-live" title=format!("Refreshes every {REFRESH_SECS} s") data-testid="rollout-live">"live"</span>
        </PageHeader>
    }
}

#[component]
fn RolloutActions(
    id: Signal<String>,
    act: ServerAction<RolloutAction>,
    confirm: RwSignal<Option<(&'static str, &'static str)>>,
) -> impl IntoView {
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
                view! {
                    <ActionForm action=act attr:class="card form confirm-box" attr:data-testid="rollout-confirm">
                        <input type="hidden" name="id" value=move || id.get()/>
                        <input type="hidden" name="action" value=a/>
                        <p><strong>{format!("{label} this rollout?")}</strong></p>
                        <label>"Reason " <span class="muted">"(optional, kept in the history)"</span> <input name="reason" data-testid="rollout-reason"/></label>
                        <div class="form-actions">
                            <button type="button" class="button button-quiet" data-testid="rollout-confirm-cancel" on:click=move |_| confirm.set(None)>"Cancel"</button>
                            <button type="submit" class="button" data-testid="rollout-confirm-submit">
                                {move || if act.pending().get() { "Sending…".to_string() } else { format!("Yes, {}", label.to_lowercase()) }}
                            </button>
                        </div>
                    </ActionForm>
                }
            })}
        </div>
    }
}

/// Both sides over time: one chart per measure, `from` and `to` as two lines.
#[component]
fn LiveCharts(series: RolloutSeries, from: String, to: String) -> impl IntoView {
    let (labels, charts) = live_charts(&series, &from, &to);
    let bucket = series.bucket_secs.max(1);
    view! {
        <h2>"Over time"</h2>
        <p class="muted" data-testid="rollout-charts-note">
            {format!(
                "{bucket}-second buckets since the rollout started (at most the last {} minutes), as this gateway measured them; the last bucket is still filling.",
                bucket * 90 / 60
            )}
        </p>
        <div class="grid grid-2" data-testid="rollout-charts">
            {charts
                .into_iter()
                .map(|c| {
                    let series: Vec<Series> = c.series.into_iter().map(|(name, values)| Series { name, values }).collect();
                    view! {
                        <section class="card">
                            <h3>{c.title}</h3>
                            <LineChart
                                title=c.title
                                labels=labels.clone()
                                series=series
                                fmt=c.fmt
                                testid=format!("rollout-chart-{}", c.key)
                                zero_is_data=true
                            />
                        </section>
                    }
                })
                .collect_view()}
        </div>
    }
    .into_any()
}

#[component]
fn RolloutBody(d: RolloutDetail) -> impl IntoView {
    let r = d.rollout;
    let (f, t, s) = (r.from_stats.clone(), r.to_stats.clone(), r.shadow.clone());
    let row = |key: &'static str, label: &'static str, a: String, b: String| {
        view! {
            <tr data-testid=format!("compare-{key}")>
                <th scope="row">{label}</th>
                <td class="num" data-side="from">{a}</td>
                <td class="num" data-side="to">{b}</td>
            </tr>
        }
    };
    let cost = |c: &str| if c.is_empty() { "—".to_string() } else { usd(c) };
    let from_route = format!("{}/{}", r.from.provider, r.from.upstream_model);
    let to_route = format!("{}/{}", r.to.provider, r.to.upstream_model);
    view! {
        <section class="card card-flush">
            <table class="table" data-testid="rollout-compare">
                <thead>
                    <tr>
                        <th>{format!("Last {} s", r.window_secs)}</th>
                        <th class="num">{format!("From {from_route}")}</th>
                        <th class="num">{format!("To {to_route}")}</th>
                    </tr>
                </thead>
                <tbody>
                    {row("requests", "Requests", thousands(f.window_requests), thousands(t.window_requests))}
                    {row("error-rate", "Error rate", pct(f.error_rate_percent), pct(t.error_rate_percent))}
                    {row("p50", "p50 latency", millis(f.p50_ms as f64), millis(t.p50_ms as f64))}
                    {row("p99", "p99 latency", millis(f.p99_ms as f64), millis(t.p99_ms as f64))}
                    {row("throughput", "Throughput", format!("{:.1} req/min", f.throughput_rpm), format!("{:.1} req/min", t.throughput_rpm))}
                    {row("cost", "Cost per 1k requests", cost(&f.cost_per_1k_requests_usd), cost(&t.cost_per_1k_requests_usd))}
                    {row("total", "Total requests", thousands(f.total_requests), thousands(t.total_requests))}
                    {row("diff-rate", "Diff rate (shadow)", "—".into(), pct(s.diff_rate_percent))}
                </tbody>
            </table>
        </section>
        <LiveCharts series=d.series from=from_route to=to_route/>
        <h2>"Shadow comparison"</h2>
        <section class="card card-flush">
            <table class="table" data-testid="rollout-shadow">
                <tbody>
                    <tr><th scope="row">"Compared pairs"</th><td class="num" data-testid="shadow-pairs">{thousands(s.pairs)}</td></tr>
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
    .into_any()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn side(requests: u64, errors: u64, p50: Option<u64>, cost: Option<&str>) -> SeriesSide {
        SeriesSide {
            requests,
            errors,
            error_rate_percent: if requests == 0 { 0.0 } else { errors as f64 * 100.0 / requests as f64 },
            p50_ms: p50,
            p99_ms: p50.map(|p| p * 2),
            throughput_rpm: requests as f64 * 6.0,
            cost_nanos: 0,
            cost_per_1k_requests_usd: cost.map(str::to_string),
        }
    }

    #[test]
    fn live_charts_put_both_sides_side_by_side_with_gaps_for_quiet_buckets() {
        let series = RolloutSeries {
            bucket_secs: 10,
            points: vec![
                SeriesPoint {
                    start: "2026-03-01T12:00:00Z".into(),
                    complete: true,
                    from: side(4, 1, Some(20), Some("0.400000000")),
                    to: side(2, 0, Some(30), Some("1.000000000")),
                    shadow_pairs: 2,
                    shadow_differing: 1,
                    diff_rate_percent: Some(50.0),
                },
                SeriesPoint { start: "2026-03-01T12:00:10Z".into(), ..SeriesPoint::default() },
            ],
        };
        let (labels, charts) = live_charts(&series, "a/m", "b/m");
        assert_eq!(labels, vec!["12:00:00", "12:00:10"]);
        let keys: Vec<&str> = charts.iter().map(|c| c.key).collect();
        assert_eq!(keys, vec!["error-rate", "p50", "p99", "throughput", "cost", "diff-rate"]);
        let get = |k: &str| charts.iter().find(|c| c.key == k).unwrap();
        let err = get("error-rate");
        assert_eq!(err.series[0].0, "from a/m");
        assert_eq!(err.series[1].0, "to b/m");
        assert_eq!(err.series[0].1[0], 25.0);
        assert!(err.series[0].1[1].is_nan(), "no requests: no error rate");
        assert_eq!(get("p99").series[1].1[0], 60.0);
        assert_eq!(get("throughput").series[0].1, vec![24.0, 0.0], "quiet means zero throughput");
        assert_eq!(get("cost").series[1].1[0], 1.0);
        assert!(get("cost").series[1].1[1].is_nan());
        assert_eq!(get("diff-rate").series.len(), 1);
        assert_eq!(get("diff-rate").series[0].1[0], 50.0);
        assert_eq!((get("cost").fmt)(0.4), "$0.4000");
        assert_eq!((get("p50").fmt)(0.25), "0.25 ms");
        assert_eq!((get("p50").fmt)(0.5), "0.5 ms");
        assert_eq!((get("p99").fmt)(1250.0), "1.25 s");
        assert_eq!((get("error-rate").fmt)(0.5), "0.5 %");
        assert_eq!((get("error-rate").fmt)(0.25), "0.25 %");
        assert_eq!((get("diff-rate").fmt)(100.0), "100 %");
    }

    #[test]
    fn the_detail_reads_the_admin_api_report() {
        let json = serde_json::json!({
            "id": "ro_1", "model": "gpt-4.1", "phase": "rolled_back", "percent": 0.0,
            "events": [{"at": "2026-03-01T12:00:00Z", "to_phase": "rolled_back", "actor": "admin", "reason": "why"}],
            "series": {"bucket_secs": 10, "points": [{"start": "2026-03-01T12:00:00Z", "complete": false,
                "from": {"requests": 3, "p50_ms": 4, "p99_ms": null, "cost_per_1k_requests_usd": "0.001000000"},
                "to": {"requests": 0, "p50_ms": null}, "shadow_pairs": 0, "diff_rate_percent": null}]}
        });
        let d: RolloutDetail = serde_json::from_value(json).unwrap();
        assert_eq!(d.rollout.phase, "rolled_back");
        assert_eq!(d.events[0].reason, "why");
        assert_eq!(d.series.points[0].from.requests, 3);
        assert_eq!(d.series.points[0].from.p50_ms, Some(4));
        assert_eq!(d.series.points[0].to.p50_ms, None);
    }
}
