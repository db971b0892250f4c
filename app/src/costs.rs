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
use crate::format::{day, hour, money_value, thousands, usd, usd_nanos, usd_ticks};
use crate::range::RangePicker;

/// The four breakdowns over one range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostReport {
    pub range: String,
    pub from: String,
    pub to: String,
    /// When the report was read: buckets that start after it are in the future.
    pub now: String,
    pub by_tenant: UsageSeries,
    pub by_cost_center: UsageSeries,
    pub by_model: UsageSeries,
    /// By client format (`chat`, `messages`, `responses`, `embeddings`).
    pub by_ingress: UsageSeries,
}

/// Most series drawn in one chart; the rest are summed as "other".
const MAX_SERIES: usize = 6;

/// Most rows a breakdown's table lists; the rest are one "N more" row (the
/// gateway sums them; the CSV export has them all).
pub const MAX_ROWS: usize = 25;

#[cfg(feature = "ssr")]
pub mod ssr {
    use axum::body::Body;
    use axum::http::{header, Request, StatusCode};
    use axum::response::{IntoResponse, Response};
    use leptos::prelude::*;
    use leptos::reactive::computed::ScopedFuture;
    use sheepdog_types::UsageSeries;

    use crate::error::ConsoleError;
    use crate::state::ConsoleState;

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
                    let (range, from, to) = crate::range::ssr::resolve(
                        query.get("range").map(String::as_str).unwrap_or("7d"),
                        query.get("from").map(String::as_str),
                        query.get("to").map(String::as_str),
                        "7d",
                    )?;
                    let series = state.api().usage_series(group, &from, &to, Some("day"), None, None).await?;
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
    let (range, from, to) =
        crate::range::ssr::resolve(&range, from.as_deref(), to.as_deref(), "7d").map_err(with_status)?;
    let state = crate::state::ConsoleState::current()?;
    let api = state.api();
    let top = Some(MAX_ROWS);
    let (t, c, m, i) = tokio::join!(
        api.usage_series("tenant", &from, &to, None, None, top),
        api.usage_series("cost_center", &from, &to, None, None, top),
        api.usage_series("model", &from, &to, None, None, top),
        api.usage_series("ingress", &from, &to, None, None, top),
    );
    Ok(CostReport {
        range,
        from,
        to,
        now: crate::range::ssr::now(),
        by_tenant: t.map_err(with_status)?,
        by_cost_center: c.map_err(with_status)?,
        by_model: m.map_err(with_status)?,
        by_ingress: i.map_err(with_status)?,
    })
}

/// Chart series from a usage series: the largest `MAX_SERIES - 1` and
/// "other". Buckets that start after `now` are in the future: not a number,
/// so no point or bar is drawn there.
pub fn chart_series(s: &UsageSeries, cumulative: bool, now: &str) -> Vec<Series> {
    let to_usd = |v: &[i64]| -> Vec<f64> {
        let mut acc = 0i64;
        v.iter()
            .zip(&s.buckets)
            .map(|(x, start)| {
                acc += x;
                if start.as_str() > now {
                    f64::NAN
                } else if cumulative {
                    acc as f64 / 1e9
                } else {
                    *x as f64 / 1e9
                }
            })
            .collect()
    };
    s.clone()
        .keep_top(MAX_SERIES - 1)
        .series
        .iter()
        .map(|r| {
            let name = if r.key == sheepdog_types::OTHER_KEY { "other".to_string() } else { r.label.clone() };
            Series { name, values: to_usd(&r.values_nanos) }
        })
        .collect()
}

/// X labels of a series' buckets.
pub fn bucket_labels(s: &UsageSeries) -> Vec<String> {
    s.buckets.iter().map(|b| if s.bucket == "hour" { hour(b) } else { day(b) }).collect()
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
        <RangePicker action="/costs" default="7d"/>
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
                series=chart_series(&r.by_tenant, true, &r.now)
                fmt=money_value
                ticks=usd_ticks
                testid="chart-cumulative"
            />
        </section>
        <Breakdown title="By tenant" series=r.by_tenant.clone() now=r.now.clone() csv=format!("/costs/export.csv?group_by=tenant&{range_q}") testid="by-tenant"/>
        <Breakdown title="By cost center" series=r.by_cost_center.clone() now=r.now.clone() csv=format!("/costs/export.csv?group_by=cost_center&{range_q}") testid="by-cost-center"/>
        <Breakdown title="By model" series=r.by_model.clone() now=r.now.clone() csv=format!("/costs/export.csv?group_by=model&{range_q}") testid="by-model"/>
        <Breakdown title="By client format" series=r.by_ingress.clone() now=r.now.clone() csv=format!("/costs/export.csv?group_by=ingress&{range_q}") testid="by-ingress"/>
    }
    .into_any()
}

/// A stacked bar chart over time with its table beside it.
#[component]
pub fn Breakdown(
    #[prop(into)] title: String,
    series: UsageSeries,
    /// When the data was read (see [`chart_series`]).
    #[prop(into)]
    now: String,
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
                        <StackedBarChart title=format!("Spend {}", title.to_lowercase()) labels=bucket_labels(&series) series=chart_series(&series, false, &now) fmt=money_value ticks=usd_ticks testid=format!("{testid}-chart")/>
                        <div class="table-scroll" tabindex="0" role="region" aria-label=format!("{title} (table)")>
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
                                        let name = if link_tenants && s.key != sheepdog_types::OTHER_KEY {
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
        let now = "2026-11-02T10:00:00Z";
        let c = chart_series(&s, false, now);
        assert_eq!(c.len(), MAX_SERIES);
        assert_eq!(c[MAX_SERIES - 1].name, "other");
        assert_eq!(c[MAX_SERIES - 1].values[0], 3.0);
        let cum = chart_series(&s, true, now);
        assert_eq!(cum[0].values, vec![1.0, 1.0]);
        // The second day has not begun: nothing is drawn there.
        let early = chart_series(&s, true, "2026-11-01T23:59:59Z");
        assert_eq!(early[1].values[0], 1.0);
        assert!(early[1].values[1].is_nan());
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
}
