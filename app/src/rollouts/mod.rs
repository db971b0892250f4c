//! Rollouts: the list with a create form, and the rollout page (both sides
//! side by side, live charts of both sides over time, the shadow
//! comparison, the history, and Advance / Pause / Resume / Roll back, each
//! confirmed before it is sent). The rollout page refreshes itself every
//! [`REFRESH_SECS`] seconds while it is open.
//!
//! The rollout is the admin API's ([`sheepdog_types::RolloutView`],
//! [`sheepdog_types::RolloutReport`]). [`server`]: the server functions;
//! [`charts`]: the live charts; [`list`]: the list page; [`detail`]: the
//! rollout page.

use leptos::prelude::*;
use sheepdog_types::RolloutView;

use crate::auth::SessionUser;
use crate::format::short_id;

pub mod charts;
pub mod detail;
pub mod list;
pub mod server;

pub use charts::{live_charts, ChartData};
pub use detail::RolloutDetailPage;
pub use list::RolloutsPage;
pub use server::*;

/// How often the rollout page re-reads the rollout (table and charts).
pub const REFRESH_SECS: u64 = 3;

/// The actions the rollout page offers: (API path segment, button label).
pub const ACTIONS: [(&str, &str); 4] =
    [("advance", "Advance"), ("pause", "Pause"), ("resume", "Resume"), ("rollback", "Roll back")];

pub(crate) fn can_operate() -> bool {
    use_context::<SessionUser>().is_some_and(|u| u.can_operate())
}

pub(crate) fn pct(p: f64) -> String {
    format!("{p:.1} %")
}

pub(crate) fn scope(r: &RolloutView) -> String {
    r.tenant_id.as_deref().map(short_id).unwrap_or_else(|| "all tenants".into())
}

#[component]
pub(crate) fn PhaseBadge(phase: String, paused: bool) -> impl IntoView {
    let class = format!("badge badge-phase phase-{phase}");
    let text = phase.replace('_', " ");
    view! {
        <span class=class data-testid="rollout-phase" data-phase=phase>{text}</span>
        {paused.then(|| view! { <span class="pill" data-testid="rollout-paused">"paused"</span> })}
    }
}
