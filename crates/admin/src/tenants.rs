//! Tenants: create, list, read, patch, suspend ("delete"), limits, budget.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use sheepdog_types::{
    format_usd, parse_usd, Budget, BudgetInput, CreateTenant, Limits, LimitsInput, PatchTenant, Tenant, TenantList,
    TenantStatus, Tier,
};

use crate::audit::audit;
use crate::body::parse_json;
use crate::error::AdminError;
use crate::lookup::find_tenant;
use crate::pools::{existing_pool_id, insert_tenant, plan_new_tenant};
use crate::query::AdminQuery;
use sheepdog_core::auth::is_uuid_v4;
use sheepdog_core::state::AppState;
use sheepdog_store::TenantRow;

pub fn to_api(t: &TenantRow) -> Tenant {
    Tenant {
        id: t.id.clone(),
        name: t.name.clone(),
        aliases: t.aliases.clone(),
        tier: t.tier,
        status: t.status,
        limits: Limits {
            requests_per_minute: t.requests_per_minute.max(0) as u64,
            tokens_per_minute: t.tokens_per_minute.max(0) as u64,
            max_concurrency: t.max_concurrency.map(|c| c.max(0) as u64),
        },
        budget: Budget { monthly_limit_usd: t.budget_monthly_nanos.map(format_usd), hard: t.budget_hard },
        allowed_models: t.allowed_models.clone(),
        created_at: t.created_at.clone(),
        pool_id: t.pool_id.clone(),
    }
}

fn validate_name(name: &str) -> Result<String, AdminError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 200 || n.chars().any(char::is_control) {
        return Err(AdminError::BadRequest("`name` must be 1 to 200 printable characters.".into()));
    }
    Ok(n.to_string())
}

fn validate_aliases(aliases: &[String]) -> Result<Vec<String>, AdminError> {
    let mut out: Vec<String> = Vec::new();
    for a in aliases {
        let ok = !a.is_empty()
            && a.len() <= 64
            && a.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            && a.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        if !ok {
            return Err(AdminError::BadRequest(format!(
                "alias {a:?} is invalid: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit."
            )));
        }
        if uuid::Uuid::parse_str(a).is_ok() {
            return Err(AdminError::BadRequest(format!("alias {a:?} looks like a UUID; aliases must not.")));
        }
        if !out.contains(a) {
            out.push(a.clone());
        }
    }
    Ok(out)
}

fn validate_limits(l: &LimitsInput) -> Result<(), AdminError> {
    if l.requests_per_minute == 0 || l.tokens_per_minute == 0 {
        return Err(AdminError::BadRequest("`requests_per_minute` and `tokens_per_minute` must be at least 1.".into()));
    }
    if l.max_concurrency == Some(0) {
        return Err(AdminError::BadRequest("`max_concurrency` must be at least 1 (or null for no limit).".into()));
    }
    if l.requests_per_minute > i64::MAX as u64
        || l.tokens_per_minute > i64::MAX as u64
        || l.max_concurrency.is_some_and(|c| c > i64::MAX as u64)
    {
        return Err(AdminError::BadRequest("limit values are too large.".into()));
    }
    Ok(())
}

/// Budget amount → nano-USD (exact), or None for no limit.
fn budget_nanos(b: &BudgetInput) -> Result<Option<i64>, AdminError> {
    let text = match &b.monthly_limit_usd {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(AdminError::BadRequest(
                "`monthly_limit_usd` must be a number, a decimal string or null.".into(),
            ))
        }
    };
    let nanos = parse_usd(&text).map_err(|e| AdminError::BadRequest(format!("`monthly_limit_usd`: {e}.")))?;
    if nanos < 0 {
        return Err(AdminError::BadRequest("`monthly_limit_usd` must not be negative.".into()));
    }
    Ok(Some(nanos))
}

fn validate_models(state: &AppState, models: &Option<Vec<String>>) -> Result<(), AdminError> {
    if let Some(list) = models {
        for m in list {
            if state.models().get(m).is_none() {
                return Err(AdminError::BadRequest(format!("`allowed_models`: {m:?} is not a configured model.")));
            }
        }
    }
    Ok(())
}

/// Saves a changed tenant, refreshes the catalog, audits and answers it.
async fn save(state: &AppState, action: &str, before: TenantRow, after: TenantRow) -> Result<Response, AdminError> {
    state.store().update_tenant(&after).await?;
    state.catalog().reload().await?;
    let (b, a) = (to_api(&before), to_api(&after));
    audit(state, action, &after.id, Some(&b), Some(&a)).await;
    Ok(Json(a).into_response())
}

#[utoipa::path(post, path = "/admin/v1/tenants", tag = "tenants", request_body = CreateTenant,
    responses((status = 201, body = Tenant), (status = 400, body = sheepdog_types::ErrorBody), (status = 409, body = sheepdog_types::ErrorBody)),
    security(("admin_token" = [])))]
pub async fn create_tenant(State(state): State<AppState>, body: Bytes) -> Result<Response, AdminError> {
    let req: CreateTenant = parse_json(&body)?;
    let name = validate_name(&req.name)?;
    let id = match req.id {
        Some(id) if is_uuid_v4(&id) => uuid::Uuid::parse_str(&id).map(|u| u.hyphenated().to_string()).unwrap_or(id),
        Some(id) => return Err(AdminError::BadRequest(format!("`id` {id:?} is not a UUID v4."))),
        None => uuid::Uuid::new_v4().to_string(),
    };
    let aliases = validate_aliases(req.aliases.as_deref().unwrap_or(&[]))?;
    let limits = req.limits.unwrap_or(LimitsInput {
        requests_per_minute: sheepdog_types::DEFAULT_REQUESTS_PER_MINUTE,
        tokens_per_minute: sheepdog_types::DEFAULT_TOKENS_PER_MINUTE,
        max_concurrency: None,
    });
    validate_limits(&limits)?;
    let (budget, hard) = match &req.budget {
        Some(b) => (budget_nanos(b)?, b.hard),
        None => (None, false),
    };
    validate_models(&state, &req.allowed_models)?;
    let pool_plan =
        plan_new_tenant(&state, req.tier, &name, req.pool_id.as_deref(), req.signup_credit_usd.as_ref()).await?;
    let row = TenantRow {
        id,
        name,
        tier: req.tier,
        status: TenantStatus::Active,
        requests_per_minute: limits.requests_per_minute as i64,
        tokens_per_minute: limits.tokens_per_minute as i64,
        max_concurrency: limits.max_concurrency.map(|c| c as i64),
        budget_monthly_nanos: budget,
        budget_hard: hard,
        allowed_models: req.allowed_models,
        aliases,
        created_at: sheepdog_types::time::now_rfc3339(),
        pool_id: pool_plan.pool_id.clone(),
    };
    insert_tenant(&state, &row, &pool_plan).await?;
    state.catalog().reload().await?;
    let t = to_api(&row);
    audit(&state, "tenant.create", &row.id, None::<&Tenant>, Some(&t)).await;
    Ok((StatusCode::CREATED, Json(t)).into_response())
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TenantListParams {
    /// Matches the name or an alias anywhere (case-insensitive) or the id as a prefix.
    pub q: Option<String>,
    /// `shared`, `pooled` or `dedicated`.
    pub tier: Option<String>,
    /// `active` or `suspended`.
    pub status: Option<String>,
    /// A page of at most this many (1 to 500; default 50 when `offset` is given), ordered by name.
    pub limit: Option<i64>,
    /// Tenants skipped before the page.
    pub offset: Option<i64>,
}

#[utoipa::path(get, path = "/admin/v1/tenants", tag = "tenants", params(TenantListParams),
    description = "Every tenant (oldest first), or with a filter or `limit`/`offset` one page ordered by name \
                   and `total`, the number that match.",
    responses((status = 200, body = TenantList), (status = 400, body = sheepdog_types::ErrorBody)), security(("admin_token" = [])))]
pub async fn list_tenants(
    State(state): State<AppState>,
    AdminQuery(q): AdminQuery<TenantListParams>,
) -> Result<Json<TenantList>, AdminError> {
    let given = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    let filter = sheepdog_store::console::TenantFilter {
        q: given(q.q),
        tier: match given(q.tier) {
            None => None,
            Some(t) => {
                Some(Tier::parse(&t).ok_or_else(|| {
                    AdminError::BadRequest(format!("`tier` {t:?} must be shared, pooled or dedicated."))
                })?)
            }
        },
        status: match given(q.status) {
            None => None,
            Some(s) => Some(
                TenantStatus::parse(&s)
                    .ok_or_else(|| AdminError::BadRequest(format!("`status` {s:?} must be active or suspended.")))?,
            ),
        },
    };
    let filtered = filter.q.is_some() || filter.tier.is_some() || filter.status.is_some();
    let page = crate::query::page(q.limit, q.offset)?;
    if !filtered && page.is_none() {
        let rows = state.store().list_tenants().await?;
        return Ok(Json(TenantList { data: rows.iter().map(to_api).collect(), total: None }));
    }
    let (limit, offset) = page.unwrap_or((crate::query::MAX_PAGE, 0));
    let found = state.store().list_tenants_page(&filter, limit, offset).await?;
    Ok(Json(TenantList { data: found.rows.iter().map(to_api).collect(), total: Some(found.total.max(0) as u64) }))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{id}", tag = "tenants",
    params(("id" = String, Path, description = "Tenant id or alias")),
    responses((status = 200, body = Tenant), (status = 404, body = sheepdog_types::ErrorBody)), security(("admin_token" = [])))]
pub async fn get_tenant(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Tenant>, AdminError> {
    Ok(Json(to_api(&find_tenant(&state, &id).await?)))
}

#[utoipa::path(patch, path = "/admin/v1/tenants/{id}", tag = "tenants", request_body = PatchTenant,
    params(("id" = String, Path, description = "Tenant id or alias")),
    responses((status = 200, body = Tenant), (status = 400, body = sheepdog_types::ErrorBody), (status = 404, body = sheepdog_types::ErrorBody), (status = 409, body = sheepdog_types::ErrorBody)),
    security(("admin_token" = [])))]
pub async fn patch_tenant(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, AdminError> {
    let req: PatchTenant = parse_json(&body)?;
    let before = find_tenant(&state, &id).await?;
    let mut after = before.clone();
    if let Some(n) = &req.name {
        after.name = validate_name(n)?;
    }
    if let Some(t) = req.tier {
        after.tier = t;
    }
    if let Some(a) = &req.aliases {
        after.aliases = validate_aliases(a)?;
    }
    if let Some(s) = req.status {
        after.status = s;
    }
    if req.allowed_models.is_some() {
        validate_models(&state, &req.allowed_models)?;
        after.allowed_models = req.allowed_models;
    }
    if let Some(p) = &req.pool_id {
        after.pool_id = Some(existing_pool_id(&state, p).await?);
    }
    save(&state, "tenant.update", before, after).await
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{id}", tag = "tenants",
    description = "Removes a tenant from service: it is suspended, never deleted (billing keeps its records).",
    params(("id" = String, Path, description = "Tenant id or alias")),
    responses((status = 200, body = Tenant), (status = 404, body = sheepdog_types::ErrorBody)), security(("admin_token" = [])))]
pub async fn delete_tenant(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, AdminError> {
    let before = find_tenant(&state, &id).await?;
    let mut after = before.clone();
    after.status = TenantStatus::Suspended;
    save(&state, "tenant.suspend", before, after).await
}

#[utoipa::path(put, path = "/admin/v1/tenants/{id}/limits", tag = "tenants", request_body = LimitsInput,
    params(("id" = String, Path, description = "Tenant id or alias")),
    responses((status = 200, body = Tenant), (status = 400, body = sheepdog_types::ErrorBody), (status = 404, body = sheepdog_types::ErrorBody)),
    security(("admin_token" = [])))]
pub async fn put_limits(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, AdminError> {
    let req: LimitsInput = parse_json(&body)?;
    validate_limits(&req)?;
    let before = find_tenant(&state, &id).await?;
    let mut after = before.clone();
    after.requests_per_minute = req.requests_per_minute as i64;
    after.tokens_per_minute = req.tokens_per_minute as i64;
    after.max_concurrency = req.max_concurrency.map(|c| c as i64);
    save(&state, "tenant.limits", before, after).await
}

#[utoipa::path(put, path = "/admin/v1/tenants/{id}/budget", tag = "tenants", request_body = BudgetInput,
    params(("id" = String, Path, description = "Tenant id or alias")),
    responses((status = 200, body = Tenant), (status = 400, body = sheepdog_types::ErrorBody), (status = 404, body = sheepdog_types::ErrorBody)),
    security(("admin_token" = [])))]
pub async fn put_budget(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, AdminError> {
    let req: BudgetInput = parse_json(&body)?;
    let nanos = budget_nanos(&req)?;
    let before = find_tenant(&state, &id).await?;
    let mut after = before.clone();
    after.budget_monthly_nanos = nanos;
    after.budget_hard = req.hard;
    save(&state, "tenant.budget", before, after).await
}
