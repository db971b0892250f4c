//! Cost attribution: spend by tenant, by cost center and by model over a
//! chosen range, as SVG charts (stacked bars over time, cumulative lines)
//! with a table beside each, and CSV export (`/costs/export.csv`).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};
use sheepdog_types::UsageSeries;

use crate::charts::{LineChart, Series, StackedBarChart};
use crate::components::{Empty, ErrorBox, Loading, PageHeader};
use crate::error::ConsoleError;
use crate::format::{day, hour, thousands, usd, usd_nanos};

/// Ranges the page offers.
pub const RANGES: [(&str, &str); 4] =
    [("24h", "Last 24 h"), ("7d", "Last 7 days"), ("30d", "Last 30 days"), ("month", "This month")];

/// The four breakdowns over one range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostReport {
    pub range: String,
    pub from: String,
    pub to: String,
    pub by_tenant: UsageSeries,
    pub by_cost_center: UsageSeries,
    pub by_model: UsageSeries,
    /// By client format (`chat`, `messages`, `responses`, `embeddings`).
    pub by_ingress: UsageSeries,
}

/// Most series drawn in one chart; the rest are summed as "other".
const MAX_SERIES: usize = 6;

#[cfg(feature = "ssr")]
pub mod ssr {
    use axum::body::Body;
    use axum::http::{header, Request, StatusCode};
    use axum::response::{IntoResponse, Response};
    use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
    use leptos::prelude::*;
    use leptos::reactive::computed::ScopedFuture;
    use sheepdog_types::UsageSeries;

    use crate::error::ConsoleError;
    use crate::state::ConsoleState;

    fn ts(t: DateTime<Utc>) -> String {
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    /// A range name (or `custom` with `YYYY-MM-DD` dates) → (name, from, to).
    pub fn resolve(
        range: &str,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<(String, String, String), ConsoleError> {
        let now = Utc::now();
        let next_hour =
            Utc.timestamp_opt(now.timestamp() - now.timestamp().rem_euclid(3600) + 3600, 0).single().unwrap_or(now);
        let date = |t: &str| -> Result<DateTime<Utc>, ConsoleError> {
            NaiveDate::parse_from_str(t.trim(), "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| Utc.from_utc_datetime(&d))
                .ok_or_else(|| ConsoleError::Invalid(format!("{t:?} is not a date (YYYY-MM-DD).")))
        };
        let (name, a, b) = match (range, from.filter(|f| !f.is_empty()), to.filter(|t| !t.is_empty())) {
            ("custom", Some(f), Some(t)) => {
                let (a, b) = (date(f)?, date(t)? + Duration::days(1));
                if a >= b {
                    return Err(ConsoleError::Invalid("The start date must not be after the end date.".into()));
                }
                if b - a > Duration::days(400) {
                    return Err(ConsoleError::Invalid("Choose at most 400 days.".into()));
                }
                ("custom", a, b)
            }
            ("custom", _, _) => return Err(ConsoleError::Invalid("Give both a start and an end date.".into())),
            ("24h", _, _) => ("24h", next_hour - Duration::hours(24), next_hour),
            ("30d", _, _) => {
                let end = Utc.from_utc_datetime(
                    &(now.date_naive() + Duration::days(1)).and_hms_opt(0, 0, 0).unwrap_or_default(),
                );
                ("30d", end - Duration::days(30), end)
            }
            ("month", _, _) => {
                let start = NaiveDate::from_ymd_opt(now.year(), now.month(), 1).unwrap_or(now.date_naive());
                let next = if now.month() == 12 {
                    NaiveDate::from_ymd_opt(now.year() + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(now.year(), now.month() + 1, 1)
                }
                .unwrap_or(start);
                (
                    "month",
                    Utc.from_utc_datetime(&start.and_hms_opt(0, 0, 0).unwrap_or_default()),
                    Utc.from_utc_datetime(&next.and_hms_opt(0, 0, 0).unwrap_or_default()),
                )
            }
            _ => {
                let end = Utc.from_utc_datetime(
                    &(now.date_naive() + Duration::days(1)).and_hms_opt(0, 0, 0).unwrap_or_default(),
                );
                ("7d", end - Duration::days(7), end)
            }
        };
        Ok((name.to_string(), ts(a), ts(b)))
    }

    /// CSV of one breakdown: `group,key,label,requests,input_tokens,output_tokens,cost_usd`.
    pub fn to_csv(series: &UsageSeries) -> String {
        fn cell(text: &str) -> String {
            // Quote every text cell; neutralise spreadsheet formulas.
            let t = if text.starts_with(['=', '+', '-', '@']) { format!("'{text}") } else { text.to_string() };
            format!("\"{}\"", t.replace('"', "\"\""))
        }
        let mut out = String::from("group_by,key,label,from,to,requests,input_tokens,output_tokens,cost_usd\n");
        for r in &series.series {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{}\n",
                series.group_by,
                cell(&r.key),
                cell(&r.label),
                series.from,
                series.to,
                r.requests,
                r.input_tokens,
                r.output_tokens,
                r.cost_usd
            ));
        }
        out
    }

    /// `GET /costs/export.csv?group_by=&range=&from=&to=`: staff only.
    pub async fn csv_export(state: ConsoleState, request: Request<Body>) -> Response {
        let (parts, _) = request.into_parts();
        let query: std::collections::HashMap<String, String> = parts
            .uri
            .query()
            .map(|q| {
                q.split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.replace('+', " ")))
                    .collect()
            })
            .unwrap_or_default();
        let owner = Owner::new();
        let result = owner
            .with(|| {
                ScopedFuture::new(async move {
                    provide_context(parts);
                    provide_context(state.clone());
                    crate::auth::ssr::require_staff().await?;
                    let group = query.get("group_by").map(String::as_str).unwrap_or("tenant");
                    if !matches!(group, "tenant" | "cost_center" | "model" | "ingress") {
                        return Err(ConsoleError::Invalid(
                            "group_by must be tenant, cost_center, model or ingress".into(),
                        ));
                    }
                    let (range, from, to) = resolve(
                        query.get("range").map(String::as_str).unwrap_or("7d"),
                        query.get("from").map(String::as_str),
                        query.get("to").map(String::as_str),
                    )?;
                    let series = state.api().usage_series(group, &from, &to, Some("day"), None).await?;
                    Ok((format!("sheepdog-cost-{group}-{range}.csv"), to_csv(&series)))
                })
            })
            .await;
        match result {
            Ok((name, csv)) => (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                    (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
                ],
                csv,
            )
                .into_response(),
            Err(ConsoleError::Unauthenticated) => (StatusCode::UNAUTHORIZED, "sign in first\n").into_response(),
            Err(ConsoleError::Forbidden) => (StatusCode::FORBIDDEN, "not allowed\n").into_response(),
            Err(ConsoleError::Invalid(m)) => (StatusCode::BAD_REQUEST, format!("{m}\n")).into_response(),
            Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
        }
    }
}

/// Spend by tenant, cost center, model and client format over a range.
#[server(endpoint = "cost_report")]
pub async fn get_cost_report(
    range: String,
    from: Option<String>,
    to: Option<String>,
) -> Result<CostReport, ConsoleError> {
    use crate::auth::ssr::{require_staff, with_status};
    require_staff().await?;
    let (range, from, to) = ssr::resolve(&range, from.as_deref(), to.as_deref()).map_err(with_status)?;
    let state = crate::state::ConsoleState::current()?;
    let api = state.api();
    let (t, c, m, i) = tokio::join!(
        api.usage_series("tenant", &from, &to, None, None),
        api.usage_series("cost_center", &from, &to, None, None),
        api.usage_series("model", &from, &to, None, None),
        api.usage_series("ingress", &from, &to, None, None),
    );
    Ok(CostReport {
        range,
        from,
        to,
        by_tenant: t.map_err(with_status)?,
        by_cost_center: c.map_err(with_status)?,
        by_model: m.map_err(with_status)?,
        by_ingress: i.map_err(with_status)?,
    })
}

/// Chart series from a usage series: the largest `MAX_SERIES - 1` and "other".
pub fn chart_series(s: &UsageSeries, cumulative: bool) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    let n = s.buckets.len();
    let to_usd = |v: &[i64]| -> Vec<f64> {
        let mut acc = 0i64;
        v.iter()
            .map(|x| {
                if cumulative {
                    acc += x;
                    acc as f64 / 1e9
                } else {
                    *x as f64 / 1e9
                }
            })
            .collect()
    };
    let split = if s.series.len() > MAX_SERIES { MAX_SERIES - 1 } else { s.series.len() };
    for r in &s.series[..split] {
        out.push(Series { name: r.label.clone(), values: to_usd(&r.values_nanos) });
    }
    if s.series.len() > split {
        let mut other = vec![0i64; n];
        for r in &s.series[split..] {
            for (o, v) in other.iter_mut().zip(&r.values_nanos) {
                *o += v;
            }
        }
        out.push(Series { name: format!("other ({})", s.series.len() - split), values: to_usd(&other) });
    }
    out
}

/// X labels of a series' buckets.
pub fn bucket_labels(s: &UsageSeries) -> Vec<String> {
    s.buckets.iter().map(|b| if s.bucket == "hour" { hour(b) } else { day(b) }).collect()
}

fn money_axis(v: f64) -> String {
    usd_nanos((v * 1e9).round() as i64)
}

#[component]
pub fn CostsPage() -> impl IntoView {
    let query = use_query_map();
    let get = move |k: &str| query.with(|q| q.get(k).filter(|v| !v.is_empty()));
    let report = Resource::new(
        move || (get("range").unwrap_or_else(|| "7d".into()), get("from"), get("to")),
        |(r, f, t)| get_cost_report(r, f, t),
    );
    view! {
        <Title text="Cost attribution"/>
        <PageHeader title="Cost attribution" subtitle="Who spends what, on which models, for which cost centers (X-Cost-Center)."/>
        <form class="filters" method="get" action="/costs" data-testid="range-form">
            <div class="segmented" role="group" aria-label="Range">
                {RANGES
                    .iter()
                    .map(|(value, label)| {
                        let v = value.to_string();
                        let active = move || get("range").unwrap_or_else(|| "7d".into()) == v;
                        view! {
                            <a
                                href=format!("/costs?range={value}")
                                class=move || if active() { "seg seg-active" } else { "seg" }
                                data-testid=format!("range-{value}")
                            >
                                {*label}
                            </a>
                        }
                    })
                    .collect_view()}
            </div>
            <input type="hidden" name="range" value="custom"/>
            <label class="inline">"From " <input type="date" name="from" value=move || get("from").unwrap_or_default()/></label>
            <label class="inline">"To " <input type="date" name="to" value=move || get("to").unwrap_or_default()/></label>
            <button type="submit" class="button button-quiet">"Apply"</button>
        </form>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match report.await {
                    Ok(r) => view! { <CostBody r=r/> }.into_any(),
                    Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn CostBody(r: CostReport) -> impl IntoView {
    let total: i64 = r.by_tenant.series.iter().map(|s| s.cost_nanos).sum();
    let requests: u64 = r.by_tenant.series.iter().map(|s| s.requests).sum();
    let range_q = if r.range == "custom" {
        format!("range=custom&from={}&to={}", &r.from[..10.min(r.from.len())], &r.to[..10.min(r.to.len())])
    } else {
        format!("range={}", r.range)
    };
    view! {
        <p class="muted" data-testid="cost-range">
            {format!("{} to {} (UTC) · {} requests · ", crate::format::datetime(&r.from), crate::format::datetime(&r.to), thousands(requests))}
            <strong data-testid="cost-total">{usd_nanos(total)}</strong>
            " total"
        </p>
        <section class="card">
            <h2>"Cumulative spend by tenant"</h2>
            <LineChart
                title="Cumulative spend by tenant"
                labels=bucket_labels(&r.by_tenant)
                series=chart_series(&r.by_tenant, true)
                fmt=money_axis
                testid="chart-cumulative"
            />
        </section>
        <Breakdown title="By tenant" series=r.by_tenant.clone() csv=format!("/costs/export.csv?group_by=tenant&{range_q}") testid="by-tenant"/>
        <Breakdown title="By cost center" series=r.by_cost_center.clone() csv=format!("/costs/export.csv?group_by=cost_center&{range_q}") testid="by-cost-center"/>
        <Breakdown title="By model" series=r.by_model.clone() csv=format!("/costs/export.csv?group_by=model&{range_q}") testid="by-model"/>
        <Breakdown title="By client format" series=r.by_ingress.clone() csv=format!("/costs/export.csv?group_by=ingress&{range_q}") testid="by-ingress"/>
    }
    .into_any()
}

/// A stacked bar chart over time with its table beside it.
#[component]
pub fn Breakdown(
    #[prop(into)] title: String,
    series: UsageSeries,
    #[prop(into, optional)] csv: String,
    #[prop(into)] testid: String,
) -> impl IntoView {
    let total: i64 = series.series.iter().map(|s| s.cost_nanos).sum::<i64>().max(0);
    let link_tenants = series.group_by == "tenant";
    let rows = series.series.clone();
    view! {
        <section class="card breakdown" data-testid=testid.clone()>
            <div class="card-head">
                <h2>{title.clone()}</h2>
                {(!csv.is_empty()).then(|| view! { <a class="button button-quiet" href=csv.clone() download="" data-testid=format!("{testid}-csv")>"Export CSV"</a> })}
            </div>
            {if rows.is_empty() {
                view! { <Empty title="No usage in this range" hint="Requests appear here as soon as they finish."/> }.into_any()
            } else {
                view! {
                    <div class="split">
                        <StackedBarChart title=format!("Spend {}", title.to_lowercase()) labels=bucket_labels(&series) series=chart_series(&series, false) fmt=money_axis testid=format!("{testid}-chart")/>
                        <table class="table table-compact" data-testid=format!("{testid}-table")>
                            <thead>
                                <tr><th></th><th>"Key"</th><th class="num">"Requests"</th><th class="num">"Tokens in / out"</th><th class="num">"Spend"</th><th class="num">"Share"</th></tr>
                            </thead>
                            <tbody>
                                {rows
                                    .into_iter()
                                    .enumerate()
                                    .map(|(i, s)| {
                                        let share = if total > 0 { s.cost_nanos as f64 / total as f64 * 100.0 } else { 0.0 };
                                        let name = if link_tenants {
                                            view! { <a href=format!("/tenants/{}", s.key)>{s.label.clone()}</a> }.into_any()
                                        } else {
                                            view! { <span>{s.label.clone()}</span> }.into_any()
                                        };
                                        view! {
                                            <tr data-testid="cost-row" data-key=s.key.clone()>
                                                <td><span class="swatch" style=format!("background:{}", crate::charts::color(i.min(MAX_SERIES - 1)))></span></td>
                                                <td>{name}</td>
                                                <td class="num">{thousands(s.requests)}</td>
                                                <td class="num">{format!("{} / {}", crate::format::compact(s.input_tokens as f64), crate::format::compact(s.output_tokens as f64))}</td>
                                                <td class="num" data-testid="cost-value">{usd(&s.cost_usd)}</td>
                                                <td class="num">{format!("{share:.1} %")}</td>
                                            </tr>
                                        }
                                    })
                                    .collect_view()}
                            </tbody>
                        </table>
                    </div>
                }
                    .into_any()
            }}
        </section>
    }
    .into_any()
}

#[cfg(test)]
#[cfg(feature = "ssr")]
mod tests {
    use super::*;
    use sheepdog_types::UsageSeriesRow;

    fn row(key: &str, v: Vec<i64>) -> UsageSeriesRow {
        UsageSeriesRow {
            key: key.into(),
            label: key.into(),
            cost_nanos: v.iter().sum(),
            values_nanos: v,
            requests_per_bucket: vec![],
            requests: 1,
            input_tokens: 1,
            output_tokens: 1,
            cost_usd: "0".into(),
        }
    }

    #[test]
    fn extra_series_become_other() {
        let s = UsageSeries {
            from: String::new(),
            to: String::new(),
            group_by: "model".into(),
            bucket: "day".into(),
            buckets: vec!["2026-11-01T00:00:00Z".into(), "2026-11-02T00:00:00Z".into()],
            series: (0..8).map(|i| row(&format!("m{i}"), vec![1_000_000_000, i])).collect(),
        };
        let c = chart_series(&s, false);
        assert_eq!(c.len(), MAX_SERIES);
        assert_eq!(c[MAX_SERIES - 1].name, "other (3)");
        assert_eq!(c[MAX_SERIES - 1].values[0], 3.0);
        let cum = chart_series(&s, true);
        assert_eq!(cum[0].values, vec![1.0, 1.0]);
        assert_eq!(bucket_labels(&s), vec!["Nov 1", "Nov 2"]);
    }

    #[test]
    fn csv_quotes_and_neutralises_formulas() {
        let s = UsageSeries {
            from: "a".into(),
            to: "b".into(),
            group_by: "cost_center".into(),
            bucket: "day".into(),
            buckets: vec![],
            series: vec![row("=cmd\"x", vec![5])],
        };
        let csv = ssr::to_csv(&s);
        assert!(csv.contains("\"'=cmd\"\"x\""), "{csv}");
        assert!(csv.starts_with("group_by,key,label"));
    }

    #[test]
    fn ranges_resolve() {
        let (name, from, to) = ssr::resolve("custom", Some("2026-01-01"), Some("2026-01-31")).unwrap();
        assert_eq!(
            (name.as_str(), from.as_str(), to.as_str()),
            ("custom", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z")
        );
        assert!(ssr::resolve("custom", Some("2026-02-01"), Some("2026-01-01")).is_err());
        assert_eq!(ssr::resolve("bogus", None, None).unwrap().0, "7d");
        assert_eq!(ssr::resolve("24h", None, None).unwrap().0, "24h");
    }
}
