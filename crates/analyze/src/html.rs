//! `report.html`: one self-contained page (inline CSS, charts as inline
//! SVG, no scripts, no external assets) rendered from a [`Report`].

use std::fmt::Write;

use crate::report::{Money, Rate, Report, Usage};
use crate::time::{format_minute, MINUTE_MS};

/// Tenants listed in the HTML table at most (every tenant is in report.json).
const MAX_TENANT_ROWS: usize = 200;

const PALETTE: [&str; 8] = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#6b7280", "#111827"];

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

/// `1234567` → `1,234,567`.
pub fn thousands(v: u64) -> String {
    let s = v.to_string();
    let mut o = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            o.push(',');
        }
        o.push(c);
    }
    o
}

/// USD for people: `$1,234.57` (the exact amount is in report.json).
pub fn usd(m: &Money) -> String {
    let neg = m.nanos < 0;
    let abs = m.nanos.unsigned_abs();
    let cents = (abs + 5_000_000) / 10_000_000;
    let s = format!("{}${}.{:02}", if neg { "-" } else { "" }, thousands(cents / 100), cents % 100);
    if abs > 0 && cents == 0 {
        format!("{}<$0.01", if neg { "-" } else { "" })
    } else {
        s
    }
}

fn pct(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

fn method(r: &Report, key: &str) -> String {
    r.methods.get(key).map(|m| format!("<p class=\"how\">{}</p>", esc(m))).unwrap_or_default()
}

fn rate_cell(r: &Rate) -> String {
    format!("{} / {} / {}", thousands(r.p50), thousands(r.p95), thousands(r.peak))
}

fn opt_ratio(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.2}×")).unwrap_or_else(|| "–".into())
}

fn card(out: &mut String, label: &str, value: &str, sub: &str, how: &str) {
    let _ = write!(
        out,
        "<div class=\"card\" title=\"{}\"><div class=\"label\">{}</div><div class=\"value\">{}</div><div class=\"sub\">{}</div></div>",
        esc(how),
        esc(label),
        value,
        sub
    );
}

/// Requests over time: one line per series.
fn time_chart(r: &Report) -> String {
    let lines = &r.series.lines;
    let n = lines.first().map(|l| l.requests.len()).unwrap_or(0);
    if n == 0 {
        return "<p>No requests.</p>".into();
    }
    let (w, h, left, bottom, top) = (900.0f64, 280.0f64, 60.0f64, 30.0f64, 10.0f64);
    let max = lines.iter().flat_map(|l| l.requests.iter()).copied().max().unwrap_or(1).max(1) as f64;
    let x = |i: usize| left + (w - left - 10.0) * if n > 1 { i as f64 / (n - 1) as f64 } else { 0.5 };
    let y = |v: u64| top + (h - top - bottom) * (1.0 - v as f64 / max);
    let mut s = format!("<svg viewBox=\"0 0 {w} {h}\" class=\"chart\" role=\"img\" aria-label=\"Requests over time\">");
    for k in 0..=4 {
        let v = (max * f64::from(k) / 4.0).round() as u64;
        let yy = y(v);
        let _ = write!(
            s,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" class=\"grid\"/><text x=\"{}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"end\">{}</text>",
            w - 10.0,
            left - 6.0,
            yy + 4.0,
            thousands(v)
        );
    }
    for k in 0..5usize {
        let i = if n > 1 { k * (n - 1) / 4 } else { 0 };
        let t = r.series.start_ms + i as i64 * r.series.bucket_ms;
        let anchor = match (n, k) {
            (1, _) => "middle",
            (_, 0) => "start",
            (_, 4) => "end",
            _ => "middle",
        };
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" class=\"axis\" text-anchor=\"{anchor}\">{}</text>",
            x(i),
            h - 8.0,
            esc(&format_minute(t))
        );
        if n == 1 {
            break;
        }
    }
    for (li, l) in lines.iter().enumerate() {
        let color = if l.name == "(total)" { PALETTE[7] } else { PALETTE[li % 7] };
        let dash = if l.name == "(total)" { " stroke-dasharray=\"4 3\"" } else { "" };
        let pts: Vec<String> =
            l.requests.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v))).collect();
        if n == 1 {
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{color}\"/>",
                x(0),
                y(l.requests.first().copied().unwrap_or(0))
            );
        } else {
            let _ = write!(
                s,
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.6\"{dash} points=\"{}\"/>",
                pts.join(" ")
            );
        }
    }
    s.push_str("</svg><div class=\"legend\">");
    for (li, l) in lines.iter().enumerate() {
        let color = if l.name == "(total)" { PALETTE[7] } else { PALETTE[li % 7] };
        let _ = write!(s, "<span><i style=\"background:{color}\"></i>{}</span>", esc(&l.name));
    }
    let bucket = r.series.bucket_ms / MINUTE_MS;
    let _ = write!(s, "<span class=\"muted\">requests per {} min</span></div>", thousands(bucket.max(0) as u64));
    s
}

/// Horizontal bars: (label, value, text).
fn bars(rows: &[(String, f64, String)], color: &str) -> String {
    if rows.is_empty() {
        return "<p>Nothing to show.</p>".into();
    }
    let max = rows.iter().map(|r| r.1).fold(0.0f64, f64::max).max(f64::MIN_POSITIVE);
    let (w, row_h, label_w) = (900.0f64, 26.0f64, 220.0f64);
    let h = row_h * rows.len() as f64 + 6.0;
    let mut s = format!("<svg viewBox=\"0 0 {w} {h}\" class=\"chart\" role=\"img\">");
    for (i, (label, v, text)) in rows.iter().enumerate() {
        let y = 3.0 + row_h * i as f64;
        let bw = (w - label_w - 170.0) * (v / max).max(0.0);
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"end\">{}</text><rect x=\"{label_w}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"{color}\" rx=\"2\"/><text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\">{}</text>",
            label_w - 8.0,
            y + 16.0,
            esc(label),
            y + 3.0,
            row_h - 8.0,
            label_w + bw + 6.0,
            y + 16.0,
            esc(text)
        );
    }
    s.push_str("</svg>");
    s
}

/// Grouped bars: cost now vs projected per model, then the total.
fn cost_chart(r: &Report) -> String {
    let mut rows: Vec<(String, i64, i64)> =
        r.models.iter().map(|m| (m.group.name.clone(), m.monthly_cost.nanos, m.projected_monthly_cost.nanos)).collect();
    rows.push(("Total".into(), r.cost.monthly.nanos, r.cost.projected_monthly.nanos));
    let max = rows.iter().flat_map(|x| [x.1, x.2]).max().unwrap_or(1).max(1) as f64;
    let (w, group_h, label_w) = (900.0f64, 44.0f64, 220.0f64);
    let h = group_h * rows.len() as f64 + 6.0;
    let mut s = format!(
        "<svg viewBox=\"0 0 {w} {h}\" class=\"chart\" role=\"img\" aria-label=\"Monthly cost now and projected\">"
    );
    for (i, (label, now, proj)) in rows.iter().enumerate() {
        let y = 3.0 + group_h * i as f64;
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"end\">{}</text>",
            label_w - 8.0,
            y + 22.0,
            esc(label)
        );
        for (k, (v, color)) in [(*now, PALETTE[0]), (*proj, PALETTE[2])].into_iter().enumerate() {
            let bw = (w - label_w - 150.0) * (v.max(0) as f64 / max);
            let yy = y + 2.0 + k as f64 * 18.0;
            let _ = write!(
                s,
                "<rect x=\"{label_w}\" y=\"{yy:.1}\" width=\"{bw:.1}\" height=\"15\" fill=\"{color}\" rx=\"2\"/><text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\">{}</text>",
                label_w + bw + 6.0,
                yy + 12.0,
                esc(&usd(&Money::from_nanos(i128::from(v))))
            );
        }
    }
    s.push_str("</svg><div class=\"legend\">");
    let _ = write!(
        s,
        "<span><i style=\"background:{}\"></i>now (per month)</span><span><i style=\"background:{}\"></i>projected (per month)</span></div>",
        PALETTE[0], PALETTE[2]
    );
    s
}

fn usage_row(u: &Usage) -> String {
    format!(
        "<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\" title=\"{}\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{} rpm<br>{} tpm<br>{} concurrent</td><td class=\"n\">{}</td><td class=\"n\">{}</td>",
        thousands(u.requests),
        pct(u.error_rate),
        esc(u.peak_concurrency.at.as_deref().unwrap_or("")),
        thousands(u.peak_concurrency.value),
        rate_cell(&u.requests_per_minute),
        rate_cell(&u.tokens_per_minute),
        opt_ratio(u.headroom.requests_peak_to_p50),
        thousands(u.recommended_limits.requests_per_minute),
        thousands(u.recommended_limits.tokens_per_minute),
        thousands(u.recommended_limits.max_concurrency),
        usd(&u.cost.monthly),
        usd(&u.cost.projected_monthly),
    )
}

/// The report's stylesheet, inlined in a `<style>` element (the console's CSP allows it by hash).
pub const CSS: &str = "body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#111827;margin:0;background:#f9fafb}\
main{max-width:1180px;margin:0 auto;padding:24px}h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}\
.muted,.how{color:#6b7280}.how{font-size:12px;margin:4px 0 10px}.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:12px;margin:16px 0}\
.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:12px}.label{color:#6b7280;font-size:12px;text-transform:uppercase;letter-spacing:.04em}\
.value{font-size:22px;font-weight:600;margin:2px 0}.sub{color:#6b7280;font-size:12px}table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #e5e7eb;font-size:13px}\
th,td{padding:6px 8px;border-bottom:1px solid #f3f4f6;text-align:left;vertical-align:top}th{background:#f3f4f6;font-weight:600}td.n{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}\
.chart{width:100%;height:auto;background:#fff;border:1px solid #e5e7eb;border-radius:8px}.grid{stroke:#f3f4f6}.axis{font-size:11px;fill:#4b5563}\
.legend{display:flex;flex-wrap:wrap;gap:14px;margin:6px 0 0;font-size:12px}.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px}\
.tag{display:inline-block;background:#fee2e2;color:#991b1b;border-radius:4px;padding:0 6px;font-size:12px;font-weight:600}.ok{background:#dcfce7;color:#166534}\
.scroll{overflow-x:auto}.warn{background:#fffbeb;border:1px solid #fde68a;border-radius:8px;padding:8px 12px;margin:12px 0}code{font-size:12px}";

/// Renders the report as one self-contained HTML page.
pub fn render(r: &Report) -> String {
    let mut o = String::with_capacity(64 * 1024);
    let o_ = &mut o;
    let _ = write!(
        o_,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>Sheepdog migration analysis</title><style>{CSS}</style></head><body><main>"
    );
    let window = match (&r.window.first, &r.window.last) {
        (Some(a), Some(b)) => {
            format!("{} → {} ({})", esc(a), esc(b), esc(&crate::report::human_span(r.window.span_ms)))
        }
        _ => "no requests".into(),
    };
    let _ = write!(
        o_,
        "<h1>Migration analysis</h1><p class=\"muted\">{} input(s) · {} · generated {} · schema <code>{}</code></p>",
        r.inputs.len(),
        window,
        esc(&r.generated_at),
        esc(&r.schema)
    );
    if !r.quality.warnings.is_empty() {
        o_.push_str("<div class=\"warn\"><strong>Read this first</strong><ul>");
        for w in &r.quality.warnings {
            let _ = write!(o_, "<li>{}</li>", esc(w));
        }
        o_.push_str("</ul></div>");
    }

    // Key figures.
    let u = &r.overall;
    let get = |k: &str| r.methods.get(k).cloned().unwrap_or_default();
    o_.push_str("<div class=\"cards\">");
    card(
        o_,
        "Requests",
        &thousands(u.requests),
        &format!("{} tenants · {} errors ({})", r.tenants.len(), thousands(u.errors), pct(u.error_rate)),
        &get("requests"),
    );
    card(
        o_,
        "Peak concurrency",
        &thousands(u.peak_concurrency.value),
        &esc(u.peak_concurrency.at.as_deref().unwrap_or("–")),
        &get("peak_concurrency"),
    );
    card(
        o_,
        "Requests / min",
        &thousands(u.requests_per_minute.peak),
        &format!("peak · p50 {} · p95 {}", thousands(u.requests_per_minute.p50), thousands(u.requests_per_minute.p95)),
        &get("requests_per_minute"),
    );
    card(
        o_,
        "Tokens / min",
        &thousands(u.tokens_per_minute.peak),
        &format!("peak · p50 {} · p95 {}", thousands(u.tokens_per_minute.p50), thousands(u.tokens_per_minute.p95)),
        &get("tokens_per_minute"),
    );
    card(
        o_,
        "Monthly cost now",
        &usd(&r.cost.monthly),
        &format!("observed {}", usd(&r.cost.observed)),
        &get("cost.monthly"),
    );
    let change = r.cost.change_percent.map(|c| format!("{c:+.1} %")).unwrap_or_else(|| "–".into());
    card(
        o_,
        "Monthly cost projected",
        &usd(&r.cost.projected_monthly),
        &format!("{change} vs now"),
        &get("cost.projected"),
    );
    card(o_, "Dedicated tier", &r.dedicated.len().to_string(), "tenants recommended", &get("recommendation"));
    o_.push_str("</div>");

    let _ = write!(o_, "<h2>Requests over time (top tenants)</h2>{}{}", time_chart(r), method(r, "series"));

    let mix: Vec<(String, f64, String)> = r
        .models
        .iter()
        .map(|m| {
            (
                m.group.name.clone(),
                m.group.share_of_requests,
                format!("{} · {} requests", pct(m.group.share_of_requests), thousands(m.group.requests)),
            )
        })
        .collect();
    let _ = write!(o_, "<h2>Model mix</h2>{}{}", bars(&mix, PALETTE[4]), method(r, "share_of_requests"));

    let mapping = if r.cost.model_map.is_empty() {
        "no model mapping".to_string()
    } else {
        r.cost.model_map.iter().map(|(a, b)| format!("{a} → {b}")).collect::<Vec<_>>().join(", ")
    };
    let _ = write!(
        o_,
        "<h2>Cost now vs projected</h2><p class=\"muted\">Now: {}. Projected: {} with {}.</p>{}{}{}",
        esc(&r.cost.price_table),
        esc(&r.cost.projected_price_table),
        esc(&mapping),
        cost_chart(r),
        method(r, "cost.observed"),
        method(r, "cost.monthly")
    );

    // Tenants.
    o_.push_str("<h2>Tenants</h2><div class=\"scroll\"><table><tr><th>Tenant</th><th>Requests</th><th>Errors</th><th>Peak conc.</th><th>Req/min p50/p95/peak</th><th>Tokens/min p50/p95/peak</th><th>Headroom</th><th>Recommended limits</th><th>Monthly now</th><th>Monthly projected</th><th>Tier</th></tr>");
    for t in r.tenants.iter().take(MAX_TENANT_ROWS) {
        let label = match &t.name {
            Some(n) => format!("{}<br><span class=\"muted\">{}</span>", esc(n), esc(&t.tenant)),
            None => esc(&t.tenant),
        };
        let tier_class = if t.recommendation.tier == "dedicated" { "tag" } else { "tag ok" };
        let _ = write!(
            o_,
            "<tr><td>{label}</td>{}<td><span class=\"{tier_class}\" title=\"{}\">{}</span></td></tr>",
            usage_row(&t.usage),
            esc(&t.recommendation.reasons.join("; ")),
            esc(&t.recommendation.tier)
        );
    }
    let _ = write!(o_, "<tr><th>All</th>{}<th></th></tr></table></div>", usage_row(u));
    if r.tenants.len() > MAX_TENANT_ROWS {
        let _ = write!(
            o_,
            "<p class=\"muted\">The {} tenants with the most requests are shown; all {} are in report.json.</p>",
            MAX_TENANT_ROWS,
            thousands(r.tenants.len() as u64)
        );
    }
    for k in
        ["peak_concurrency", "requests_per_minute", "tokens_per_minute", "headroom", "recommended_limits", "error_rate"]
    {
        o_.push_str(&method(r, k));
    }

    // Dedicated.
    o_.push_str("<h2>Dedicated tier recommendations</h2>");
    if r.dedicated.is_empty() {
        o_.push_str("<p>No tenant calls for the dedicated tier.</p>");
    } else {
        o_.push_str("<table><tr><th>Tenant</th><th>Why</th></tr>");
        for d in &r.dedicated {
            let _ = write!(
                o_,
                "<tr><td>{}</td><td>{}</td></tr>",
                esc(&d.tenant),
                d.reasons.iter().map(|x| esc(x)).collect::<Vec<_>>().join("<br>")
            );
        }
        o_.push_str("</table>");
    }
    o_.push_str(&method(r, "recommendation"));

    // Endpoints and models.
    o_.push_str("<h2>Tokens per endpoint</h2><div class=\"scroll\"><table><tr><th>Endpoint</th><th>Requests</th><th>Share</th><th>Errors</th><th>Input avg</th><th>Input p95</th><th>Output avg</th><th>Output p95</th></tr>");
    for e in &r.endpoints {
        let _ = write!(
            o_,
            "<tr><td><code>{}</code></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1}</td><td class=\"n\">{}</td><td class=\"n\">{:.1}</td><td class=\"n\">{}</td></tr>",
            esc(&e.name),
            thousands(e.requests),
            pct(e.share_of_requests),
            pct(e.error_rate),
            e.input_tokens.avg,
            thousands(e.input_tokens.p95),
            e.output_tokens.avg,
            thousands(e.output_tokens.p95)
        );
    }
    o_.push_str("</table></div>");
    o_.push_str(&method(r, "input_tokens"));
    o_.push_str("<h2>Models</h2><div class=\"scroll\"><table><tr><th>Model</th><th>Requests</th><th>Share</th><th>Input avg / p95</th><th>Output avg / p95</th><th>Price now (in/out per 1M)</th><th>Monthly now</th><th>Moves to</th><th>Monthly projected</th></tr>");
    for m in &r.models {
        let price = |p: &Option<crate::report::PriceUsd>| {
            p.as_ref()
                .map(|p| format!("${} / ${}", p.input_per_mtok, p.output_per_mtok))
                .unwrap_or_else(|| "not priced".into())
        };
        let _ = write!(
            o_,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1} / {}</td><td class=\"n\">{:.1} / {}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
            esc(&m.group.name),
            thousands(m.group.requests),
            pct(m.group.share_of_requests),
            m.group.input_tokens.avg,
            thousands(m.group.input_tokens.p95),
            m.group.output_tokens.avg,
            thousands(m.group.output_tokens.p95),
            esc(&price(&m.price)),
            usd(&m.monthly_cost),
            esc(&m.mapped_to),
            usd(&m.projected_monthly_cost)
        );
    }
    o_.push_str("</table></div>");
    o_.push_str(&method(r, "cost.projected"));

    // Data quality.
    let q = &r.quality;
    let _ = write!(
        o_,
        "<h2>Inputs and data quality</h2><table><tr><th>Input</th><th>Format</th><th>Bytes</th><th>Lines</th><th>Records</th><th>Malformed</th><th>Blank</th></tr>"
    );
    for i in &r.inputs {
        let _ = write!(
            o_,
            "<tr><td>{}</td><td>{}{}{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&i.name),
            esc(&i.format),
            if i.gzip { " (gzip)" } else { "" },
            if i.detected { " (detected)" } else { "" },
            thousands(i.bytes),
            thousands(i.lines),
            thousands(i.records),
            thousands(i.malformed),
            thousands(i.blank_lines)
        );
    }
    o_.push_str("</table>");
    let _ = write!(
        o_,
        "<p class=\"muted\">Without duration: {} · negative durations (clock skew): {} · without usage: {} · without tenant: {} · without model: {}</p>",
        thousands(q.without_duration),
        thousands(q.negative_durations),
        thousands(q.without_usage),
        thousands(q.without_tenant),
        thousands(q.without_model)
    );
    if !q.malformed_examples.is_empty() {
        o_.push_str("<table><tr><th>Input</th><th>Line</th><th>Why it was skipped</th></tr>");
        for m in &q.malformed_examples {
            let at = match (m.line, m.record) {
                (Some(l), _) => format!("line {l}"),
                (None, Some(n)) => format!("record {n}"),
                _ => "–".into(),
            };
            let _ =
                write!(o_, "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>", esc(&m.file), at, esc(&m.reason));
        }
        o_.push_str("</table>");
    }
    o_.push_str("<h2>How each figure is computed</h2><table>");
    for (k, v) in &r.methods {
        let _ = write!(o_, "<tr><td><code>{}</code></td><td>{}</td></tr>", esc(k), esc(v));
    }
    o_.push_str("</table></main></body></html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(usd(&Money::from_nanos(1_234_567_890_123)), "$1,234.57");
        assert_eq!(usd(&Money::from_nanos(1)), "<$0.01");
        assert_eq!(usd(&Money::from_nanos(-2_500_000_000)), "-$2.50");
    }
}
