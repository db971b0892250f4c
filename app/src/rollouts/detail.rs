//! The rollout page: header, actions (confirmed before they are sent), both
//! sides side by side, live charts, the shadow comparison and the history.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use sheepdog_types::{RolloutReport, RolloutView};

use super::charts::LiveCharts;
use super::{action_refusal, can_operate, get_rollout, pct, scope, PhaseBadge, RolloutAction, ACTIONS, REFRESH_SECS};
use crate::components::{action_result, Empty, ErrorBox, Loading, PageHeader};
use crate::format::{datetime, millis, thousands, usd};

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
    // The rollout's phase and pause, once read: the actions follow them.
    let state = RwSignal::new(None::<(String, bool)>);
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
                    Ok(d) => {
                        state.set(Some((d.rollout.phase.clone(), d.rollout.paused)));
                        view! { <RolloutHeader r=d.rollout/> }.into_any()
                    }
                    Err(e) => view! { <PageHeader title="Rollout"/> <ErrorBox error=e/> }.into_any(),
                }
            })}
        </Transition>
        {move || action_result(act.value().get(), "Done.")}
        {operate.then(|| view! { <RolloutActions id=Signal::derive(id) act=act confirm=confirm state=state/> })}
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
fn RolloutHeader(r: RolloutView) -> impl IntoView {
    view! {
        <PageHeader
            title=format!("Rollout of {}", r.model)
            subtitle=format!("{} · {} · created {}", r.id, scope(&r), datetime(&r.created_at))
        >
            <PhaseBadge phase=r.phase.clone() paused=r.paused/>
            <span class="pill" data-testid="rollout-percent">{pct(r.percent)}</span>
            {matches!(r.phase.as_str(), "shadow" | "canary").then(|| view! {
                <span class="pill pill-live" title=format!("This page re-reads the rollout every {REFRESH_SECS} s") data-testid="rollout-live">
                    {format!("auto-refresh {REFRESH_SECS} s")}
                </span>
            })}
        </PageHeader>
    }
}

#[component]
fn RolloutActions(
    id: Signal<String>,
    act: ServerAction<RolloutAction>,
    confirm: RwSignal<Option<(&'static str, &'static str)>>,
    state: RwSignal<Option<(String, bool)>>,
) -> impl IntoView {
    // Why an action cannot apply now (unknown until the rollout is read).
    let refusal =
        move |a: &str| state.with(|s| s.as_ref().and_then(|(phase, paused)| action_refusal(a, phase, *paused)));
    view! {
        <div class="rollout-actions" data-testid="rollout-actions">
            {ACTIONS
                .iter()
                .map(|&(a, label)| {
                    let class = if a == "rollback" { "button button-danger" } else { "button button-quiet" };
                    view! {
                        <button
                            type="button"
                            class=class
                            data-testid=format!("rollout-{a}")
                            disabled=move || refusal(a).is_some()
                            title=move || refusal(a).unwrap_or_default()
                            on:click=move |_| confirm.set(Some((a, label)))
                        >
                            {label}
                        </button>
                    }
                })
                .collect_view()}
            {move || confirm.get().map(|(a, label)| {
                view! {
                    <ActionForm
                        action=act
                        attr:class="card form confirm-box"
                        attr:data-testid="rollout-confirm"
                        attr:role="alertdialog"
                        attr:aria-labelledby="rollout-confirm-question"
                    >
                        <input type="hidden" name="id" value=move || id.get()/>
                        <input type="hidden" name="action" value=a/>
                        <p id="rollout-confirm-question"><strong>{move || format!("{label} rollout {}?", id.get())}</strong></p>
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

#[component]
fn RolloutBody(d: RolloutReport) -> impl IntoView {
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
        <section class="card card-flush" tabindex="0" role="region" aria-label="Both sides compared">
            <table class="table" data-testid="rollout-compare">
                <thead>
                    <tr>
                        <th>{format!("Last {} s", r.window_secs)}</th>
                        <th class="num">{format!("From {from_route}")}</th>
                        <th class="num">{format!("To {to_route}")}</th>
                    </tr>
                </thead>
                <tbody>
                    {row("requests", "Requests", thousands(f.window_requests.into()), thousands(t.window_requests.into()))}
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
        <section class="card card-flush" tabindex="0" role="region" aria-label="Shadow comparison">
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
                <div class="card card-flush" tabindex="0" role="region" aria-label="Rollout history">
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
