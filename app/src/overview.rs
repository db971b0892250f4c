//! Overview: a time range (the last 24 hours by default) across tenants —
//! requests, error rate, p99 latency and spend, top tenants by spend —
//! upstream health, the gateway replicas.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};
use sheepdog_types::{Overview, OverviewBucket};

use crate::charts::{LineChart, Series};
use crate::components::{Empty, ErrorBox, Loading, PageHeader, Stat};
use crate::error::ConsoleError;
use crate::format::{compact, datetime, day, hour, millis, money_value, percent, thousands, usd, usd_ticks};
use crate::health::GatewayHealthCard;
use crate::range::RangePicker;
use crate::replicas::ReplicasCard;

/// The overview of one range, and when it was read (buckets after it are
/// in the future and not drawn).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverviewReport {
    pub range: String,
    pub now: String,
    pub overview: Overview,
}

/// Totals over a range (see [`crate::range`]) across every tenant.
#[server(endpoint = "overview")]
pub async fn get_overview(
    range: Option<String>,
    from: Option<String>,
    to: Option<String>,
) -> Result<OverviewReport, ConsoleError> {
    use crate::auth::ssr::{require_staff, with_status};
    require_staff().await?;
    let (range, from, to) =
        crate::range::ssr::resolve(range.as_deref().unwrap_or("24h"), from.as_deref(), to.as_deref(), "24h")
            .map_err(with_status)?;
    let overview = crate::state::ConsoleState::current()?.api().overview(&from, &to).await.map_err(with_status)?;
    Ok(OverviewReport { range, now: crate::range::ssr::now(), overview })
}

fn range_title(range: &str) -> &'static str {
    match range {
        "24h" => "the last 24 hours",
        "7d" => "the last 7 days",
        "30d" => "the last 30 days",
        "month" => "this month",
        _ => "the chosen dates",
    }
}

#[component]
pub fn OverviewPage() -> impl IntoView {
    let query = use_query_map();
    let get = move |k: &str| query.with(|q| q.get(k).filter(|v| !v.is_empty()));
    let data = Resource::new(move || (get("range"), get("from"), get("to")), |(r, f, t)| get_overview(r, f, t));
    view! {
        <Title text="Overview"/>
        <PageHeader title="Overview" subtitle="Traffic, errors and spend across every tenant."/>
        <RangePicker action="/" default="24h"/>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(r) => view! { <OverviewBody r=r/> }.into_any(),
                    Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                }
            })}
        </Suspense>
        <div class="grid">
            <GatewayHealthCard/>
            <ReplicasCard/>
        </div>
    }
}

#[component]
fn OverviewBody(r: OverviewReport) -> impl IntoView {
    let o = r.overview;
    let daily = o.bucket == "day";
    let per = if daily { "day" } else { "hour" };
    let labels: Vec<String> = o.hourly.iter().map(|b| if daily { day(&b.start) } else { hour(&b.start) }).collect();
    // Buckets that start after now are in the future: no point is drawn there.
    let past = |b: &OverviewBucket, v: f64| if b.start.as_str() > r.now.as_str() { f64::NAN } else { v };
    let requests: Vec<f64> = o.hourly.iter().map(|b| past(b, b.requests as f64)).collect();
    let errors: Vec<f64> = o.hourly.iter().map(|b| past(b, b.errors as f64)).collect();
    let spend: Vec<f64> = o.hourly.iter().map(|b| past(b, b.cost_nanos as f64 / 1e9)).collect();
    let p99: Vec<f64> = o.hourly.iter().map(|b| past(b, b.p99_latency_ms)).collect();
    let span = range_title(&r.range);
    let window = format!("{} – {} UTC", datetime(&o.from), datetime(&o.to));
    let top = o.top_tenants.clone();
    let upstreams = o.upstreams.clone();
    view! {
        <p class="muted" data-testid="overview-range">{format!("Totals over {span}: {window}.")}</p>
        <section class="stats" aria-label=format!("Totals over {span}")>
            <Stat label="Requests" value=thousands(o.requests) hint=window.clone() testid="stat-requests" trend=requests.clone()/>
            <Stat
                label="Error rate"
                value=percent(o.error_rate)
                hint=format!("{} errors · {} rate-limited", thousands(o.errors), thousands(o.rate_limit_hits))
                testid="stat-error-rate"
                trend=errors.clone()
            />
            <Stat label="p99 latency" value=millis(o.p99_latency_ms) hint="across all tenants" testid="stat-p99" trend=p99/>
            <Stat label="Spend" value=usd(&o.cost_usd) hint=format!("{} active of {} tenants", o.tenants_active, o.tenants_total) testid="stat-spend" trend=spend.clone()/>
        </section>
        <div class="grid grid-2">
            <section class="card">
                <h2>{format!("Traffic per {per}")}</h2>
                <LineChart
                    title=format!("Requests and errors per {per}")
                    labels=labels.clone()
                    series=vec![
                        Series { name: "requests".into(), values: requests },
                        Series { name: "errors".into(), values: errors },
                    ]
                    fmt=compact
                    testid="chart-traffic"
                />
            </section>
            <section class="card">
                <h2>{format!("Spend per {per}")}</h2>
                <crate::charts::StackedBarChart
                    title=format!("Spend per {per}")
                    labels=labels
                    series=vec![Series { name: "spend".into(), values: spend }]
                    fmt=money_value
                    ticks=usd_ticks
                    testid="chart-spend"
                />
            </section>
        </div>
        <div class="grid grid-2">
            <section class="card" data-testid="top-tenants">
                <h2>"Top tenants by spend"</h2>
                {if top.is_empty() {
                    view! { <Empty title="No spend yet" hint="Tenants appear here once they send requests."/> }.into_any()
                } else {
                    view! {
                        <table class="table">
                            <thead>
                                <tr><th>"Tenant"</th><th class="num">"Requests"</th><th class="num">"Spend"</th></tr>
                            </thead>
                            <tbody>
                                {top
                                    .into_iter()
                                    .map(|t| {
                                        view! {
                                            <tr>
                                                <td><a href=format!("/tenants/{}", t.tenant_id)>{t.name}</a></td>
                                                <td class="num">{thousands(t.requests)}</td>
                                                <td class="num">{usd(&t.cost_usd)}</td>
                                            </tr>
                                        }
                                    })
                                    .collect_view()}
                            </tbody>
                        </table>
                    }
                        .into_any()
                }}
            </section>
            <section class="card" data-testid="upstreams">
                <h2>"Upstream health"</h2>
                <p class="muted">"Each provider over the last hour."</p>
                <div class="table-scroll" tabindex="0" role="region" aria-label="Upstream health (table)">
                <table class="table">
                    <thead>
                        <tr><th>"Provider"</th><th>"Models"</th><th class="num">"Requests"</th><th class="num">"Errors"</th><th>"Status"</th></tr>
                    </thead>
                    <tbody>
                        {upstreams
                            .into_iter()
                            .map(|u| {
                                let badge = match u.status.as_str() {
                                    "healthy" => "badge badge-healthy",
                                    "degraded" => "badge badge-unhealthy",
                                    "down" => "badge badge-unreachable",
                                    _ => "badge badge-checking",
                                };
                                view! {
                                    <tr data-testid="upstream-row">
                                        <td>
                                            <strong>{u.provider.clone()}</strong>
                                            " "
                                            <span class="muted">{u.kind.clone()}</span>
                                            {u.simulated.then(|| view! { <span class="pill pill-sim" title="No real upstream: answers are simulated">"simulated"</span> })}
                                        </td>
                                        <td class="muted small">{u.models.join(", ")}</td>
                                        <td class="num">{thousands(u.requests)}</td>
                                        <td class="num">{thousands(u.errors)}</td>
                                        <td><span class=badge data-state=u.status.clone()>{u.status.clone()}</span></td>
                                    </tr>
                                }
                            })
                            .collect_view()}
                    </tbody>
                </table>
                </div>
            </section>
        </div>
    }
    .into_any()
}
