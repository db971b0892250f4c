//! Small SVG charts: stacked bars, lines and sparklines.
//!
//! They render on the server as plain SVG (readable without JavaScript:
//! every bar and point carries a `<title>`, and a table sits beside each
//! chart), and gain hover tooltips once hydrated. The geometry is pure and
//! deterministic (fixed viewBox, one decimal), so the SVG is snapshot-tested.

use leptos::prelude::*;

/// A readable categorical palette (Tableau 10), in series order.
pub const PALETTE: [&str; 10] =
    ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

/// The colour of series `i`.
pub fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// Formats all ticks of an axis together (so they share one format).
pub type TickRule = fn(&[f64]) -> Vec<String>;

/// One named series of values, one per x label.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub values: Vec<f64>,
}

const W: f64 = 640.0;
const H: f64 = 240.0;
const RIGHT: f64 = 12.0;
/// Width of one tick-label character in viewBox units (11 px text, digits
/// and `$,.` at most ~0.6 em), with room to spare.
const CHAR_W: f64 = 6.8;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;
const MAX_X_LABELS: usize = 8;

fn r1(x: f64) -> String {
    let v = (x * 10.0).round() / 10.0;
    if v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A "nice" axis maximum and its ticks (0, step, 2·step, …).
pub fn nice_ticks(max: f64) -> (f64, Vec<f64>) {
    if !(max.is_finite() && max > 0.0) {
        return (1.0, vec![0.0, 0.25, 0.5, 0.75, 1.0]);
    }
    let raw = max / 4.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let top = (max / step).ceil().max(1.0) * step;
    let n = (top / step).round() as usize;
    (top, (0..=n).map(|i| i as f64 * step).collect())
}

/// Which x labels to print so that at most [`MAX_X_LABELS`] show.
fn label_every(n: usize) -> usize {
    n.div_ceil(MAX_X_LABELS).max(1)
}

fn plot_h() -> f64 {
    H - TOP - BOTTOM
}

/// The plot's horizontal frame: a left margin as wide as the longest tick
/// label, so that no label is clipped.
#[derive(Debug, Clone, Copy)]
struct Frame {
    left: f64,
}

impl Frame {
    fn for_labels(labels: &[String]) -> Frame {
        let chars = labels.iter().map(|l| l.chars().count()).max().unwrap_or(1) as f64;
        Frame { left: (chars * CHAR_W + 10.0).clamp(28.0, 160.0) }
    }

    fn plot_w(self) -> f64 {
        W - self.left - RIGHT
    }
}

fn y_of(v: f64, top: f64) -> f64 {
    TOP + plot_h() - (v / top) * plot_h()
}

/// Tick labels: the chart's own tick formatter (one rule for the whole
/// axis), else `fmt` per tick.
fn tick_labels(ticks: &[f64], fmt: fn(f64) -> String, rule: Option<TickRule>) -> Vec<String> {
    match rule {
        Some(rule) => rule(ticks),
        None => ticks.iter().map(|t| fmt(*t)).collect(),
    }
}

/// Axes: horizontal grid lines with value labels, x labels under the plot
/// (the last one kept inside the chart's right edge).
fn axes(
    ticks: &[f64],
    tick_text: &[String],
    top: f64,
    labels: &[String],
    centers: &[f64],
    frame: Frame,
) -> impl IntoView {
    let every = label_every(labels.len());
    let grid = ticks
        .iter()
        .zip(tick_text)
        .map(|(t, text)| {
            let y = r1(y_of(*t, top));
            view! {
                <line class="gridline" x1=r1(frame.left) x2=r1(W - RIGHT) y1=y.clone() y2=y.clone()></line>
                <text class="tick" x=r1(frame.left - 6.0) y=r1(y_of(*t, top) + 4.0) text-anchor="end">{text.clone()}</text>
            }
        })
        .collect_view();
    let xl = labels
        .iter()
        .zip(centers)
        .enumerate()
        .filter(|(i, _)| i % every == 0)
        .map(|(_, (l, x))| {
            let half = l.chars().count() as f64 * CHAR_W / 2.0;
            let (x, anchor) = if x + half > W { (W - 1.0, "end") } else { (*x, "middle") };
            view! { <text class="tick" x=r1(x) y=r1(H - 8.0) text-anchor=anchor>{l.clone()}</text> }
        })
        .collect_view();
    view! { <g class="axes">{grid}{xl}</g> }
}

/// Hover state: position (percent of the chart box) and text.
type Tip = RwSignal<Option<(f64, f64, String)>>;

fn tooltip(tip: Tip) -> impl IntoView {
    move || {
        tip.get().map(|(x, y, text)| {
            let side = if x > 60.0 { "right" } else { "left" };
            let style = if side == "right" {
                format!("right:{:.1}%;top:{:.1}%", 100.0 - x, y)
            } else {
                format!("left:{x:.1}%;top:{y:.1}%")
            };
            view! { <div class="chart-tip" role="status" style=style>{text}</div> }
        })
    }
}

/// A legend under a chart.
#[component]
pub fn Legend(names: Vec<String>) -> impl IntoView {
    view! {
        <ul class="legend">
            {names
                .into_iter()
                .enumerate()
                .map(|(i, n)| {
                    view! {
                        <li>
                            <span class="swatch" style=format!("background:{}", color(i))></span>
                            {n}
                        </li>
                    }
                })
                .collect_view()}
        </ul>
    }
}

/// Bars per x label, series stacked bottom-up in order.
#[component]
pub fn StackedBarChart(
    /// Accessible name of the chart.
    #[prop(into)]
    title: String,
    labels: Vec<String>,
    series: Vec<Series>,
    /// Formats tooltip values (and axis ticks without `ticks`).
    fmt: fn(f64) -> String,
    /// Formats all axis ticks together (one number of decimals).
    #[prop(optional)]
    ticks: Option<TickRule>,
    #[prop(into, optional)] testid: String,
) -> impl IntoView {
    let tip: Tip = RwSignal::new(None);
    let n = labels.len().max(1);
    // A value that is not positive (or not a number: a future bucket) draws nothing.
    let value = |s: &Series, i: usize| s.values.get(i).copied().filter(|v| *v > 0.0).unwrap_or(0.0);
    let totals: Vec<f64> = (0..labels.len()).map(|i| series.iter().map(|s| value(s, i)).sum()).collect();
    let (top, tick_values) = nice_ticks(totals.iter().copied().fold(0.0, f64::max));
    let tick_text = tick_labels(&tick_values, fmt, ticks);
    let frame = Frame::for_labels(&tick_text);
    let band = frame.plot_w() / n as f64;
    let bar_w = (band * 0.72).max(1.0);
    let centers: Vec<f64> = (0..labels.len()).map(|i| frame.left + band * (i as f64 + 0.5)).collect();
    let mut rects = Vec::new();
    for (i, label) in labels.iter().enumerate() {
        let mut base = 0.0;
        for (si, s) in series.iter().enumerate() {
            let v = value(s, i);
            if v <= 0.0 {
                continue;
            }
            let y0 = y_of(base, top);
            let y1 = y_of(base + v, top);
            base += v;
            let text = format!("{} · {}: {}", label, s.name, fmt(v));
            let (tx, ty) = ((centers[i]) / W * 100.0, (y1 / H * 100.0).max(0.0));
            let hover = text.clone();
            rects.push(view! {
                <rect
                    class="bar"
                    x=r1(centers[i] - bar_w / 2.0)
                    y=r1(y1)
                    width=r1(bar_w)
                    height=r1((y0 - y1).max(0.5))
                    fill=color(si)
                    on:mouseenter=move |_| tip.set(Some((tx, ty, hover.clone())))
                    on:mouseleave=move |_| tip.set(None)
                >
                    <title>{text}</title>
                </rect>
            });
        }
    }
    let names: Vec<String> = series.iter().map(|s| s.name.clone()).collect();
    let empty = totals.iter().all(|t| *t <= 0.0);
    view! {
        <figure class="chart" data-testid=testid>
            <div class="chart-box">
                <svg viewBox=format!("0 0 {W} {H}") role="img" aria-label=title.clone() preserveAspectRatio="xMidYMid meet">
                    {axes(&tick_values, &tick_text, top, &labels, &centers, frame)}
                    <g class="bars">{rects}</g>
                    {empty.then(|| view! { <text class="chart-empty" x=r1(W / 2.0) y=r1(H / 2.0) text-anchor="middle">"No data in this range"</text> })}
                </svg>
                {tooltip(tip)}
            </div>
            <Legend names=names/>
        </figure>
    }
    .into_any()
}

/// One line per series over the x labels, with a point per value; a value
/// that is not finite (`f64::NAN`) is a gap where the line breaks.
#[component]
pub fn LineChart(
    #[prop(into)] title: String,
    labels: Vec<String>,
    series: Vec<Series>,
    fmt: fn(f64) -> String,
    #[prop(into, optional)] testid: String,
    /// Zeros are measurements (a 0 ms latency, a 0 % error rate): only a
    /// chart without any value says "No data"; else all-zero says it too.
    #[prop(optional)]
    zero_is_data: bool,
    /// Formats all axis ticks together (one number of decimals).
    #[prop(optional)]
    ticks: Option<TickRule>,
    /// The x axis spans at least this many slots: a young series starts at
    /// the left instead of one dot in the middle.
    #[prop(optional)]
    min_slots: usize,
) -> impl IntoView {
    let tip: Tip = RwSignal::new(None);
    let n = labels.len();
    let max = series.iter().flat_map(|s| s.values.iter().copied()).fold(0.0, f64::max);
    let empty = if zero_is_data {
        !series.iter().flat_map(|s| s.values.iter().take(n)).any(|v| v.is_finite())
    } else {
        max <= 0.0
    };
    let (top, tick_values) = nice_ticks(max);
    let tick_text = tick_labels(&tick_values, fmt, ticks);
    let frame = Frame::for_labels(&tick_text);
    let slots = n.max(min_slots);
    let step = if slots > 1 { frame.plot_w() / (slots - 1) as f64 } else { 0.0 };
    let centers: Vec<f64> = (0..n)
        .map(|i| if slots > 1 { frame.left + step * i as f64 } else { frame.left + frame.plot_w() / 2.0 })
        .collect();
    let lines = series
        .iter()
        .enumerate()
        .map(|(si, s)| {
            // A value that is not finite is a gap: the line breaks there.
            let mut segments: Vec<Vec<String>> = Vec::new();
            let mut current: Vec<String> = Vec::new();
            for (i, v) in s.values.iter().take(n).enumerate() {
                if v.is_finite() {
                    current.push(format!("{},{}", r1(centers[i]), r1(y_of(*v, top))));
                } else if !current.is_empty() {
                    segments.push(std::mem::take(&mut current));
                }
            }
            if !current.is_empty() {
                segments.push(current);
            }
            let polylines = segments
                .into_iter()
                .map(|seg| {
                    view! {
                        <polyline class="line" fill="none" stroke=color(si) stroke-width="2" points=seg.join(" ")></polyline>
                    }
                })
                .collect_view();
            let finite = |i: usize| i < n && s.values.get(i).is_some_and(|v| v.is_finite());
            let dots = s
                .values
                .iter()
                .take(n)
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(i, v)| {
                    let text = format!("{} · {}: {}", labels[i], s.name, fmt(*v));
                    let (tx, ty) = (centers[i] / W * 100.0, y_of(*v, top) / H * 100.0);
                    let hover = text.clone();
                    // A point without a neighbour draws no line: a larger
                    // marker with its value printed above it.
                    let has_neighbour = (i > 0 && finite(i - 1)) || finite(i + 1);
                    let alone = !has_neighbour;
                    let label = alone.then(|| {
                        let y = (y_of(*v, top) - 8.0 - 12.0 * si as f64).max(TOP + 8.0);
                        let (x, anchor) = if centers[i] > W - 60.0 { (centers[i], "end") } else { (centers[i], "middle") };
                        view! { <text class="point-label" x=r1(x) y=r1(y) text-anchor=anchor fill=color(si)>{fmt(*v)}</text> }
                    });
                    view! {
                        <circle
                            class=if alone { "point point-alone" } else { "point" }
                            cx=r1(centers[i])
                            cy=r1(y_of(*v, top))
                            r=if alone { "4.5" } else { "3" }
                            fill=color(si)
                            on:mouseenter=move |_| tip.set(Some((tx, ty, hover.clone())))
                            on:mouseleave=move |_| tip.set(None)
                        >
                            <title>{text}</title>
                        </circle>
                        {label}
                    }
                })
                .collect_view();
            view! {
                <g class="series">
                    {polylines}
                    {dots}
                </g>
            }
        })
        .collect_view();
    let names: Vec<String> = series.iter().map(|s| s.name.clone()).collect();
    view! {
        <figure class="chart" data-testid=testid>
            <div class="chart-box">
                <svg viewBox=format!("0 0 {W} {H}") role="img" aria-label=title.clone() preserveAspectRatio="xMidYMid meet">
                    {axes(&tick_values, &tick_text, top, &labels, &centers, frame)}
                    {lines}
                    {empty.then(|| view! { <text class="chart-empty" x=r1(W / 2.0) y=r1(H / 2.0) text-anchor="middle">"No data in this range"</text> })}
                </svg>
                {tooltip(tip)}
            </div>
            <Legend names=names/>
        </figure>
    }
    .into_any()
}

/// A tiny trend line for stat cards (no axes).
#[component]
pub fn Sparkline(values: Vec<f64>, #[prop(into, optional)] label: String) -> impl IntoView {
    let (w, h) = (120.0, 32.0);
    let max = values.iter().copied().fold(0.0, f64::max);
    let n = values.len();
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .map(|(i, v)| {
            let x = if n > 1 { w * i as f64 / (n - 1) as f64 } else { w / 2.0 };
            let y = if max > 0.0 { h - 2.0 - (v / max) * (h - 4.0) } else { h - 2.0 };
            format!("{},{}", r1(x), r1(y))
        })
        .collect();
    view! {
        <svg class="sparkline" viewBox=format!("0 0 {w} {h}") role="img" aria-label=label preserveAspectRatio="none">
            <polyline fill="none" stroke=color(0) stroke-width="1.5" points=points.join(" ")></polyline>
        </svg>
    }
}

#[cfg(test)]
#[cfg(feature = "ssr")]
mod tests {
    use super::*;

    fn money(v: f64) -> String {
        format!("${v:.2}")
    }

    fn render(view: impl FnOnce() -> AnyView) -> String {
        let owner = Owner::new();
        owner.with(|| view().to_html())
    }

    /// Compares with `app/snapshots/NAME.html`; `UPDATE_SNAPSHOTS=1` rewrites it.
    fn snapshot(name: &str, html: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots").join(format!("{name}.html"));
        let pretty = html.replace("><", ">\n<");
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &pretty).unwrap();
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{} is missing; run with UPDATE_SNAPSHOTS=1", path.display()));
        assert_eq!(pretty, expected, "SVG of {name} changed; if intended, run with UPDATE_SNAPSHOTS=1");
    }

    #[test]
    fn nice_ticks_cover_the_maximum() {
        assert_eq!(nice_ticks(0.0).0, 1.0);
        let (top, ticks) = nice_ticks(9.3);
        assert_eq!(top, 10.0);
        assert_eq!(ticks, vec![0.0, 2.5, 5.0, 7.5, 10.0]);
        let (top, ticks) = nice_ticks(1234.0);
        assert_eq!(top, 1500.0);
        assert_eq!(ticks.len(), 4);
        assert_eq!(label_every(24), 3);
    }

    #[test]
    fn stacked_bar_svg() {
        let html = render(|| {
            view! {
                <StackedBarChart
                    title="Spend by tenant"
                    labels=vec!["Nov 1".into(), "Nov 2".into(), "Nov 3".into()]
                    series=vec![
                        Series { name: "Acme".into(), values: vec![1.0, 2.5, 0.0] },
                        Series { name: "Globex".into(), values: vec![0.5, 0.0, 3.0] },
                    ]
                    fmt=money
                    testid="snap"
                />
            }
            .into_any()
        });
        assert!(html.contains("<title>Nov 2 · Acme: $2.50</title>"), "{html}");
        snapshot("stacked_bar", &html);
    }

    #[test]
    fn line_svg() {
        let html = render(|| {
            view! {
                <LineChart
                    title="Requests"
                    labels=vec!["00:00".into(), "01:00".into(), "02:00".into(), "03:00".into()]
                    series=vec![
                        Series { name: "requests".into(), values: vec![3.0, 8.0, 5.0, 0.0] },
                        Series { name: "errors".into(), values: vec![0.0, 1.0, 0.0, 0.0] },
                    ]
                    fmt=|v| format!("{v:.0}")
                />
            }
            .into_any()
        });
        assert!(html.contains("<polyline"), "{html}");
        snapshot("line", &html);
    }

    #[test]
    fn line_breaks_at_gaps() {
        let html = render(|| {
            view! {
                <LineChart
                    title="Gaps"
                    labels=vec!["a".into(), "b".into(), "c".into(), "d".into(), "e".into()]
                    series=vec![Series { name: "p99".into(), values: vec![1.0, 2.0, f64::NAN, 4.0, 5.0] }]
                    fmt=|v| format!("{v:.0}")
                />
            }
            .into_any()
        });
        assert_eq!(html.matches("<polyline").count(), 2, "{html}");
        assert_eq!(html.matches("<circle").count(), 4, "{html}");
        assert!(!html.contains("NaN"), "{html}");
        snapshot("line_gaps", &html);
        // Zeros: no data, unless zeros are measurements.
        let zeros = |zero_is_data: bool| {
            render(move || {
                view! {
                    <LineChart
                        title="Zeros"
                        labels=vec!["a".into(), "b".into()]
                        series=vec![Series { name: "p50".into(), values: vec![0.0, f64::NAN] }]
                        fmt=|v| format!("{v:.0}")
                        zero_is_data=zero_is_data
                    />
                }
                .into_any()
            })
        };
        assert!(zeros(false).contains("No data in this range"));
        assert!(!zeros(true).contains("No data in this range"));
    }

    #[test]
    fn tick_labels_fit_left_of_the_plot_and_share_decimals() {
        for labels in [
            vec!["$0".to_string(), "$5".into()],
            crate::format::usd_ticks(&[0.0, 500.0, 1000.0, 1500.0]),
            crate::format::usd_ticks(&[0.0, 0.0025, 0.005]),
            vec!["1,234,567,890 ms".to_string()],
        ] {
            let frame = Frame::for_labels(&labels);
            for l in &labels {
                // A label ends 6 units left of the plot; it must start inside the chart.
                assert!(l.chars().count() as f64 * CHAR_W <= frame.left - 6.0, "{l} does not fit in {}", frame.left);
            }
        }
        let html = render(|| {
            view! {
                <StackedBarChart
                    title="Spend"
                    labels=vec!["Nov 1".into(), "Nov 2".into()]
                    series=vec![Series { name: "Acme".into(), values: vec![1234.5, 0.5] }]
                    fmt=crate::format::money_value
                    ticks=crate::format::usd_ticks
                />
            }
            .into_any()
        });
        assert!(html.contains(">$1,500</text>"), "{html}");
        assert!(html.contains("<title>Nov 1 · Acme: $1,234.50</title>"), "{html}");
        assert!(html.contains("<title>Nov 2 · Acme: $0.500</title>"), "{html}");
    }

    #[test]
    fn future_buckets_draw_nothing() {
        let html = render(|| {
            view! {
                <StackedBarChart
                    title="Month"
                    labels=vec!["Dec 1".into(), "Dec 2".into(), "Dec 3".into()]
                    series=vec![Series { name: "a".into(), values: vec![1.0, f64::NAN, f64::NAN] }]
                    fmt=money
                />
            }
            .into_any()
        });
        assert_eq!(html.matches("<rect").count(), 1, "{html}");
        assert!(!html.contains("NaN"), "{html}");
        let line = render(|| {
            view! {
                <LineChart
                    title="Month"
                    labels=vec!["Dec 1".into(), "Dec 2".into(), "Dec 3".into()]
                    series=vec![Series { name: "a".into(), values: vec![1.0, 2.0, f64::NAN] }]
                    fmt=money
                />
            }
            .into_any()
        });
        assert_eq!(line.matches("<circle").count(), 2, "{line}");
        assert!(!line.contains("NaN"), "{line}");
    }

    #[test]
    fn a_young_series_starts_at_the_left_with_its_value_shown() {
        let html = render(|| {
            view! {
                <LineChart
                    title="p50"
                    labels=vec!["12:00:00".into()]
                    series=vec![Series { name: "from".into(), values: vec![42.0] }]
                    fmt=|v| format!("{v:.0} ms")
                    min_slots=12
                />
            }
            .into_any()
        });
        let frame = Frame::for_labels(&tick_labels(&nice_ticks(42.0).1, |v| format!("{v:.0} ms"), None));
        assert!(html.contains(&format!("cx=\"{}\"", r1(frame.left))), "the first slot, not the middle: {html}");
        assert!(html.contains("point-alone"), "{html}");
        assert!(html.contains(">42 ms</text>"), "the value is printed: {html}");
        // Neighbours make a line: no printed values.
        let two = render(|| {
            view! {
                <LineChart
                    title="p50"
                    labels=vec!["a".into(), "b".into()]
                    series=vec![Series { name: "from".into(), values: vec![42.0, 40.0] }]
                    fmt=|v| format!("{v:.0} ms")
                    min_slots=12
                />
            }
            .into_any()
        });
        assert!(!two.contains("point-label"), "{two}");
    }

    #[test]
    fn sparkline_and_empty_chart_svg() {
        let html = render(|| view! { <Sparkline values=vec![1.0, 4.0, 2.0] label="trend"/> }.into_any());
        snapshot("sparkline", &html);
        let empty = render(|| {
            view! { <StackedBarChart title="Empty" labels=vec!["a".into()] series=vec![] fmt=money/> }.into_any()
        });
        assert!(empty.contains("No data in this range"));
    }
}
