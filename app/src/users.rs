//! Console users (admins only): list, create, disable and enable.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use sheepdog_types::ConsoleUser;

use crate::components::{action_result, Confirmed, ErrorBox, ListPage, Loading, PageHeader, Pager};
use crate::error::ConsoleError;
use crate::format::{datetime, short_id};

/// One page of console users by e-mail (paged by the gateway's database).
#[server(endpoint = "users")]
pub async fn list_users(offset: Option<String>) -> Result<ListPage<ConsoleUser>, ConsoleError> {
    use crate::auth::ssr::{require_admin, with_status};
    use crate::components::{parse_offset, PAGE_SIZE};
    require_admin().await?;
    let offset = parse_offset(offset.as_deref());
    let state = crate::state::ConsoleState::current()?;
    let api = state.api();
    let (rows, total) = api.users_page(PAGE_SIZE, offset).await.map_err(with_status)?;
    Ok(ListPage { rows, total, offset })
}

/// Creates a console user; a `tenant` user needs the tenant's id or alias.
#[server(endpoint = "create_user")]
pub async fn create_user(
    email: String,
    role: String,
    tenant_id: Option<String>,
    password: String,
) -> Result<ConsoleUser, ConsoleError> {
    use crate::auth::ssr::{require_admin, with_status};
    let admin = require_admin().await?;
    use sheepdog_types::Role;
    let role = Role::parse(role.trim()).ok_or_else(|| {
        with_status(ConsoleError::Invalid("Choose a role: admin, operator, viewer or tenant.".into()))
    })?;
    let tenant = tenant_id.map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
    let tenant = if role == Role::Tenant { tenant } else { None };
    let state = crate::state::ConsoleState::current()?;
    state
        .api()
        .create_user(&crate::api::actor_for(&admin.email), email.trim(), role.as_str(), tenant.as_deref(), &password)
        .await
        .map_err(with_status)
}

/// Disables (`true`) or enables a user; a disabled user's sessions end.
#[server(endpoint = "set_user_disabled")]
pub async fn set_user_disabled(id: String, disabled: String) -> Result<ConsoleUser, ConsoleError> {
    use crate::auth::ssr::{require_admin, with_status};
    let admin = require_admin().await?;
    if admin.id == id {
        return Err(with_status(ConsoleError::Invalid("You cannot disable yourself.".into())));
    }
    let state = crate::state::ConsoleState::current()?;
    state
        .api()
        .set_user_disabled(&crate::api::actor_for(&admin.email), &id, disabled == "true")
        .await
        .map_err(with_status)
}

#[component]
pub fn UsersPage() -> impl IntoView {
    let create = ServerAction::<CreateUser>::new();
    let toggle = ServerAction::<SetUserDisabled>::new();
    let query = use_query_map();
    let users = Resource::new(
        move || (create.version().get(), toggle.version().get(), query.with(|q| q.get("offset"))),
        |(_, _, offset)| list_users(offset),
    );
    // Only admins manage users: others get the list, without forms.
    let admin = crate::auth::is_admin();
    view! {
        <Title text="Users"/>
        <PageHeader title="Users" subtitle="Who may sign in to the console and the tenant portal."/>
        <div class="grid grid-2-1">
            <section class="card card-flush" tabindex="0" role="region" aria-label="Console users">
                <Transition fallback=Loading>
                    {move || Suspend::new(async move {
                        match users.await {
                            Ok(page) => {
                                let (total, offset, shown) = (page.total, page.offset, page.rows.len());
                                let list = page.rows;
                                view! {
                                <table class="table" data-testid="users-table">
                                    <thead><tr><th>"Email"</th><th>"Role"</th><th>"Tenant"</th><th>"Status"</th><th>"Created"</th><th></th></tr></thead>
                                    <tbody>
                                        {list.into_iter().map(|u| {
                                            let next = if u.disabled { "false" } else { "true" };
                                            view! {
                                                <tr data-testid="user-row">
                                                    <td>{u.email.clone()}</td>
                                                    <td><span class="pill pill-role">{u.role.as_str()}</span></td>
                                                    <td class="mono small">{u.tenant_id.as_deref().map(short_id).unwrap_or_default()}</td>
                                                    <td>{if u.disabled { view! { <span class="badge badge-unreachable">"disabled"</span> }.into_any() } else { view! { <span class="badge badge-healthy">"active"</span> }.into_any() }}</td>
                                                    <td class="muted">{datetime(&u.created_at)}</td>
                                                    <td class="num">
                                                        {admin.then(|| {
                                                            let id = u.id.clone();
                                                            let form = move || view! {
                                                                <ActionForm action=toggle attr:class="inline-form">
                                                                    <input type="hidden" name="id" value=id.clone()/>
                                                                    <input type="hidden" name="disabled" value=next/>
                                                                    <button type="submit" class="button button-quiet button-small" data-testid={if next == "true" { "confirm-yes" } else { "enable-user" }}>
                                                                        {if next == "true" { "Yes, disable" } else { "Enable" }}
                                                                    </button>
                                                                </ActionForm>
                                                            };
                                                            if next == "true" {
                                                                let question = format!("Disable {}? Their sessions end now.", u.email);
                                                                view! {
                                                                    <Confirmed label="Disable" question=question testid="disable-user" class="button button-quiet button-small">
                                                                        {form()}
                                                                    </Confirmed>
                                                                }
                                                                .into_any()
                                                            } else {
                                                                form().into_any()
                                                            }
                                                        })}
                                                    </td>
                                                </tr>
                                            }
                                        }).collect_view()}
                                    </tbody>
                                </table>
                                <Pager path="/users" total=total offset=offset shown=shown query=vec![] testid="user-pager"/>
                            }.into_any()
                            }
                            Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                        }
                    })}
                </Transition>
                {move || toggle.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorBox error=e/> })}
            </section>
            {admin.then(|| view! {
            <section class="card">
                <h2>"New user"</h2>
                <ActionForm action=create attr:class="form" attr:data-testid="user-form">
                    <label>"Email" <input type="email" name="email" required=true data-testid="user-email-input"/></label>
                    <label>
                        "Role"
                        <select name="role" data-testid="user-role-select">
                            <option value="viewer">"viewer — read only"</option>
                            <option value="operator">"operator — tenants, limits, keys"</option>
                            <option value="admin">"admin — everything, users"</option>
                            <option value="tenant">"tenant — the portal of one tenant"</option>
                        </select>
                    </label>
                    <label>"Tenant id or alias " <span class="muted">"(tenant users)"</span> <input name="tenant_id" data-testid="user-tenant-input"/></label>
                    <label>"Password " <span class="muted">"(at least 12 characters)"</span> <input type="password" name="password" autocomplete="new-password" required=true minlength="12" data-testid="user-password-input"/></label>
                    <button type="submit" class="button" data-testid="create-user">"Create user"</button>
                </ActionForm>
                {move || action_result(create.value().get(), "User created.")}
            </section>
            })}
        </div>
    }
}
