//! The audit log: every change made through the console or the admin API —
//! who, when, what, before → after — filterable by actor, action, target and
//! time.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use serde_json::Value;
use sheepdog_types::AuditRecord;

use crate::components::{Empty, ErrorBox, ListPage, Loading, PageHeader, Pager};
use crate::error::ConsoleError;
use crate::format::datetime;

/// One page of audit entries, newest first, filtered and paged by the
/// gateway's database.
#[server(endpoint = "audit")]
pub async fn audit_log(
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    from: Option<String>,
    to: Option<String>,
    offset: Option<String>,
) -> Result<ListPage<AuditRecord>, ConsoleError> {
    use crate::auth::ssr::{require_staff, with_status};
    use crate::components::{parse_offset, PAGE_SIZE};
    require_staff().await?;
    // Dates from the form (YYYY-MM-DD) become UTC day bounds.
    let day = |d: Option<String>, end: bool| -> Result<Option<String>, ConsoleError> {
        match d.map(|d| d.trim().to_string()).filter(|d| !d.is_empty()) {
            None => Ok(None),
            Some(d) => {
                let date = chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d")
                    .map_err(|_| ConsoleError::Invalid(format!("{d:?} is not a date (YYYY-MM-DD).")))?;
                let date = if end { date.succ_opt().unwrap_or(date) } else { date };
                Ok(Some(format!("{}T00:00:00Z", date.format("%Y-%m-%d"))))
            }
        }
    };
    let from = day(from, false).map_err(with_status)?;
    let to = day(to, true).map_err(with_status)?;
    let offset = parse_offset(offset.as_deref());
    let (limit, skip) = (PAGE_SIZE.to_string(), offset.to_string());
    let state = crate::state::ConsoleState::current()?;
    let (rows, total) = state
        .api()
        .audit(&[
            ("limit", Some(limit.as_str())),
            ("offset", Some(skip.as_str())),
            ("actor", actor.as_deref()),
            ("action", action.as_deref()),
            ("target", target.as_deref()),
            ("from", from.as_deref()),
            ("to", to.as_deref()),
        ])
        .await
        .map_err(with_status)?;
    Ok(ListPage { rows, total, offset })
}

/// `field: before → after` for each top-level field that changed.
pub fn changes(before: &Option<Value>, after: &Option<Value>) -> Vec<(String, String, String)> {
    let show = |v: Option<&Value>| match v {
        None | Some(Value::Null) => "—".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    match (before, after) {
        (Some(Value::Object(b)), Some(Value::Object(a))) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .filter(|k| b.get(*k) != a.get(*k))
                .map(|k| (k.clone(), show(b.get(k)), show(a.get(k))))
                .collect()
        }
        (None, Some(Value::Object(a))) => {
            let mut keys: Vec<&String> = a.keys().collect();
            keys.sort();
            keys.into_iter()
                .filter(|k| !matches!(a.get(*k), None | Some(Value::Null)))
                .map(|k| (k.clone(), "—".into(), show(a.get(k))))
                .collect()
        }
        (b, a) => vec![("value".into(), show(b.as_ref()), show(a.as_ref()))],
    }
}

#[component]
pub fn AuditPage() -> impl IntoView {
    let query = use_query_map();
    let get = move |k: &str| query.with(|q| q.get(k).filter(|v| !v.is_empty()));
    let entries = Resource::new(
        move || (get("actor"), get("action"), get("target"), get("from"), get("to"), get("offset")),
        |(a, b, c, d, e, o)| audit_log(a, b, c, d, e, o),
    );
    view! {
        <Title text="Audit log"/>
        <PageHeader title="Audit log" subtitle="Every change made through the console or the admin API."/>
        <form class="filters" method="get" action="/audit" data-testid="audit-filters">
            <label class="inline">"Actor " <input name="actor" placeholder="e.g. console:" value=move || get("actor").unwrap_or_default() data-testid="audit-actor"/></label>
            <label class="inline">"Action " <input name="action" placeholder="e.g. tenant." value=move || get("action").unwrap_or_default() data-testid="audit-action"/></label>
            <label class="inline">"Target " <input name="target" placeholder="id or prefix" value=move || get("target").unwrap_or_default()/></label>
            <label class="inline">"From " <input type="date" name="from" value=move || get("from").unwrap_or_default()/></label>
            <label class="inline">"To " <input type="date" name="to" value=move || get("to").unwrap_or_default()/></label>
            <button type="submit" class="button button-quiet" data-testid="audit-filter">"Filter"</button>
            <a class="button button-ghost" href="/audit">"Clear"</a>
        </form>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match entries.await {
                    Ok(page) if page.total == 0 => view! { <Empty title="No entries" hint="Nothing matches these filters."/> }.into_any(),
                    Ok(page) => {
                        let pairs: Vec<(String, String)> = query.with_untracked(|q| {
                            ["actor", "action", "target", "from", "to"].iter().filter_map(|k| q.get(k).map(|v| (k.to_string(), v))).collect()
                        });
                        let shown = page.rows.len();
                        view! {
                            <AuditTable entries=page.rows/>
                            <Pager path="/audit" total=page.total offset=page.offset shown=shown query=pairs testid="audit-pager"/>
                        }
                        .into_any()
                    }
                    Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn AuditTable(entries: Vec<AuditRecord>) -> impl IntoView {
    view! {
        <div class="card card-flush" tabindex="0" role="region" aria-label="Audit entries">
            <table class="table" data-testid="audit-table">
                <thead>
                    <tr><th>"When (UTC)"</th><th>"Who"</th><th>"What"</th><th>"Target"</th><th>"Before → after"</th></tr>
                </thead>
                <tbody>
                    {entries
                        .into_iter()
                        .map(|e| {
                            let diff = changes(&e.before, &e.after);
                            view! {
                                <tr data-testid="audit-row" data-action=e.action.clone()>
                                    <td class="muted nowrap" title=e.at.clone()>{datetime(&e.at)}</td>
                                    <td data-testid="audit-actor-cell">{e.actor.clone()}</td>
                                    <td><code>{e.action.clone()}</code></td>
                                    <td class="mono small" title=e.target.clone()>{crate::format::short_id(&e.target)}</td>
                                    <td>
                                        <ul class="diff">
                                            {diff
                                                .into_iter()
                                                .take(8)
                                                .map(|(k, b, a)| view! {
                                                    <li><span class="diff-key">{k}</span> <del>{b}</del> " → " <ins>{a}</ins></li>
                                                })
                                                .collect_view()}
                                        </ul>
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_lists_changed_fields_only() {
        let b = Some(json!({"name": "A", "status": "active", "limits": {"rpm": 1}}));
        let a = Some(json!({"name": "A", "status": "suspended", "limits": {"rpm": 1}}));
        assert_eq!(changes(&b, &a), vec![("status".into(), "active".into(), "suspended".into())]);
        let created = changes(&None, &Some(json!({"id": "k1", "revoked_at": null})));
        assert_eq!(created, vec![("id".into(), "—".into(), "k1".into())]);
    }
}
