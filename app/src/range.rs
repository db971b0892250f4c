//! The time-range picker of the overview and cost pages: named ranges (last
//! 24 hours, last 7 or 30 days, this month) or custom dates, as a query
//! string (`?range=…&from=YYYY-MM-DD&to=YYYY-MM-DD`), resolved to UTC
//! timestamps on the server.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

/// The named ranges, in the order the picker shows them.
pub const RANGES: [(&str, &str); 4] =
    [("24h", "Last 24 h"), ("7d", "Last 7 days"), ("30d", "Last 30 days"), ("month", "This month")];

#[cfg(feature = "ssr")]
pub mod ssr {
    use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};

    use crate::error::ConsoleError;

    fn ts(t: DateTime<Utc>) -> String {
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    /// The current time as the admin API writes bucket starts
    /// (`YYYY-MM-DDTHH:MM:SSZ`): a bucket that starts after it is in the future.
    pub fn now() -> String {
        ts(Utc::now())
    }

    /// A range name (or `custom` with `YYYY-MM-DD` dates) → (name, from, to);
    /// an unknown name is `default`.
    pub fn resolve(
        range: &str,
        from: Option<&str>,
        to: Option<&str>,
        default: &str,
    ) -> Result<(String, String, String), ConsoleError> {
        resolve_at(Utc::now(), range, from, to, default)
    }

    pub(crate) fn resolve_at(
        now: DateTime<Utc>,
        range: &str,
        from: Option<&str>,
        to: Option<&str>,
        default: &str,
    ) -> Result<(String, String, String), ConsoleError> {
        let next_hour =
            Utc.timestamp_opt(now.timestamp() - now.timestamp().rem_euclid(3600) + 3600, 0).single().unwrap_or(now);
        let tomorrow =
            Utc.from_utc_datetime(&(now.date_naive() + Duration::days(1)).and_hms_opt(0, 0, 0).unwrap_or_default());
        let date = |t: &str| -> Result<DateTime<Utc>, ConsoleError> {
            NaiveDate::parse_from_str(t.trim(), "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| Utc.from_utc_datetime(&d))
                .ok_or_else(|| ConsoleError::Invalid(format!("{t:?} is not a date (YYYY-MM-DD).")))
        };
        let range = if matches!(range, "custom" | "24h" | "7d" | "30d" | "month") { range } else { default };
        let (name, a, b) = match (range, from.filter(|f| !f.is_empty()), to.filter(|t| !t.is_empty())) {
            ("custom", Some(f), Some(t)) => {
                let (a, b) = (date(f)?, date(t)? + Duration::days(1));
                if a >= b {
                    return Err(ConsoleError::Invalid("The start date must not be after the end date.".into()));
                }
                if b - a > Duration::days(400) {
                    return Err(ConsoleError::Invalid("Choose at most 400 days.".into()));
                }
                ("custom", a, b)
            }
            ("custom", _, _) => return Err(ConsoleError::Invalid("Give both a start and an end date.".into())),
            ("24h", _, _) => ("24h", next_hour - Duration::hours(24), next_hour),
            ("30d", _, _) => ("30d", tomorrow - Duration::days(30), tomorrow),
            ("month", _, _) => {
                let start = NaiveDate::from_ymd_opt(now.year(), now.month(), 1).unwrap_or(now.date_naive());
                let next = if now.month() == 12 {
                    NaiveDate::from_ymd_opt(now.year() + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(now.year(), now.month() + 1, 1)
                }
                .unwrap_or(start);
                (
                    "month",
                    Utc.from_utc_datetime(&start.and_hms_opt(0, 0, 0).unwrap_or_default()),
                    Utc.from_utc_datetime(&next.and_hms_opt(0, 0, 0).unwrap_or_default()),
                )
            }
            _ => ("7d", tomorrow - Duration::days(7), tomorrow),
        };
        Ok((name.to_string(), ts(a), ts(b)))
    }
}

/// The picker: one link per named range (the active one marked with
/// `aria-current`) and a custom from/to form, all as GET requests to `action`.
#[component]
pub fn RangePicker(
    /// The page's path (`/costs`, `/`).
    action: &'static str,
    /// The range shown without a `range` parameter.
    default: &'static str,
) -> impl IntoView {
    let query = use_query_map();
    let get = move |k: &str| query.with(|q| q.get(k).filter(|v| !v.is_empty()));
    let current = move || get("range").unwrap_or_else(|| default.to_string());
    view! {
        <form class="filters range-picker" method="get" action=action data-testid="range-form">
            <div class="segmented" role="group" aria-label="Time range">
                {RANGES
                    .iter()
                    .map(|(value, label)| {
                        let v: &'static str = value;
                        let active = move || current() == v;
                        view! {
                            <a
                                href=format!("{action}?range={value}")
                                class=move || if active() { "seg seg-active" } else { "seg" }
                                aria-current=move || active().then_some("page")
                                data-testid=format!("range-{value}")
                            >
                                {*label}
                            </a>
                        }
                    })
                    .collect_view()}
            </div>
            <input type="hidden" name="range" value="custom"/>
            <label class="inline">"From " <input type="date" name="from" value=move || get("from").unwrap_or_default() data-testid="range-from"/></label>
            <label class="inline">"To " <input type="date" name="to" value=move || get("to").unwrap_or_default() data-testid="range-to"/></label>
            <button type="submit" class="button button-quiet" data-testid="range-apply">"Apply"</button>
        </form>
    }
}

#[cfg(test)]
#[cfg(feature = "ssr")]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::ssr::resolve_at;

    #[test]
    fn ranges_resolve_on_a_fixed_clock() {
        let now = Utc.with_ymd_and_hms(2026, 12, 4, 20, 50, 8).unwrap();
        let r = |name: &str, f: Option<&str>, t: Option<&str>| resolve_at(now, name, f, t, "7d");
        let (name, from, to) = r("custom", Some("2026-01-01"), Some("2026-01-31")).unwrap();
        assert_eq!(
            (name.as_str(), from.as_str(), to.as_str()),
            ("custom", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z")
        );
        assert!(r("custom", Some("2026-02-01"), Some("2026-01-01")).is_err());
        assert!(r("custom", Some("2025-01-01"), Some("2026-12-01")).is_err(), "more than 400 days");
        assert!(r("custom", Some("2026-01-01"), None).is_err());
        assert!(r("custom", Some("01/02/2026"), Some("2026-01-01")).is_err());
        assert_eq!(
            r("bogus", None, None).unwrap(),
            ("7d".into(), "2026-11-28T00:00:00Z".into(), "2026-12-05T00:00:00Z".into())
        );
        assert_eq!(
            r("24h", None, None).unwrap(),
            ("24h".into(), "2026-12-03T21:00:00Z".into(), "2026-12-04T21:00:00Z".into())
        );
        assert_eq!(r("30d", None, None).unwrap().1, "2026-11-05T00:00:00Z");
        assert_eq!(
            r("month", None, None).unwrap(),
            ("month".into(), "2026-12-01T00:00:00Z".into(), "2027-01-01T00:00:00Z".into())
        );
        assert_eq!(resolve_at(now, "", None, None, "24h").unwrap().0, "24h");
    }
}
