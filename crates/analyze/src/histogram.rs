//! A sparse histogram of non-negative integers with bounded relative error
//! (token counts per request, requests and tokens per minute).

use std::collections::HashMap;

/// A histogram of non-negative integers: exact below 512, then buckets
/// 1/256 of a power of two wide, so a quantile read from it overestimates
/// the true value by less than 0.4 %. Sparse: memory grows with the number
/// of distinct buckets used, not with the number of values.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    buckets: HashMap<u32, u64>,
    count: u64,
    max: u64,
    sum: u128,
}

const EXACT: u64 = 512;

fn bucket_of(v: u64) -> u32 {
    if v < EXACT {
        return v as u32;
    }
    let e = 63 - v.leading_zeros(); // ≥ 9
    let m = (v >> (e - 8)) as u32 - 256; // 0..256
    512 + (e - 9) * 256 + m
}

fn bucket_high(b: u32) -> u64 {
    if u64::from(b) < EXACT {
        return u64::from(b);
    }
    let e = (b - 512) / 256 + 9;
    let m = u64::from((b - 512) % 256 + 256);
    ((m + 1) << (e - 8)).saturating_sub(1)
}

impl Histogram {
    pub fn record(&mut self, v: u64) {
        *self.buckets.entry(bucket_of(v)).or_insert(0) += 1;
        self.count += 1;
        self.max = self.max.max(v);
        self.sum += u128::from(v);
    }

    pub fn merge(&mut self, o: &Histogram) {
        for (b, c) in &o.buckets {
            *self.buckets.entry(*b).or_insert(0) += c;
        }
        self.count += o.count;
        self.max = self.max.max(o.max);
        self.sum += o.sum;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn sum(&self) -> u128 {
        self.sum
    }

    /// Nearest-rank quantile (`q` in 0..=1): the smallest recorded bucket
    /// holding at least `ceil(q·n)` values, as its upper bound (never above
    /// the maximum). 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((self.count as f64) * q).ceil().clamp(1.0, self.count as f64) as u64;
        let mut keys: Vec<u32> = self.buckets.keys().copied().collect();
        keys.sort_unstable();
        let mut seen = 0;
        for k in keys {
            seen += self.buckets.get(&k).copied().unwrap_or(0);
            if seen >= rank {
                return bucket_high(k).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_exact_below_512_and_within_bounds_above() {
        let mut h = Histogram::default();
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.quantile(0.5), 50);
        assert_eq!(h.quantile(0.95), 95);
        assert_eq!(h.quantile(1.0), 100);
        assert_eq!(h.quantile(0.0), 1);
        for v in [512u64, 513, 1000, 123_456, 9_999_999, u64::MAX / 3] {
            let b = bucket_of(v);
            let hi = bucket_high(b);
            assert!(hi >= v && (hi - v) as f64 <= v as f64 / 256.0, "{v} -> {hi}");
            if b > 0 {
                assert!(bucket_high(b - 1) < v, "{v}");
            }
        }
        let mut big = Histogram::default();
        big.record(100_000);
        assert_eq!(big.quantile(0.5), 100_000, "never above the max");
        let mut m = Histogram::default();
        m.merge(&h);
        m.merge(&big);
        assert_eq!(m.count(), 101);
        assert_eq!(m.max(), 100_000);
        assert_eq!(Histogram::default().quantile(0.5), 0);
    }
}
