//! Tenants: the list (search, tier and status filters), onboarding (ends by
//! showing the first key once), and the tenant page (limits, budget, pool,
//! keys, hourly charts, suspend and reactivate).

// The onboarding form has one server-function argument per field.
#![allow(clippy::too_many_arguments)]

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};
use serde::{Deserialize, Serialize};
use sheepdog_types::{KeyCreated, KeyInfo, PoolInfo, Tenant, TenantMetrics, TenantStatus};

use crate::auth::SessionUser;
use crate::charts::{LineChart, Series, StackedBarChart};
use crate::components::{action_result, Empty, ErrorBox, KeyReveal, Loading, PageHeader, Stat, StatusBadge, TierBadge};
use crate::format::{compact, datetime, hour, millis, short_id, thousands, usd, usd_nanos};
use crate::keys::{CreateTenantKey, KeysTable, RevokeTenantKey};
use crate::ConsoleError;

/// Everything the tenant page shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantDetail {
    pub tenant: Tenant,
    pub keys: Vec<KeyInfo>,
    pub metrics: TenantMetrics,
    pub pool: Option<PoolInfo>,
    /// Spend this calendar month (UTC), decimal USD.
    pub month_spend_usd: String,
}

/// What onboarding created: the tenant and its first key (shown once).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Onboarded {
    pub tenant: Tenant,
    pub key: KeyCreated,
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use serde_json::{json, Value};
    use sheepdog_types::{PoolInfo, TenantMetrics};

    use super::TenantDetail;
    use crate::{ConsoleError, ConsoleState};

    /// An optional whole number from a form field.
    pub fn number(field: &str, text: &str) -> Result<Option<u64>, ConsoleError> {
        let t = text.trim().replace([',', '_', ' '], "");
        if t.is_empty() {
            return Ok(None);
        }
        t.parse::<u64>()
            .map(Some)
            .map_err(|_| ConsoleError::Invalid(format!("{field}: {text:?} is not a whole number.")))
    }

    /// An optional USD amount from a form field (`12.50`, `$12.50`).
    pub fn amount(field: &str, text: &str) -> Result<Option<String>, ConsoleError> {
        let t = text.trim().trim_start_matches('$').replace([',', ' '], "");
        if t.is_empty() {
            return Ok(None);
        }
        sheepdog_types::parse_usd(&t)
            .map(|_| Some(t.clone()))
            .map_err(|_| ConsoleError::Invalid(format!("{field}: {text:?} is not an amount in USD.")))
    }

    pub fn limits_body(rpm: &str, tpm: &str, max_concurrency: &str) -> Result<Value, ConsoleError> {
        let rpm = number("Requests per minute", rpm)?
            .ok_or_else(|| ConsoleError::Invalid("Requests per minute is required.".into()))?;
        let tpm = number("Tokens per minute", tpm)?
            .ok_or_else(|| ConsoleError::Invalid("Tokens per minute is required.".into()))?;
        let conc = number("Max concurrency", max_concurrency)?;
        Ok(json!({"requests_per_minute": rpm, "tokens_per_minute": tpm, "max_concurrency": conc}))
    }

    pub fn budget_body(monthly: &str, hard: bool) -> Result<Value, ConsoleError> {
        Ok(json!({"monthly_limit_usd": amount("Monthly budget", monthly)?, "hard": hard}))
    }

    pub async fn detail(state: &ConsoleState, id: &str) -> Result<TenantDetail, ConsoleError> {
        let api = state.api();
        let tenant = api.tenant(id).await?;
        let (keys, metrics, usage) = tokio::join!(
            api.tenant_keys(&tenant.id),
            api.metrics(&tenant.id, "24h"),
            api.usage("tenant", None, None, Some(&tenant.id))
        );
        let pool: Option<PoolInfo> = match &tenant.pool_id {
            Some(p) => api.pool(p).await.ok(),
            None => None,
        };
        let metrics: TenantMetrics = metrics?;
        let month_spend_usd =
            usage?.data.into_iter().map(|r| r.cost_usd).next().unwrap_or_else(|| "0.000000000".into());
        Ok(TenantDetail { tenant, keys: keys?, metrics, pool, month_spend_usd })
    }
}

/// Every tenant matching the search (name, alias or id), tier and status.
#[server(endpoint = "tenants")]
pub async fn list_tenants(
    q: Option<String>,
    tier: Option<String>,
    status: Option<String>,
) -> Result<Vec<Tenant>, ConsoleError> {
    use crate::auth::ssr::{require_staff, with_status};
    require_staff().await?;
    let all = crate::ConsoleState::current()?.api().tenants().await.map_err(with_status)?;
    let q = q.unwrap_or_default().trim().to_lowercase();
    let tier = tier.filter(|t| !t.is_empty());
    let status = status.filter(|s| !s.is_empty());
    let mut out: Vec<Tenant> = all
        .into_iter()
        .filter(|t| {
            q.is_empty()
                || t.name.to_lowercase().contains(&q)
                || t.id.starts_with(&q)
                || t.aliases.iter().any(|a| a.to_lowercase().contains(&q))
        })
        .filter(|t| tier.as_deref().is_none_or(|x| t.tier.as_str() == x))
        .filter(|t| status.as_deref().is_none_or(|x| t.status.as_str() == x))
        .collect();
    out.sort_by_key(|t| t.name.to_lowercase());
    Ok(out)
}

/// One tenant with its keys, last 24 h metrics, pool and month's spend.
#[server(endpoint = "tenant_detail")]
pub async fn get_tenant_detail(id: String) -> Result<TenantDetail, ConsoleError> {
    use crate::auth::ssr::{require_staff, with_status};
    require_staff().await?;
    ssr::detail(&crate::ConsoleState::current()?, &id).await.map_err(with_status)
}

/// Credit pools (for the onboarding form).
#[server(endpoint = "pools")]
pub async fn list_pools() -> Result<Vec<PoolInfo>, ConsoleError> {
    use crate::auth::ssr::{require_staff, with_status};
    require_staff().await?;
    crate::ConsoleState::current()?.api().pools().await.map_err(with_status)
}

/// Creates a tenant with its limits and budget, then its first key.
#[server(endpoint = "onboard_tenant")]
pub async fn onboard_tenant(
    name: String,
    tier: String,
    aliases: Option<String>,
    requests_per_minute: Option<String>,
    tokens_per_minute: Option<String>,
    max_concurrency: Option<String>,
    monthly_budget_usd: Option<String>,
    budget_hard: Option<String>,
    signup_credit_usd: Option<String>,
    pool_id: Option<String>,
) -> Result<Onboarded, ConsoleError> {
    let (aliases, requests_per_minute, tokens_per_minute, max_concurrency, monthly_budget_usd, signup_credit_usd) = (
        aliases.unwrap_or_default(),
        requests_per_minute.unwrap_or_default(),
        tokens_per_minute.unwrap_or_default(),
        max_concurrency.unwrap_or_default(),
        monthly_budget_usd.unwrap_or_default(),
        signup_credit_usd.unwrap_or_default(),
    );
    use crate::api::actor_for;
    use crate::auth::ssr::{require_operator, with_status};
    let user = require_operator().await?;
    let state = crate::ConsoleState::current()?;
    let build = || -> Result<serde_json::Value, ConsoleError> {
        let tier = sheepdog_types::Tier::parse(tier.trim())
            .ok_or_else(|| ConsoleError::Invalid("Choose a tier: shared, pooled or dedicated.".into()))?;
        let aliases: Vec<String> =
            aliases.split([',', ' ', '\n']).map(str::trim).filter(|a| !a.is_empty()).map(str::to_string).collect();
        let mut body = serde_json::json!({"name": name.trim(), "tier": tier.as_str(), "aliases": aliases});
        let rpm = requests_per_minute.trim();
        let tpm = tokens_per_minute.trim();
        if !(rpm.is_empty() && tpm.is_empty() && max_concurrency.trim().is_empty()) {
            let rpm = if rpm.is_empty() { sheepdog_types::DEFAULT_REQUESTS_PER_MINUTE.to_string() } else { rpm.into() };
            let tpm = if tpm.is_empty() { sheepdog_types::DEFAULT_TOKENS_PER_MINUTE.to_string() } else { tpm.into() };
            body["limits"] = ssr::limits_body(&rpm, &tpm, &max_concurrency)?;
        }
        let hard = budget_hard.is_some_and(|h| !h.is_empty() && h != "false");
        if let Some(b) = ssr::amount("Monthly budget", &monthly_budget_usd)? {
            body["budget"] = serde_json::json!({"monthly_limit_usd": b, "hard": hard});
        }
        if let Some(c) = ssr::amount("Signup credit", &signup_credit_usd)? {
            body["signup_credit_usd"] = serde_json::json!(c);
        }
        if let Some(p) = pool_id.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
            body["pool_id"] = serde_json::json!(p);
        }
        Ok(body)
    };
    let body = build().map_err(with_status)?;
    let actor = actor_for(&user.email);
    let tenant = state.api().create_tenant(&actor, &body).await.map_err(with_status)?;
    let key = state.api().create_key(&actor, &tenant.id, Some("first key")).await.map_err(with_status)?;
    Ok(Onboarded { tenant, key })
}

#[server(endpoint = "update_limits")]
pub async fn update_limits(
    id: String,
    requests_per_minute: String,
    tokens_per_minute: String,
    max_concurrency: Option<String>,
) -> Result<Tenant, ConsoleError> {
    use crate::auth::ssr::{require_operator, with_status};
    let user = require_operator().await?;
    let body = ssr::limits_body(&requests_per_minute, &tokens_per_minute, &max_concurrency.unwrap_or_default())
        .map_err(with_status)?;
    let state = crate::ConsoleState::current()?;
    state.api().put_limits(&crate::api::actor_for(&user.email), &id, &body).await.map_err(with_status)
}

#[server(endpoint = "update_budget")]
pub async fn update_budget(
    id: String,
    monthly_limit_usd: Option<String>,
    hard: Option<String>,
) -> Result<Tenant, ConsoleError> {
    use crate::auth::ssr::{require_operator, with_status};
    let user = require_operator().await?;
    let hard = hard.is_some_and(|h| !h.is_empty() && h != "false");
    let body = ssr::budget_body(&monthly_limit_usd.unwrap_or_default(), hard).map_err(with_status)?;
    let state = crate::ConsoleState::current()?;
    state.api().put_budget(&crate::api::actor_for(&user.email), &id, &body).await.map_err(with_status)
}

/// Suspends (`suspended`) or reactivates (`active`) a tenant.
#[server(endpoint = "set_tenant_status")]
pub async fn set_tenant_status(id: String, status: String) -> Result<Tenant, ConsoleError> {
    use crate::auth::ssr::{require_operator, with_status};
    let user = require_operator().await?;
    let status = TenantStatus::parse(&status)
        .ok_or_else(|| with_status(ConsoleError::Invalid("status must be active or suspended.".into())))?;
    let state = crate::ConsoleState::current()?;
    let body = serde_json::json!({ "status": status.as_str() });
    state.api().patch_tenant(&crate::api::actor_for(&user.email), &id, &body).await.map_err(with_status)
}

fn can_operate() -> bool {
    use_context::<SessionUser>().is_some_and(|u| u.can_operate())
}

#[component]
pub fn TenantsPage() -> impl IntoView {
    let query = use_query_map();
    let get = move |k: &str| query.with(|q| q.get(k).filter(|v| !v.is_empty()));
    let tenants = Resource::new(
        move || (get("q"), get("tier"), get("status")),
        |(q, tier, status)| list_tenants(q, tier, status),
    );
    let operate = can_operate();
    let selected = move |k: &'static str, v: &'static str| get(k).as_deref() == Some(v);
    view! {
        <Title text="Tenants"/>
        <PageHeader title="Tenants" subtitle="Every organisation that sends traffic through the gateway.">
            {operate.then(|| view! { <a class="button" href="/tenants/new" data-testid="new-tenant">"Onboard a tenant"</a> })}
        </PageHeader>
        <form class="filters" method="get" action="/tenants" data-testid="tenant-filters">
            <input type="search" name="q" placeholder="Search name, alias or id" value=move || get("q").unwrap_or_default() data-testid="tenant-search"/>
            <select name="tier" data-testid="filter-tier">
                <option value="">"All tiers"</option>
                <option value="shared" selected=move || selected("tier", "shared")>"shared"</option>
                <option value="pooled" selected=move || selected("tier", "pooled")>"pooled"</option>
                <option value="dedicated" selected=move || selected("tier", "dedicated")>"dedicated"</option>
            </select>
            <select name="status" data-testid="filter-status">
                <option value="">"Any status"</option>
                <option value="active" selected=move || selected("status", "active")>"active"</option>
                <option value="suspended" selected=move || selected("status", "suspended")>"suspended"</option>
            </select>
            <button type="submit" class="button button-quiet">"Filter"</button>
        </form>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match tenants.await {
                    Ok(list) if list.is_empty() => {
                        view! { <Empty title="No tenants match" hint="Onboard a tenant, or change the filters."/> }.into_any()
                    }
                    Ok(list) => view! { <TenantTable tenants=list/> }.into_any(),
                    Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn TenantTable(tenants: Vec<Tenant>) -> impl IntoView {
    view! {
        <div class="card card-flush">
            <table class="table" data-testid="tenant-table">
                <thead>
                    <tr>
                        <th>"Name"</th>
                        <th>"Id"</th>
                        <th>"Aliases"</th>
                        <th>"Tier"</th>
                        <th>"Status"</th>
                        <th class="num">"Requests/min"</th>
                        <th class="num">"Tokens/min"</th>
                        <th class="num">"Monthly budget"</th>
                        <th>"Created"</th>
                    </tr>
                </thead>
                <tbody>
                    {tenants
                        .into_iter()
                        .map(|t| {
                            view! {
                                <tr data-testid="tenant-row" data-tenant-id=t.id.clone()>
                                    <td><a href=format!("/tenants/{}", t.id) data-testid="tenant-link">{t.name.clone()}</a></td>
                                    <td class="mono muted" title=t.id.clone()>{short_id(&t.id)}</td>
                                    <td class="muted">{t.aliases.join(", ")}</td>
                                    <td><TierBadge tier=t.tier/></td>
                                    <td><StatusBadge status=t.status/></td>
                                    <td class="num">{thousands(t.limits.requests_per_minute)}</td>
                                    <td class="num">{thousands(t.limits.tokens_per_minute)}</td>
                                    <td class="num">
                                        {t.budget.monthly_limit_usd.as_deref().map(usd).unwrap_or_else(|| "—".into())}
                                        {t.budget.hard.then(|| view! { <span class="pill">"hard"</span> })}
                                    </td>
                                    <td class="muted">{datetime(&t.created_at)}</td>
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
pub fn OnboardPage() -> impl IntoView {
    let onboard = ServerAction::<OnboardTenant>::new();
    let pools = Resource::new(|| (), |_| list_pools());
    let done = move || onboard.value().get().and_then(|r| r.ok());
    view! {
        <Title text="Onboard a tenant"/>
        <PageHeader title="Onboard a tenant" subtitle="Create the tenant, its limits and budget, and its first API key."/>
        <Show
            when=move || done().is_some()
            fallback=move || {
                view! {
                    <ActionForm action=onboard attr:class="card form form-grid" attr:data-testid="onboard-form">
                        <fieldset>
                            <legend>"Tenant"</legend>
                            <label>"Name" <input name="name" required=true data-testid="onboard-name"/></label>
                            <label>
                                "Tier"
                                <select name="tier" data-testid="onboard-tier">
                                    <option value="shared">"shared — own keys, fair share of upstream capacity"</option>
                                    <option value="pooled">"pooled — draws on a credit pool"</option>
                                    <option value="dedicated">"dedicated — reserved upstream capacity"</option>
                                </select>
                            </label>
                            <label>
                                "Aliases " <span class="muted">"(optional, comma separated; usable in X-Tenant-ID)"</span>
                                <input name="aliases" placeholder="acme, acme-prod" data-testid="onboard-aliases"/>
                            </label>
                        </fieldset>
                        <fieldset>
                            <legend>"Limits"</legend>
                            <label>"Requests per minute" <input name="requests_per_minute" inputmode="numeric" placeholder="1000" data-testid="onboard-rpm"/></label>
                            <label>"Tokens per minute" <input name="tokens_per_minute" inputmode="numeric" placeholder="1000000" data-testid="onboard-tpm"/></label>
                            <label>"Max concurrency " <span class="muted">"(optional)"</span> <input name="max_concurrency" inputmode="numeric" placeholder="unlimited"/></label>
                        </fieldset>
                        <fieldset>
                            <legend>"Budget and credit"</legend>
                            <label>"Monthly budget (USD) " <span class="muted">"(optional)"</span> <input name="monthly_budget_usd" inputmode="decimal" placeholder="no limit" data-testid="onboard-budget"/></label>
                            <label class="check"><input type="checkbox" name="budget_hard" value="true"/> "Hard budget: refuse requests beyond it"</label>
                            <label>
                                "Credit pool " <span class="muted">"(pooled tier; default: a new pool for this tenant)"</span>
                                <select name="pool_id">
                                    <option value="">"—"</option>
                                    <Suspense fallback=|| ()>
                                        {move || Suspend::new(async move {
                                            pools
                                                .await
                                                .unwrap_or_default()
                                                .into_iter()
                                                .map(|p| view! { <option value=p.id.clone()>{format!("{} ({} available)", p.name, usd(&p.available_usd))}</option> })
                                                .collect_view()
                                        })}
                                    </Suspense>
                                </select>
                            </label>
                            <label>"Signup credit (USD) " <span class="muted">"(optional; needs a pool)"</span> <input name="signup_credit_usd" inputmode="decimal" data-testid="onboard-credit"/></label>
                        </fieldset>
                        <div class="form-actions">
                            <a class="button button-quiet" href="/tenants">"Cancel"</a>
                            <button type="submit" class="button" data-testid="onboard-submit">
                                {move || if onboard.pending().get() { "Creating…" } else { "Create tenant and first key" }}
                            </button>
                        </div>
                        {move || onboard.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorBox error=e/> })}
                    </ActionForm>
                }
            }
        >
            {move || {
                done()
                    .map(|o| {
                        view! {
                            <section class="card" data-testid="onboard-done">
                                <h2>{format!("{} is ready", o.tenant.name)}</h2>
                                <p class="muted">
                                    "Tenant id " <code data-testid="new-tenant-id">{o.tenant.id.clone()}</code>
                                </p>
                                <KeyReveal key=o.key.clone()/>
                                <div class="form-actions">
                                    <a class="button" href=format!("/tenants/{}", o.tenant.id) data-testid="open-tenant">"Open the tenant"</a>
                                </div>
                            </section>
                        }
                    })
            }}
        </Show>
    }
}

#[component]
pub fn TenantDetailPage() -> impl IntoView {
    let params = use_params_map();
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
            )
        },
        |(id, ..)| get_tenant_detail(id),
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
                view! {
                    <ActionForm action=status attr:class="inline-form">
                        <input type="hidden" name="id" value=id.clone()/>
                        <input type="hidden" name="status" value=next/>
                        <button type="submit" class={if suspended { "button" } else { "button button-danger" }} data-testid="toggle-status">
                            {if suspended { "Reactivate" } else { "Suspend" }}
                        </button>
                    </ActionForm>
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
                        <input name="name" placeholder="key name (optional)" data-testid="key-name"/>
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
        </section>
        <p class="muted"><A href="/tenants">"← All tenants"</A></p>
    }
    .into_any()
}
