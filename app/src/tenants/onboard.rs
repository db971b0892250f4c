//! Onboarding a tenant: the form, then the first key, shown once.

use leptos::prelude::*;
use leptos_meta::Title;

use super::{list_pools, OnboardTenant};
use crate::components::{Empty, ErrorBox, KeyReveal, PageHeader};
use crate::format::usd;

#[component]
pub fn OnboardPage() -> impl IntoView {
    let onboard = ServerAction::<OnboardTenant>::new();
    let pools = Resource::new(|| (), |_| list_pools());
    let done = move || onboard.value().get().and_then(|r| r.ok());
    view! {
        <Title text="Onboard a tenant"/>
        <PageHeader title="Onboard a tenant" subtitle="Create the tenant, its limits and budget, and its first API key."/>
        {(!crate::auth::can_operate()).then(|| view! {
            <Empty title="Read only" hint="Operators and admins onboard tenants; your role can read the tenants, not change them."/>
        })}
        <Show
            when=move || done().is_some() || !crate::auth::can_operate()
            fallback=move || {
                view! {
                    <ActionForm action=onboard attr:class="card form form-grid" attr:data-testid="onboard-form">
                        <fieldset>
                            <legend>"Tenant"</legend>
                            <label>"Name" <input name="name" required=true data-testid="onboard-name"/></label>
                            <label>
                                "Tier"
                                <select name="tier" data-testid="onboard-tier">
                                    <option value="shared">"shared — own keys, fair share of upstream capacity"</option>
                                    <option value="pooled">"pooled — draws on a credit pool"</option>
                                    <option value="dedicated">"dedicated — reserved upstream capacity"</option>
                                </select>
                            </label>
                            <label>
                                "Aliases " <span class="muted">"(optional, comma separated; usable in X-Tenant-ID)"</span>
                                <input name="aliases" placeholder="acme, acme-prod" data-testid="onboard-aliases"/>
                            </label>
                        </fieldset>
                        <fieldset>
                            <legend>"Limits"</legend>
                            <label>"Requests per minute" <input name="requests_per_minute" inputmode="numeric" placeholder="1000" data-testid="onboard-rpm"/></label>
                            <label>"Tokens per minute" <input name="tokens_per_minute" inputmode="numeric" placeholder="1000000" data-testid="onboard-tpm"/></label>
                            <label>"Max concurrency " <span class="muted">"(optional)"</span> <input name="max_concurrency" inputmode="numeric" placeholder="unlimited"/></label>
                        </fieldset>
                        <fieldset>
                            <legend>"Budget and credit"</legend>
                            <label>"Monthly budget (USD) " <span class="muted">"(optional)"</span> <input name="monthly_budget_usd" inputmode="decimal" placeholder="no limit" data-testid="onboard-budget"/></label>
                            <label class="check"><input type="checkbox" name="budget_hard" value="true"/> "Hard budget: refuse requests beyond it"</label>
                            <label>
                                "Credit pool " <span class="muted">"(pooled tier; default: a new pool for this tenant)"</span>
                                <select name="pool_id">
                                    <option value="">"—"</option>
                                    <Suspense fallback=|| ()>
                                        {move || Suspend::new(async move {
                                            pools
                                                .await
                                                .unwrap_or_default()
                                                .into_iter()
                                                .map(|p| view! { <option value=p.id.clone()>{format!("{} ({} available)", p.name, usd(&p.available_usd))}</option> })
                                                .collect_view()
                                        })}
                                    </Suspense>
                                </select>
                            </label>
                            <label>"Signup credit (USD) " <span class="muted">"(optional; needs a pool)"</span> <input name="signup_credit_usd" inputmode="decimal" data-testid="onboard-credit"/></label>
                        </fieldset>
                        <div class="form-actions">
                            <a class="button button-quiet" href="/tenants">"Cancel"</a>
                            <button type="submit" class="button" data-testid="onboard-submit">
                                {move || if onboard.pending().get() { "Creating…" } else { "Create tenant and first key" }}
                            </button>
                        </div>
                        {move || onboard.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorBox error=e/> })}
                    </ActionForm>
                }
            }
        >
            {move || {
                done()
                    .map(|o| {
                        view! {
                            <section class="card" data-testid="onboard-done">
                                <h2>{format!("{} is ready", o.tenant.name)}</h2>
                                <p class="muted">
                                    "Tenant id " <code data-testid="new-tenant-id">{o.tenant.id.clone()}</code>
                                </p>
                                <KeyReveal key=o.key.clone()/>
                                <div class="form-actions">
                                    <a class="button" href=format!("/tenants/{}", o.tenant.id) data-testid="open-tenant">"Open the tenant"</a>
                                </div>
                            </section>
                        }
                    })
            }}
        </Show>
    }
}
