//! Process metrics in the Prometheus text format (`GET /metrics`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// Request-duration histogram bounds, in seconds.
const DURATION_BOUNDS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

#[derive(Debug, Default)]
pub struct Metrics {
    /// (model, provider, status code) → count.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// (kind = input|output|cached, model) → tokens.
    tokens: Mutex<BTreeMap<(&'static str, String), u64>>,
    /// model → nano-USD.
    cost: Mutex<BTreeMap<String, u64>>,
    /// (provider, kind) → failures of upstream calls.
    upstream_errors: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// code → requests refused before routing (auth, admission, bad input).
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    /// provider → calls skipped because its circuit breaker was open.
    breaker_skips: Mutex<BTreeMap<String, u64>>,
    /// provider → retries.
    retries: Mutex<BTreeMap<String, u64>>,
    /// (rollout, by) → rollbacks.
    rollbacks: Mutex<BTreeMap<(String, &'static str), u64>>,
    duration_buckets: [AtomicU64; DURATION_BOUNDS.len()],
    duration_count: AtomicU64,
    duration_sum_us: AtomicU64,
    pub in_flight: AtomicI64,
}

fn bump<K: Ord>(m: &Mutex<BTreeMap<K, u64>>, k: K, by: u64) {
    if let Ok(mut g) = m.lock() {
        *g.entry(k).or_insert(0) += by;
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    pub fn request(&self, model: &str, provider: &str, status: u16, seconds: f64) {
        bump(&self.requests, (model.to_string(), provider.to_string(), status), 1);
        for (i, b) in DURATION_BOUNDS.iter().enumerate() {
            if seconds <= *b {
                self.duration_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.duration_count.fetch_add(1, Ordering::Relaxed);
        self.duration_sum_us.fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    pub fn tokens(&self, model: &str, input: u64, output: u64, cached: u64, cost_nanos: i64) {
        bump(&self.tokens, ("input", model.to_string()), input);
        bump(&self.tokens, ("output", model.to_string()), output);
        if cached > 0 {
            bump(&self.tokens, ("cached", model.to_string()), cached);
        }
        bump(&self.cost, model.to_string(), cost_nanos.max(0) as u64);
    }

    pub fn upstream_error(&self, provider: &str, kind: &'static str) {
        bump(&self.upstream_errors, (provider.to_string(), kind), 1);
    }

    pub fn rejected(&self, code: &'static str) {
        bump(&self.rejected, code, 1);
    }

    pub fn breaker_skip(&self, provider: &str) {
        bump(&self.breaker_skips, provider.to_string(), 1);
    }

    pub fn retry(&self, provider: &str) {
        bump(&self.retries, provider.to_string(), 1);
    }

    pub fn rollback(&self, rollout: &str, by: &'static str) {
        bump(&self.rollbacks, (rollout.to_string(), by), 1);
    }

    /// Renders every metric; `breakers` are (provider, 0 closed / 1 half-open / 2 open).
    pub fn render(&self, queue_depth: usize, breakers: &[(String, u8)]) -> String {
        let mut out = String::with_capacity(4096);
        let _ = writeln!(out, "# HELP sheepdog_requests_total Chat completion requests that reached routing, by model, provider and HTTP status.");
        let _ = writeln!(out, "# TYPE sheepdog_requests_total counter");
        if let Ok(g) = self.requests.lock() {
            for ((model, provider, status), n) in g.iter() {
                let _ = writeln!(
                    out,
                    "sheepdog_requests_total{{model=\"{}\",provider=\"{}\",status=\"{status}\"}} {n}",
                    escape(model),
                    escape(provider)
                );
            }
        }
        let _ =
            writeln!(out, "# HELP sheepdog_rejected_requests_total Requests refused before routing, by error code.");
        let _ = writeln!(out, "# TYPE sheepdog_rejected_requests_total counter");
        if let Ok(g) = self.rejected.lock() {
            for (code, n) in g.iter() {
                let _ = writeln!(out, "sheepdog_rejected_requests_total{{code=\"{code}\"}} {n}");
            }
        }
        let _ = writeln!(out, "# HELP sheepdog_tokens_total Tokens billed, by kind and model.");
        let _ = writeln!(out, "# TYPE sheepdog_tokens_total counter");
        if let Ok(g) = self.tokens.lock() {
            for ((kind, model), n) in g.iter() {
                let _ = writeln!(out, "sheepdog_tokens_total{{kind=\"{kind}\",model=\"{}\"}} {n}", escape(model));
            }
        }
        let _ = writeln!(out, "# HELP sheepdog_cost_nanousd_total Cost billed in nano-USD, by model.");
        let _ = writeln!(out, "# TYPE sheepdog_cost_nanousd_total counter");
        if let Ok(g) = self.cost.lock() {
            for (model, n) in g.iter() {
                let _ = writeln!(out, "sheepdog_cost_nanousd_total{{model=\"{}\"}} {n}", escape(model));
            }
        }
        let _ = writeln!(out, "# HELP sheepdog_upstream_errors_total Failed upstream calls, by provider and kind.");
        let _ = writeln!(out, "# TYPE sheepdog_upstream_errors_total counter");
        if let Ok(g) = self.upstream_errors.lock() {
            for ((provider, kind), n) in g.iter() {
                let _ = writeln!(
                    out,
                    "sheepdog_upstream_errors_total{{provider=\"{}\",kind=\"{kind}\"}} {n}",
                    escape(provider)
                );
            }
        }
        let _ = writeln!(out, "# HELP sheepdog_request_duration_seconds Time from request to last byte of the answer.");
        let _ = writeln!(out, "# TYPE sheepdog_request_duration_seconds histogram");
        for (i, b) in DURATION_BOUNDS.iter().enumerate() {
            let _ = writeln!(
                out,
                "sheepdog_request_duration_seconds_bucket{{le=\"{b}\"}} {}",
                self.duration_buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.duration_count.load(Ordering::Relaxed);
        let _ = writeln!(out, "sheepdog_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "sheepdog_request_duration_seconds_sum {}",
            self.duration_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "sheepdog_request_duration_seconds_count {count}");
        let _ = writeln!(out, "# HELP sheepdog_in_flight_requests Chat completion requests being served now.");
        let _ = writeln!(out, "# TYPE sheepdog_in_flight_requests gauge");
        let _ = writeln!(out, "sheepdog_in_flight_requests {}", self.in_flight.load(Ordering::Relaxed));
        let _ =
            writeln!(out, "# HELP sheepdog_breaker_state Circuit breaker per upstream: 0 closed, 1 half-open, 2 open.");
        let _ = writeln!(out, "# TYPE sheepdog_breaker_state gauge");
        for (provider, state) in breakers {
            let _ = writeln!(out, "sheepdog_breaker_state{{provider=\"{}\"}} {state}", escape(provider));
        }
        let _ = writeln!(
            out,
            "# HELP sheepdog_breaker_skips_total Calls not made because the upstream's breaker was open."
        );
        let _ = writeln!(out, "# TYPE sheepdog_breaker_skips_total counter");
        if let Ok(g) = self.breaker_skips.lock() {
            for (provider, n) in g.iter() {
                let _ = writeln!(out, "sheepdog_breaker_skips_total{{provider=\"{}\"}} {n}", escape(provider));
            }
        }
        let _ = writeln!(out, "# HELP sheepdog_retries_total Upstream calls retried.");
        let _ = writeln!(out, "# TYPE sheepdog_retries_total counter");
        if let Ok(g) = self.retries.lock() {
            for (provider, n) in g.iter() {
                let _ = writeln!(out, "sheepdog_retries_total{{provider=\"{}\"}} {n}", escape(provider));
            }
        }
        let _ = writeln!(
            out,
            "# HELP sheepdog_rollout_rollbacks_total Rollouts rolled back, by rollout and by whom (guard or operator)."
        );
        let _ = writeln!(out, "# TYPE sheepdog_rollout_rollbacks_total counter");
        if let Ok(g) = self.rollbacks.lock() {
            for ((rollout, by), n) in g.iter() {
                let _ = writeln!(
                    out,
                    "sheepdog_rollout_rollbacks_total{{rollout=\"{}\",by=\"{by}\"}} {n}",
                    escape(rollout)
                );
            }
        }
        let _ = writeln!(out, "# HELP sheepdog_accounting_queue_depth Usage events waiting to be written.");
        let _ = writeln!(out, "# TYPE sheepdog_accounting_queue_depth gauge");
        let _ = writeln!(out, "sheepdog_accounting_queue_depth {queue_depth}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.request("gpt-4.1", "openai", 200, 0.02);
        m.tokens("gpt-4.1", 10, 5, 0, 60_000);
        m.rejected("invalid_api_key");
        let text = m.render(3, &[("openai".into(), 2)]);
        assert!(text.contains("sheepdog_breaker_state{provider=\"openai\"} 2"));
        assert!(text.contains("sheepdog_requests_total{model=\"gpt-4.1\",provider=\"openai\",status=\"200\"} 1"));
        assert!(text.contains("sheepdog_request_duration_seconds_bucket{le=\"0.025\"} 1"));
        assert!(text.contains("sheepdog_request_duration_seconds_bucket{le=\"0.01\"} 0"));
        assert!(text.contains("sheepdog_cost_nanousd_total{model=\"gpt-4.1\"} 60000"));
        assert!(text.contains("sheepdog_accounting_queue_depth 3"));
        assert!(text.contains("sheepdog_rejected_requests_total{code=\"invalid_api_key\"} 1"));
    }
}
