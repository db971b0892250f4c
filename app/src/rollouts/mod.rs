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

/// Why `action` cannot apply to a rollout in `phase` (`paused` or not), or
/// `None` when it can: the rules the gateway enforces, so a button that
/// would be refused is disabled with this as its title. Nothing applies
/// once a rollout is complete or rolled back.
pub fn action_refusal(action: &str, phase: &str, paused: bool) -> Option<String> {
    let done = match phase {
        "complete" => Some("the rollout is complete"),
        "rolled_back" => Some("the rollout was rolled back"),
        _ => None,
    };
    if let Some(done) = done {
        return Some(format!("Nothing applies any more: {done}."));
    }
    match (action, phase, paused) {
        ("advance", _, _) | ("rollback", _, _) => None,
        ("pause", "canary", false) | ("resume", "canary", true) => None,
        ("pause", "canary", true) => Some("The canary is paused already.".into()),
        ("resume", "canary", false) => Some("The canary is not paused.".into()),
        ("pause" | "resume", other, _) => {
            Some(format!("Only a running canary can be paused or resumed; this rollout is in {other}."))
        }
        _ => None,
    }
}

pub(crate) use crate::auth::can_operate;

pub(crate) fn pct(p: f64) -> String {
    format!("{p:.1} %")
}

pub(crate) fn scope(r: &RolloutView) -> String {
    r.tenant_id.as_deref().map(short_id).unwrap_or_else(|| "all tenants".into())
}

#[cfg(test)]
mod tests {
    use super::action_refusal;

    #[test]
    fn actions_follow_the_rollouts_state() {
        let allowed = |phase: &str, paused: bool| -> Vec<&str> {
            ["advance", "pause", "resume", "rollback"]
                .into_iter()
                .filter(|a| action_refusal(a, phase, paused).is_none())
                .collect()
        };
        assert_eq!(allowed("shadow", false), ["advance", "rollback"]);
        assert_eq!(allowed("canary", false), ["advance", "pause", "rollback"]);
        assert_eq!(allowed("canary", true), ["advance", "resume", "rollback"]);
        assert!(allowed("complete", false).is_empty());
        assert!(allowed("rolled_back", false).is_empty());
        assert_eq!(action_refusal("resume", "canary", false).as_deref(), Some("The canary is not paused."));
        assert!(action_refusal("advance", "rolled_back", false).unwrap().contains("rolled back"));
    }
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
