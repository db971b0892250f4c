//! Building blocks shared by the pages: headers, badges, stat cards, empty
//! and error states, and the one-time key reveal with a copy button.

use leptos::prelude::*;
use sheepdog_types::{KeyCreated, TenantStatus, Tier};

use crate::error::ConsoleError;

#[component]
pub fn PageHeader(
    #[prop(into)] title: String,
    #[prop(into, optional)] subtitle: String,
    #[prop(optional)] children: Option<Children>,
) -> impl IntoView {
    view! {
        <header class="page-header">
            <div>
                <h1 data-testid="page-title">{title}</h1>
                {(!subtitle.is_empty()).then(|| view! { <p class="lede">{subtitle}</p> })}
            </div>
            <div class="page-actions">{children.map(|c| c())}</div>
        </header>
    }
}

/// A friendly error panel that says what to do next.
#[component]
pub fn ErrorBox(error: ConsoleError) -> impl IntoView {
    let (title, hint) = match &error {
        ConsoleError::Unauthenticated => ("Signed out", "Your session has ended. Sign in again to continue."),
        ConsoleError::Forbidden => ("Not allowed", "Your role cannot see or change this."),
        ConsoleError::NotFound => ("Not found", "It may have been removed, or the link is wrong."),
        ConsoleError::Unavailable => ("Gateway unavailable", "The gateway did not answer. Try again in a moment."),
        ConsoleError::Invalid(_) | ConsoleError::Conflict(_) => ("Not saved", ""),
        _ => ("Something went wrong", "The details are in the server log."),
    };
    let message = match &error {
        ConsoleError::Invalid(m) | ConsoleError::Conflict(m) => m.clone(),
        other => other.to_string(),
    };
    let signin = matches!(error, ConsoleError::Unauthenticated);
    view! {
        <div class="alert alert-error" role="alert" data-testid="error" data-error=error.code()>
            <strong>{title}</strong>
            <span>{message}</span>
            {(!hint.is_empty()).then(|| view! { <span class="muted">{hint}</span> })}
            {signin.then(|| view! { <a class="button" href="/login">"Sign in"</a> })}
        </div>
    }
}

/// The result of an action: nothing yet, an error, or a success message.
pub fn action_result<T: Clone + Send + Sync + 'static>(
    value: Option<Result<T, ConsoleError>>,
    ok: &'static str,
) -> AnyView {
    match value {
        None => ().into_any(),
        Some(Ok(_)) => view! { <p class="alert alert-ok" role="status" data-testid="saved">{ok}</p> }.into_any(),
        Some(Err(e)) => view! { <ErrorBox error=e/> }.into_any(),
    }
}

#[component]
pub fn Empty(#[prop(into)] title: String, #[prop(into, optional)] hint: String) -> impl IntoView {
    view! {
        <div class="empty" data-testid="empty">
            <div class="empty-mark" aria-hidden="true">"◇"</div>
            <strong>{title}</strong>
            {(!hint.is_empty()).then(|| view! { <span class="muted">{hint}</span> })}
        </div>
    }
}

#[component]
pub fn Loading() -> impl IntoView {
    view! { <div class="loading" aria-busy="true">"Loading…"</div> }
}

#[component]
pub fn StatusBadge(status: TenantStatus) -> impl IntoView {
    let class = match status {
        TenantStatus::Active => "badge badge-healthy",
        TenantStatus::Suspended => "badge badge-unreachable",
    };
    view! { <span class=class data-testid="tenant-status">{status.as_str()}</span> }
}

#[component]
pub fn TierBadge(tier: Tier) -> impl IntoView {
    view! { <span class=format!("pill pill-{}", tier.as_str())>{tier.as_str()}</span> }
}

/// A number with a label, and an optional trend.
#[component]
pub fn Stat(
    #[prop(into)] label: String,
    #[prop(into)] value: String,
    #[prop(into, optional)] hint: String,
    #[prop(into, optional)] testid: String,
    #[prop(optional)] trend: Option<Vec<f64>>,
) -> impl IntoView {
    view! {
        <div class="stat" data-testid=testid>
            <span class="stat-label">{label.clone()}</span>
            <span class="stat-value">{value}</span>
            {(!hint.is_empty()).then(|| view! { <span class="stat-hint">{hint}</span> })}
            {trend.map(|t| view! { <crate::charts::Sparkline values=t label=format!("{label} trend")/> })}
        </div>
    }
}

/// Copies `text` to the clipboard (after hydration; before, the text can
/// still be selected by hand).
#[component]
pub fn CopyButton(#[prop(into)] text: String, #[prop(into, optional)] testid: String) -> impl IntoView {
    let (label, set_label) = signal("Copy");
    let on_click = move |_| {
        #[cfg(feature = "hydrate")]
        {
            let text = text.clone();
            leptos::task::spawn_local(async move {
                let clipboard = window().navigator().clipboard();
                let done = wasm_bindgen_futures::JsFuture::from(clipboard.write_text(&text)).await;
                set_label.set(if done.is_ok() { "Copied" } else { "Select and copy" });
            });
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = (&text, set_label);
        }
    };
    view! {
        <button type="button" class="button button-quiet" data-testid=testid on:click=on_click>
            {move || label.get()}
        </button>
    }
}

/// A new key's secret, shown once.
#[component]
pub fn KeyReveal(key: KeyCreated) -> impl IntoView {
    view! {
        <div class="key-reveal" data-testid="key-reveal">
            <strong>"New key: copy it now. It will not be shown again."</strong>
            <div class="key-row">
                <input class="mono key-secret" readonly=true value=key.key.clone() data-testid="key-secret" aria-label="API key"/>
                <CopyButton text=key.key.clone() testid="copy-key"/>
            </div>
            <span class="muted">
                {format!("Key {} · prefix {}", key.name.clone().unwrap_or_else(|| key.id.clone()), key.prefix)}
            </span>
        </div>
    }
}

/// A destructive action asked about first. The button (`label`,
/// `data-testid` = `testid`) opens an inline dialog (`role="alertdialog"`)
/// that asks `question`, naming the object; `children` is the form that
/// sends the action, whose submit button answers yes (Escape or "Cancel"
/// closes the dialog and gives the focus back to the button).
#[component]
pub fn Confirmed(
    #[prop(into)] label: String,
    #[prop(into)] question: String,
    #[prop(into)] testid: String,
    #[prop(into)] class: String,
    children: Children,
) -> impl IntoView {
    let open = RwSignal::new(false);
    let question_id = format!("confirm-{}-{}", testid, crate::format::short_id(&question));
    let labelled = question_id.clone();
    let opener = NodeRef::<leptos::html::Button>::new();
    let close = move || {
        open.set(false);
        if let Some(b) = opener.get_untracked() {
            let _ = b.focus();
        }
    };
    view! {
        <span class="confirmed">
            <button
                type="button"
                class=class
                node_ref=opener
                data-testid=testid
                aria-haspopup="dialog"
                aria-expanded=move || open.get().to_string()
                hidden=move || open.get()
                on:click=move |_| open.set(true)
            >
                {label}
            </button>
            <span
                class="confirm-inline"
                role="alertdialog"
                aria-labelledby=labelled
                data-testid="confirm-dialog"
                hidden=move || !open.get()
                on:keydown=move |ev| {
                    if ev.key() == "Escape" {
                        close();
                    }
                }
            >
                <span id=question_id class="confirm-question">{question}</span>
                {children()}
                <button type="button" class="button button-quiet button-small" data-testid="confirm-cancel" on:click=move |_| close()>
                    "Cancel"
                </button>
            </span>
        </span>
    }
}

/// Rows shown per page of a console list.
pub const PAGE_SIZE: u64 = 50;

/// One page of a list read on the server, and where it sits in the whole.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ListPage<T> {
    pub rows: Vec<T>,
    /// How many match in all.
    pub total: u64,
    /// Rows before this page.
    pub offset: u64,
}

/// An `offset` query parameter → a row offset (malformed: the first page).
pub fn parse_offset(text: Option<&str>) -> u64 {
    text.and_then(|t| t.trim().parse::<u64>().ok()).map(|o| o - o % PAGE_SIZE).unwrap_or(0)
}

/// The links of a pager: the current page's query string with `param` set
/// to `offset` (other parameters kept, in order).
pub fn page_href(path: &str, query: &[(String, String)], param: &str, offset: u64) -> String {
    let mut parts: Vec<String> = query
        .iter()
        .filter(|(k, v)| k != param && !v.is_empty())
        .map(|(k, v)| format!("{}={}", crate::format::format_url_component(k), crate::format::format_url_component(v)))
        .collect();
    if offset > 0 {
        parts.push(format!("{param}={offset}"));
    }
    if parts.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", parts.join("&"))
    }
}

/// "51–100 of 10,000" with Previous and Next links (plain links: they work
/// without JavaScript, and the server renders the page asked for).
#[component]
pub fn Pager(
    /// The list's path (`/tenants`).
    #[prop(into)]
    path: String,
    /// The query parameter holding the offset (`offset`, `keys_offset`).
    #[prop(default = "offset")]
    param: &'static str,
    total: u64,
    offset: u64,
    shown: usize,
    /// The page's current query string, as pairs.
    query: Vec<(String, String)>,
    #[prop(into, optional)] testid: String,
) -> impl IntoView {
    let first = if shown == 0 { 0 } else { offset + 1 };
    let last = offset + shown as u64;
    let prev = (offset > 0).then(|| page_href(&path, &query, param, offset.saturating_sub(PAGE_SIZE)));
    let next = (last < total).then(|| page_href(&path, &query, param, offset + PAGE_SIZE));
    let testid = if testid.is_empty() { "pager".to_string() } else { testid };
    view! {
        <nav class="pager" aria-label="Pages" data-testid=testid>
            <span class="muted" data-testid="pager-range">
                {format!("{}–{} of {}", crate::format::thousands(first), crate::format::thousands(last), crate::format::thousands(total))}
            </span>
            {match prev {
                Some(href) => view! { <a class="button button-quiet button-small" href=href rel="prev" data-testid="pager-prev">"‹ Previous"</a> }.into_any(),
                None => view! { <span class="button button-quiet button-small" aria-disabled="true">"‹ Previous"</span> }.into_any(),
            }}
            {match next {
                Some(href) => view! { <a class="button button-quiet button-small" href=href rel="next" data-testid="pager-next">"Next ›"</a> }.into_any(),
                None => view! { <span class="button button-quiet button-small" aria-disabled="true">"Next ›"</span> }.into_any(),
            }}
        </nav>
    }
}

#[cfg(test)]
mod pager_tests {
    use super::*;

    #[test]
    fn pager_links_keep_the_filters() {
        let q = vec![
            ("q".to_string(), "acme corp".to_string()),
            ("offset".into(), "50".into()),
            ("tier".into(), String::new()),
        ];
        assert_eq!(page_href("/tenants", &q, "offset", 100), "/tenants?q=acme%20corp&offset=100");
        assert_eq!(page_href("/tenants", &q, "offset", 0), "/tenants?q=acme%20corp");
        assert_eq!(page_href("/tenants", &[], "offset", 0), "/tenants");
        assert_eq!(parse_offset(Some("120")), 100, "pages start at multiples of the page size");
        assert_eq!(parse_offset(Some("-5")), 0);
        assert_eq!(parse_offset(None), 0);
    }
}
