//! The analysis report on the page: summary, the tenants with their
//! recommendations (and "Apply", confirmed with the change it makes), the
//! requests chart and the full `report.html`.

use leptos::prelude::*;
use sheepdog_types::analysis::TenantReport;
use sheepdog_types::{TenantStatus, Tier};

use super::{utc_label, AnalysisResult, ApplyAnalysis, TenantPlan};
use crate::charts::{LineChart, Series};
use crate::components::{ErrorBox, TierBadge};
use crate::format::{compact, datetime, thousands, usd};

fn tier_of(t: Tier) -> &'static str {
    t.as_str()
}

fn concurrency(c: Option<u64>) -> String {
    c.map(thousands).unwrap_or_else(|| "no limit".into())
}

#[component]
pub(crate) fn AnalysisView(result: AnalysisResult) -> impl IntoView {
    let AnalysisResult { report, html, plans } = result;
    let plans = RwSignal::new(plans);
    let o = report.overall.clone();
    let c = report.cost.clone();
    let change = match c.change_percent {
        Some(p) => format!("{p:+.1} %"),
        None => "—".into(),
    };
    let mapped = !c.model_map.is_empty();
    let window = match (&report.window.first, &report.window.last) {
        (Some(a), Some(b)) => format!("{} → {} (UTC)", datetime(a), datetime(b)),
        _ => "—".into(),
    };
    let chart = {
        let s = &report.series;
        let n = s.lines.iter().map(|l| l.requests.len()).max().unwrap_or(0);
        let labels: Vec<String> = (0..n).map(|i| utc_label(s.start_ms + s.bucket_ms * i as i64)).collect();
        let series: Vec<Series> = s
            .lines
            .iter()
            .map(|l| Series { name: l.name.clone(), values: l.requests.iter().map(|v| *v as f64).collect() })
            .collect();
        (labels, series)
    };
    let tenants = report.tenants.clone();
    view! {
        <section class="analysis" data-testid="analysis-result">
            <h2>"Summary"</h2>
            <div class="stats" data-testid="analysis-summary">
                <div class="stat" data-testid="analysis-records">
                    <span class="stat-label">"Requests analysed"</span>
                    <span class="stat-value">{thousands(report.quality.records)}</span>
                    <span class="stat-hint">{format!("{} malformed lines skipped", thousands(report.quality.malformed))}</span>
                </div>
                <div class="stat" data-testid="analysis-peak">
                    <span class="stat-label">"Peak concurrency"</span>
                    <span class="stat-value">{thousands(o.peak_concurrency.value)}</span>
                    <span class="stat-hint">{o.peak_concurrency.at.as_deref().map(datetime).unwrap_or_default()}</span>
                </div>
                <div class="stat" data-testid="analysis-rpm">
                    <span class="stat-label">"Requests per minute (peak)"</span>
                    <span class="stat-value">{thousands(o.requests_per_minute.peak)}</span>
                    <span class="stat-hint">{format!("p50 {} · p95 {}", thousands(o.requests_per_minute.p50), thousands(o.requests_per_minute.p95))}</span>
                </div>
                <div class="stat" data-testid="analysis-cost-now">
                    <span class="stat-label">"Monthly cost now"</span>
                    <span class="stat-value">{usd(&c.monthly.usd)}</span>
                    <span class="stat-hint">{c.price_table.clone()}</span>
                </div>
                <div class="stat" data-testid="analysis-cost-projected">
                    <span class="stat-label">{if mapped { "Monthly cost projected" } else { "Monthly cost projected (no mapping)" }}</span>
                    <span class="stat-value">{usd(&c.projected_monthly.usd)}</span>
                    <span class="stat-hint">{format!("{change} · {}", c.model_map.iter().map(|(a, b)| format!("{a} → {b}")).collect::<Vec<_>>().join(", "))}</span>
                </div>
            </div>
            <p class="muted" data-testid="analysis-window">
                {format!("Log window {window}; {} tenants.", report.tenants.len())}
                {report.window.note.clone().map(|n| format!(" {n}"))}
            </p>
            {(!report.quality.warnings.is_empty()).then(|| view! {
                <ul class="alert alert-warn">
                    {report.quality.warnings.iter().map(|w| view! { <li>{w.clone()}</li> }).collect_view()}
                </ul>
            })}
            <h2>"Per tenant"</h2>
            <TenantTable tenants=tenants plans=plans/>
            <section class="card">
                <h3>"Requests over time"</h3>
                <LineChart title="Requests per bucket, by tenant" labels=chart.0 series=chart.1 fmt=compact testid="analysis-chart-requests"/>
            </section>
            <h2>"Full report"</h2>
            <p class="muted">"The report as `sheepdog analyze` writes it (report.html), with every chart and how each figure is computed."</p>
            <iframe class="report-frame" title="Migration analysis report" sandbox="" srcdoc=html data-testid="analysis-report-frame"></iframe>
        </section>
    }
    .into_any()
}

#[component]
fn TenantTable(tenants: Vec<TenantReport>, plans: RwSignal<Vec<TenantPlan>>) -> impl IntoView {
    let confirm = RwSignal::new(None::<usize>);
    let apply = ServerAction::<ApplyAnalysis>::new();
    let done = RwSignal::new(None::<String>);
    // A successful change updates the matched tenant in place.
    Effect::new(move |_| {
        if let Some(Ok(t)) = apply.value().get() {
            plans.update(|ps| {
                for p in ps.iter_mut() {
                    if let Some(m) = p.matched.as_mut().filter(|m| m.id == t.id) {
                        m.tier = t.tier;
                        m.limits = t.limits.clone();
                    }
                }
            });
            done.set(Some(format!("Applied to {}.", t.name)));
            confirm.set(None);
        }
    });
    let rows = tenants
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let l = t.usage.recommended_limits.clone();
            let reasons = t.recommendation.reasons.clone();
            let first = reasons.first().cloned().unwrap_or_default();
            let tier = t.recommendation.tier.clone();
            let key = t.tenant.clone();
            let data_key = key.clone();
            view! {
                <tr data-testid="analysis-tenant-row" data-tenant=data_key>
                    <td>
                        <strong class="mono">{key}</strong>
                        <div class="muted">
                            {move || plans.with(|ps| match ps.get(i).and_then(|p| p.matched.clone()) {
                                Some(m) => view! {
                                    <a href=format!("/tenants/{}", m.id) data-testid="analysis-match">{m.name.clone()}</a>
                                    {format!(" (by {}) · ", m.matched_by)}
                                    <TierBadge tier=m.tier/>
                                }.into_any(),
                                None => view! { <span data-testid="analysis-no-match">"no matching tenant"</span> }.into_any(),
                            })}
                        </div>
                    </td>
                    <td class="num">{thousands(t.usage.requests)}</td>
                    <td class="num" data-testid="analysis-peak-concurrency">{thousands(t.usage.peak_concurrency.value)}</td>
                    <td class="num" data-testid="analysis-limits">
                        {format!("{} req/min", thousands(l.requests_per_minute))}<br/>
                        {format!("{} tok/min", compact(l.tokens_per_minute as f64))}<br/>
                        {format!("{} concurrent", thousands(l.max_concurrency))}
                    </td>
                    <td data-testid="analysis-tier" data-tier=tier.clone()>
                        <span class=format!("pill pill-{tier}")>{tier.clone()}</span>
                        <details>
                            <summary class="muted">{first}</summary>
                            <ul>{reasons.into_iter().skip(1).map(|r| view! { <li>{r}</li> }).collect_view()}</ul>
                        </details>
                    </td>
                    <td class="num">{usd(&t.usage.cost.monthly.usd)}" → "{usd(&t.usage.cost.projected_monthly.usd)}</td>
                    <td>
                        {move || plans.with(|ps| {
                            let Some(p) = ps.get(i) else { return ().into_any() };
                            match (&p.matched, &p.unmatched) {
                                (Some(m), _) if p.change.is_applied_to(m) => view! {
                                    <span class="pill pill-ok" data-testid="apply-done">"applied"</span>
                                }.into_any(),
                                (Some(_), _) => view! {
                                    <button type="button" class="button button-quiet" data-testid="apply-recommendation" on:click=move |_| { done.set(None); confirm.set(Some(i)) }>
                                        "Apply…"
                                    </button>
                                }.into_any(),
                                (None, why) => view! {
                                    <button type="button" class="button button-quiet" disabled=true title=why.clone().unwrap_or_default() data-testid="apply-recommendation">"Apply…"</button>
                                    <div class="muted small" data-testid="apply-unavailable">{why.clone().unwrap_or_default()}</div>
                                }.into_any(),
                            }
                        })}
                    </td>
                </tr>
            }
            .into_any()
        })
        .collect_view();
    view! {
        <div class="card card-flush" tabindex="0" role="region" aria-label="Tenants in the analysis">
            <table class="table" data-testid="analysis-tenants">
                <thead>
                    <tr>
                        <th>"Tenant (log → console)"</th>
                        <th class="num">"Requests"</th>
                        <th class="num">"Peak concurrency"</th>
                        <th class="num">"Recommended limits"</th>
                        <th>"Recommended tier"</th>
                        <th class="num">"Monthly cost now → projected"</th>
                        <th></th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
        {move || done.get().map(|m| view! { <p class="alert alert-ok" role="status" data-testid="apply-saved">{m}</p> })}
        {move || apply.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorBox error=e/> })}
        {move || confirm.get().and_then(|i| plans.with(|ps| ps.get(i).cloned())).and_then(|p| p.matched.clone().map(|m| (p, m))).map(|(p, m)| {
            let ch = p.change.clone();
            let line = |key: &'static str, label: &'static str, before: String, after: String| {
                let same = before == after;
                let (data_before, data_after) = (before.clone(), after.clone());
                let shown = if same { "(unchanged)".to_string() } else { after };
                view! {
                    <tr data-testid=format!("apply-change-{key}") data-before=data_before data-after=data_after class:unchanged=same>
                        <th scope="row">{label}</th>
                        <td>{before}</td>
                        <td>{shown}</td>
                    </tr>
                }
            };
            let submit = {
                let (id, ch) = (m.id.clone(), ch.clone());
                move |_| {
                    apply.dispatch(ApplyAnalysis {
                        tenant_id: id.clone(),
                        tier: ch.tier.as_str().to_string(),
                        requests_per_minute: ch.requests_per_minute,
                        tokens_per_minute: ch.tokens_per_minute,
                        max_concurrency: ch.max_concurrency,
                    });
                }
            };
            view! {
                <div class="card form confirm-box" data-testid="apply-confirm">
                    <p>
                        <strong>{format!("Apply the recommendation for {} to tenant {}?", p.tenant, m.name)}</strong>
                        {(m.status == TenantStatus::Suspended).then_some(" The tenant is suspended.")}
                    </p>
                    <table class="table">
                        <thead><tr><th></th><th>"Now"</th><th>"After"</th></tr></thead>
                        <tbody>
                            {line("tier", "Tier", tier_of(m.tier).into(), tier_of(ch.tier).into())}
                            {line("rpm", "Requests per minute", thousands(m.limits.requests_per_minute), thousands(ch.requests_per_minute))}
                            {line("tpm", "Tokens per minute", thousands(m.limits.tokens_per_minute), thousands(ch.tokens_per_minute))}
                            {line("concurrency", "Max concurrency", concurrency(m.limits.max_concurrency), thousands(ch.max_concurrency))}
                        </tbody>
                    </table>
                    {ch.tier_note.clone().map(|n| view! { <p class="muted">{format!("Tier {n}.")}</p> })}
                    <p class="muted">"Both changes go through the admin API and are in the audit log under your name."</p>
                    <div class="form-actions">
                        <button type="button" class="button button-quiet" data-testid="apply-cancel" on:click=move |_| confirm.set(None)>"Cancel"</button>
                        <button type="button" class="button" data-testid="apply-submit" disabled=move || apply.pending().get() on:click=submit>
                            {move || if apply.pending().get() { "Applying…" } else { "Yes, apply" }}
                        </button>
                    </div>
                </div>
            }
            .into_any()
        })}
    }
    .into_any()
}
