//! The concise text summary printed on the terminal.

use std::fmt::Write;

use crate::html::thousands;
use crate::report::Report;

fn usd(m: &crate::report::Money) -> String {
    let cents = (m.nanos.unsigned_abs() + 5_000_000) / 10_000_000;
    format!("{}${}.{:02}", if m.nanos < 0 { "-" } else { "" }, thousands(cents / 100), cents % 100)
}

/// A few lines: what was read, the overall figures, the top tenants, cost and the dedicated tier.
pub fn text(r: &Report) -> String {
    let mut s = String::new();
    let q = &r.quality;
    let bytes: u64 = r.inputs.iter().map(|i| i.bytes).sum();
    let formats: Vec<String> =
        r.inputs.iter().map(|i| format!("{}{}", i.format, if i.gzip { "+gzip" } else { "" })).collect();
    let _ = writeln!(
        s,
        "Sheepdog migration analysis — {} input(s) ({}), {:.1} MB in {:.1} s",
        r.inputs.len(),
        formats.join(", "),
        bytes as f64 / 1e6,
        r.elapsed_ms as f64 / 1000.0
    );
    let _ = writeln!(
        s,
        "  records {} · malformed {} · without duration {} · without usage {}",
        thousands(q.records),
        thousands(q.malformed),
        thousands(q.without_duration),
        thousands(q.without_usage)
    );
    for m in q.malformed_examples.iter().take(3) {
        let at = m.line.map(|l| format!("line {l}")).or(m.record.map(|n| format!("record {n}"))).unwrap_or_default();
        let _ = writeln!(s, "    {} {at}: {}", m.file, m.reason.chars().take(120).collect::<String>());
    }
    if let (Some(a), Some(b)) = (&r.window.first, &r.window.last) {
        let _ = writeln!(s, "  window {a} → {b} ({})", crate::report::human_span(r.window.span_ms));
    }
    let u = &r.overall;
    let _ = writeln!(
        s,
        "Overall: {} requests, {:.2} % errors, peak concurrency {}{}",
        thousands(u.requests),
        u.error_rate * 100.0,
        thousands(u.peak_concurrency.value),
        u.peak_concurrency.at.as_ref().map(|a| format!(" at {a}")).unwrap_or_default()
    );
    let _ = writeln!(
        s,
        "  requests/min p50 {} p95 {} peak {} · tokens/min p50 {} p95 {} peak {}",
        thousands(u.requests_per_minute.p50),
        thousands(u.requests_per_minute.p95),
        thousands(u.requests_per_minute.peak),
        thousands(u.tokens_per_minute.p50),
        thousands(u.tokens_per_minute.p95),
        thousands(u.tokens_per_minute.peak)
    );
    let _ = writeln!(
        s,
        "Cost per month: now {} → projected {}{}",
        usd(&r.cost.monthly),
        usd(&r.cost.projected_monthly),
        r.cost.change_percent.map(|c| format!(" ({c:+.1} %)")).unwrap_or_default()
    );
    if !r.tenants.is_empty() {
        let _ = writeln!(s, "Top tenants (requests · peak conc. · rpm peak · recommended rpm/tpm/conc. · tier):");
        for t in r.tenants.iter().take(10) {
            let l = &t.usage.recommended_limits;
            let _ = writeln!(
                s,
                "  {:<24} {:>10} · {:>5} · {:>6} · {}/{}/{} · {}",
                t.tenant.chars().take(24).collect::<String>(),
                thousands(t.usage.requests),
                thousands(t.usage.peak_concurrency.value),
                thousands(t.usage.requests_per_minute.peak),
                thousands(l.requests_per_minute),
                thousands(l.tokens_per_minute),
                thousands(l.max_concurrency),
                t.recommendation.tier
            );
        }
        if r.tenants.len() > 10 {
            let _ = writeln!(s, "  … and {} more tenants", r.tenants.len() - 10);
        }
    }
    if r.dedicated.is_empty() {
        let _ = writeln!(s, "Dedicated tier: no tenant calls for it.");
    } else {
        let _ = writeln!(s, "Dedicated tier recommended for {} tenant(s):", r.dedicated.len());
        for d in r.dedicated.iter().take(10) {
            let _ = writeln!(s, "  {}: {}", d.tenant, d.reasons.join("; "));
        }
    }
    for w in &q.warnings {
        let _ = writeln!(s, "Note: {w}");
    }
    s
}
