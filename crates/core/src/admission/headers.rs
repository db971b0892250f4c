//! The six `x-ratelimit-*` answer headers, and durations written the way
//! OpenAI writes them.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};

use super::limiter::RateInfo;

/// OpenAI-style durations for `x-ratelimit-reset-*`: `20ms`, `1.5s`, `6m0s`.
pub fn format_duration(d: Duration) -> String {
    let mut out = String::with_capacity(16);
    push_duration(&mut out, d);
    out
}

/// Appends `d` as [`format_duration`] writes it (integer arithmetic only).
fn push_duration(out: &mut String, d: Duration) {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms < 1000 {
        push_decimal(out, ms);
        out.push_str("ms");
    } else if ms < 60_000 {
        push_decimal(out, ms / 1000);
        let mut frac = ms % 1000;
        if frac > 0 {
            // Three decimals without their trailing zeros: 50 ms → ".05".
            let mut places = 3;
            while frac % 10 == 0 {
                frac /= 10;
                places -= 1;
            }
            out.push('.');
            let digits = if frac >= 100 {
                3
            } else if frac >= 10 {
                2
            } else {
                1
            };
            for _ in digits..places {
                out.push('0');
            }
            push_decimal(out, frac);
        }
        out.push('s');
    } else {
        let secs = d.as_secs();
        push_decimal(out, secs / 60);
        out.push('m');
        push_decimal(out, secs % 60);
        out.push('s');
    }
}

fn push_decimal(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// The six `x-ratelimit-*` headers.
pub fn rate_headers(info: &RateInfo) -> [(HeaderName, HeaderValue); 6] {
    enum Value {
        Count(u64),
        Reset(Duration),
    }
    // `const` blocks: the names are built at compile time (`from_static` at
    // run time checks every byte).
    let fields = [
        (const { HeaderName::from_static("x-ratelimit-limit-requests") }, Value::Count(info.limit_requests)),
        (const { HeaderName::from_static("x-ratelimit-remaining-requests") }, Value::Count(info.remaining_requests)),
        (const { HeaderName::from_static("x-ratelimit-reset-requests") }, Value::Reset(info.reset_requests)),
        (const { HeaderName::from_static("x-ratelimit-limit-tokens") }, Value::Count(info.limit_tokens)),
        (const { HeaderName::from_static("x-ratelimit-remaining-tokens") }, Value::Count(info.remaining_tokens)),
        (const { HeaderName::from_static("x-ratelimit-reset-tokens") }, Value::Reset(info.reset_tokens)),
    ];
    // All six values are written into one buffer, and each header value is a
    // slice of it: one allocation for the six (this runs for every answer).
    let mut text = String::with_capacity(96);
    let mut ends = [0usize; 6];
    for ((_, value), end) in fields.iter().zip(ends.iter_mut()) {
        match value {
            Value::Count(n) => push_decimal(&mut text, *n),
            Value::Reset(d) => push_duration(&mut text, *d),
        }
        *end = text.len();
    }
    let text = bytes::Bytes::from(text);
    let mut ends = ends.into_iter();
    let mut from = 0;
    fields.map(|(name, _)| {
        let to = ends.next().unwrap_or(from);
        // Digits, letters and '.': always a valid header value.
        let value =
            HeaderValue::from_maybe_shared(text.slice(from..to)).unwrap_or_else(|_| HeaderValue::from_static("0"));
        from = to;
        (name, value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_headers_carry_each_value() {
        let info = RateInfo {
            limit_requests: 600,
            remaining_requests: 0,
            reset_requests: Duration::from_millis(1_500),
            limit_tokens: 18_446_744_073_709_551_615,
            remaining_tokens: 42,
            reset_tokens: Duration::from_secs(360),
        };
        let got: Vec<(String, String)> = rate_headers(&info)
            .into_iter()
            .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let want = [
            ("x-ratelimit-limit-requests", "600"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "1.5s"),
            ("x-ratelimit-limit-tokens", "18446744073709551615"),
            ("x-ratelimit-remaining-tokens", "42"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ];
        assert_eq!(got, want.map(|(n, v)| (n.to_string(), v.to_string())));
    }

    #[test]
    fn durations_read_like_openai() {
        assert_eq!(format_duration(Duration::from_millis(20)), "20ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(1)), "1s");
        assert_eq!(format_duration(Duration::from_secs(360)), "6m0s");
        assert_eq!(format_duration(Duration::ZERO), "0ms");
        assert_eq!(format_duration(Duration::from_millis(59_999)), "59.999s");
        assert_eq!(format_duration(Duration::from_millis(2_050)), "2.05s");
        assert_eq!(format_duration(Duration::from_millis(1_001)), "1.001s");
        assert_eq!(format_duration(Duration::from_millis(1_010)), "1.01s");
        assert_eq!(format_duration(Duration::from_millis(10_100)), "10.1s");
        assert_eq!(format_duration(Duration::from_millis(999)), "999ms");
        assert_eq!(format_duration(Duration::from_secs(3_725)), "62m5s");
    }
}
