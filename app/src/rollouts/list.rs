//! The rollouts list with the form that starts one.

use leptos::prelude::*;
use leptos_meta::Title;
use sheepdog_types::RolloutView;

use super::{can_operate, list_rollouts, pct, scope, CreateRollout, PhaseBadge};
use crate::components::{action_result, Empty, ErrorBox, Loading, PageHeader};
use crate::format::datetime;

#[component]
pub fn RolloutsPage() -> impl IntoView {
    let create = ServerAction::<CreateRollout>::new();
    let rollouts = Resource::new(move || create.version().get(), |_| list_rollouts());
    let operate = can_operate();
    view! {
        <Title text="Rollouts"/>
        <PageHeader title="Rollouts" subtitle="Move a model to another provider or upstream model: shadow, canary, full."/>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match rollouts.await {
                    Ok(list) if list.is_empty() => {
                        view! { <Empty title="No rollouts yet" hint="Start one below to shadow or canary a new upstream."/> }.into_any()
                    }
                    Ok(list) => view! { <RolloutTable rollouts=list/> }.into_any(),
                    Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                }
            })}
        </Transition>
        {operate.then(|| view! {
            <ActionForm action=create attr:class="card form form-grid" attr:data-testid="rollout-form">
                <fieldset>
                    <legend>"Start a rollout"</legend>
                    <label>"Model " <span class="muted">"(as clients name it)"</span> <input name="model" required=true data-testid="rollout-model"/></label>
                    <label>"To provider" <input name="provider" required=true data-testid="rollout-provider"/></label>
                    <label>"To upstream model" <input name="upstream_model" required=true data-testid="rollout-upstream-model"/></label>
                    <label>
                        "Tenant " <span class="muted">"(id or alias; empty: every tenant)"</span>
                        <input name="tenant" data-testid="rollout-tenant"/>
                    </label>
                    <label>
                        "Phase"
                        <select name="phase" data-testid="rollout-phase-select">
                            <option value="shadow">"shadow — mirror traffic, compare, serve nothing"</option>
                            <option value="canary">"canary — send a share of traffic"</option>
                        </select>
                    </label>
                </fieldset>
                <div class="form-actions">
                    <button type="submit" class="button" data-testid="rollout-create">
                        {move || if create.pending().get() { "Starting…" } else { "Start rollout" }}
                    </button>
                </div>
            </ActionForm>
            {move || action_result(create.value().get(), "Rollout started.")}
        })}
    }
}

#[component]
fn RolloutTable(rollouts: Vec<RolloutView>) -> impl IntoView {
    view! {
        <div class="card card-flush" tabindex="0" role="region" aria-label="Rollouts">
            <table class="table" data-testid="rollout-table">
                <thead>
                    <tr>
                        <th>"Model"</th>
                        <th>"Scope"</th>
                        <th>"From → to"</th>
                        <th>"Phase"</th>
                        <th class="num">"Percent"</th>
                        <th>"Updated"</th>
                    </tr>
                </thead>
                <tbody>
                    {rollouts
                        .into_iter()
                        .map(|r| {
                            let route = format!(
                                "{}/{} → {}/{}",
                                r.from.provider, r.from.upstream_model, r.to.provider, r.to.upstream_model
                            );
                            view! {
                                <tr data-testid="rollout-row" data-rollout-id=r.id.clone()>
                                    <td><a href=format!("/rollouts/{}", r.id) data-testid="rollout-link">{r.model.clone()}</a></td>
                                    <td class="muted">{scope(&r)}</td>
                                    <td class="mono">{route}</td>
                                    <td><PhaseBadge phase=r.phase.clone() paused=r.paused/></td>
                                    <td class="num">{pct(r.percent)}</td>
                                    <td class="muted">{datetime(&r.updated_at)}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}
