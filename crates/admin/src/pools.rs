//! Credit pools (pooled tier): create, list, read, add credit (top-ups,
//! grants), read the ledger; and the pool side of creating tenants (a
//! `pooled` tenant created without a pool gets its own; signup credit).
//!
//! The ledger is append-only; a pool's balance is the sum of its entries.
//! Admission holds the live figure (credits − debits − reservations in
//! flight, `available_usd`): every credit added here reaches it at once. The
//! per-tenant spending cap of a pooled tenant is its monthly budget
//! (`PUT /admin/v1/tenants/{id}/budget`), enforced by admission for every tier.

use std::future::Future;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use sheepdog_types::{
    format_usd, parse_usd, CreatePool, CreditInput, CreditKind, LedgerList, Pool, PoolLedgerEntry, PoolList, Tier,
    NANOS_PER_USD,
};

use crate::audit::audit;
use crate::body::parse_json;
use crate::error::AdminError;
use crate::flush::flush_usage;
use crate::lookup::find_tenant;
use crate::query::AdminQuery;
use sheepdog_core::state::AppState;
use sheepdog_store::pools::{kind, LedgerEntry, PoolBalance, PoolRow};
use sheepdog_store::TenantRow;

/// Largest single credit: one billion USD.
const MAX_CREDIT_USD: i64 = 1_000_000_000;
const DEFAULT_LEDGER_LIMIT: i64 = 100;
const MAX_LEDGER_LIMIT: i64 = 1000;

pub fn to_api(p: &PoolBalance, available: i64) -> Pool {
    Pool {
        id: p.pool.id.clone(),
        name: p.pool.name.clone(),
        hard: p.pool.hard,
        balance_usd: format_usd(p.balance()),
        credited_usd: format_usd(p.credited),
        debited_usd: format_usd(p.debited),
        available_usd: format_usd(available),
        created_at: p.pool.created_at.clone(),
    }
}

pub fn ledger_to_api(e: &LedgerEntry) -> PoolLedgerEntry {
    PoolLedgerEntry {
        id: e.id.clone(),
        pool_id: e.pool_id.clone(),
        tenant_id: e.tenant_id.clone(),
        kind: e.kind.clone(),
        amount_usd: format_usd(e.amount_nanos),
        amount_nanos: e.amount_nanos,
        request_id: e.request_id.clone(),
        note: e.note.clone(),
        created_at: e.created_at.clone(),
    }
}

fn pool_api(state: &AppState, p: &PoolBalance) -> Pool {
    to_api(p, state.admission().pool_available(&p.pool.id))
}

fn validate_pool_name(name: &str) -> Result<String, AdminError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 200 || n.chars().any(char::is_control) {
        return Err(AdminError::BadRequest("`name` must be 1 to 200 printable characters.".into()));
    }
    Ok(n.to_string())
}

fn validate_note(note: Option<&str>) -> Result<Option<String>, AdminError> {
    let Some(n) = note.map(str::trim) else { return Ok(None) };
    if n.chars().count() > 500 || n.chars().any(char::is_control) {
        return Err(AdminError::BadRequest("`note` must be at most 500 printable characters.".into()));
    }
    Ok((!n.is_empty()).then(|| n.to_string()))
}

/// A positive USD amount (number or decimal string, at most nine places) → nano-USD, exactly.
pub fn credit_amount(field: &str, v: &Value) -> Result<i64, AdminError> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return Err(AdminError::BadRequest(format!("`{field}` must be a number or a decimal string."))),
    };
    let nanos = parse_usd(&text).map_err(|e| AdminError::BadRequest(format!("`{field}`: {e}.")))?;
    if nanos <= 0 {
        return Err(AdminError::BadRequest(format!("`{field}` must be greater than zero.")));
    }
    if nanos > MAX_CREDIT_USD * NANOS_PER_USD {
        return Err(AdminError::BadRequest(format!("`{field}` must be at most {MAX_CREDIT_USD} USD.")));
    }
    Ok(nanos)
}

async fn find_pool(state: &AppState, id: &str) -> Result<PoolBalance, AdminError> {
    state.store().get_pool(id).await?.ok_or_else(|| AdminError::NotFound(format!("No credit pool with id {id:?}.")))
}

/// A pool named in a request body: unknown is a 400 naming it.
async fn existing_pool(state: &AppState, field: &str, id: &str) -> Result<PoolBalance, AdminError> {
    state
        .store()
        .get_pool(id)
        .await?
        .ok_or_else(|| AdminError::BadRequest(format!("`{field}`: no credit pool with id {id:?}.")))
}

fn new_pool_row(name: String, hard: bool) -> PoolRow {
    PoolRow { id: uuid::Uuid::new_v4().to_string(), name, hard, created_at: sheepdog_types::time::now_rfc3339() }
}

/// Appends a credit entry, makes it count in admission at once, audits it.
async fn add_credit(state: &AppState, entry: LedgerEntry) -> Result<PoolLedgerEntry, AdminError> {
    state.store().insert_ledger(&entry).await?;
    state.admission().credit_pool(&entry.pool_id, entry.amount_nanos);
    let api = ledger_to_api(&entry);
    audit(state, "pool.credit", &entry.pool_id, None::<&PoolLedgerEntry>, Some(&api)).await;
    Ok(api)
}

fn credit_entry(
    pool_id: &str,
    tenant_id: Option<String>,
    kind: &str,
    amount: i64,
    note: Option<String>,
) -> LedgerEntry {
    let now = sheepdog_types::time::now_ms();
    LedgerEntry {
        id: uuid::Uuid::new_v4().to_string(),
        pool_id: pool_id.to_string(),
        tenant_id,
        kind: kind.to_string(),
        amount_nanos: amount,
        request_id: None,
        note,
        created_at: sheepdog_types::time::ms_to_rfc3339(now),
        created_ms: now,
    }
}

/// Query of `GET /admin/v1/pools/{id}/ledger`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LedgerParams {
    /// Most recent entries to return: 1 to 1000 (default 100).
    pub limit: Option<i64>,
}

#[utoipa::path(post, path = "/admin/v1/pools", tag = "pools", request_body = CreatePool,
    responses((status = 201, body = Pool), (status = 400, body = sheepdog_types::ErrorBody)),
    security(("admin_token" = [])))]
pub async fn create_pool(State(state): State<AppState>, body: Bytes) -> Result<Response, AdminError> {
    let req: CreatePool = parse_json(&body)?;
    let row = new_pool_row(validate_pool_name(&req.name)?, req.hard.unwrap_or(true));
    state.store().insert_pool(&row).await?;
    let p = pool_api(&state, &PoolBalance { pool: row.clone(), credited: 0, debited: 0 });
    audit(&state, "pool.create", &row.id, None::<&Pool>, Some(&p)).await;
    Ok((StatusCode::CREATED, Json(p)).into_response())
}

#[utoipa::path(get, path = "/admin/v1/pools", tag = "pools",
    responses((status = 200, body = PoolList)), security(("admin_token" = [])))]
pub async fn list_pools(State(state): State<AppState>) -> Result<Json<PoolList>, AdminError> {
    flush_usage(&state).await?;
    let pools = state.store().list_pools().await?;
    Ok(Json(PoolList { data: pools.iter().map(|p| pool_api(&state, p)).collect() }))
}

#[utoipa::path(get, path = "/admin/v1/pools/{id}", tag = "pools",
    params(("id" = String, Path, description = "Pool id")),
    responses((status = 200, body = Pool), (status = 404, body = sheepdog_types::ErrorBody)), security(("admin_token" = [])))]
pub async fn get_pool(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Pool>, AdminError> {
    flush_usage(&state).await?;
    Ok(Json(pool_api(&state, &find_pool(&state, &id).await?)))
}

#[utoipa::path(post, path = "/admin/v1/pools/{id}/credits", tag = "pools", request_body = CreditInput,
    description = "Adds a top-up or grant to the pool's ledger; it is available to requests at once.",
    params(("id" = String, Path, description = "Pool id")),
    responses((status = 201, body = PoolLedgerEntry), (status = 400, body = sheepdog_types::ErrorBody), (status = 404, body = sheepdog_types::ErrorBody)),
    security(("admin_token" = [])))]
pub async fn credit_pool(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, AdminError> {
    let req: CreditInput = parse_json(&body)?;
    let amount = credit_amount("amount_usd", &req.amount_usd)?;
    let note = validate_note(req.note.as_deref())?;
    let pool = find_pool(&state, &id).await?;
    let tenant_id = match &req.tenant_id {
        None => None,
        Some(t) => Some(
            find_tenant(&state, t)
                .await
                .map_err(|e| match e {
                    AdminError::NotFound(_) => {
                        AdminError::BadRequest(format!("`tenant_id`: no tenant with id or alias {t:?}."))
                    }
                    other => other,
                })?
                .id,
        ),
    };
    let kind = match req.kind {
        CreditKind::Topup => kind::TOPUP,
        CreditKind::Grant => kind::GRANT,
    };
    let entry = add_credit(&state, credit_entry(&pool.pool.id, tenant_id, kind, amount, note)).await?;
    Ok((StatusCode::CREATED, Json(entry)).into_response())
}

#[utoipa::path(get, path = "/admin/v1/pools/{id}/ledger", tag = "pools",
    params(("id" = String, Path, description = "Pool id"), LedgerParams),
    responses((status = 200, body = LedgerList), (status = 400, body = sheepdog_types::ErrorBody), (status = 404, body = sheepdog_types::ErrorBody)),
    security(("admin_token" = [])))]
pub async fn pool_ledger(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AdminQuery(q): AdminQuery<LedgerParams>,
) -> Result<Json<LedgerList>, AdminError> {
    let limit = match q.limit {
        None => DEFAULT_LEDGER_LIMIT,
        Some(n) if (1..=MAX_LEDGER_LIMIT).contains(&n) => n,
        Some(n) => {
            return Err(AdminError::BadRequest(format!(
                "`limit` {n} must be a whole number from 1 to {MAX_LEDGER_LIMIT}."
            )))
        }
    };
    flush_usage(&state).await?;
    let pool = find_pool(&state, &id).await?;
    let entries = state.store().list_ledger(&pool.pool.id, limit).await?;
    Ok(Json(LedgerList { data: entries.iter().map(ledger_to_api).collect() }))
}

// ---- the pool side of tenants ----------------------------------------------

/// A new tenant's pool, validated before anything is changed.
#[derive(Debug, Default)]
pub struct TenantPoolPlan {
    /// The pool the tenant will draw on.
    pub pool_id: Option<String>,
    /// A pool to create for it (a `pooled` tenant created without `pool_id`).
    new_pool: Option<PoolRow>,
    /// Signup credit, nano-USD.
    signup: Option<i64>,
}

/// Validates `pool_id` and `signup_credit_usd` of a new tenant.
pub async fn plan_new_tenant(
    state: &AppState,
    tier: Tier,
    tenant_name: &str,
    pool_id: Option<&str>,
    signup_credit_usd: Option<&Value>,
) -> Result<TenantPoolPlan, AdminError> {
    let signup = match signup_credit_usd {
        None | Some(Value::Null) => None,
        Some(v) => Some(credit_amount("signup_credit_usd", v)?),
    };
    let mut plan = TenantPoolPlan { signup, ..TenantPoolPlan::default() };
    match pool_id {
        Some(p) => plan.pool_id = Some(existing_pool(state, "pool_id", p).await?.pool.id),
        None if tier == Tier::Pooled => {
            let row = new_pool_row(tenant_name.to_string(), true);
            plan.pool_id = Some(row.id.clone());
            plan.new_pool = Some(row);
        }
        None => {}
    }
    if plan.signup.is_some() && plan.pool_id.is_none() {
        return Err(AdminError::BadRequest(
            "`signup_credit_usd` needs a credit pool: give `pool_id`, or create the tenant with tier `pooled`.".into(),
        ));
    }
    Ok(plan)
}

/// The id of an existing pool named by a tenant's `pool_id` (400 when unknown).
pub async fn existing_pool_id(state: &AppState, id: &str) -> Result<String, AdminError> {
    Ok(existing_pool(state, "pool_id", id).await?.pool.id)
}

/// Creates `new_pool` (if any), then runs `change`; if the change fails the
/// pool, still unused, is removed again, so nothing is changed.
async fn with_new_pool<T, F, Fut>(state: &AppState, new_pool: Option<&PoolRow>, change: F) -> Result<T, AdminError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, AdminError>>,
{
    let Some(row) = new_pool else { return change().await };
    state.store().insert_pool(row).await?;
    match change().await {
        Ok(v) => {
            let p = pool_api(state, &PoolBalance { pool: row.clone(), credited: 0, debited: 0 });
            audit(state, "pool.create", &row.id, None::<&Pool>, Some(&p)).await;
            Ok(v)
        }
        Err(e) => {
            if let Err(undo) = state.store().delete_unused_pool(&row.id).await {
                tracing::warn!(error = %undo, pool = %row.id, "could not remove an unused credit pool");
            }
            Err(e)
        }
    }
}

/// Creates a new tenant with its pool side: the new pool (if any), the
/// tenant row, then the signup credit.
pub async fn insert_tenant(state: &AppState, row: &TenantRow, plan: &TenantPoolPlan) -> Result<(), AdminError> {
    with_new_pool(state, plan.new_pool.as_ref(), || async {
        state.store().insert_tenant(row).await.map_err(AdminError::from)
    })
    .await?;
    if let (Some(amount), Some(pool)) = (plan.signup, &plan.pool_id) {
        add_credit(state, credit_entry(pool, Some(row.id.clone()), kind::SIGNUP, amount, None)).await?;
    }
    Ok(())
}
