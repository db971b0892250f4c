//! Wall-clock helpers: RFC 3339 UTC text with milliseconds, and epoch millis.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn ms_to_rfc3339(ms: i64) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => String::new(),
    }
}

/// Seconds-precision RFC 3339 (for bucket starts).
pub fn ms_to_rfc3339_secs(ms: i64) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Secs, true),
        None => String::new(),
    }
}

pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp_millis())
}

pub const HOUR_MS: i64 = 3_600_000;

pub fn hour_floor(ms: i64) -> i64 {
    ms - ms.rem_euclid(HOUR_MS)
}

/// Start of the calendar month (UTC) containing `ms`, and of the next one.
pub fn month_bounds(ms: i64) -> (i64, i64) {
    use chrono::Datelike;
    let Some(t) = Utc.timestamp_millis_opt(ms).single() else { return (0, i64::MAX) };
    let start = Utc.with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0).single();
    let (ny, nm) = if t.month() == 12 { (t.year() + 1, 1) } else { (t.year(), t.month() + 1) };
    let next = Utc.with_ymd_and_hms(ny, nm, 1, 0, 0, 0).single();
    match (start, next) {
        (Some(s), Some(n)) => (s.timestamp_millis(), n.timestamp_millis()),
        _ => (0, i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_bounds_work_across_years() {
        let ms = parse_rfc3339_ms("2026-12-15T10:00:00Z").unwrap();
        let (s, e) = month_bounds(ms);
        assert_eq!(ms_to_rfc3339_secs(s), "2026-12-01T00:00:00Z");
        assert_eq!(ms_to_rfc3339_secs(e), "2027-01-01T00:00:00Z");
        assert_eq!(
            hour_floor(parse_rfc3339_ms("2026-12-15T10:59:59.999Z").unwrap()),
            parse_rfc3339_ms("2026-12-15T10:00:00Z").unwrap()
        );
    }
}
