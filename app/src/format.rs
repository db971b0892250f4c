//! Formatting shared by server and browser. Pure functions of their input
//! (no clock, no locale, times in UTC), so the server's HTML and the first
//! client render always agree.

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Nano-USD → display text, by one rule everywhere in the console:
/// - `$0` for nothing;
/// - from a dollar up, cents with thousands separators: `$12.35`, `$1,234.57`;
/// - below a dollar, three significant digits (at most nine decimals, one
///   nano-dollar): `$0.123`, `$0.0420`, `$0.00420`, `$0.000000001`.
///
/// Integer arithmetic only, rounding half up; the exact amount is in the
/// admin API and the CSV export.
pub fn usd_nanos(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n == 0 {
        return "$0".into();
    }
    let digits = |x: u64| x.checked_ilog10().unwrap_or(0) + 1;
    if n < 1_000_000_000 {
        let unit = 10u64.pow(digits(n).saturating_sub(3));
        let rounded = (n + unit / 2) / unit * unit;
        if rounded < 1_000_000_000 {
            let decimals = (12 - digits(rounded).min(12)).min(9) as usize;
            let frac = format!("{rounded:09}");
            return format!("{sign}$0.{}", &frac[..decimals]);
        }
    }
    let cents = (n + 5_000_000) / 10_000_000;
    format!("{sign}${}.{:02}", thousands(cents / 100), cents % 100)
}

/// A chart value in dollars → [`usd_nanos`] text (tooltips).
pub fn money_value(dollars: f64) -> String {
    usd_nanos((dollars * 1e9).round() as i64)
}

/// Axis ticks in dollars → labels with one number of decimals for all of
/// them (the fewest that show every tick exactly): `$0 $5 $10`,
/// `$0.00 $0.25 $0.50`, `$0.0000 $0.0025`.
pub fn usd_ticks(ticks: &[f64]) -> Vec<String> {
    let nanos: Vec<u64> = ticks.iter().map(|t| (t.max(0.0) * 1e9).round() as u64).collect();
    let decimals = (0..=9u32).find(|d| nanos.iter().all(|n| n % 10u64.pow(9 - d) == 0)).unwrap_or(9);
    nanos
        .iter()
        .map(|n| {
            let whole = thousands(n / 1_000_000_000);
            if decimals == 0 {
                format!("${whole}")
            } else {
                let frac = format!("{:09}", n % 1_000_000_000);
                format!("${whole}.{}", &frac[..decimals as usize])
            }
        })
        .collect()
}

/// A decimal USD string (`"12.345000000"`) → nano-USD (0 when malformed).
pub fn parse_usd_nanos(text: &str) -> i64 {
    sheepdog_types::parse_usd(text).unwrap_or(0)
}

/// A decimal USD string → display text.
pub fn usd(text: &str) -> String {
    usd_nanos(parse_usd_nanos(text))
}

/// Short compact number: `950`, `12.3k`, `4.5M`.
pub fn compact(n: f64) -> String {
    let a = n.abs();
    if a >= 1e9 {
        format!("{:.1}B", n / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", n / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", n / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", n / 1e3)
    } else if a >= 10.0 || a == a.trunc() {
        format!("{n:.0}")
    } else {
        format!("{n:.2}")
    }
}

/// Milliseconds → `42 ms`, `1.25 s`.
pub fn millis(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.0} ms")
    }
}

/// A ratio → `1.25 %`.
pub fn percent(ratio: f64) -> String {
    let p = ratio * 100.0;
    if p == 0.0 {
        "0 %".into()
    } else if p < 0.1 {
        "< 0.1 %".into()
    } else {
        format!("{p:.1} %")
    }
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// RFC 3339 UTC → `Nov 25, 14:05` (UTC); the input when it is not RFC 3339.
pub fn datetime(text: &str) -> String {
    match parts(text) {
        Some((_, m, d, hh, mm)) => format!("{} {d}, {hh}:{mm}", MONTHS[m - 1]),
        None => text.to_string(),
    }
}

/// RFC 3339 → `Nov 25`.
pub fn day(text: &str) -> String {
    match parts(text) {
        Some((_, m, d, _, _)) => format!("{} {d}", MONTHS[m - 1]),
        None => text.to_string(),
    }
}

/// RFC 3339 → `14:00`.
pub fn hour(text: &str) -> String {
    match parts(text) {
        Some((_, _, _, hh, mm)) => format!("{hh}:{mm}"),
        None => text.to_string(),
    }
}

fn parts(text: &str) -> Option<(&str, usize, u32, &str, &str)> {
    let b = text.as_bytes();
    if b.len() < 16 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    let month: usize = text.get(5..7)?.parse().ok()?;
    let day: u32 = text.get(8..10)?.parse().ok()?;
    if !(1..=12).contains(&month) {
        return None;
    }
    Some((text.get(0..4)?, month, day, text.get(11..13)?, text.get(14..16)?))
}

/// First 8 characters of an id (tables).
pub fn short_id(id: &str) -> String {
    id.chars().take(8).collect()
}

/// Percent-encodes a URL component (query values).
pub fn format_url_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_money() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(usd_nanos(0), "$0");
        assert_eq!(usd_nanos(12_345_000_000), "$12.35");
        assert_eq!(usd_nanos(4_200_000), "$0.00420");
        assert_eq!(usd_nanos(42_000_000), "$0.0420");
        assert_eq!(usd_nanos(42_000), "$0.0000420");
        assert_eq!(usd_nanos(123_456_789), "$0.123");
        assert_eq!(usd_nanos(1), "$0.000000001");
        assert_eq!(usd_nanos(12), "$0.000000012");
        assert_eq!(usd_nanos(99_950), "$0.000100", "rounding up adds a digit");
        assert_eq!(usd_nanos(999_999_999), "$1.00");
        assert_eq!(usd_nanos(-42_000_000), "-$0.0420");
        assert_eq!(usd_nanos(1_234_567_000_000), "$1,234.57");
        assert_eq!(usd_nanos(1_000_000_000), "$1.00");
        assert_eq!(usd("0.004000000"), "$0.00400");
        assert_eq!(money_value(0.5), "$0.500");
        assert_eq!(usd_ticks(&[0.0, 5.0, 10.0]), vec!["$0", "$5", "$10"]);
        assert_eq!(usd_ticks(&[0.0, 0.25, 0.5, 0.75]), vec!["$0.00", "$0.25", "$0.50", "$0.75"]);
        assert_eq!(usd_ticks(&[0.0, 0.0025, 0.005]), vec!["$0.0000", "$0.0025", "$0.0050"]);
        assert_eq!(usd_ticks(&[0.0, 500.0, 1000.0, 1500.0]), vec!["$0", "$500", "$1,000", "$1,500"]);
        assert_eq!(usd_ticks(&[0.0, 2.5, 5.0]), vec!["$0.0", "$2.5", "$5.0"]);
        assert_eq!(compact(12_345.0), "12k");
        assert_eq!(compact(3.0), "3");
        assert_eq!(percent(0.0125), "1.2 %");
        assert_eq!(millis(1250.0), "1.25 s");
    }

    #[test]
    fn times_are_utc_text() {
        assert_eq!(datetime("2026-11-25T14:05:09.123Z"), "Nov 25, 14:05");
        assert_eq!(day("2026-01-02T00:00:00Z"), "Jan 2");
        assert_eq!(hour("2026-01-02T07:00:00Z"), "07:00");
        assert_eq!(datetime("garbage"), "garbage");
    }
}
