//! Usage for cost attribution: `GET /admin/v1/usage` (grouped totals) and
//! `GET /admin/v1/usage/series` (the same over time).

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// One row of `GET /admin/v1/usage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UsageRow {
    pub key: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    /// Decimal USD with nine places.
    pub cost_usd: String,
    /// The same amount as an integer count of nano-USD.
    pub cost_nanos: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UsageReport {
    pub from: String,
    pub to: String,
    pub group_by: String,
    pub data: Vec<UsageRow>,
}

/// One series of `GET /admin/v1/usage/series`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UsageSeriesRow {
    /// Tenant id, cost center (`(none)` when unset) or model.
    pub key: String,
    /// Tenant name for tenants; the key otherwise.
    pub label: String,
    /// Cost in nano-USD per bucket (same order as `buckets`).
    pub values_nanos: Vec<i64>,
    /// Requests per bucket.
    pub requests_per_bucket: Vec<u64>,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: String,
    pub cost_nanos: i64,
}

/// `GET /admin/v1/usage/series`: cost over time, one series per group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UsageSeries {
    pub from: String,
    pub to: String,
    /// `tenant`, `cost_center` or `model`.
    pub group_by: String,
    /// `hour` or `day`.
    pub bucket: String,
    /// Start of each bucket (RFC 3339, UTC).
    pub buckets: Vec<String>,
    /// Ordered by cost, largest first.
    pub series: Vec<UsageSeriesRow>,
}

impl UsageSeriesRow {
    /// A row of `buckets` zeros.
    pub fn empty(key: String, label: String, buckets: usize) -> UsageSeriesRow {
        UsageSeriesRow {
            key,
            label,
            values_nanos: vec![0; buckets],
            requests_per_bucket: vec![0; buckets],
            requests: 0,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: String::new(),
            cost_nanos: 0,
        }
    }
}

/// The key of the row that sums the groups beyond [`UsageSeries::keep_top`]'s count.
pub const OTHER_KEY: &str = "(other)";

impl UsageSeries {
    /// The largest `keep` groups (the series is sorted largest first) and
    /// one row, keyed [`OTHER_KEY`] and labelled "N more", summing the rest
    /// per bucket: totals are unchanged to the nano-dollar. A single extra
    /// group is kept as itself.
    pub fn keep_top(mut self, keep: usize) -> UsageSeries {
        if self.series.len() <= keep + 1 {
            return self;
        }
        let rest = self.series.split_off(keep);
        let n = self.buckets.len();
        let mut other = UsageSeriesRow::empty(OTHER_KEY.into(), format!("{} more", rest.len()), n);
        for r in &rest {
            for (o, v) in other.values_nanos.iter_mut().zip(&r.values_nanos) {
                *o += v;
            }
            for (o, v) in other.requests_per_bucket.iter_mut().zip(&r.requests_per_bucket) {
                *o += v;
            }
            other.requests += r.requests;
            other.input_tokens += r.input_tokens;
            other.output_tokens += r.output_tokens;
            other.cost_nanos += r.cost_nanos;
        }
        other.cost_usd = crate::format_usd(other.cost_nanos);
        self.series.push(other);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, v: Vec<i64>) -> UsageSeriesRow {
        UsageSeriesRow {
            key: key.into(),
            label: key.into(),
            cost_nanos: v.iter().sum(),
            requests_per_bucket: vec![1; v.len()],
            values_nanos: v,
            requests: 2,
            input_tokens: 3,
            output_tokens: 4,
            cost_usd: String::new(),
        }
    }

    #[test]
    fn beyond_the_top_groups_one_row_sums_the_rest_exactly() {
        let s = UsageSeries {
            from: String::new(),
            to: String::new(),
            group_by: "tenant".into(),
            bucket: "day".into(),
            buckets: vec!["2026-11-01T00:00:00Z".into(), "2026-11-02T00:00:00Z".into()],
            series: (0..30).map(|i| row(&format!("t{i}"), vec![100 - i, 7])).collect(),
        };
        let total: i64 = s.series.iter().map(|r| r.cost_nanos).sum();
        let top = s.clone().keep_top(25);
        assert_eq!(top.series.len(), 26);
        let other = &top.series[25];
        assert_eq!((other.key.as_str(), other.label.as_str()), (OTHER_KEY, "5 more"));
        assert_eq!(other.values_nanos, vec![(25..30).map(|i| 100 - i).sum::<i64>(), 35]);
        assert_eq!(other.requests_per_bucket, vec![5, 5]);
        assert_eq!((other.requests, other.input_tokens, other.output_tokens), (10, 15, 20));
        assert_eq!(top.series.iter().map(|r| r.cost_nanos).sum::<i64>(), total);
        assert_eq!(other.cost_usd, crate::format_usd(other.cost_nanos));
        // One extra group is shown as itself, not as "1 more".
        let small = UsageSeries { series: s.series[..26].to_vec(), ..s };
        assert_eq!(small.clone().keep_top(25), small);
    }
}
