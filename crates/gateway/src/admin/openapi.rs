//! The OpenAPI 3 document of the admin API, generated from the handlers'
//! annotations (`GET /admin/v1/openapi.json`).

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin_tokens, analyses, keys, overview, pools, reports, rollouts, tenants, users};

struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Sheepdog admin API", description = "Tenants, keys, limits, budgets, usage, metrics and credit pools of a Sheepdog gateway."),
    paths(
        tenants::create_tenant, tenants::list_tenants, tenants::get_tenant, tenants::patch_tenant,
        tenants::delete_tenant, tenants::put_limits, tenants::put_budget,
        keys::create_tenant_key, keys::list_tenant_keys, keys::create_platform_key, keys::list_keys, keys::revoke_key,
        reports::tenant_metrics, reports::usage, reports::audit_log,
        pools::create_pool, pools::list_pools, pools::get_pool, pools::credit_pool, pools::pool_ledger,
        users::list_users, users::get_user, users::create_user, users::patch_user, users::verify,
        overview::overview, overview::usage_series,
        rollouts::create, rollouts::list, rollouts::get, rollouts::advance, rollouts::pause, rollouts::resume,
        rollouts::rollback, rollouts::events, rollouts::samples, rollouts::series, rollouts::upstreams,
        analyses::create_analysis,
        admin_tokens::rotate,
    ),
    components(schemas(sheepdog_types::ErrorBody, sheepdog_types::ErrorDetail, sheepdog_types::Tenant, sheepdog_types::KeyInfo)),
    modifiers(&AdminToken),
    tags((name = "tenants"), (name = "keys"), (name = "reports"), (name = "pools"), (name = "users"), (name = "rollouts"), (name = "analyses"), (name = "admin-tokens"))
)]
pub struct ApiDoc;

pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
