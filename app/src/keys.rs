//! Tenant API keys in the operator console: create (the secret is shown
//! once) and revoke. The table is shared with the tenant portal.

use leptos::prelude::*;
use sheepdog_types::{KeyCreated, KeyInfo, KeyStatus};

use crate::components::{Confirmed, Empty};
use crate::error::ConsoleError;
use crate::format::datetime;

/// Creates a key for a tenant (operators and admins).
#[server(endpoint = "create_tenant_key")]
pub async fn create_tenant_key(tenant_id: String, name: Option<String>) -> Result<KeyCreated, ConsoleError> {
    use crate::auth::ssr::{require_operator, with_status};
    let user = require_operator().await?;
    let state = crate::state::ConsoleState::current()?;
    let name = name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    state.api().create_key(&crate::api::actor_for(&user.email), &tenant_id, name.as_deref()).await.map_err(with_status)
}

/// Revokes one of a tenant's keys (operators and admins). The key must
/// belong to `tenant_id`.
#[server(endpoint = "revoke_tenant_key")]
pub async fn revoke_tenant_key(tenant_id: String, key_id: String) -> Result<KeyInfo, ConsoleError> {
    use crate::auth::ssr::{require_operator, with_status};
    let user = require_operator().await?;
    let state = crate::state::ConsoleState::current()?;
    let keys = state.api().tenant_keys(&tenant_id).await.map_err(with_status)?;
    // Only a tenant key of this tenant (never a platform key).
    if !keys.iter().any(|k| k.id == key_id && k.scope == sheepdog_types::KeyScope::Tenant && k.tenant_id.is_some()) {
        return Err(with_status(ConsoleError::NotFound));
    }
    state.api().revoke_key(&crate::api::actor_for(&user.email), &key_id).await.map_err(with_status)
}

/// The revoke button of one key row.
pub fn revoke_form(action: ServerAction<RevokeTenantKey>, tenant_id: &str, key_id: &str) -> AnyView {
    let (tenant_id, key_id) = (tenant_id.to_string(), key_id.to_string());
    let question = format!("Revoke key {key_id}? Requests with it will be refused.");
    view! {
        <Confirmed label="Revoke" question=question testid="revoke-key" class="button button-danger button-small">
            <ActionForm action=action attr:class="inline-form">
                <input type="hidden" name="tenant_id" value=tenant_id.clone()/>
                <input type="hidden" name="key_id" value=key_id.clone()/>
                <button type="submit" class="button button-danger button-small" data-testid="confirm-yes">"Yes, revoke"</button>
            </ActionForm>
        </Confirmed>
    }
    .into_any()
}

/// Keys of one tenant, newest first; `action` renders each row's buttons.
#[component]
pub fn KeysTable<F>(keys: Vec<KeyInfo>, action: F) -> impl IntoView
where
    F: Fn(&KeyInfo) -> AnyView + 'static,
{
    if keys.is_empty() {
        return view! { <Empty title="No keys yet" hint="Create a key to start sending requests."/> }.into_any();
    }
    let mut keys = keys;
    keys.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    view! {
        <table class="table" data-testid="keys-table">
            <thead>
                <tr><th>"Name"</th><th>"Prefix"</th><th>"Status"</th><th>"Created"</th><th>"Revoked"</th><th></th></tr>
            </thead>
            <tbody>
                {keys
                    .iter()
                    .map(|k| {
                        let revoked = k.status == KeyStatus::Revoked;
                        view! {
                            <tr data-testid="key-row" data-key-id=k.id.clone() data-state={if revoked { "revoked" } else { "active" }}>
                                <td>{k.name.clone().unwrap_or_else(|| "—".into())}</td>
                                <td class="mono">{format!("{}…", k.prefix)}</td>
                                <td>
                                    <span class={if revoked { "badge badge-unreachable" } else { "badge badge-healthy" }}>
                                        {if revoked { "revoked" } else { "active" }}
                                    </span>
                                </td>
                                <td class="muted">{datetime(&k.created_at)}</td>
                                <td class="muted">{k.revoked_at.as_deref().map(datetime).unwrap_or_default()}</td>
                                <td class="num">{if revoked { ().into_any() } else { action(k) }}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}
