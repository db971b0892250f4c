//! Overview: the last 24 hours across tenants — requests, error rate, p99
//! latency and spend, top tenants by spend, upstream health, the gateway
//! replicas.

use leptos::prelude::*;
use leptos_meta::Title;
use sheepdog_types::Overview;

use crate::charts::{LineChart, Series};
use crate::components::{Empty, ErrorBox, Loading, PageHeader, Stat};
use crate::error::ConsoleError;
use crate::format::{compact, datetime, hour, millis, percent, thousands, usd, usd_nanos};
use crate::health::GatewayHealthCard;
use crate::replicas::ReplicasCard;

/// Totals of the last 24 h across every tenant.
#[server(endpoint = "overview")]
pub async fn get_overview() -> Result<Overview, ConsoleError> {
    crate::auth::ssr::require_staff().await?;
    crate::state::ConsoleState::current()?.api().overview().await.map_err(crate::auth::ssr::with_status)
}

fn money_axis(v: f64) -> String {
    usd_nanos((v * 1e9).round() as i64)
}

#[component]
pub fn OverviewPage() -> impl IntoView {
    let data = Resource::new(|| (), |_| get_overview());
    view! {
        <Title text="Overview"/>
        <PageHeader title="Overview" subtitle="The last 24 hours across every tenant."/>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(o) => view! { <OverviewBody o=o/> }.into_any(),
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
fn OverviewBody(o: Overview) -> impl IntoView {
    let labels: Vec<String> = o.hourly.iter().map(|b| hour(&b.start)).collect();
    let requests: Vec<f64> = o.hourly.iter().map(|b| b.requests as f64).collect();
    let errors: Vec<f64> = o.hourly.iter().map(|b| b.errors as f64).collect();
    let spend: Vec<f64> = o.hourly.iter().map(|b| b.cost_nanos as f64 / 1e9).collect();
    let p99: Vec<f64> = o.hourly.iter().map(|b| b.p99_latency_ms).collect();
    let window = format!("{} – {} UTC", datetime(&o.from), datetime(&o.to));
    let top = o.top_tenants.clone();
    let upstreams = o.upstreams.clone();
    view! {
        <section class="stats" aria-label="Last 24 hours">
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
                <h2>"Traffic per hour"</h2>
                <LineChart
                    title="Requests and errors per hour"
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
                <h2>"Spend per hour"</h2>
                <crate::charts::StackedBarChart
                    title="Spend per hour"
                    labels=labels
                    series=vec![Series { name: "spend".into(), values: spend }]
                    fmt=money_axis
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
            </section>
        </div>
    }
    .into_any()
}
