//! Timestamps: parsing the shapes logs use (RFC 3339 / ISO 8601 with or
//! without offset, `YYYY-MM-DD HH:MM:SS[.fff]` as databases export it, epoch
//! numbers in seconds, milliseconds, microseconds or nanoseconds) into UTC
//! epoch milliseconds, and formatting them back. No allocation on the hot
//! path; no dependency on a calendar crate.

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `2025-06-01T12:00:00.123Z` (UTC, millisecond precision).
pub fn format_ms(ms: i64) -> String {
    let days = ms.div_euclid(DAY_MS);
    let rem = ms.rem_euclid(DAY_MS);
    let (y, m, d) = civil_from_days(days);
    let (h, mi, s, milli) = (rem / HOUR_MS, (rem / MINUTE_MS) % 60, (rem / 1000) % 60, rem % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

/// `2025-06-01 12:00` (UTC, minute precision), for charts and the summary.
pub fn format_minute(ms: i64) -> String {
    let full = format_ms(ms);
    format!("{} {}", &full[..10], &full[11..16])
}

/// Epoch number → milliseconds, by magnitude: below 10^11 seconds (until
/// year 5138), below 10^14 milliseconds, below 10^17 microseconds, else
/// nanoseconds.
pub fn epoch_to_ms(v: f64) -> Option<i64> {
    if !v.is_finite() {
        return None;
    }
    let a = v.abs();
    let ms = if a < 1e11 {
        v * 1000.0
    } else if a < 1e14 {
        v
    } else if a < 1e17 {
        v / 1000.0
    } else {
        v / 1_000_000.0
    };
    if ms.abs() > 9.0e15 {
        return None;
    }
    Some(ms.round() as i64)
}

/// Integer epoch → milliseconds, exactly, with the same magnitude rule.
pub fn epoch_int_to_ms(v: i64) -> Option<i64> {
    let a = v.unsigned_abs();
    let ms = if a < 100_000_000_000 {
        v.checked_mul(1000)?
    } else if a < 100_000_000_000_000 {
        v
    } else if a < 100_000_000_000_000_000 {
        v.div_euclid(1000)
    } else {
        v.div_euclid(1_000_000)
    };
    Some(ms)
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at + n)?;
    let mut v = 0u32;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// Parses a timestamp string into UTC epoch milliseconds: RFC 3339 / ISO 8601
/// (`T` or space between date and time; seconds and fraction optional; `Z`,
/// `UTC`, `±HH`, `±HHMM` or `±HH:MM`, none meaning UTC) or an epoch number.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let t = text.trim();
    let b = t.as_bytes();
    if b.is_empty() {
        return None;
    }
    // An epoch number?
    if b.iter().all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'+' | b'e' | b'E'))
        && !(b.len() >= 10 && b[4] == b'-' && b[7] == b'-')
    {
        if let Ok(i) = t.parse::<i64>() {
            return epoch_int_to_ms(i);
        }
        return t.parse::<f64>().ok().and_then(epoch_to_ms);
    }
    let y = digits(b, 0, 4)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let mo = digits(b, 5, 2)?;
    let d = digits(b, 8, 2)?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut ms = days_from_civil(i64::from(y), mo, d) * DAY_MS;
    let mut i = 10;
    if i < b.len() {
        if !matches!(b[i], b'T' | b't' | b' ') {
            return None;
        }
        i += 1;
        let h = digits(b, i, 2)?;
        if b.get(i + 2) != Some(&b':') {
            return None;
        }
        let mi = digits(b, i + 3, 2)?;
        i += 5;
        let mut s = 0;
        if b.get(i) == Some(&b':') {
            s = digits(b, i + 1, 2)?;
            i += 3;
        }
        if h > 24 || mi > 59 || s > 60 {
            return None;
        }
        ms += i64::from(h) * HOUR_MS + i64::from(mi) * MINUTE_MS + i64::from(s) * 1000;
        if matches!(b.get(i), Some(b'.') | Some(b',')) {
            i += 1;
            let start = i;
            let mut frac_ms = 0i64;
            while i < b.len() && b[i].is_ascii_digit() {
                if i - start < 3 {
                    frac_ms = frac_ms * 10 + i64::from(b[i] - b'0');
                }
                i += 1;
            }
            if i == start {
                return None;
            }
            for _ in (i - start)..3 {
                frac_ms *= 10;
            }
            ms += frac_ms;
        }
        // Offset.
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let rest = &t[i..];
        match rest {
            "" | "Z" | "z" | "UTC" | "utc" | "GMT" => {}
            _ => {
                let sign = match rest.as_bytes()[0] {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let rb = &rest.as_bytes()[1..];
                let (oh, om) = match rb.len() {
                    2 => (digits(rb, 0, 2)?, 0),
                    4 => (digits(rb, 0, 2)?, digits(rb, 2, 2)?),
                    5 if rb[2] == b':' => (digits(rb, 0, 2)?, digits(rb, 3, 2)?),
                    _ => return None,
                };
                ms -= sign * (i64::from(oh) * HOUR_MS + i64::from(om) * MINUTE_MS);
            }
        }
    }
    Some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_shapes() {
        let base = 1_748_779_200_000; // 2025-06-01T12:00:00Z
        assert_eq!(parse_timestamp("2025-06-01T12:00:00Z"), Some(base));
        assert_eq!(parse_timestamp("2025-06-01T12:00:00.123Z"), Some(base + 123));
        assert_eq!(parse_timestamp("2025-06-01T12:00:00.1234567Z"), Some(base + 123));
        assert_eq!(parse_timestamp("2025-06-01T12:00:00.5"), Some(base + 500));
        assert_eq!(parse_timestamp("2025-06-01 12:00:00"), Some(base));
        assert_eq!(parse_timestamp("2025-06-01 12:00:00.250+00"), Some(base + 250));
        assert_eq!(parse_timestamp("2025-06-01T14:00:00+02:00"), Some(base));
        assert_eq!(parse_timestamp("2025-06-01T07:00:00-0500"), Some(base));
        assert_eq!(parse_timestamp("2025-06-01T12:00Z"), Some(base));
        assert_eq!(parse_timestamp("2025-06-01"), Some(base - 12 * HOUR_MS));
        assert_eq!(parse_timestamp("1748779200"), Some(base));
        assert_eq!(parse_timestamp("1748779200.5"), Some(base + 500));
        assert_eq!(parse_timestamp("1748779200000"), Some(base));
        assert_eq!(parse_timestamp("1748779200000000"), Some(base));
        assert_eq!(parse_timestamp("1748779200000000000"), Some(base));
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp("2025-13-01T00:00:00Z"), None);
        assert_eq!(parse_timestamp("2025-06-01T12:00:00+2"), None);
        assert_eq!(parse_timestamp(""), None);
    }

    #[test]
    fn formats_and_round_trips() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(1_748_779_200_123), "2025-06-01T12:00:00.123Z");
        assert_eq!(format_minute(1_748_779_200_123), "2025-06-01 12:00");
        for ms in [0, 1, 951_782_400_000, 1_709_164_800_000, 4_102_444_800_000, -86_400_001] {
            assert_eq!(parse_timestamp(&format_ms(ms)), Some(ms), "{ms}");
        }
        for days in -1000..1000 {
            let (y, m, d) = civil_from_days(days * 37);
            assert_eq!(days_from_civil(y, m, d), days * 37);
        }
    }
}
