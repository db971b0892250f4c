//! Keys: tenant keys, platform keys, listing (never secrets), revocation.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use sheepdog_types::{
    CreatePlatformKey, CreateTenantKey, KeyCreated, KeyInfo, KeyList, KeyScope, KeyStatus, TenantsSelector,
};

use crate::audit::audit;
use crate::body::parse_json;
use crate::error::AdminError;
use crate::lookup::find_tenant;
use crate::query::AdminQuery;
use sheepdog_core::auth::{generate_key, hash_key_hex, SHOWN_PREFIX_LEN};
use sheepdog_core::state::AppState;
use sheepdog_store::KeyRow;

pub fn to_info(k: &KeyRow) -> KeyInfo {
    let platform = k.scope == "platform";
    KeyInfo {
        id: k.id.clone(),
        name: k.name.clone(),
        prefix: k.prefix.clone(),
        scope: if platform { KeyScope::Platform } else { KeyScope::Tenant },
        tenant_id: k.tenant_id.clone(),
        tenants: platform.then(|| match &k.tenants {
            None => TenantsSelector::All("*".into()),
            Some(l) => TenantsSelector::List(l.clone()),
        }),
        status: if k.revoked_at.is_some() { KeyStatus::Revoked } else { KeyStatus::Active },
        created_at: k.created_at.clone(),
        revoked_at: k.revoked_at.clone(),
    }
}

fn validate_key_name(name: &Option<String>) -> Result<Option<String>, AdminError> {
    match name {
        None => Ok(None),
        Some(n) => {
            let n = n.trim();
            if n.chars().count() > 100 || n.chars().any(char::is_control) {
                return Err(AdminError::BadRequest("`name` must be at most 100 printable characters.".into()));
            }
            Ok((!n.is_empty()).then(|| n.to_string()))
        }
    }
}

/// Creates and stores a key; returns the row and the secret (shown once).
/// A tenant key is refused (409 `key_limit_reached`, nothing stored) when
/// its tenant already holds `tenant.max_keys` active keys.
async fn issue(state: &AppState, mut row: KeyRow) -> Result<(KeyRow, String), AdminError> {
    let key = generate_key();
    row.prefix = key[..SHOWN_PREFIX_LEN].to_string();
    row.key_hash = hash_key_hex(&key);
    let max = i64::from(state.settings().tenant.max_keys);
    state.store().insert_key_within(&row, Some(max)).await?;
    state.catalog().reload().await?;
    Ok((row, key))
}

fn created(row: &KeyRow, key: String) -> Response {
    let info = to_info(row);
    let body = KeyCreated {
        id: info.id,
        key,
        prefix: info.prefix,
        created_at: info.created_at,
        scope: info.scope,
        tenant_id: info.tenant_id,
        tenants: info.tenants,
        name: info.name,
    };
    (StatusCode::CREATED, Json(body)).into_response()
}

fn new_row(name: Option<String>, scope: &str, tenant_id: Option<String>, tenants: Option<Vec<String>>) -> KeyRow {
    KeyRow {
        id: format!("key_{}", uuid::Uuid::new_v4().simple()),
        name,
        prefix: String::new(),
        key_hash: String::new(),
        scope: scope.into(),
        tenant_id,
        tenants,
        created_at: sheepdog_types::time::now_rfc3339(),
        revoked_at: None,
    }
}

#[utoipa::path(post, path = "/admin/v1/tenants/{id}/keys", tag = "keys", request_body = CreateTenantKey,
    params(("id" = String, Path, description = "Tenant id or alias")),
    responses((status = 201, body = KeyCreated, description = "The key is in `key`, shown only here"), (status = 404, body = sheepdog_types::ErrorBody),
        (status = 409, body = sheepdog_types::ErrorBody, description = "`key_limit_reached`: the tenant holds `tenant.max_keys` active keys")),
    security(("admin_token" = [])))]
pub async fn create_tenant_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, AdminError> {
    let req: CreateTenantKey =
        if body.iter().all(u8::is_ascii_whitespace) { CreateTenantKey::default() } else { parse_json(&body)? };
    let name = validate_key_name(&req.name)?;
    let tenant = find_tenant(&state, &id).await?;
    let (row, key) = issue(&state, new_row(name, "tenant", Some(tenant.id.clone()), None)).await?;
    audit(&state, "key.create", &row.id, None::<&KeyInfo>, Some(&to_info(&row))).await;
    Ok(created(&row, key))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeyListParams {
    /// A page of at most this many (1 to 500; default 50 when `offset` is given), newest first.
    pub limit: Option<i64>,
    /// Keys skipped before the page.
    pub offset: Option<i64>,
}

#[utoipa::path(get, path = "/admin/v1/tenants/{id}/keys", tag = "keys",
    description = "The tenant's keys (oldest first), or with `limit`/`offset` one page, newest first, and `total`.",
    params(("id" = String, Path, description = "Tenant id or alias"), KeyListParams),
    responses((status = 200, body = KeyList), (status = 400, body = sheepdog_types::ErrorBody), (status = 404, body = sheepdog_types::ErrorBody)), security(("admin_token" = [])))]
pub async fn list_tenant_keys(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AdminQuery(q): AdminQuery<KeyListParams>,
) -> Result<Json<KeyList>, AdminError> {
    let page = crate::query::page(q.limit, q.offset)?;
    let tenant = find_tenant(&state, &id).await?;
    let Some((limit, offset)) = page else {
        let rows = state.store().list_keys(Some(&tenant.id)).await?;
        return Ok(Json(KeyList { data: rows.iter().map(to_info).collect(), total: None }));
    };
    let found = state.store().list_tenant_keys_page(&tenant.id, limit, offset).await?;
    Ok(Json(KeyList { data: found.rows.iter().map(to_info).collect(), total: Some(found.total.max(0) as u64) }))
}

#[utoipa::path(post, path = "/admin/v1/keys", tag = "keys", request_body = CreatePlatformKey,
    responses((status = 201, body = KeyCreated, description = "The key is in `key`, shown only here"), (status = 400, body = sheepdog_types::ErrorBody)),
    security(("admin_token" = [])))]
pub async fn create_platform_key(State(state): State<AppState>, body: Bytes) -> Result<Response, AdminError> {
    let req: CreatePlatformKey = parse_json(&body)?;
    if req.scope != "platform" {
        return Err(AdminError::BadRequest(format!(
            "`scope` must be \"platform\" (got {:?}); tenant keys are created under /admin/v1/tenants/{{id}}/keys.",
            req.scope
        )));
    }
    let name = validate_key_name(&req.name)?;
    let tenants = match req.tenants {
        TenantsSelector::All(s) if s == "*" => None,
        TenantsSelector::All(s) => {
            return Err(AdminError::BadRequest(format!("`tenants` must be \"*\" or a list of tenant ids (got {s:?}).")))
        }
        TenantsSelector::List(list) => {
            if list.is_empty() {
                return Err(AdminError::BadRequest("`tenants` must not be an empty list.".into()));
            }
            let mut ids = Vec::new();
            for t in &list {
                let row = find_tenant(&state, t)
                    .await
                    .map_err(|_| AdminError::BadRequest(format!("`tenants`: no tenant with id or alias {t:?}.")))?;
                if !ids.contains(&row.id) {
                    ids.push(row.id);
                }
            }
            Some(ids)
        }
    };
    let (row, key) = issue(&state, new_row(name, "platform", None, tenants)).await?;
    audit(&state, "key.create", &row.id, None::<&KeyInfo>, Some(&to_info(&row))).await;
    Ok(created(&row, key))
}

#[utoipa::path(get, path = "/admin/v1/keys", tag = "keys",
    responses((status = 200, body = KeyList)), security(("admin_token" = [])))]
pub async fn list_keys(State(state): State<AppState>) -> Result<Json<KeyList>, AdminError> {
    let rows = state.store().list_keys(None).await?;
    Ok(Json(KeyList { data: rows.iter().map(to_info).collect(), total: None }))
}

#[utoipa::path(delete, path = "/admin/v1/keys/{key_id}", tag = "keys",
    description = "Revokes a key at once on this replica and within 1 s on every other; it stays listed as revoked.",
    params(("key_id" = String, Path, description = "Key id")),
    responses((status = 200, body = KeyInfo), (status = 404, body = sheepdog_types::ErrorBody)), security(("admin_token" = [])))]
pub async fn revoke_key(
    State(state): State<AppState>,
    Path(key_id): Path<String>,
) -> Result<Json<KeyInfo>, AdminError> {
    let before = state.store().list_keys(None).await?.into_iter().find(|k| k.id == key_id);
    let Some(before) = before else {
        return Err(AdminError::NotFound(format!("No key with id {key_id:?}.")));
    };
    let after = state
        .store()
        .revoke_key(&key_id, &sheepdog_types::time::now_rfc3339())
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("No key with id {key_id:?}.")))?;
    state.catalog().reload().await?;
    let info = to_info(&after);
    if before.revoked_at.is_none() {
        audit(&state, "key.revoke", &key_id, Some(&to_info(&before)), Some(&info)).await;
    }
    Ok(Json(info))
}
