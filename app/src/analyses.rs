//! Migration analysis upload (SPEC §7, operators): a log file goes from the
//! browser through the console to the gateway's `POST /admin/v1/analyses`
//! as a stream (never held in memory, at most
//! `gateway.max_analysis_upload_bytes`), and the report comes back: a
//! summary, each tenant's recommendation, the report's own charts, and an
//! "Apply" button per tenant that turns a recommendation into the matching
//! tenant's tier and limits after a confirmation showing the change.
//!
//! The upload is a plain route of the console server (`POST
//! /analyses/upload`, [`ssr::upload`]) rather than a server function, so the
//! body can be piped to the gateway chunk by chunk; it checks the session
//! and the role like the server functions do, and the CSRF guard in front
//! of the console checks its origin.

use leptos::prelude::*;
use leptos_meta::Title;
use serde::{Deserialize, Serialize};
use sheepdog_types::{Limits, Tenant, TenantStatus, Tier};

use crate::charts::{LineChart, Series};
use crate::components::{ErrorBox, Loading, PageHeader, TierBadge};
use crate::format::{compact, datetime, thousands, usd};
use crate::ConsoleError;

/// Where the page sends the log file.
pub const UPLOAD_PATH: &str = "/analyses/upload";

/// Query parameters the upload accepts (passed on to the gateway).
pub const PARAMS: [&str; 7] =
    ["format", "tenant_field", "map", "csv_map", "timestamp_at", "upstream_concurrency", "margin"];

// ---- the parts of report.json (schema sheepdog.analysis.v1) the page shows ----

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Money {
    pub usd: String,
    pub nanos: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Peak {
    pub value: u64,
    pub at: Option<String>,
    pub active_tenants: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rate {
    pub p50: u64,
    pub p95: u64,
    pub peak: u64,
    pub peak_minute: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RecommendedLimits {
    pub requests_per_minute: u64,
    pub tokens_per_minute: u64,
    pub max_concurrency: u64,
    pub margin_percent: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cost {
    pub monthly: Money,
    pub projected_monthly: Money,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Usage {
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub peak_concurrency: Peak,
    pub requests_per_minute: Rate,
    pub tokens_per_minute: Rate,
    pub recommended_limits: RecommendedLimits,
    pub cost: Cost,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TierRecommendation {
    /// `dedicated` or `shared`.
    pub tier: String,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TenantReport {
    /// The tenant identifier as the log names it.
    pub tenant: String,
    pub share_of_requests: f64,
    #[serde(flatten)]
    pub usage: Usage,
    pub recommendation: TierRecommendation,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CostSummary {
    pub price_table: String,
    pub model_map: std::collections::BTreeMap<String, String>,
    pub monthly: Money,
    pub projected_monthly: Money,
    pub monthly_change: Money,
    pub change_percent: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Window {
    pub first: Option<String>,
    pub last: Option<String>,
    pub span_ms: i64,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Quality {
    pub lines: u64,
    pub records: u64,
    pub malformed: u64,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeriesLine {
    pub name: String,
    pub requests: Vec<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeriesReport {
    pub start_ms: i64,
    pub bucket_ms: i64,
    pub lines: Vec<SeriesLine>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InputSummary {
    pub format: String,
    pub gzip: bool,
}

/// `report.json` as far as the page needs it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Report {
    pub schema: String,
    pub inputs: Vec<InputSummary>,
    pub window: Window,
    pub quality: Quality,
    pub overall: Usage,
    pub tenants: Vec<TenantReport>,
    pub cost: CostSummary,
    pub series: SeriesReport,
}

// ---- tenant matching and the change a recommendation makes -------------------------

/// The console tenant a log's tenant identifier names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchedTenant {
    pub id: String,
    pub name: String,
    /// `id`, `alias` or `name`.
    pub matched_by: String,
    pub tier: Tier,
    pub status: TenantStatus,
    pub limits: Limits,
}

/// The tier and limits a recommendation sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedChange {
    pub tier: Tier,
    /// Why the tier differs from the recommendation's, if it does.
    pub tier_note: Option<String>,
    pub requests_per_minute: u64,
    pub tokens_per_minute: u64,
    pub max_concurrency: u64,
}

impl PlannedChange {
    /// Whether `t` already has exactly these settings.
    pub fn is_applied_to(&self, t: &MatchedTenant) -> bool {
        t.tier == self.tier
            && t.limits.requests_per_minute == self.requests_per_minute
            && t.limits.tokens_per_minute == self.tokens_per_minute
            && t.limits.max_concurrency == Some(self.max_concurrency)
    }
}

/// One tenant of the report with its match and planned change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantPlan {
    /// The identifier in the log.
    pub tenant: String,
    pub matched: Option<MatchedTenant>,
    /// Why no tenant matched (the Apply button is disabled with this text).
    pub unmatched: Option<String>,
    pub change: PlannedChange,
}

/// What the upload answers the page.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnalysisResult {
    pub report: Report,
    /// The self-contained `report.html` (shown in a sandboxed frame).
    pub html: String,
    /// One per `report.tenants`, in the same order.
    pub plans: Vec<TenantPlan>,
}

/// The console tenant `key` (a log's tenant identifier) names: its id, one of
/// its aliases, or its name (ignoring case) when exactly one tenant has it.
pub fn match_tenant(key: &str, tenants: &[Tenant]) -> Result<MatchedTenant, String> {
    let key = key.trim();
    if key.is_empty() || key == "(none)" {
        return Err("These records carry no tenant identifier.".into());
    }
    if key == "(other)" {
        return Err("Several tenants folded together (the report keeps the largest ones apart).".into());
    }
    let found = |t: &Tenant, by: &str| MatchedTenant {
        id: t.id.clone(),
        name: t.name.clone(),
        matched_by: by.into(),
        tier: t.tier,
        status: t.status,
        limits: t.limits.clone(),
    };
    if let Some(t) = tenants.iter().find(|t| t.id.eq_ignore_ascii_case(key)) {
        return Ok(found(t, "id"));
    }
    if let Some(t) = tenants.iter().find(|t| t.aliases.iter().any(|a| a == key)) {
        return Ok(found(t, "alias"));
    }
    let named: Vec<&Tenant> = tenants.iter().filter(|t| t.name.trim().eq_ignore_ascii_case(key)).collect();
    match named.as_slice() {
        [t] => Ok(found(t, "name")),
        [] => Err(format!(
            "No tenant has the id, alias or name {key:?}: create it, or add {key:?} as an alias of the right tenant."
        )),
        many => Err(format!(
            "{} tenants are named {key:?}: add {key:?} as an alias of the right one to tell them apart.",
            many.len()
        )),
    }
}

/// The settings a tenant's recommendation turns into: the recommended tier
/// (a `shared` recommendation keeps a `pooled` tenant pooled: it shares
/// upstream capacity the same way and draws on its credit pool) and the
/// recommended limits (each at least 1).
pub fn planned_change(t: &TenantReport, current: Option<Tier>) -> PlannedChange {
    let recommended = if t.recommendation.tier == "dedicated" { Tier::Dedicated } else { Tier::Shared };
    let (tier, tier_note) = match (recommended, current) {
        (Tier::Shared, Some(Tier::Pooled)) => {
            (Tier::Pooled, Some("stays pooled: pooled tenants share upstream capacity like shared ones".to_string()))
        }
        (r, _) => (r, None),
    };
    let l = &t.usage.recommended_limits;
    PlannedChange {
        tier,
        tier_note,
        requests_per_minute: l.requests_per_minute.max(1),
        tokens_per_minute: l.tokens_per_minute.max(1),
        max_concurrency: l.max_concurrency.max(1),
    }
}

/// Every tenant of `report` with its match among `tenants` and its change.
pub fn plans(report: &Report, tenants: &[Tenant]) -> Vec<TenantPlan> {
    report
        .tenants
        .iter()
        .map(|t| {
            let (matched, unmatched) = match match_tenant(&t.tenant, tenants) {
                Ok(m) => (Some(m), None),
                Err(why) => (None, Some(why)),
            };
            let change = planned_change(t, matched.as_ref().map(|m| m.tier));
            TenantPlan { tenant: t.tenant.clone(), matched, unmatched, change }
        })
        .collect()
}

/// `1536` → `1.5 KiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The message for a file over the limit.
pub fn too_large_message(size: Option<u64>, limit: u64) -> String {
    let what = match size {
        Some(s) => format!("The file is {}", bytes(s)),
        None => "The upload is larger than that".to_string(),
    };
    format!(
        "{what}; the most an analysis accepts is {} (gateway.max_analysis_upload_bytes). \
         Compress it with gzip (the analysis reads gzip), or run `sheepdog analyze FILE` on the server.",
        bytes(limit)
    )
}

/// Epoch milliseconds → `MM-DD hh:mm` (UTC), for chart labels.
pub fn utc_label(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 → civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    format!("{m:02}-{d:02} {:02}:{:02}", rem / 3600, rem % 3600 / 60)
}

// ---- server ------------------------------------------------------------------------

/// What the page needs before an upload: the size limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSettings {
    pub max_upload_bytes: u64,
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::{header, Request, StatusCode};
    use axum::response::{IntoResponse, Response};
    use futures::StreamExt;
    use leptos::prelude::*;
    use leptos::reactive::computed::ScopedFuture;

    use super::{plans, too_large_message, AnalysisResult, Report, PARAMS};
    use crate::api::{actor_for, enc, AnalyzeFailure};
    use crate::{ConsoleError, ConsoleState};

    /// The longest an upload and its analysis may take.
    const UPLOAD_TIMEOUT: Duration = Duration::from_secs(15 * 60);

    fn fail(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
        let body = serde_json::json!({"error": code, "message": message.into()});
        (status, axum::Json(body)).into_response()
    }

    fn refused(e: ConsoleError) -> Response {
        match e {
            ConsoleError::Unauthenticated => {
                fail(StatusCode::UNAUTHORIZED, e.code(), "Your session has ended; sign in again.")
            }
            ConsoleError::Forbidden => {
                fail(StatusCode::FORBIDDEN, e.code(), "Only admins and operators can run an analysis.")
            }
            other => fail(StatusCode::SERVICE_UNAVAILABLE, other.code(), other.to_string()),
        }
    }

    /// `%XX` and `+` decoding of one query component.
    fn decode(text: &str) -> String {
        let b = text.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                        Ok(v) => {
                            out.push(v);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The gateway's query string from the page's: only the known
    /// parameters, empty values dropped, each re-encoded.
    pub fn gateway_query(query: &str) -> Result<String, String> {
        let mut parts = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (decode(k), decode(v));
            if !PARAMS.contains(&k.as_str()) {
                return Err(format!("Unknown option `{k}`; accepted: {}.", PARAMS.join(", ")));
            }
            let v = v.trim();
            if !v.is_empty() {
                parts.push(format!("{k}={}", enc(v)));
            }
        }
        Ok(if parts.is_empty() { String::new() } else { format!("?{}", parts.join("&")) })
    }

    /// `POST /analyses/upload`: the signed-in admin or operator's log file,
    /// piped to the gateway as it arrives (never buffered whole), at most
    /// [`ConsoleState::max_upload_bytes`]. Answers [`AnalysisResult`] as
    /// JSON, or `{"error", "message"}` with 400, 401, 403, 413, 502 or 503.
    pub async fn upload(state: ConsoleState, request: Request<Body>) -> Response {
        let (parts, body) = request.into_parts();
        let query = parts.uri.query().unwrap_or("").to_string();
        let declared =
            parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        // The same check as every operator server function: session, then role.
        let owner = Owner::new();
        let user = {
            let state = state.clone();
            owner
                .with(|| {
                    ScopedFuture::new(async move {
                        provide_context(parts);
                        provide_context(state);
                        crate::auth::ssr::require_operator().await
                    })
                })
                .await
        };
        let user = match user {
            Ok(u) => u,
            Err(e) => return refused(e),
        };
        let query = match gateway_query(&query) {
            Ok(q) => q,
            Err(m) => return fail(StatusCode::BAD_REQUEST, "invalid", m),
        };
        let limit = state.max_upload_bytes();
        if declared.is_some_and(|n| n > limit) {
            return fail(StatusCode::PAYLOAD_TOO_LARGE, "too_large", too_large_message(declared, limit));
        }
        if declared == Some(0) {
            return fail(StatusCode::BAD_REQUEST, "invalid", "The file is empty: choose a log file.");
        }
        // Counted as it streams: a body without a length (or lying about it)
        // is cut off at the limit.
        let over = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(AtomicU64::new(0));
        let stream = {
            let (over, seen) = (over.clone(), seen.clone());
            body.into_data_stream().map(move |chunk| {
                let chunk = chunk.map_err(|e| std::io::Error::other(e.to_string()))?;
                let total = seen.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
                if total > limit {
                    over.store(true, Ordering::Relaxed);
                    return Err(std::io::Error::other("the upload is over the size limit"));
                }
                Ok(chunk)
            })
        };
        let actor = actor_for(&user.email);
        tracing::info!(email = %user.email, bytes = ?declared, "analysis upload");
        let answer =
            state.api().analyze(&actor, &query, reqwest::Body::wrap_stream(stream), declared, UPLOAD_TIMEOUT).await;
        let value = match answer {
            Ok(v) => v,
            Err(_) if over.load(Ordering::Relaxed) => {
                return fail(StatusCode::PAYLOAD_TOO_LARGE, "too_large", too_large_message(None, limit));
            }
            Err(AnalyzeFailure::Refused { status: 413, message, .. }) => {
                return fail(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message);
            }
            Err(AnalyzeFailure::Refused { status: 400 | 422, message, .. }) => {
                return fail(StatusCode::BAD_REQUEST, "invalid", message);
            }
            Err(AnalyzeFailure::Refused { status: 401, .. }) => {
                tracing::error!("the gateway refused the console's admin token");
                return fail(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "The gateway refused the console.");
            }
            Err(AnalyzeFailure::Refused { status, message, .. }) => {
                tracing::warn!(status, %message, "the analysis failed");
                return fail(StatusCode::BAD_GATEWAY, "unavailable", format!("The analysis failed: {message}"));
            }
            Err(AnalyzeFailure::Transport(e)) => {
                tracing::warn!(error = %e, "analysis upload: the gateway did not answer");
                return fail(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "The gateway did not answer the upload; try again.",
                );
            }
        };
        let report: Report = match value.get("report").cloned().map(serde_json::from_value) {
            Some(Ok(r)) => r,
            _ => {
                tracing::error!("the gateway's analysis has no readable report");
                return fail(StatusCode::BAD_GATEWAY, "internal", "The gateway answered without a report.");
            }
        };
        let html = value.get("html").and_then(|h| h.as_str()).unwrap_or_default().to_string();
        let tenants = match state.api().tenants().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "analysis: tenants could not be read for matching");
                Vec::new()
            }
        };
        let plans = plans(&report, &tenants);
        axum::Json(AnalysisResult { report, html, plans }).into_response()
    }

    #[cfg(test)]
    #[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    mod tests {
        use super::*;

        #[test]
        fn only_known_options_reach_the_gateway() {
            assert_eq!(gateway_query("").unwrap(), "");
            assert_eq!(
                gateway_query("map=gpt-4.1%3Ddeepseek-v3.2&margin=10&tenant_field=&format=jsonl").unwrap(),
                "?map=gpt-4.1%3Ddeepseek-v3.2&margin=10&format=jsonl"
            );
            assert_eq!(gateway_query("tenant_field=metadata.tenant+id").unwrap(), "?tenant_field=metadata.tenant%20id");
            assert!(gateway_query("colour=blue").unwrap_err().contains("colour"));
            assert_eq!(decode("a%2"), "a%2");
            assert_eq!(decode("%zz%41"), "%zzA");
        }
    }
}

/// The page's settings (admins and operators only).
#[server(endpoint = "analysis_settings")]
pub async fn analysis_settings() -> Result<UploadSettings, ConsoleError> {
    use crate::auth::ssr::require_operator;
    require_operator().await?;
    Ok(UploadSettings { max_upload_bytes: crate::ConsoleState::current()?.max_upload_bytes() })
}

/// Sets a tenant's tier and limits from an analysis' recommendation (two
/// audited admin API changes: `tenant.update` when the tier changes, then
/// `tenant.limits`).
#[server(endpoint = "apply_analysis")]
pub async fn apply_analysis(
    tenant_id: String,
    tier: String,
    requests_per_minute: u64,
    tokens_per_minute: u64,
    max_concurrency: u64,
) -> Result<Tenant, ConsoleError> {
    use crate::auth::ssr::{require_operator, with_status};
    let user = require_operator().await?;
    let Some(tier) = Tier::parse(tier.trim()) else {
        return Err(with_status(ConsoleError::Invalid("Tier must be shared or dedicated.".into())));
    };
    if requests_per_minute == 0 || tokens_per_minute == 0 || max_concurrency == 0 {
        return Err(with_status(ConsoleError::Invalid("Every limit must be at least 1.".into())));
    }
    let state = crate::ConsoleState::current()?;
    let actor = crate::api::actor_for(&user.email);
    let current = state.api().tenant(tenant_id.trim()).await.map_err(with_status)?;
    if tier == Tier::Pooled && current.tier != Tier::Pooled {
        return Err(with_status(ConsoleError::Invalid(
            "An analysis never moves a tenant to the pooled tier; do that on the tenant's page.".into(),
        )));
    }
    if current.tier != tier {
        let body = serde_json::json!({ "tier": tier.as_str() });
        state.api().patch_tenant(&actor, &current.id, &body).await.map_err(with_status)?;
    }
    let body = serde_json::json!({
        "requests_per_minute": requests_per_minute,
        "tokens_per_minute": tokens_per_minute,
        "max_concurrency": max_concurrency,
    });
    let after = state.api().put_limits(&actor, &current.id, &body).await.map_err(with_status)?;
    tracing::info!(email = %user.email, tenant = %after.id, "analysis recommendation applied");
    Ok(after)
}

// ---- the page ---------------------------------------------------------------------

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
fn upload_error(status: u16, body: &str) -> String {
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
                .map(|(k, v)| format!("{k}={}", crate::format_url_component(v.trim())))
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

fn tier_of(t: Tier) -> &'static str {
    t.as_str()
}

fn concurrency(c: Option<u64>) -> String {
    c.map(thousands).unwrap_or_else(|| "no limit".into())
}

#[component]
fn AnalysisView(result: AnalysisResult) -> impl IntoView {
    let AnalysisResult { report, html, plans } = result;
    let plans = RwSignal::new(plans);
    let o = report.overall.clone();
    let c = report.cost.clone();
    let change = match c.change_percent {
        Some(p) => format!("{p:+.1} %"),
        None => "—".into(),
    };
    let mapped = !c.model_map.is_empty();
    let window = match (&report.window.first, &report.window.last) {
        (Some(a), Some(b)) => format!("{} → {} (UTC)", datetime(a), datetime(b)),
        _ => "—".into(),
    };
    let chart = {
        let s = &report.series;
        let n = s.lines.iter().map(|l| l.requests.len()).max().unwrap_or(0);
        let labels: Vec<String> = (0..n).map(|i| utc_label(s.start_ms + s.bucket_ms * i as i64)).collect();
        let series: Vec<Series> = s
            .lines
            .iter()
            .map(|l| Series { name: l.name.clone(), values: l.requests.iter().map(|v| *v as f64).collect() })
            .collect();
        (labels, series)
    };
    let tenants = report.tenants.clone();
    view! {
        <section class="analysis" data-testid="analysis-result">
            <h2>"Summary"</h2>
            <div class="stats" data-testid="analysis-summary">
                <div class="stat" data-testid="analysis-records">
                    <span class="stat-label">"Requests analysed"</span>
                    <span class="stat-value">{thousands(report.quality.records)}</span>
                    <span class="stat-hint">{format!("{} malformed lines skipped", thousands(report.quality.malformed))}</span>
                </div>
                <div class="stat" data-testid="analysis-peak">
                    <span class="stat-label">"Peak concurrency"</span>
                    <span class="stat-value">{thousands(o.peak_concurrency.value)}</span>
                    <span class="stat-hint">{o.peak_concurrency.at.as_deref().map(datetime).unwrap_or_default()}</span>
                </div>
                <div class="stat" data-testid="analysis-rpm">
                    <span class="stat-label">"Requests per minute (peak)"</span>
                    <span class="stat-value">{thousands(o.requests_per_minute.peak)}</span>
                    <span class="stat-hint">{format!("p50 {} · p95 {}", thousands(o.requests_per_minute.p50), thousands(o.requests_per_minute.p95))}</span>
                </div>
                <div class="stat" data-testid="analysis-cost-now">
                    <span class="stat-label">"Monthly cost now"</span>
                    <span class="stat-value">{usd(&c.monthly.usd)}</span>
                    <span class="stat-hint">{c.price_table.clone()}</span>
                </div>
                <div class="stat" data-testid="analysis-cost-projected">
                    <span class="stat-label">{if mapped { "Monthly cost projected" } else { "Monthly cost projected (no mapping)" }}</span>
                    <span class="stat-value">{usd(&c.projected_monthly.usd)}</span>
                    <span class="stat-hint">{format!("{change} · {}", c.model_map.iter().map(|(a, b)| format!("{a} → {b}")).collect::<Vec<_>>().join(", "))}</span>
                </div>
            </div>
            <p class="muted" data-testid="analysis-window">
                {format!("Log window {window}; {} tenants.", report.tenants.len())}
                {report.window.note.clone().map(|n| format!(" {n}"))}
            </p>
            {(!report.quality.warnings.is_empty()).then(|| view! {
                <ul class="alert alert-warn">
                    {report.quality.warnings.iter().map(|w| view! { <li>{w.clone()}</li> }).collect_view()}
                </ul>
            })}
            <h2>"Per tenant"</h2>
            <TenantTable tenants=tenants plans=plans/>
            <section class="card">
                <h3>"Requests over time"</h3>
                <LineChart title="Requests per bucket, by tenant" labels=chart.0 series=chart.1 fmt=compact testid="analysis-chart-requests"/>
            </section>
            <h2>"Full report"</h2>
            <p class="muted">"The report as `sheepdog analyze` writes it (report.html), with every chart and how each figure is computed."</p>
            <iframe class="report-frame" title="Migration analysis report" sandbox="" srcdoc=html data-testid="analysis-report-frame"></iframe>
        </section>
    }
    .into_any()
}

#[component]
fn TenantTable(tenants: Vec<TenantReport>, plans: RwSignal<Vec<TenantPlan>>) -> impl IntoView {
    let confirm = RwSignal::new(None::<usize>);
    let apply = ServerAction::<ApplyAnalysis>::new();
    let done = RwSignal::new(None::<String>);
    // A successful change updates the matched tenant in place.
    Effect::new(move |_| {
        if let Some(Ok(t)) = apply.value().get() {
            plans.update(|ps| {
                for p in ps.iter_mut() {
                    if let Some(m) = p.matched.as_mut().filter(|m| m.id == t.id) {
                        m.tier = t.tier;
                        m.limits = t.limits.clone();
                    }
                }
            });
            done.set(Some(format!("Applied to {}.", t.name)));
            confirm.set(None);
        }
    });
    let rows = tenants
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let l = t.usage.recommended_limits.clone();
            let reasons = t.recommendation.reasons.clone();
            let first = reasons.first().cloned().unwrap_or_default();
            let tier = t.recommendation.tier.clone();
            let key = t.tenant.clone();
            let data_key = key.clone();
            view! {
                <tr data-testid="analysis-tenant-row" data-tenant=data_key>
                    <td>
                        <strong class="mono">{key}</strong>
                        <div class="muted">
                            {move || plans.with(|ps| match ps.get(i).and_then(|p| p.matched.clone()) {
                                Some(m) => view! {
                                    <a href=format!("/tenants/{}", m.id) data-testid="analysis-match">{m.name.clone()}</a>
                                    {format!(" (by {}) · ", m.matched_by)}
                                    <TierBadge tier=m.tier/>
                                }.into_any(),
                                None => view! { <span data-testid="analysis-no-match">"no matching tenant"</span> }.into_any(),
                            })}
                        </div>
                    </td>
                    <td class="num">{thousands(t.usage.requests)}</td>
                    <td class="num" data-testid="analysis-peak-concurrency">{thousands(t.usage.peak_concurrency.value)}</td>
                    <td class="num" data-testid="analysis-limits">
                        {format!("{} req/min", thousands(l.requests_per_minute))}<br/>
                        {format!("{} tok/min", compact(l.tokens_per_minute as f64))}<br/>
                        {format!("{} concurrent", thousands(l.max_concurrency))}
                    </td>
                    <td data-testid="analysis-tier" data-tier=tier.clone()>
                        <span class=format!("pill pill-{tier}")>{tier.clone()}</span>
                        <details>
                            <summary class="muted">{first}</summary>
                            <ul>{reasons.into_iter().skip(1).map(|r| view! { <li>{r}</li> }).collect_view()}</ul>
                        </details>
                    </td>
                    <td class="num">{usd(&t.usage.cost.monthly.usd)}" → "{usd(&t.usage.cost.projected_monthly.usd)}</td>
                    <td>
                        {move || plans.with(|ps| {
                            let Some(p) = ps.get(i) else { return ().into_any() };
                            match (&p.matched, &p.unmatched) {
                                (Some(m), _) if p.change.is_applied_to(m) => view! {
                                    <span class="pill pill-ok" data-testid="apply-done">"applied"</span>
                                }.into_any(),
                                (Some(_), _) => view! {
                                    <button type="button" class="button button-quiet" data-testid="apply-recommendation" on:click=move |_| { done.set(None); confirm.set(Some(i)) }>
                                        "Apply…"
                                    </button>
                                }.into_any(),
                                (None, why) => view! {
                                    <button type="button" class="button button-quiet" disabled=true title=why.clone().unwrap_or_default() data-testid="apply-recommendation">"Apply…"</button>
                                    <div class="muted small" data-testid="apply-unavailable">{why.clone().unwrap_or_default()}</div>
                                }.into_any(),
                            }
                        })}
                    </td>
                </tr>
            }
            .into_any()
        })
        .collect_view();
    view! {
        <div class="card card-flush">
            <table class="table" data-testid="analysis-tenants">
                <thead>
                    <tr>
                        <th>"Tenant (log → console)"</th>
                        <th class="num">"Requests"</th>
                        <th class="num">"Peak concurrency"</th>
                        <th class="num">"Recommended limits"</th>
                        <th>"Recommended tier"</th>
                        <th class="num">"Monthly cost now → projected"</th>
                        <th></th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
        {move || done.get().map(|m| view! { <p class="alert alert-ok" role="status" data-testid="apply-saved">{m}</p> })}
        {move || apply.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorBox error=e/> })}
        {move || confirm.get().and_then(|i| plans.with(|ps| ps.get(i).cloned())).and_then(|p| p.matched.clone().map(|m| (p, m))).map(|(p, m)| {
            let ch = p.change.clone();
            let line = |key: &'static str, label: &'static str, before: String, after: String| {
                let same = before == after;
                let (data_before, data_after) = (before.clone(), after.clone());
                let shown = if same { "(unchanged)".to_string() } else { after };
                view! {
                    <tr data-testid=format!("apply-change-{key}") data-before=data_before data-after=data_after class:unchanged=same>
                        <th scope="row">{label}</th>
                        <td>{before}</td>
                        <td>{shown}</td>
                    </tr>
                }
            };
            let submit = {
                let (id, ch) = (m.id.clone(), ch.clone());
                move |_| {
                    apply.dispatch(ApplyAnalysis {
                        tenant_id: id.clone(),
                        tier: ch.tier.as_str().to_string(),
                        requests_per_minute: ch.requests_per_minute,
                        tokens_per_minute: ch.tokens_per_minute,
                        max_concurrency: ch.max_concurrency,
                    });
                }
            };
            view! {
                <div class="card form confirm-box" data-testid="apply-confirm">
                    <p>
                        <strong>{format!("Apply the recommendation for {} to tenant {}?", p.tenant, m.name)}</strong>
                        {(m.status == TenantStatus::Suspended).then_some(" The tenant is suspended.")}
                    </p>
                    <table class="table">
                        <thead><tr><th></th><th>"Now"</th><th>"After"</th></tr></thead>
                        <tbody>
                            {line("tier", "Tier", tier_of(m.tier).into(), tier_of(ch.tier).into())}
                            {line("rpm", "Requests per minute", thousands(m.limits.requests_per_minute), thousands(ch.requests_per_minute))}
                            {line("tpm", "Tokens per minute", thousands(m.limits.tokens_per_minute), thousands(ch.tokens_per_minute))}
                            {line("concurrency", "Max concurrency", concurrency(m.limits.max_concurrency), thousands(ch.max_concurrency))}
                        </tbody>
                    </table>
                    {ch.tier_note.clone().map(|n| view! { <p class="muted">{format!("Tier {n}.")}</p> })}
                    <p class="muted">"Both changes go through the admin API and are in the audit log under your name."</p>
                    <div class="form-actions">
                        <button type="button" class="button button-quiet" data-testid="apply-cancel" on:click=move |_| confirm.set(None)>"Cancel"</button>
                        <button type="button" class="button" data-testid="apply-submit" disabled=move || apply.pending().get() on:click=submit>
                            {move || if apply.pending().get() { "Applying…" } else { "Yes, apply" }}
                        </button>
                    </div>
                </div>
            }
            .into_any()
        })}
    }
    .into_any()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn tenant(id: &str, name: &str, aliases: &[&str], tier: Tier) -> Tenant {
        Tenant {
            id: id.into(),
            name: name.into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            tier,
            status: TenantStatus::Active,
            limits: Limits { requests_per_minute: 1000, tokens_per_minute: 1_000_000, max_concurrency: None },
            budget: Default::default(),
            allowed_models: None,
            created_at: String::new(),
            pool_id: None,
        }
    }

    fn report_tenant(key: &str, tier: &str, limits: (u64, u64, u64)) -> TenantReport {
        TenantReport {
            tenant: key.into(),
            usage: Usage {
                recommended_limits: RecommendedLimits {
                    requests_per_minute: limits.0,
                    tokens_per_minute: limits.1,
                    max_concurrency: limits.2,
                    margin_percent: 25,
                },
                ..Usage::default()
            },
            recommendation: TierRecommendation { tier: tier.into(), reasons: vec!["because".into()] },
            ..TenantReport::default()
        }
    }

    #[test]
    fn log_tenants_match_by_id_alias_or_unique_name() {
        let ts = vec![
            tenant("0b7c1a8e-1111-4aaa-8bbb-000000000001", "Acme Corp", &["acme"], Tier::Shared),
            tenant("0b7c1a8e-1111-4aaa-8bbb-000000000002", "Globex", &[], Tier::Pooled),
            tenant("0b7c1a8e-1111-4aaa-8bbb-000000000003", "Twin", &[], Tier::Shared),
            tenant("0b7c1a8e-1111-4aaa-8bbb-000000000004", "twin", &[], Tier::Shared),
        ];
        let m = match_tenant("0B7C1A8E-1111-4AAA-8BBB-000000000001", &ts).unwrap();
        assert_eq!((m.name.as_str(), m.matched_by.as_str()), ("Acme Corp", "id"));
        assert_eq!(match_tenant("acme", &ts).unwrap().matched_by, "alias");
        assert_eq!(match_tenant(" globex ", &ts).unwrap().matched_by, "name");
        assert!(match_tenant("twin", &ts).unwrap_err().contains("2 tenants are named"));
        assert!(match_tenant("initech", &ts).unwrap_err().contains("No tenant has the id, alias or name"));
        assert!(match_tenant("(none)", &ts).unwrap_err().contains("no tenant identifier"));
        assert!(match_tenant("(other)", &ts).is_err());
    }

    #[test]
    fn a_recommendation_becomes_tier_and_limits() {
        let ts = vec![
            tenant("0b7c1a8e-1111-4aaa-8bbb-000000000001", "Acme", &["acme"], Tier::Shared),
            tenant("0b7c1a8e-1111-4aaa-8bbb-000000000002", "Globex", &["globex"], Tier::Pooled),
        ];
        let report = Report {
            tenants: vec![
                report_tenant("acme", "dedicated", (750, 125_000, 8)),
                report_tenant("globex", "shared", (10, 0, 0)),
                report_tenant("nobody", "shared", (5, 5, 1)),
            ],
            ..Report::default()
        };
        let p = plans(&report, &ts);
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].change.tier, Tier::Dedicated);
        assert_eq!(
            (p[0].change.requests_per_minute, p[0].change.tokens_per_minute, p[0].change.max_concurrency),
            (750, 125_000, 8)
        );
        assert!(!p[0].change.is_applied_to(p[0].matched.as_ref().unwrap()));
        // A shared recommendation keeps a pooled tenant pooled; limits are at least 1.
        assert_eq!(p[1].change.tier, Tier::Pooled);
        assert!(p[1].change.tier_note.as_deref().unwrap().contains("pooled"));
        assert_eq!((p[1].change.tokens_per_minute, p[1].change.max_concurrency), (1, 1));
        assert!(p[2].matched.is_none() && p[2].unmatched.is_some());
        let mut m = p[0].matched.clone().unwrap();
        m.tier = Tier::Dedicated;
        m.limits = Limits { requests_per_minute: 750, tokens_per_minute: 125_000, max_concurrency: Some(8) };
        assert!(p[0].change.is_applied_to(&m));
    }

    #[test]
    fn report_json_is_read_leniently() {
        let json = serde_json::json!({
            "schema": "sheepdog.analysis.v1",
            "overall": {"requests": 3, "peak_concurrency": {"value": 2, "at": "2026-01-01T00:00:00.000Z", "active_tenants": 1},
                "recommended_limits": {"requests_per_minute": 4, "tokens_per_minute": 5, "max_concurrency": 3, "margin_percent": 25, "above_default_limits": false}},
            "tenants": [{"tenant": "acme", "requests": 3, "share_of_requests": 1.0,
                "cost": {"monthly": {"usd": "1.000000000", "nanos": 1000000000}},
                "recommendation": {"tier": "dedicated", "reasons": ["r"]}, "tags": []}],
            "something_new": true
        });
        let r: Report = serde_json::from_value(json).unwrap();
        assert_eq!(r.overall.peak_concurrency.value, 2);
        assert_eq!(r.tenants[0].usage.requests, 3);
        assert_eq!(r.tenants[0].usage.cost.monthly.nanos, 1_000_000_000);
        assert_eq!(r.tenants[0].recommendation.tier, "dedicated");
    }

    #[test]
    fn sizes_labels_and_messages() {
        assert_eq!(bytes(512), "512 bytes");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(268_435_456), "256.0 MiB");
        let m = too_large_message(Some(3 * 1024 * 1024), 1024 * 1024);
        assert!(
            m.contains("3.0 MiB") && m.contains("1.0 MiB") && m.contains("gateway.max_analysis_upload_bytes"),
            "{m}"
        );
        assert_eq!(utc_label(0), "01-01 00:00");
        assert_eq!(utc_label(1_772_323_200_000 + 3_723_000), "03-01 01:02"); // 2026-03-01T01:02:03Z
        assert_eq!(utc_label(951_782_400_000), "02-29 00:00"); // 2000-02-29
        assert_eq!(upload_error(413, r#"{"error":"too_large","message":"too big"}"#), "too big");
        assert_eq!(upload_error(500, "oops"), "The upload failed (HTTP 500).");
    }
}
