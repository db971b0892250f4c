//! The tenants' server functions: list, read, onboard, change limits,
//! budget and status; and their server-only helpers ([`ssr`]).

// The onboarding form has one server-function argument per field.
#![allow(clippy::too_many_arguments)]

use leptos::prelude::*;
use sheepdog_types::{PoolInfo, Tenant};

use super::{Onboarded, TenantDetail};
use crate::components::ListPage;
use crate::error::ConsoleError;

#[cfg(feature = "ssr")]
pub mod ssr {
    use sheepdog_types::{BudgetInput, LimitsInput, PoolInfo, TenantMetrics};

    use crate::error::ConsoleError;
    use crate::state::ConsoleState;
    use crate::tenants::TenantDetail;

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

    pub fn limits_body(rpm: &str, tpm: &str, max_concurrency: &str) -> Result<LimitsInput, ConsoleError> {
        let rpm = number("Requests per minute", rpm)?
            .ok_or_else(|| ConsoleError::Invalid("Requests per minute is required.".into()))?;
        let tpm = number("Tokens per minute", tpm)?
            .ok_or_else(|| ConsoleError::Invalid("Tokens per minute is required.".into()))?;
        let conc = number("Max concurrency", max_concurrency)?;
        Ok(LimitsInput { requests_per_minute: rpm, tokens_per_minute: tpm, max_concurrency: conc })
    }

    pub fn budget_body(monthly: &str, hard: bool) -> Result<BudgetInput, ConsoleError> {
        Ok(BudgetInput { monthly_limit_usd: amount("Monthly budget", monthly)?.map(serde_json::Value::String), hard })
    }

    pub async fn detail(state: &ConsoleState, id: &str, keys_offset: u64) -> Result<TenantDetail, ConsoleError> {
        let api = state.api();
        let tenant = api.tenant(id).await?;
        let (keys, metrics, usage) = tokio::join!(
            api.tenant_keys_page(&tenant.id, crate::components::PAGE_SIZE, keys_offset),
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
        let (keys, keys_total) = keys?;
        Ok(TenantDetail { tenant, keys, keys_total, keys_offset, metrics, pool, month_spend_usd })
    }
}

/// One page of the tenants matching the search (name or alias anywhere,
/// id as a prefix), tier and status, by name: filtered and paged by the
/// gateway's database, never in the console.
#[server(endpoint = "tenants")]
pub async fn list_tenants(
    q: Option<String>,
    tier: Option<String>,
    status: Option<String>,
    offset: Option<String>,
) -> Result<ListPage<Tenant>, ConsoleError> {
    use crate::auth::ssr::{require_staff, with_status};
    use crate::components::{parse_offset, PAGE_SIZE};
    require_staff().await?;
    let offset = parse_offset(offset.as_deref());
    let filters = [("q", q.as_deref()), ("tier", tier.as_deref()), ("status", status.as_deref())];
    let state = crate::state::ConsoleState::current()?;
    let api = state.api();
    let (rows, total) = api.tenants_page(&filters, PAGE_SIZE, offset).await.map_err(with_status)?;
    Ok(ListPage { rows, total, offset })
}

/// One tenant with its keys, last 24 h metrics, pool and month's spend.
#[server(endpoint = "tenant_detail")]
pub async fn get_tenant_detail(id: String, keys_offset: Option<String>) -> Result<TenantDetail, ConsoleError> {
    use crate::auth::ssr::{require_staff, with_status};
    require_staff().await?;
    let keys_offset = crate::components::parse_offset(keys_offset.as_deref());
    ssr::detail(&crate::state::ConsoleState::current()?, &id, keys_offset).await.map_err(with_status)
}

/// Credit pools (for the onboarding form).
#[server(endpoint = "pools")]
pub async fn list_pools() -> Result<Vec<PoolInfo>, ConsoleError> {
    use crate::auth::ssr::{require_staff, with_status};
    require_staff().await?;
    crate::state::ConsoleState::current()?.api().pools().await.map_err(with_status)
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
    let state = crate::state::ConsoleState::current()?;
    let build = || -> Result<sheepdog_types::CreateTenant, ConsoleError> {
        let tier = sheepdog_types::Tier::parse(tier.trim())
            .ok_or_else(|| ConsoleError::Invalid("Choose a tier: shared, pooled or dedicated.".into()))?;
        let aliases: Vec<String> =
            aliases.split([',', ' ', '\n']).map(str::trim).filter(|a| !a.is_empty()).map(str::to_string).collect();
        let mut body = sheepdog_types::CreateTenant {
            name: name.trim().to_string(),
            tier,
            aliases: Some(aliases),
            ..Default::default()
        };
        let rpm = requests_per_minute.trim();
        let tpm = tokens_per_minute.trim();
        if !(rpm.is_empty() && tpm.is_empty() && max_concurrency.trim().is_empty()) {
            let rpm = if rpm.is_empty() { sheepdog_types::DEFAULT_REQUESTS_PER_MINUTE.to_string() } else { rpm.into() };
            let tpm = if tpm.is_empty() { sheepdog_types::DEFAULT_TOKENS_PER_MINUTE.to_string() } else { tpm.into() };
            body.limits = Some(ssr::limits_body(&rpm, &tpm, &max_concurrency)?);
        }
        let hard = budget_hard.is_some_and(|h| !h.is_empty() && h != "false");
        if let Some(b) = ssr::amount("Monthly budget", &monthly_budget_usd)? {
            body.budget =
                Some(sheepdog_types::BudgetInput { monthly_limit_usd: Some(serde_json::Value::String(b)), hard });
        }
        body.signup_credit_usd = ssr::amount("Signup credit", &signup_credit_usd)?.map(serde_json::Value::String);
        body.pool_id = pool_id.as_deref().map(str::trim).filter(|p| !p.is_empty()).map(str::to_string);
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
    let state = crate::state::ConsoleState::current()?;
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
    let state = crate::state::ConsoleState::current()?;
    state.api().put_budget(&crate::api::actor_for(&user.email), &id, &body).await.map_err(with_status)
}

/// Suspends (`suspended`) or reactivates (`active`) a tenant.
#[server(endpoint = "set_tenant_status")]
pub async fn set_tenant_status(id: String, status: String) -> Result<Tenant, ConsoleError> {
    use crate::auth::ssr::{require_operator, with_status};
    let user = require_operator().await?;
    let status = sheepdog_types::TenantStatus::parse(&status)
        .ok_or_else(|| with_status(ConsoleError::Invalid("status must be active or suspended.".into())))?;
    let state = crate::state::ConsoleState::current()?;
    let body = sheepdog_types::PatchTenant { status: Some(status), ..Default::default() };
    state.api().patch_tenant(&crate::api::actor_for(&user.email), &id, &body).await.map_err(with_status)
}
