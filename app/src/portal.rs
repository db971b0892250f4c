//! The tenant self-service portal: a tenant user's own usage and cost
//! charts, limits, budget and credit, and keys (create, shown once; revoke).
//!
//! No function here takes a tenant id: the tenant always comes from the
//! session, so a tenant user cannot name another tenant. Extra fields in a
//! request (a `tenant_id` smuggled into the form) are ignored.

use leptos::prelude::*;
use leptos_meta::Title;
use serde::{Deserialize, Serialize};
use sheepdog_types::{KeyCreated, KeyInfo, PoolInfo, Tenant, TenantMetrics, UsageSeries};

use crate::components::{Confirmed, ErrorBox, KeyReveal, Loading, PageHeader, Stat, StatusBadge, TierBadge};
use crate::costs::Breakdown;
use crate::error::ConsoleError;
use crate::format::{thousands, usd, usd_nanos};
use crate::keys::KeysTable;
use crate::tenants::MetricsCharts;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortalSummary {
    pub tenant: Tenant,
    pub metrics: TenantMetrics,
    pub month_spend_usd: String,
    pub pool: Option<PoolInfo>,
    /// This month's spend by model, per day.
    pub by_model: UsageSeries,
    /// This month's spend by cost center, per day.
    pub by_cost_center: UsageSeries,
    pub active_keys: usize,
    /// When the summary was read: days after it are in the future.
    pub now: String,
}

/// The signed-in tenant user's own tenant: usage, limits, budget, credit.
#[server(endpoint = "portal_summary")]
pub async fn get_portal_summary() -> Result<PortalSummary, ConsoleError> {
    use crate::auth::ssr::{require_tenant, with_status};
    let (_, tenant_id) = require_tenant().await?;
    let state = crate::state::ConsoleState::current()?;
    let api = state.api();
    let (from, to, _) = {
        let (_, f, t) = crate::range::ssr::resolve("month", None, None, "month").map_err(with_status)?;
        (f, t, ())
    };
    let tenant = api.tenant(&tenant_id).await.map_err(with_status)?;
    let (metrics, usage, by_model, by_cc, keys) = tokio::join!(
        api.metrics(&tenant_id, "24h"),
        api.usage("tenant", None, None, Some(&tenant_id)),
        api.usage_series("model", &from, &to, Some("day"), Some(&tenant_id), None),
        api.usage_series("cost_center", &from, &to, Some("day"), Some(&tenant_id), None),
        api.tenant_keys(&tenant_id),
    );
    let pool = match &tenant.pool_id {
        Some(p) => api.pool(p).await.ok(),
        None => None,
    };
    Ok(PortalSummary {
        month_spend_usd: usage
            .map_err(with_status)?
            .data
            .into_iter()
            .map(|r| r.cost_usd)
            .next()
            .unwrap_or_else(|| "0.000000000".into()),
        metrics: metrics.map_err(with_status)?,
        by_model: by_model.map_err(with_status)?,
        by_cost_center: by_cc.map_err(with_status)?,
        active_keys: keys.map_err(with_status)?.iter().filter(|k| k.revoked_at.is_none()).count(),
        tenant,
        pool,
        now: crate::range::ssr::now(),
    })
}

/// The signed-in tenant's keys.
#[server(endpoint = "portal_keys")]
pub async fn portal_keys() -> Result<Vec<KeyInfo>, ConsoleError> {
    use crate::auth::ssr::{require_tenant, with_status};
    let (_, tenant_id) = require_tenant().await?;
    crate::state::ConsoleState::current()?.api().tenant_keys(&tenant_id).await.map_err(with_status)
}

/// Creates a key for the signed-in tenant; the secret is returned once.
#[server(endpoint = "portal_create_key")]
pub async fn portal_create_key(name: Option<String>) -> Result<KeyCreated, ConsoleError> {
    use crate::auth::ssr::{require_tenant, with_status};
    let (user, tenant_id) = require_tenant().await?;
    let name = name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    crate::state::ConsoleState::current()?
        .api()
        .create_key(&crate::api::actor_for(&user.email), &tenant_id, name.as_deref())
        .await
        .map_err(with_status)
}

/// Revokes one of the signed-in tenant's keys; another tenant's key is "not found".
#[server(endpoint = "portal_revoke_key")]
pub async fn portal_revoke_key(key_id: String) -> Result<KeyInfo, ConsoleError> {
    use crate::auth::ssr::{require_tenant, with_status};
    let (user, tenant_id) = require_tenant().await?;
    let state = crate::state::ConsoleState::current()?;
    let own = state.api().tenant_keys(&tenant_id).await.map_err(with_status)?;
    if !own.iter().any(|k| k.id == key_id && k.tenant_id.as_deref() == Some(tenant_id.as_str())) {
        tracing::warn!(email = %user.email, key_id, "tenant user tried to revoke a key of another tenant");
        return Err(with_status(ConsoleError::NotFound));
    }
    state.api().revoke_key(&crate::api::actor_for(&user.email), &key_id).await.map_err(with_status)
}

#[component]
pub fn PortalHome() -> impl IntoView {
    let summary = Resource::new(|| (), |_| get_portal_summary());
    view! {
        <Title text="Usage"/>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match summary.await {
                    Ok(s) => view! { <PortalBody s=s/> }.into_any(),
                    Err(e) => view! { <PageHeader title="Usage"/> <ErrorBox error=e/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn PortalBody(s: PortalSummary) -> impl IntoView {
    let t = s.tenant.clone();
    let requests: u64 = s.metrics.buckets.iter().map(|b| b.request_count).sum();
    let errors: u64 = s.metrics.buckets.iter().map(|b| b.error_count).sum();
    let limited: u64 = s.metrics.buckets.iter().map(|b| b.rate_limit_hits).sum();
    let spent = crate::format::parse_usd_nanos(&s.month_spend_usd);
    let budget = t.budget.monthly_limit_usd.as_deref().map(crate::format::parse_usd_nanos);
    let budget_hint = match budget {
        Some(b) => format!(
            "of {} this month ({}){}",
            usd_nanos(b),
            if t.budget.hard { "hard limit" } else { "soft limit" },
            if b > 0 { format!(" · {:.0} % used", spent as f64 / b as f64 * 100.0) } else { String::new() }
        ),
        None => "no monthly budget".into(),
    };
    view! {
        <PageHeader title=t.name.clone() subtitle="Your organisation's usage over the last 24 hours and this month.">
            <StatusBadge status=t.status/>
            <TierBadge tier=t.tier/>
        </PageHeader>
        <section class="stats">
            <Stat label="Requests (24 h)" value=thousands(requests) hint=format!("{} errors · {} rate-limited", thousands(errors), thousands(limited)) testid="portal-requests"/>
            <Stat label="Spend this month" value=usd(&s.month_spend_usd) hint=budget_hint testid="portal-spend"/>
            {s.pool.clone().map(|p| view! { <Stat label="Credit balance" value=usd(&p.available_usd) hint=format!("credited {} · used {}", usd(&p.credited_usd), usd(&p.debited_usd)) testid="portal-credit"/> })}
            <Stat label="Active keys" value=s.active_keys.to_string() hint="manage them under API keys" testid="portal-keys-count"/>
        </section>
        {budget.filter(|b| *b > 0).map(|b| {
            let pct = (spent as f64 / b as f64 * 100.0).clamp(0.0, 100.0);
            view! {
                <div class="meter" role="meter" aria-valuemin="0" aria-valuemax="100" aria-valuenow=format!("{pct:.0}") aria-label="Budget used">
                    <div class={if pct >= 90.0 { "meter-fill meter-hot" } else { "meter-fill" }} style=format!("width:{pct:.1}%")></div>
                </div>
            }
        })}
        <MetricsCharts metrics=s.metrics.clone()/>
        <Breakdown title="This month by model" series=s.by_model.clone() now=s.now.clone() testid="portal-by-model"/>
        <Breakdown title="This month by cost center" series=s.by_cost_center.clone() now=s.now.clone() testid="portal-by-cost-center"/>
        <section class="card" data-testid="portal-limits">
            <h2>"Limits"</h2>
            <dl class="kv">
                <dt>"Requests per minute"</dt><dd data-testid="portal-rpm">{thousands(t.limits.requests_per_minute)}</dd>
                <dt>"Tokens per minute"</dt><dd>{thousands(t.limits.tokens_per_minute)}</dd>
                <dt>"Max concurrency"</dt><dd>{t.limits.max_concurrency.map(thousands).unwrap_or_else(|| "unlimited".into())}</dd>
                <dt>"Models"</dt><dd>{t.allowed_models.clone().map(|m| m.join(", ")).unwrap_or_else(|| "all configured models".into())}</dd>
            </dl>
            <p class="muted">"To change your limits or budget, contact your platform operator."</p>
        </section>
    }
    .into_any()
}

#[component]
pub fn PortalKeysPage() -> impl IntoView {
    let create = ServerAction::<PortalCreateKey>::new();
    let revoke = ServerAction::<PortalRevokeKey>::new();
    let keys = Resource::new(move || (create.version().get(), revoke.version().get()), |_| portal_keys());
    view! {
        <Title text="API keys"/>
        <PageHeader title="API keys" subtitle="Keys your applications use with the gateway. A new key is shown once.">
            <ActionForm action=create attr:class="inline-form">
                <label class="inline">"Key name " <input name="name" placeholder="optional" data-testid="key-name"/></label>
                <button type="submit" class="button" data-testid="create-key">"Create key"</button>
            </ActionForm>
        </PageHeader>
        {move || match create.value().get() {
            Some(Ok(k)) => view! { <KeyReveal key=k/> }.into_any(),
            Some(Err(e)) => view! { <ErrorBox error=e/> }.into_any(),
            None => ().into_any(),
        }}
        {move || revoke.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorBox error=e/> })}
        <section class="card">
            <Transition fallback=Loading>
                {move || Suspend::new(async move {
                    match keys.await {
                        Ok(list) => view! {
                            <KeysTable
                                keys=list
                                action=move |k: &KeyInfo| {
                                    let key_id = k.id.clone();
                                    let question = format!("Revoke key {key_id}? Requests with it will be refused.");
                                    view! {
                                        <Confirmed label="Revoke" question=question testid="revoke-key" class="button button-danger button-small">
                                            <ActionForm action=revoke attr:class="inline-form">
                                                <input type="hidden" name="key_id" value=key_id.clone()/>
                                                <button type="submit" class="button button-danger button-small" data-testid="confirm-yes">"Yes, revoke"</button>
                                            </ActionForm>
                                        </Confirmed>
                                    }
                                        .into_any()
                                }
                            />
                        }
                            .into_any(),
                        Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}
