//! The tenant page: limits, budget, pool, keys, hourly charts, suspend and
//! reactivate.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};
use sheepdog_types::{KeyInfo, TenantMetrics, TenantStatus};

use super::{can_operate, get_tenant_detail, SetTenantStatus, TenantDetail, UpdateBudget, UpdateLimits};
use crate::charts::{LineChart, Series, StackedBarChart};
use crate::components::{
    action_result, Confirmed, ErrorBox, KeyReveal, Loading, PageHeader, Pager, Stat, StatusBadge, TierBadge,
};
use crate::format::{compact, datetime, hour, millis, short_id, thousands, usd, usd_nanos};
use crate::keys::{CreateTenantKey, KeysTable, RevokeTenantKey};

#[component]
pub fn TenantDetailPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let id = move || params.with(|p| p.get("id").unwrap_or_default());
    let limits = ServerAction::<UpdateLimits>::new();
    let budget = ServerAction::<UpdateBudget>::new();
    let status = ServerAction::<SetTenantStatus>::new();
    let create_key = ServerAction::<CreateTenantKey>::new();
    let revoke_key = ServerAction::<RevokeTenantKey>::new();
    let detail = Resource::new(
        move || {
            (
                id(),
                limits.version().get(),
                budget.version().get(),
                status.version().get(),
                create_key.version().get(),
                revoke_key.version().get(),
                query.with(|q| q.get("keys_offset")),
            )
        },
        |(id, _, _, _, _, _, keys_offset)| get_tenant_detail(id, keys_offset),
    );
    let operate = can_operate();
    view! {
        <Title text="Tenant"/>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(d) => view! {
                        <TenantDetailBody d=d operate=operate limits=limits budget=budget status=status create_key=create_key revoke_key=revoke_key/>
                    }
                        .into_any(),
                    Err(e) => view! { <PageHeader title="Tenant"/> <ErrorBox error=e/> }.into_any(),
                }
            })}
        </Transition>
    }
}

fn money_axis(v: f64) -> String {
    usd_nanos((v * 1e9).round() as i64)
}

/// Hourly charts of a tenant's metrics (operator page and portal).
#[component]
pub fn MetricsCharts(metrics: TenantMetrics) -> impl IntoView {
    let b = &metrics.buckets;
    let labels: Vec<String> = b.iter().map(|x| hour(&x.start)).collect();
    let requests: Vec<f64> = b.iter().map(|x| x.request_count as f64).collect();
    let errors: Vec<f64> = b.iter().map(|x| x.error_count as f64).collect();
    let limited: Vec<f64> = b.iter().map(|x| x.rate_limit_hits as f64).collect();
    let cost: Vec<f64> = b.iter().map(|x| crate::format::parse_usd_nanos(&x.cost_usd) as f64 / 1e9).collect();
    let p99: Vec<f64> = b.iter().map(|x| x.p99_latency_ms).collect();
    let avg: Vec<f64> = b.iter().map(|x| x.avg_latency_ms).collect();
    let input: Vec<f64> = b.iter().map(|x| x.input_tokens as f64).collect();
    let output: Vec<f64> = b.iter().map(|x| x.output_tokens as f64).collect();
    view! {
        <div class="grid grid-2">
            <section class="card">
                <h2>"Requests per hour"</h2>
                <LineChart
                    title="Requests, errors and rate-limit refusals per hour"
                    labels=labels.clone()
                    series=vec![
                        Series { name: "requests".into(), values: requests },
                        Series { name: "errors".into(), values: errors },
                        Series { name: "rate limited".into(), values: limited },
                    ]
                    fmt=compact
                    testid="chart-requests"
                />
            </section>
            <section class="card">
                <h2>"Cost per hour"</h2>
                <StackedBarChart title="Cost per hour" labels=labels.clone() series=vec![Series { name: "cost".into(), values: cost }] fmt=money_axis testid="chart-cost"/>
            </section>
            <section class="card">
                <h2>"Tokens per hour"</h2>
                <StackedBarChart
                    title="Input and output tokens per hour"
                    labels=labels.clone()
                    series=vec![Series { name: "input".into(), values: input }, Series { name: "output".into(), values: output }]
                    fmt=compact
                    testid="chart-tokens"
                />
            </section>
            <section class="card">
                <h2>"Latency"</h2>
                <LineChart
                    title="Average and p99 latency per hour"
                    labels=labels
                    series=vec![Series { name: "p99".into(), values: p99 }, Series { name: "average".into(), values: avg }]
                    fmt=millis
                    testid="chart-latency"
                />
            </section>
        </div>
    }
    .into_any()
}

#[component]
fn TenantDetailBody(
    d: TenantDetail,
    operate: bool,
    limits: ServerAction<UpdateLimits>,
    budget: ServerAction<UpdateBudget>,
    status: ServerAction<SetTenantStatus>,
    create_key: ServerAction<CreateTenantKey>,
    revoke_key: ServerAction<RevokeTenantKey>,
) -> impl IntoView {
    let t = d.tenant.clone();
    let total_requests: u64 = d.metrics.buckets.iter().map(|b| b.request_count).sum();
    let total_errors: u64 = d.metrics.buckets.iter().map(|b| b.error_count).sum();
    let total_limited: u64 = d.metrics.buckets.iter().map(|b| b.rate_limit_hits).sum();
    let day_cost: i64 = d.metrics.buckets.iter().map(|b| crate::format::parse_usd_nanos(&b.cost_usd)).sum();
    let budget_text = match &t.budget.monthly_limit_usd {
        Some(l) => format!("of {} {}", usd(l), if t.budget.hard { "(hard)" } else { "(soft)" }),
        None => "no monthly budget".into(),
    };
    let suspended = t.status == TenantStatus::Suspended;
    let id = t.id.clone();
    let (id2, id3, id4, id5) = (id.clone(), id.clone(), id.clone(), id.clone());
    view! {
        <PageHeader title=t.name.clone() subtitle=format!("Tenant {} · created {}", t.id, datetime(&t.created_at))>
            <StatusBadge status=t.status/>
            <TierBadge tier=t.tier/>
            {operate.then(|| {
                let next = if suspended { "active" } else { "suspended" };
                let form = {
                    let id = id.clone();
                    move || view! {
                        <ActionForm action=status attr:class="inline-form">
                            <input type="hidden" name="id" value=id.clone()/>
                            <input type="hidden" name="status" value=next/>
                            <button type="submit" class={if suspended { "button" } else { "button button-danger" }} data-testid={if suspended { "toggle-status" } else { "confirm-yes" }}>
                                {if suspended { "Reactivate" } else { "Yes, suspend" }}
                            </button>
                        </ActionForm>
                    }
                };
                if suspended {
                    form().into_any()
                } else {
                    let question = format!("Suspend {}? Its requests will be refused until it is reactivated.", t.name);
                    view! {
                        <Confirmed label="Suspend" question=question testid="toggle-status" class="button button-danger">
                            {form()}
                        </Confirmed>
                    }
                    .into_any()
                }
            })}
        </PageHeader>
        {move || action_result(status.value().get(), "Status changed.")}
        {(!t.aliases.is_empty()).then(|| view! { <p class="muted">"Aliases: " <code>{t.aliases.join(", ")}</code></p> })}
        <section class="stats">
            <Stat label="Requests (24 h)" value=thousands(total_requests) hint=format!("{} errors · {} rate-limited", thousands(total_errors), thousands(total_limited)) testid="tenant-requests"/>
            <Stat label="Spend (24 h)" value=usd_nanos(day_cost) testid="tenant-spend-24h"/>
            <Stat label="Spend this month" value=usd(&d.month_spend_usd) hint=budget_text testid="tenant-spend-month"/>
            {d.pool.clone().map(|p| view! { <Stat label="Credit available" value=usd(&p.available_usd) hint=format!("pool {} · balance {}", p.name, usd(&p.balance_usd)) testid="tenant-credit"/> })}
        </section>
        <MetricsCharts metrics=d.metrics.clone()/>
        <div class="grid grid-2">
            <section class="card" data-testid="limits-card">
                <h2>"Limits"</h2>
                <ActionForm action=limits attr:class="form" attr:data-testid="limits-form">
                    <input type="hidden" name="id" value=id2/>
                    <label>"Requests per minute" <input name="requests_per_minute" value=t.limits.requests_per_minute.to_string() disabled=!operate data-testid="limit-rpm"/></label>
                    <label>"Tokens per minute" <input name="tokens_per_minute" value=t.limits.tokens_per_minute.to_string() disabled=!operate data-testid="limit-tpm"/></label>
                    <label>"Max concurrency" <input name="max_concurrency" value=t.limits.max_concurrency.map(|c| c.to_string()).unwrap_or_default() placeholder="unlimited" disabled=!operate/></label>
                    {operate.then(|| view! { <button type="submit" class="button" data-testid="save-limits">"Save limits"</button> })}
                </ActionForm>
                {move || action_result(limits.value().get(), "Limits saved; they apply to the next request.")}
            </section>
            <section class="card" data-testid="budget-card">
                <h2>"Monthly budget"</h2>
                <ActionForm action=budget attr:class="form" attr:data-testid="budget-form">
                    <input type="hidden" name="id" value=id3/>
                    <label>"Limit (USD)" <input name="monthly_limit_usd" value=t.budget.monthly_limit_usd.clone().unwrap_or_default() placeholder="no limit" disabled=!operate data-testid="budget-limit"/></label>
                    <label class="check"><input type="checkbox" name="hard" value="true" checked=t.budget.hard disabled=!operate/> "Hard: refuse requests that could exceed it"</label>
                    {operate.then(|| view! { <button type="submit" class="button" data-testid="save-budget">"Save budget"</button> })}
                </ActionForm>
                {move || action_result(budget.value().get(), "Budget saved.")}
                {d.pool.clone().map(|p| view! {
                    <div class="pool">
                        <h3>"Credit pool"</h3>
                        <dl class="kv">
                            <dt>"Pool"</dt><dd>{p.name.clone()} " " <span class="muted mono">{short_id(&p.id)}</span></dd>
                            <dt>"Credited"</dt><dd>{usd(&p.credited_usd)}</dd>
                            <dt>"Used"</dt><dd>{usd(&p.debited_usd)}</dd>
                            <dt>"Available"</dt><dd>{usd(&p.available_usd)}</dd>
                        </dl>
                    </div>
                })}
            </section>
        </div>
        <section class="card" data-testid="keys-card">
            <div class="card-head">
                <h2>"API keys"</h2>
                {operate.then(|| view! {
                    <ActionForm action=create_key attr:class="inline-form">
                        <input type="hidden" name="tenant_id" value=id4.clone()/>
                        <label class="inline">"Key name " <input name="name" placeholder="optional" data-testid="key-name"/></label>
                        <button type="submit" class="button" data-testid="create-key">"Create key"</button>
                    </ActionForm>
                })}
            </div>
            {move || match create_key.value().get() {
                Some(Ok(k)) => view! { <KeyReveal key=k/> }.into_any(),
                Some(Err(e)) => view! { <ErrorBox error=e/> }.into_any(),
                None => ().into_any(),
            }}
            {move || revoke_key.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorBox error=e/> })}
            <KeysTable
                keys=d.keys.clone()
                action=move |k: &KeyInfo| {
                    if operate {
                        crate::keys::revoke_form(revoke_key, &id5, &k.id)
                    } else {
                        ().into_any()
                    }
                }
            />
            {(d.keys_total > d.keys.len() as u64).then(|| {
                view! {
                    <Pager
                        path=format!("/tenants/{}", d.tenant.id)
                        param="keys_offset"
                        total=d.keys_total
                        offset=d.keys_offset
                        shown=d.keys.len()
                        query=vec![]
                        testid="keys-pager"
                    />
                }
            })}
        </section>
        <p class="muted"><A href="/tenants">"← All tenants"</A></p>
    }
    .into_any()
}
