//! The gateway replicas (live from their heartbeats) and the state of what
//! they share — Redis and the database — as one replica sees them.

use leptos::prelude::*;
use sheepdog_types::ReplicaList;

use crate::components::ErrorBox;
use crate::error::ConsoleError;
use crate::format::{datetime, thousands};

/// `GET /admin/v1/replicas`.
#[server(endpoint = "replicas")]
pub async fn get_replicas() -> Result<ReplicaList, ConsoleError> {
    crate::auth::ssr::require_staff().await?;
    crate::state::ConsoleState::current()?.api().replicas().await.map_err(crate::auth::ssr::with_status)
}

/// What a state word means, for people.
fn state_label(what: &str, state: &str) -> String {
    match (what, state) {
        ("Redis", "off") => "Redis: not configured (one process, limits in memory)".into(),
        (_, "up") => format!("{what}: reachable"),
        (_, "down") => format!("{what}: unreachable"),
        (_, other) => format!("{what}: {other}"),
    }
}

fn badge(state: &str) -> &'static str {
    match state {
        "up" => "badge badge-healthy",
        "down" => "badge badge-unreachable",
        _ => "badge badge-checking",
    }
}

/// A card listing the live replicas, with Redis and database badges.
#[component]
pub fn ReplicasCard() -> impl IntoView {
    let replicas = Resource::new(|| (), |_| get_replicas());
    view! {
        <section class="card" aria-labelledby="replicas-title" data-testid="replicas">
            <h2 id="replicas-title">"Replicas"</h2>
            <p class="muted">"Gateway processes with a heartbeat in the last 10 s."</p>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match replicas.await {
                        Ok(list) => view! { <ReplicaTable list=list/> }.into_any(),
                        Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn ReplicaTable(list: ReplicaList) -> impl IntoView {
    let (redis, database) = (list.redis.clone(), list.database.clone());
    view! {
        <div class="card-row">
            <span class=badge(&redis) data-testid="redis-state" data-state=redis.clone()>{state_label("Redis", &redis)}</span>
            " "
            <span class=badge(&database) data-testid="database-state" data-state=database.clone()>
                {state_label("Database", &database)}
            </span>
        </div>
        <div class="table-scroll" tabindex="0" role="region" aria-label="Gateway replicas">
            <table class="table">
                <thead>
                    <tr>
                        <th>"Replica"</th>
                        <th>"Version"</th>
                        <th>"Started"</th>
                        <th>"Last heartbeat"</th>
                        <th class="num">"In flight"</th>
                    </tr>
                </thead>
                <tbody>
                    {list
                        .data
                        .into_iter()
                        .map(|r| {
                            let short: String = r.id.chars().take(8).collect();
                            view! {
                                <tr data-testid="replica-row">
                                    <td><code title=r.id.clone()>{short}</code></td>
                                    <td>{r.version.clone()}</td>
                                    <td>{datetime(&r.started_at)}</td>
                                    <td>{datetime(&r.last_seen_at)}</td>
                                    <td class="num">{thousands(r.in_flight)}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}
