//! Gateway health as seen from the console: the server function GETs the
//! gateway's `/healthz` (SPEC §3) and the card shows the result.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::ConsoleError;

/// What the gateway's liveness endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum GatewayHealth {
    /// `/healthz` answered 2xx.
    Healthy { status: u16 },
    /// `/healthz` answered, but not 2xx.
    Unhealthy { status: u16 },
    /// No answer (connection refused, timeout, bad URL).
    Unreachable,
}

impl GatewayHealth {
    /// A stable machine-readable name (`data-state`, CSS modifier).
    pub fn state(&self) -> &'static str {
        match self {
            GatewayHealth::Healthy { .. } => "healthy",
            GatewayHealth::Unhealthy { .. } => "unhealthy",
            GatewayHealth::Unreachable => "unreachable",
        }
    }

    pub fn label(&self) -> String {
        match self {
            GatewayHealth::Healthy { .. } => "Healthy".to_string(),
            GatewayHealth::Unhealthy { status } => format!("Unhealthy (HTTP {status})"),
            GatewayHealth::Unreachable => "Unreachable".to_string(),
        }
    }
}

#[cfg(feature = "ssr")]
mod ssr {
    use super::GatewayHealth;
    use crate::state::ConsoleState;

    pub async fn probe(state: &ConsoleState) -> GatewayHealth {
        let url = state.gateway_endpoint("/healthz");
        match state.http().get(&url).send().await {
            Ok(resp) if resp.status().is_success() => GatewayHealth::Healthy { status: resp.status().as_u16() },
            Ok(resp) => {
                tracing::warn!(%url, status = resp.status().as_u16(), "gateway health check: not healthy");
                GatewayHealth::Unhealthy { status: resp.status().as_u16() }
            }
            Err(error) => {
                tracing::warn!(%url, %error, "gateway health check: unreachable");
                GatewayHealth::Unreachable
            }
        }
    }
}

/// GET `{console.gateway_url}/healthz`.
#[server(endpoint = "gateway_health")]
pub async fn check_gateway_health() -> Result<GatewayHealth, ConsoleError> {
    crate::auth::ssr::require_staff().await?;
    let state = crate::state::ConsoleState::current()?;
    Ok(ssr::probe(&state).await)
}

/// A card with the gateway's health; rendered on the server, re-checkable
/// after hydration.
#[component]
pub fn GatewayHealthCard() -> impl IntoView {
    let health = Resource::new(|| (), |_| check_gateway_health());

    view! {
        <section class="card" aria-labelledby="gateway-health-title">
            <h2 id="gateway-health-title">"Gateway"</h2>
            <p class="muted">"Liveness of the data plane, checked by the console server."</p>
            <div class="card-row">
                <Transition fallback=|| {
                    view! {
                        <span class="badge badge-checking" data-testid="gateway-health" data-state="checking">
                            "Checking…"
                        </span>
                    }
                }>
                    {move || Suspend::new(async move {
                        match health.await {
                            Ok(h) => {
                                view! {
                                    <span class=format!("badge badge-{}", h.state()) data-testid="gateway-health" data-state=h.state()>
                                        {h.label()}
                                    </span>
                                }
                                    .into_any()
                            }
                            Err(e) => {
                                view! {
                                    <span class="badge badge-unreachable" data-testid="gateway-health" data-state="error">
                                        {e.to_string()}
                                    </span>
                                }
                                    .into_any()
                            }
                        }
                    })}
                </Transition>
                <button class="button button-quiet" data-testid="gateway-health-refresh" on:click=move |_| health.refetch()>
                    "Check again"
                </button>
            </div>
        </section>
    }
}
