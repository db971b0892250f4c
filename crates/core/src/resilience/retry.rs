//! Retries: which upstream failures are worth another try, and how long to
//! wait (exponential backoff with full jitter, at least the upstream's
//! `Retry-After`). Retries only happen before the first byte reaches the
//! client; the caller guarantees that.

use std::time::Duration;

use crate::providers::{UpstreamError, UpstreamErrorKind};

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base: Duration,
    pub max: Duration,
    /// A `Retry-After` longer than this is not waited for: the next route is tried.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(5),
        }
    }
}

/// Whether the failure is the upstream's (counts against its breaker, may
/// be retried and may fall back) rather than the client's own request.
pub fn is_upstream_fault(e: &UpstreamError) -> bool {
    match e.kind {
        UpstreamErrorKind::Connect | UpstreamErrorKind::Timeout | UpstreamErrorKind::Protocol => true,
        UpstreamErrorKind::ContentBlocked => false,
        UpstreamErrorKind::Status => match e.status {
            Some(s) => s == 408 || s == 429 || s >= 500,
            // An error event inside an otherwise fine stream.
            None => true,
        },
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (1-based), or `None` when the
    /// failure should not be retried on this route.
    pub fn delay(&self, attempt: u32, err: &UpstreamError, jitter: f64) -> Option<Duration> {
        if attempt > self.max_retries || !is_upstream_fault(err) {
            return None;
        }
        let exp = self.base.saturating_mul(1u32 << (attempt - 1).min(16)).min(self.max);
        let backoff = exp.mul_f64(jitter.clamp(0.0, 1.0));
        match err.retry_after {
            Some(ra) if ra > self.max_retry_after => None,
            Some(ra) => Some(ra.max(backoff)),
            None => Some(backoff),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, retry_after: Option<Duration>) -> UpstreamError {
        UpstreamError::from_status("p", code, b"", retry_after)
    }

    #[test]
    fn retries_only_upstream_faults_with_backoff() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, &status(500, None), 1.0), Some(Duration::from_millis(100)));
        assert_eq!(p.delay(2, &status(503, None), 1.0), Some(Duration::from_millis(200)));
        assert_eq!(p.delay(2, &status(503, None), 0.5), Some(Duration::from_millis(100)));
        assert_eq!(p.delay(3, &status(503, None), 1.0), None, "max retries");
        assert_eq!(p.delay(1, &status(400, None), 1.0), None, "the client's fault");
        assert_eq!(p.delay(1, &status(404, None), 1.0), None);
        assert_eq!(p.delay(1, &UpstreamError::new(UpstreamErrorKind::Timeout, "t"), 0.0), Some(Duration::ZERO));
        assert_eq!(p.delay(1, &UpstreamError::new(UpstreamErrorKind::ContentBlocked, "b"), 1.0), None);
    }

    #[test]
    fn honours_retry_after() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, &status(429, Some(Duration::from_secs(1))), 1.0), Some(Duration::from_secs(1)));
        assert_eq!(p.delay(1, &status(429, Some(Duration::from_secs(30))), 1.0), None, "too long: fall back instead");
    }
}
