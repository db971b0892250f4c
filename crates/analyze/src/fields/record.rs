//! The values found in a record resolved into a [`Record`]: timestamps and
//! durations, token counts, status and error, the endpoint's path.

use std::borrow::Cow;

use super::field::Field;
use super::plan::Plan;
use super::slots::{Scalar, Slots};
use crate::time::{epoch_int_to_ms, epoch_to_ms, parse_timestamp};

/// Whether a logged timestamp is the start of the request (default) or its end
/// (a type of the report, in [`sheepdog_types::analysis`]).
pub use sheepdog_types::analysis::TimestampAt;

/// One request, as the aggregates need it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<'a> {
    pub start_ms: i64,
    /// `None`: no usable duration (the request counts in rates, not in concurrency).
    pub end_ms: Option<i64>,
    /// The end (or duration) said the request ended before it started.
    pub skewed: bool,
    pub tenant: Option<Cow<'a, str>>,
    pub model: Option<Cow<'a, str>>,
    pub endpoint: Option<Cow<'a, str>>,
    /// Prompt tokens, cached ones included.
    pub input: u64,
    pub output: u64,
    pub cached: u64,
    pub has_usage: bool,
    pub error: bool,
}

fn text<'a>(s: Scalar<'a>) -> Option<Cow<'a, str>> {
    match s {
        Scalar::Str(c) => {
            let t = c.trim();
            if t.is_empty() {
                None
            } else if t.len() == c.len() {
                Some(c)
            } else {
                Some(Cow::Owned(t.to_string()))
            }
        }
        Scalar::U(v) => Some(Cow::Owned(v.to_string())),
        Scalar::I(v) => Some(Cow::Owned(v.to_string())),
        Scalar::F(v) => Some(Cow::Owned(v.to_string())),
        Scalar::Bool(v) => Some(Cow::Owned(v.to_string())),
        Scalar::Present => None,
    }
}

fn number(s: &Scalar<'_>) -> Option<f64> {
    match s {
        Scalar::U(v) => Some(*v as f64),
        Scalar::I(v) => Some(*v as f64),
        Scalar::F(v) => Some(*v),
        Scalar::Str(c) => c.trim().parse::<f64>().ok(),
        _ => None,
    }
}

fn tokens(s: &Scalar<'_>, what: &str) -> Result<Option<u64>, String> {
    match s {
        Scalar::U(v) => Ok(Some(*v)),
        Scalar::I(v) if *v >= 0 => Ok(Some(*v as u64)),
        Scalar::Str(c) if c.trim().is_empty() => Ok(None),
        Scalar::Str(c) => match c.trim().parse::<u64>() {
            Ok(v) => Ok(Some(v)),
            Err(_) => match c.trim().parse::<f64>() {
                Ok(f) if f.is_finite() && f >= 0.0 => Ok(Some(f.round() as u64)),
                _ => Err(format!("{what} {c:?} is not a token count")),
            },
        },
        Scalar::F(f) if f.is_finite() && *f >= 0.0 => Ok(Some(f.round() as u64)),
        Scalar::Present | Scalar::Bool(_) => Ok(None),
        other => Err(format!("{what} {other:?} is not a token count")),
    }
}

fn timestamp(s: &Scalar<'_>) -> Result<i64, String> {
    let r = match s {
        Scalar::Str(c) => parse_timestamp(c),
        Scalar::U(v) => i64::try_from(*v).ok().and_then(epoch_int_to_ms),
        Scalar::I(v) => epoch_int_to_ms(*v),
        Scalar::F(v) => epoch_to_ms(*v),
        _ => None,
    };
    r.ok_or_else(|| match s {
        Scalar::Str(c) => format!("unreadable timestamp {c:?}"),
        other => format!("unreadable timestamp {other:?}"),
    })
}

/// Whether a status value says the request failed: an HTTP status ≥ 400, or
/// a word such as `failure`, `error`, `upstream_error`.
fn status_is_error(s: &Scalar<'_>) -> Option<bool> {
    match s {
        Scalar::U(v) => Some(*v >= 400),
        Scalar::I(v) => Some(*v >= 400 || *v < 0),
        Scalar::F(v) => Some(*v >= 400.0),
        Scalar::Bool(b) => Some(!*b),
        Scalar::Str(c) => {
            let t = c.trim();
            if let Ok(code) = t.parse::<i64>() {
                return Some(code >= 400);
            }
            let l = t.to_ascii_lowercase();
            match l.as_str() {
                "" => None,
                "success" | "succeeded" | "ok" | "completed" | "complete" | "done" | "client_cancelled" => Some(false),
                "failure" | "failed" | "fail" | "error" | "errored" | "upstream_error" | "rejected" | "timeout"
                | "cancelled" => Some(true),
                _ => None,
            }
        }
        Scalar::Present => None,
    }
}

fn error_present(s: &Scalar<'_>) -> bool {
    match s {
        Scalar::Present => true,
        Scalar::Bool(b) => *b,
        Scalar::Str(c) => {
            let l = c.trim().to_ascii_lowercase();
            !matches!(l.as_str(), "" | "null" | "none" | "false" | "0")
        }
        Scalar::U(v) => *v != 0,
        Scalar::I(v) => *v != 0,
        Scalar::F(v) => *v != 0.0,
    }
}

/// `https://api.openai.com/v1/chat/completions?x=1` → `/v1/chat/completions`.
fn normalize_endpoint(e: Cow<'_, str>) -> Cow<'_, str> {
    let s: &str = &e;
    let mut start = 0;
    let mut end = s.len();
    if let Some(rest) = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://")) {
        let offset = s.len() - rest.len();
        start = rest.find('/').map(|i| offset + i).unwrap_or(s.len());
    }
    if let Some(q) = s[start..].find(['?', '#']) {
        end = start + q;
    }
    if start == 0 && end == s.len() {
        return e;
    }
    let p = &s[start..end];
    Cow::Owned(if p.is_empty() { "/".to_string() } else { p.to_string() })
}

impl Plan {
    fn first<'a>(&self, f: Field, slots: &mut Slots<'a>) -> Option<Scalar<'a>> {
        for &s in &self.by_field[f.index()] {
            if let Some(v) = slots.take(s) {
                return Some(v);
            }
        }
        None
    }

    /// Turns the values found into a [`Record`], or says why the record is unusable.
    pub fn resolve<'a>(&self, slots: &mut Slots<'a>, at: TimestampAt) -> Result<Record<'a>, String> {
        let ts = self.first(Field::Start, slots).map(|s| timestamp(&s)).transpose()?;
        let end = self.first(Field::End, slots).map(|s| timestamp(&s)).transpose()?;
        let dur_ms = match self.first(Field::DurationMs, slots) {
            Some(s) => Some(number(&s).ok_or_else(|| format!("duration {s:?} is not a number"))?),
            None => match self.first(Field::DurationS, slots) {
                Some(s) => Some(number(&s).ok_or_else(|| format!("duration {s:?} is not a number"))? * 1000.0),
                None => None,
            },
        };
        let dur_ms = match dur_ms {
            Some(d) if d.is_finite() && d.abs() < 1e13 => Some(d.round() as i64),
            Some(d) => return Err(format!("duration {d} is out of range")),
            None => None,
        };
        let (start_ms, end_ms, skewed) = match (ts, end, dur_ms) {
            (Some(t), Some(e), _) => {
                let (s, e) = match at {
                    TimestampAt::Start => (t, e),
                    TimestampAt::End => (dur_ms.map(|d| e - d).unwrap_or(t), e),
                };
                if e < s {
                    (s, None, true)
                } else {
                    (s, Some(e), false)
                }
            }
            (Some(t), None, Some(d)) => {
                let (s, e) = match at {
                    TimestampAt::Start => (t, t.saturating_add(d)),
                    TimestampAt::End => (t.saturating_sub(d), t),
                };
                if d < 0 {
                    (s.min(e), None, true)
                } else {
                    (s, Some(e), false)
                }
            }
            (Some(t), None, None) => (t, None, false),
            (None, Some(e), Some(d)) if d >= 0 => (e - d, Some(e), false),
            (None, Some(e), _) => (e, None, false),
            (None, None, _) => return Err("no timestamp field (start time)".into()),
        };
        let input = self.first(Field::InputTokens, slots).map(|s| tokens(&s, "input tokens")).transpose()?.flatten();
        let output = self.first(Field::OutputTokens, slots).map(|s| tokens(&s, "output tokens")).transpose()?.flatten();
        let total = self.first(Field::TotalTokens, slots).map(|s| tokens(&s, "total tokens")).transpose()?.flatten();
        let cached = self.first(Field::CachedTokens, slots).map(|s| tokens(&s, "cached tokens")).transpose()?.flatten();
        let cache_read =
            self.first(Field::CacheReadTokens, slots).map(|s| tokens(&s, "cache read tokens")).transpose()?.flatten();
        let (input, output) = match (input, output, total) {
            (None, Some(o), Some(t)) => (Some(t.saturating_sub(o)), Some(o)),
            (Some(i), None, Some(t)) => (Some(i), Some(t.saturating_sub(i))),
            (None, None, Some(t)) => (Some(t), Some(0)),
            other => (other.0, other.1),
        };
        let has_usage = input.is_some() || output.is_some();
        let read = cache_read.unwrap_or(0);
        let input = input.unwrap_or(0).saturating_add(read);
        let cached = cached.unwrap_or(0).saturating_add(read).min(input);
        let mut error = false;
        if let Some(s) = self.first(Field::Status, slots) {
            error = status_is_error(&s).unwrap_or(false);
        }
        if let Some(e) = self.first(Field::Error, slots) {
            error |= error_present(&e);
        }
        Ok(Record {
            start_ms,
            end_ms,
            skewed,
            tenant: self.first(Field::Tenant, slots).and_then(text),
            model: self.first(Field::Model, slots).and_then(text),
            endpoint: self.first(Field::Endpoint, slots).and_then(text).map(normalize_endpoint),
            input,
            output: output.unwrap_or(0),
            cached,
            has_usage,
            error,
        })
    }
}
