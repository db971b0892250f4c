//! The tenants list: search, tier and status filters.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use sheepdog_types::Tenant;

use super::{can_operate, list_tenants};
use crate::components::{Empty, ErrorBox, Loading, PageHeader, Pager, StatusBadge, TierBadge};
use crate::format::{datetime, short_id, thousands, usd};

#[component]
pub fn TenantsPage() -> impl IntoView {
    let query = use_query_map();
    let get = move |k: &str| query.with(|q| q.get(k).filter(|v| !v.is_empty()));
    let tenants = Resource::new(
        move || (get("q"), get("tier"), get("status"), get("offset")),
        |(q, tier, status, offset)| list_tenants(q, tier, status, offset),
    );
    let operate = can_operate();
    let selected = move |k: &'static str, v: &'static str| get(k).as_deref() == Some(v);
    view! {
        <Title text="Tenants"/>
        <PageHeader title="Tenants" subtitle="Every organisation that sends traffic through the gateway.">
            {operate.then(|| view! { <a class="button" href="/tenants/new" data-testid="new-tenant">"Onboard a tenant"</a> })}
        </PageHeader>
        <form class="filters" method="get" action="/tenants" data-testid="tenant-filters">
            <label class="inline">"Search " <input type="search" name="q" placeholder="name, alias or id" value=move || get("q").unwrap_or_default() data-testid="tenant-search"/></label>
            <label class="inline">"Tier "
            <select name="tier" data-testid="filter-tier">
                <option value="">"All tiers"</option>
                <option value="shared" selected=move || selected("tier", "shared")>"shared"</option>
                <option value="pooled" selected=move || selected("tier", "pooled")>"pooled"</option>
                <option value="dedicated" selected=move || selected("tier", "dedicated")>"dedicated"</option>
            </select>
            </label>
            <label class="inline">"Status "
            <select name="status" data-testid="filter-status">
                <option value="">"Any status"</option>
                <option value="active" selected=move || selected("status", "active")>"active"</option>
                <option value="suspended" selected=move || selected("status", "suspended")>"suspended"</option>
            </select>
            </label>
            <button type="submit" class="button button-quiet">"Filter"</button>
        </form>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match tenants.await {
                    Ok(page) if page.total == 0 => {
                        view! { <Empty title="No tenants match" hint="Onboard a tenant, or change the filters."/> }.into_any()
                    }
                    Ok(page) => {
                        let pairs: Vec<(String, String)> =
                            query.with_untracked(|q| ["q", "tier", "status"].iter().filter_map(|k| q.get(k).map(|v| (k.to_string(), v))).collect());
                        let shown = page.rows.len();
                        view! {
                            <TenantTable tenants=page.rows/>
                            <Pager path="/tenants" total=page.total offset=page.offset shown=shown query=pairs testid="tenant-pager"/>
                        }
                        .into_any()
                    }
                    Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn TenantTable(tenants: Vec<Tenant>) -> impl IntoView {
    view! {
        <div class="card card-flush" tabindex="0" role="region" aria-label="Tenants">
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
