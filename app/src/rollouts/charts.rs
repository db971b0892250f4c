//! The rollout page's live charts: both sides over time, one chart per
//! measure.

use leptos::prelude::*;
use sheepdog_types::{SeriesSideView, SeriesView};

use crate::charts::{LineChart, Series, TickRule};
use crate::format::{compact, millis, money_value, parse_usd_nanos, usd_ticks};

/// The values of one live chart: `from` and `to` (or one series), a value
/// per bucket; `NaN` where a bucket has nothing to show (a gap in the line).
#[derive(Debug, Clone)]
pub struct ChartData {
    pub key: &'static str,
    pub title: &'static str,
    pub series: Vec<(String, Vec<f64>)>,
    pub fmt: fn(f64) -> String,
    /// Formats the axis ticks together (money: one number of decimals).
    pub ticks: TickRule,
}

/// The x axis of a live chart spans at least this many buckets, so that a
/// young rollout's first points start at the left.
pub const MIN_BUCKETS: usize = 12;

/// Up to two decimals, trailing zeros trimmed: `0.25`, `0.5`, `12`.
fn trim2(v: f64) -> String {
    let t = format!("{v:.2}");
    t.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn pct_axis(v: f64) -> String {
    format!("{} %", trim2(v))
}

/// Latency ticks: `0.25 ms` below 10 ms (fast upstreams), else `42 ms`, `1.25 s`.
fn ms_axis(v: f64) -> String {
    if v < 10.0 && v.fract() != 0.0 {
        format!("{} ms", trim2(v))
    } else {
        millis(v)
    }
}

fn ms_ticks(ticks: &[f64]) -> Vec<String> {
    ticks.iter().map(|v| ms_axis(*v)).collect()
}

fn rpm_axis(v: f64) -> String {
    format!("{}/min", compact(v))
}

/// `hh:mm:ss` of an RFC 3339 UTC time.
fn clock(start: &str) -> String {
    start.get(11..19).unwrap_or(start).to_string()
}

/// The x labels and the six live charts of a series: error rate, p50 and p99
/// latency, throughput and cost per 1,000 requests (from vs to), and the
/// shadow diff rate.
pub fn live_charts(series: &SeriesView, from: &str, to: &str) -> (Vec<String>, Vec<ChartData>) {
    let p = &series.points;
    let labels = p.iter().map(|x| clock(&x.start)).collect();
    let nan = f64::NAN;
    let both = |f: &dyn Fn(&SeriesSideView) -> f64| {
        vec![
            (format!("from {from}"), p.iter().map(|x| f(&x.from)).collect::<Vec<_>>()),
            (format!("to {to}"), p.iter().map(|x| f(&x.to)).collect::<Vec<_>>()),
        ]
    };
    let ms = |v: Option<u64>| v.map_or(nan, |v| v as f64);
    let charts = vec![
        ChartData {
            key: "error-rate",
            title: "Error rate",
            series: both(&|s| if s.requests == 0 { nan } else { s.error_rate_percent }),
            fmt: pct_axis,
            ticks: |t| t.iter().map(|v| pct_axis(*v)).collect(),
        },
        ChartData { key: "p50", title: "p50 latency", series: both(&|s| ms(s.p50_ms)), fmt: ms_axis, ticks: ms_ticks },
        ChartData { key: "p99", title: "p99 latency", series: both(&|s| ms(s.p99_ms)), fmt: ms_axis, ticks: ms_ticks },
        ChartData {
            key: "throughput",
            title: "Throughput",
            series: both(&|s| s.throughput_rpm),
            fmt: rpm_axis,
            ticks: |t| t.iter().map(|v| rpm_axis(*v)).collect(),
        },
        ChartData {
            key: "cost",
            title: "Cost per 1,000 requests",
            series: both(&|s| s.cost_per_1k_requests_usd.as_deref().map_or(nan, |c| parse_usd_nanos(c) as f64 / 1e9)),
            fmt: money_value,
            ticks: usd_ticks,
        },
        ChartData {
            key: "diff-rate",
            title: "Diff rate (shadow pairs whose outputs differ)",
            series: vec![("diff rate".into(), p.iter().map(|x| x.diff_rate_percent.unwrap_or(nan)).collect())],
            fmt: pct_axis,
            ticks: |t| t.iter().map(|v| pct_axis(*v)).collect(),
        },
    ];
    (labels, charts)
}

/// Both sides over time: one chart per measure, `from` and `to` as two lines.
#[component]
pub(crate) fn LiveCharts(series: SeriesView, from: String, to: String) -> impl IntoView {
    let (labels, charts) = live_charts(&series, &from, &to);
    let bucket = series.bucket_secs.max(1);
    view! {
        <h2>"Over time"</h2>
        <p class="muted" data-testid="rollout-charts-note">
            {format!(
                "{bucket}-second buckets since the rollout started (at most the last {} minutes), as this gateway measured them; the last bucket is still filling.",
                bucket * 90 / 60
            )}
        </p>
        <div class="grid grid-2" data-testid="rollout-charts">
            {charts
                .into_iter()
                .map(|c| {
                    let series: Vec<Series> = c.series.into_iter().map(|(name, values)| Series { name, values }).collect();
                    view! {
                        <section class="card">
                            <h3>{c.title}</h3>
                            <LineChart
                                title=c.title
                                labels=labels.clone()
                                series=series
                                fmt=c.fmt
                                testid=format!("rollout-chart-{}", c.key)
                                zero_is_data=true
                                ticks=c.ticks
                                min_slots=MIN_BUCKETS
                            />
                        </section>
                    }
                })
                .collect_view()}
        </div>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use sheepdog_types::SeriesPointView;

    use super::*;

    fn side(requests: u64, errors: u64, p50: Option<u64>, cost: Option<&str>) -> SeriesSideView {
        SeriesSideView {
            requests,
            errors,
            error_rate_percent: if requests == 0 { 0.0 } else { errors as f64 * 100.0 / requests as f64 },
            p50_ms: p50,
            p99_ms: p50.map(|p| p * 2),
            throughput_rpm: requests as f64 * 6.0,
            cost_nanos: 0,
            cost_per_1k_requests_usd: cost.map(str::to_string),
            ..SeriesSideView::default()
        }
    }

    #[test]
    fn live_charts_put_both_sides_side_by_side_with_gaps_for_quiet_buckets() {
        let series = SeriesView {
            bucket_secs: 10,
            points: vec![
                SeriesPointView {
                    start: "2026-03-01T12:00:00Z".into(),
                    complete: true,
                    from: side(4, 1, Some(20), Some("0.400000000")),
                    to: side(2, 0, Some(30), Some("1.000000000")),
                    shadow_pairs: 2,
                    shadow_differing: 1,
                    diff_rate_percent: Some(50.0),
                    ..SeriesPointView::default()
                },
                SeriesPointView { start: "2026-03-01T12:00:10Z".into(), ..SeriesPointView::default() },
            ],
        };
        let (labels, charts) = live_charts(&series, "a/m", "b/m");
        assert_eq!(labels, vec!["12:00:00", "12:00:10"]);
        let keys: Vec<&str> = charts.iter().map(|c| c.key).collect();
        assert_eq!(keys, vec!["error-rate", "p50", "p99", "throughput", "cost", "diff-rate"]);
        let get = |k: &str| charts.iter().find(|c| c.key == k).unwrap();
        let err = get("error-rate");
        assert_eq!(err.series[0].0, "from a/m");
        assert_eq!(err.series[1].0, "to b/m");
        assert_eq!(err.series[0].1[0], 25.0);
        assert!(err.series[0].1[1].is_nan(), "no requests: no error rate");
        assert_eq!(get("p99").series[1].1[0], 60.0);
        assert_eq!(get("throughput").series[0].1, vec![24.0, 0.0], "quiet means zero throughput");
        assert_eq!(get("cost").series[1].1[0], 1.0);
        assert!(get("cost").series[1].1[1].is_nan());
        assert_eq!(get("diff-rate").series.len(), 1);
        assert_eq!(get("diff-rate").series[0].1[0], 50.0);
        assert_eq!((get("cost").fmt)(0.4), "$0.400");
        assert_eq!((get("cost").ticks)(&[0.0, 0.25]), vec!["$0.00", "$0.25"]);
        assert_eq!((get("p50").fmt)(0.25), "0.25 ms");
        assert_eq!((get("p50").fmt)(0.5), "0.5 ms");
        assert_eq!((get("p99").fmt)(1250.0), "1.25 s");
        assert_eq!((get("error-rate").fmt)(0.5), "0.5 %");
        assert_eq!((get("error-rate").fmt)(0.25), "0.25 %");
        assert_eq!((get("diff-rate").fmt)(100.0), "100 %");
    }

    /// The console reads the gateway's own type: a report without one of
    /// its fields is refused rather than shown with zeros.
    #[test]
    fn the_detail_is_the_admin_api_report() {
        use sheepdog_types::{EventView, RolloutReport};
        let mut d = RolloutReport::default();
        d.rollout.phase = "rolled_back".into();
        d.events.push(EventView { reason: "why".into(), ..EventView::default() });
        d.series.points.push(SeriesPointView {
            from: SeriesSideView { requests: 3, p50_ms: Some(4), ..SeriesSideView::default() },
            ..SeriesPointView::default()
        });
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["phase"], "rolled_back", "the rollout is flattened into the report");
        assert_eq!(serde_json::from_value::<RolloutReport>(json.clone()).unwrap(), d);
        let mut partial = json;
        partial.as_object_mut().unwrap().remove("percent");
        assert!(serde_json::from_value::<RolloutReport>(partial).is_err());
    }
}
