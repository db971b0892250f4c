//! The analysis page: the upload form (the browser streams the file to
//! [`super::UPLOAD_PATH`]) and, once answered, the report.

use leptos::prelude::*;
use leptos_meta::Title;

use super::report::AnalysisView;
use super::{analysis_settings, bytes, AnalysisResult, UploadSettings};
#[cfg(feature = "hydrate")]
use super::{too_large_message, UPLOAD_PATH};
use crate::components::{ErrorBox, Loading, PageHeader};
#[cfg(feature = "ssr")]
use crate::error::ConsoleError;

#[cfg(feature = "ssr")]
fn set_status_forbidden() {
    if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
        res.set_status(axum::http::StatusCode::FORBIDDEN);
    }
}

#[component]
pub fn AnalysesPage() -> impl IntoView {
    let settings = Resource::new(|| (), |_| analysis_settings());
    view! {
        <Title text="Migration analysis"/>
        <PageHeader
            title="Migration analysis"
            subtitle="Upload an API log (JSON lines, LiteLLM or Sheepdog exports, CSV; gzip or not): peak concurrency, recommended limits and tier per tenant, monthly cost now and under a model mapping."
        />
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match settings.await {
                    Ok(s) => view! { <Analyser settings=s/> }.into_any(),
                    Err(e) => {
                        #[cfg(feature = "ssr")]
                        if e == ConsoleError::Forbidden {
                            set_status_forbidden();
                        }
                        view! { <ErrorBox error=e/> }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

/// Sends the file (streamed by the browser from disk) and reads the answer.
#[cfg(feature = "hydrate")]
async fn send(url: &str, file: &leptos::web_sys::File) -> Result<(u16, String), String> {
    use leptos::wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;
    let init = leptos::web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(file.as_ref());
    let promise = window().fetch_with_str_and_init(url, &init);
    let resp = JsFuture::from(promise).await.map_err(|_| "The upload did not reach the console.".to_string())?;
    let resp: leptos::web_sys::Response = resp.dyn_into().map_err(|_| "Unexpected answer.".to_string())?;
    let text = resp.text().map_err(|_| "Unreadable answer.".to_string())?;
    let text = JsFuture::from(text).await.map_err(|_| "Unreadable answer.".to_string())?;
    Ok((resp.status(), text.as_string().unwrap_or_default()))
}

/// The error message of a refused upload.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub(crate) fn upload_error(status: u16, body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_string))
        .unwrap_or_else(|| format!("The upload failed (HTTP {status})."))
}

#[component]
fn Analyser(settings: UploadSettings) -> impl IntoView {
    let file_ref = NodeRef::<leptos::html::Input>::new();
    let tenant_field = NodeRef::<leptos::html::Input>::new();
    let map = NodeRef::<leptos::html::Input>::new();
    let margin = NodeRef::<leptos::html::Input>::new();
    let capacity = NodeRef::<leptos::html::Input>::new();
    let timestamp_at = NodeRef::<leptos::html::Select>::new();
    let format = NodeRef::<leptos::html::Select>::new();
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let result = RwSignal::new(None::<AnalysisResult>);
    let limit = settings.max_upload_bytes;
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        {
            let value = |r: NodeRef<leptos::html::Input>| r.get().map(|i| i.value()).unwrap_or_default();
            let select = |r: NodeRef<leptos::html::Select>| r.get().map(|i| i.value()).unwrap_or_default();
            let Some(file) = file_ref.get().and_then(|i| i.files()).and_then(|f| f.get(0)) else {
                error.set(Some("Choose a log file first.".into()));
                return;
            };
            let size = file.size() as u64;
            if size > limit {
                error.set(Some(too_large_message(Some(size), limit)));
                return;
            }
            if size == 0 {
                error.set(Some("The file is empty: choose a log file.".into()));
                return;
            }
            let pairs = [
                ("format", select(format)),
                ("tenant_field", value(tenant_field)),
                ("map", value(map)),
                ("margin", value(margin)),
                ("upstream_concurrency", value(capacity)),
                ("timestamp_at", select(timestamp_at)),
            ];
            let query: Vec<String> = pairs
                .iter()
                .filter(|(_, v)| !v.trim().is_empty())
                .map(|(k, v)| format!("{k}={}", crate::format::format_url_component(v.trim())))
                .collect();
            let url =
                if query.is_empty() { UPLOAD_PATH.to_string() } else { format!("{UPLOAD_PATH}?{}", query.join("&")) };
            busy.set(true);
            error.set(None);
            result.set(None);
            leptos::task::spawn_local(async move {
                // `try_set`: the page may have been left while the upload ran.
                match send(&url, &file).await {
                    Ok((200, body)) => match serde_json::from_str::<AnalysisResult>(&body) {
                        Ok(r) => {
                            let _ = result.try_set(Some(r));
                        }
                        Err(_) => {
                            let _ = error.try_set(Some("The console answered an unreadable report.".into()));
                        }
                    },
                    Ok((status, body)) => {
                        let _ = error.try_set(Some(upload_error(status, &body)));
                    }
                    Err(e) => {
                        let _ = error.try_set(Some(e));
                    }
                }
                let _ = busy.try_set(false);
            });
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = (file_ref, tenant_field, map, margin, capacity, timestamp_at, format, limit);
        }
    };
    let form = view! {
        <form class="card form form-grid form-grid-2" data-testid="analysis-form" on:submit=on_submit>
            <fieldset>
                <legend>"Log file"</legend>
                <label>
                    "File " <span class="muted">{format!("(at most {})", bytes(limit))}</span>
                    <input type="file" node_ref=file_ref required=true data-testid="analysis-file"/>
                </label>
                <label>
                    "Format"
                    <select node_ref=format data-testid="analysis-format">
                        <option value="">"detect from the content"</option>
                        <option value="jsonl">"JSON lines"</option>
                        <option value="litellm-json">"LiteLLM spend logs (JSON)"</option>
                        <option value="litellm-csv">"LiteLLM spend logs (CSV)"</option>
                        <option value="sheepdog-jsonl">"Sheepdog usage export (JSON lines)"</option>
                        <option value="sheepdog-csv">"Sheepdog usage export (CSV)"</option>
                        <option value="csv">"other CSV"</option>
                    </select>
                </label>
                <label>
                    "Timestamps are the"
                    <select node_ref=timestamp_at data-testid="analysis-timestamp-at">
                        <option value="">"start of each request"</option>
                        <option value="end">"end of each request"</option>
                    </select>
                </label>
            </fieldset>
            <fieldset>
                <legend>"Options"</legend>
                <label>
                    "Tenant field " <span class="muted">"(dotted path, e.g. metadata.tenant_id; empty: the usual places)"</span>
                    <input node_ref=tenant_field data-testid="analysis-tenant-field"/>
                </label>
                <label>
                    "Model mapping " <span class="muted">"(projected cost, e.g. gpt-4.1=deepseek-v3.2)"</span>
                    <input node_ref=map data-testid="analysis-map"/>
                </label>
                <label>
                    "Margin over the peaks, %"
                    <input type="number" min="0" max="1000" node_ref=margin placeholder="25" data-testid="analysis-margin"/>
                </label>
                <label>
                    "Upstream capacity " <span class="muted">"(concurrent requests; empty: the providers' max_concurrency, else the observed peak)"</span>
                    <input type="number" min="1" node_ref=capacity data-testid="analysis-capacity"/>
                </label>
            </fieldset>
            <div class="form-actions">
                <noscript><span class="muted">"The upload needs JavaScript; without it, run `sheepdog analyze FILE`."</span></noscript>
                <button type="submit" class="button" data-testid="analysis-submit" disabled=move || busy.get()>
                    {move || if busy.get() { "Analysing…" } else { "Analyse" }}
                </button>
            </div>
        </form>
    }
    .into_any();
    view! {
        {form}
        {move || error.get().map(|e| view! {
            <div class="alert alert-error" role="alert" data-testid="analysis-error"><strong>"Not analysed"</strong><span>{e}</span></div>
        })}
        {move || result.get().map(|r| view! { <AnalysisView result=r/> })}
    }
    .into_any()
}
