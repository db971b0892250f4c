//! The OpenAPI 3 document of the admin API, generated from the handlers'
//! annotations (`GET /admin/v1/openapi.json`).

use axum::Json;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::{admin_tokens, analyses, keys, overview, pools, replicas, reports, rollouts, tenants, users};

struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for op in operations.into_iter().flatten() {
                add_common_errors(op);
            }
        }
    }
}

/// The error answers every operation can give, added where its annotation
/// does not list them: `401` (admin token missing or wrong: the middleware
/// answers before any handler), `400` when the operation takes a body or
/// parameters (a body that is not the documented JSON, a query string or
/// path segment that cannot be decoded), `404` when it names something by
/// path (unknown id).
fn add_common_errors(op: &mut Operation) {
    let params = op.parameters.as_deref().unwrap_or_default();
    let has_path_param = params.iter().any(|p| p.parameter_in == ParameterIn::Path);
    let mut add = |status: &str, description: &str| {
        op.responses.responses.entry(status.to_string()).or_insert_with(|| {
            let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
            RefOr::T(ResponseBuilder::new().description(description).content("application/json", content).build())
        });
    };
    add("401", "The admin token is missing or not valid");
    if op.request_body.is_some() || !params.is_empty() {
        add("400", "Invalid request (body, query or path)");
    }
    if has_path_param {
        add("404", "Not found");
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
        replicas::list,
    ),
    components(schemas(sheepdog_types::ErrorBody, sheepdog_types::ErrorDetail, sheepdog_types::Tenant, sheepdog_types::KeyInfo)),
    modifiers(&AdminToken),
    tags((name = "tenants"), (name = "keys"), (name = "reports"), (name = "pools"), (name = "users"), (name = "rollouts"), (name = "analyses"), (name = "admin-tokens"), (name = "replicas"))
)]
pub struct ApiDoc;

pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
