//! Exact money: integer nano-USD (10⁻⁹ USD) and decimal strings with nine places.

/// An amount of money in nano-USD.
pub type Nanos = i64;

pub const NANOS_PER_USD: i64 = 1_000_000_000;

/// Formats nano-USD as a decimal USD string with all nine places: `1.500000000`.
pub fn format_usd(nanos: Nanos) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let abs = nanos.unsigned_abs();
    let whole = abs / NANOS_PER_USD as u64;
    let frac = abs % NANOS_PER_USD as u64;
    format!("{sign}{whole}.{frac:09}")
}

/// Parses a decimal USD amount ("12", "0.5", "-3.000000001") into nano-USD,
/// exactly. More than nine decimal places, exponents and other text are refused.
pub fn parse_usd(text: &str) -> Result<Nanos, String> {
    parse_decimal_scaled(text, 9).map_err(|e| format!("invalid USD amount {text:?}: {e}"))
}

/// Parses a decimal number and scales it by 10^`places`, exactly.
pub fn parse_decimal_scaled(text: &str, places: u32) -> Result<i64, String> {
    let t = text.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (whole, frac) = match digits.split_once('.') {
        Some((w, f)) => (w, f),
        None => (digits, ""),
    };
    if whole.is_empty() && frac.is_empty() {
        return Err("not a number".into());
    }
    if !whole.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
        return Err("not a plain decimal number".into());
    }
    if frac.len() > places as usize {
        return Err(format!("more than {places} decimal places"));
    }
    let scale = 10i64.checked_pow(places).ok_or("scale overflow")?;
    let whole_v: i64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| "too large")? };
    let mut frac_v: i64 = if frac.is_empty() { 0 } else { frac.parse().map_err(|_| "too large")? };
    for _ in frac.len()..places as usize {
        frac_v *= 10;
    }
    let v = whole_v.checked_mul(scale).and_then(|w| w.checked_add(frac_v)).ok_or("too large")?;
    Ok(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_all_nine_places() {
        assert_eq!(format_usd(0), "0.000000000");
        assert_eq!(format_usd(1), "0.000000001");
        assert_eq!(format_usd(1_500_000_000), "1.500000000");
        assert_eq!(format_usd(-2_000_000_001), "-2.000000001");
    }

    #[test]
    fn parses_exactly() {
        assert_eq!(parse_usd("12").unwrap(), 12_000_000_000);
        assert_eq!(parse_usd("0.1").unwrap(), 100_000_000);
        assert_eq!(parse_usd("0.000000001").unwrap(), 1);
        assert_eq!(parse_usd(".5").unwrap(), 500_000_000);
        assert_eq!(parse_usd("-1.25").unwrap(), -1_250_000_000);
        assert!(parse_usd("0.0000000001").is_err());
        assert!(parse_usd("1e3").is_err());
        assert!(parse_usd("abc").is_err());
        assert!(parse_usd("").is_err());
        assert!(parse_usd("99999999999999999999").is_err());
    }

    #[test]
    fn round_trips() {
        for n in [0, 1, 42, 999_999_999, 1_000_000_000, 123_456_789_012] {
            assert_eq!(parse_usd(&format_usd(n)).unwrap(), n);
        }
    }
}
