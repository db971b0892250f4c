//! Wall-clock helpers: RFC 3339 UTC text with milliseconds, and epoch millis.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (what every usage record carries), computed
/// with integer arithmetic and written digit by digit: chrono's calendar
/// accessors and formatting machinery cost more than the record's other
/// fields together. Years outside 0..=9999 (never a request's time) take
/// chrono's general path.
pub fn ms_to_rfc3339(ms: i64) -> String {
    let (year, month, day) = civil_from_days(ms.div_euclid(86_400_000));
    if !(0..=9999).contains(&year) {
        return match Utc.timestamp_millis_opt(ms).single() {
            Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
            None => String::new(),
        };
    }
    let of_day = ms.rem_euclid(86_400_000);
    let mut out = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut n: i64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, of_day / 3_600_000);
    put(14, 2, of_day / 60_000 % 60);
    put(17, 2, of_day / 1_000 % 60);
    put(20, 3, of_day % 1_000);
    std::str::from_utf8(&out).map(str::to_owned).unwrap_or_default()
}

/// Proleptic Gregorian (year, month, day) of a count of days since
/// 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
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
    fn record_times_read_like_chrono() {
        let chrono_text =
            |ms: i64| Utc.timestamp_millis_opt(ms).single().unwrap().to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut ms = -62_167_219_200_000; // 0000-01-01
        while ms < 253_402_300_800_000 {
            // up to 9999-12-31
            assert_eq!(ms_to_rfc3339(ms), chrono_text(ms), "{ms}");
            ms += 654_321_987;
        }
        for ms in [0, 1, 999, 1_000, -1, 1_767_225_599_999, 1_767_225_600_000, 253_402_300_799_999] {
            assert_eq!(ms_to_rfc3339(ms), chrono_text(ms), "{ms}");
        }
        assert_eq!(ms_to_rfc3339(1_767_225_600_123), "2026-01-01T00:00:00.123Z");
        assert_eq!(ms_to_rfc3339(253_402_300_800_000), chrono_text(253_402_300_800_000));
    }

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
