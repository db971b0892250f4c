//! Process metrics in the Prometheus text format (`GET /metrics`).
//!
//! The counters every request touches (requests, tokens, cost, duration,
//! in-flight) live in per-thread shards: each gateway worker updates its own
//! shard (an uncontended lock, no cache line shared with the other cores, no
//! allocation once a label set has been seen) and a scrape sums the shards.
//! Counters of rarer events (refusals, upstream errors, retries…) are one map
//! each.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Request-duration histogram bounds, in seconds.
const DURATION_BOUNDS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// Shards of the per-request counters (threads beyond this share them).
const SHARDS: usize = 16;

#[derive(Debug, Default)]
pub struct Metrics {
    shards: [Shard; SHARDS],
    /// code → requests refused before routing (auth, admission, bad input).
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    /// (provider, kind) → failures of upstream calls.
    upstream_errors: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// provider → calls skipped because its circuit breaker was open.
    breaker_skips: Mutex<BTreeMap<String, u64>>,
    /// provider → retries.
    retries: Mutex<BTreeMap<String, u64>>,
    /// (rollout, by) → rollbacks.
    rollbacks: Mutex<BTreeMap<(String, &'static str), u64>>,
}

/// One thread's share of the per-request counters, on its own cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(Mutex<Counters>);

#[derive(Debug, Default)]
struct Counters {
    /// (model, provider, status code, count): a handful of label sets, scanned.
    requests: Vec<(String, String, u16, u64)>,
    /// (model, [input, output, cached] tokens, cost in nano-USD).
    models: Vec<(String, [u64; 3], u64)>,
    /// (client format, count): `chat`, `messages`, `responses`, `embeddings`.
    ingresses: Vec<(&'static str, u64)>,
    /// Requests per duration bucket (not cumulative; the last is +Inf).
    duration_buckets: [u64; DURATION_BOUNDS.len() + 1],
    duration_sum_us: u64,
    in_flight: i64,
}

const TOKEN_KINDS: [&str; 3] = ["input", "output", "cached"];

fn bump<K: Ord>(m: &Mutex<BTreeMap<K, u64>>, k: K, by: u64) {
    if let Ok(mut g) = m.lock() {
        *g.entry(k).or_insert(0) += by;
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    /// This thread's shard.
    fn shard(&self) -> std::sync::MutexGuard<'_, Counters> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
        }
        let i = INDEX.try_with(|i| *i).unwrap_or(0);
        self.shards[i].0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sums the shards (for a scrape).
    fn totals(&self) -> Counters {
        let mut t = Counters::default();
        for shard in &self.shards {
            let c = shard.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            for (model, provider, status, n) in &c.requests {
                t.count_request(model, provider, *status, *n);
            }
            for (ingress, n) in &c.ingresses {
                t.count_ingress(ingress, *n);
            }
            for (model, tokens, cost) in &c.models {
                let m = t.model(model);
                for (sum, n) in m.1.iter_mut().zip(tokens) {
                    *sum += n;
                }
                m.2 += cost;
            }
            for (i, n) in c.duration_buckets.iter().enumerate() {
                t.duration_buckets[i] += n;
            }
            t.duration_sum_us += c.duration_sum_us;
            t.in_flight += c.in_flight;
        }
        t
    }

    /// Requests being served now (summed over the shards).
    pub fn in_flight_now(&self) -> i64 {
        self.shards.iter().map(|s| s.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).in_flight).sum()
    }

    /// A chat completion request entered (+1) or left (-1) the gateway.
    pub fn in_flight(&self, delta: i64) {
        self.shard().in_flight += delta;
    }

    pub fn request(&self, model: &str, provider: &str, status: u16, seconds: f64, ingress: &'static str) {
        let bucket = DURATION_BOUNDS.iter().position(|b| seconds <= *b).unwrap_or(DURATION_BOUNDS.len());
        let mut c = self.shard();
        c.count_request(model, provider, status, 1);
        c.count_ingress(ingress, 1);
        c.duration_buckets[bucket] += 1;
        c.duration_sum_us += (seconds * 1e6) as u64;
    }

    pub fn tokens(&self, model: &str, input: u64, output: u64, cached: u64, cost_nanos: i64) {
        let mut c = self.shard();
        let m = c.model(model);
        m.1[0] += input;
        m.1[1] += output;
        m.1[2] += cached;
        m.2 += cost_nanos.max(0) as u64;
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
        let mut totals = self.totals();
        totals.requests.sort();
        totals.models.sort();
        totals.ingresses.sort();
        let _ = writeln!(
            out,
            "# HELP sheepdog_requests_by_ingress_total Requests that reached routing, by client format (chat, messages, responses, embeddings)."
        );
        let _ = writeln!(out, "# TYPE sheepdog_requests_by_ingress_total counter");
        for (ingress, n) in &totals.ingresses {
            let _ = writeln!(out, "sheepdog_requests_by_ingress_total{{ingress=\"{ingress}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP sheepdog_requests_total Chat completion requests that reached routing, by model, provider and HTTP status.");
        let _ = writeln!(out, "# TYPE sheepdog_requests_total counter");
        for (model, provider, status, n) in &totals.requests {
            let _ = writeln!(
                out,
                "sheepdog_requests_total{{model=\"{}\",provider=\"{}\",status=\"{status}\"}} {n}",
                escape(model),
                escape(provider)
            );
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
        for (k, kind) in TOKEN_KINDS.iter().enumerate() {
            for (model, tokens, _) in &totals.models {
                // Cached tokens appear once a model has had some.
                if k < 2 || tokens[k] > 0 {
                    let _ = writeln!(
                        out,
                        "sheepdog_tokens_total{{kind=\"{kind}\",model=\"{}\"}} {}",
                        escape(model),
                        tokens[k]
                    );
                }
            }
        }
        let _ = writeln!(out, "# HELP sheepdog_cost_nanousd_total Cost billed in nano-USD, by model.");
        let _ = writeln!(out, "# TYPE sheepdog_cost_nanousd_total counter");
        for (model, _, cost) in &totals.models {
            let _ = writeln!(out, "sheepdog_cost_nanousd_total{{model=\"{}\"}} {cost}", escape(model));
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
        let mut cumulative = 0u64;
        for (i, b) in DURATION_BOUNDS.iter().enumerate() {
            cumulative += totals.duration_buckets[i];
            let _ = writeln!(out, "sheepdog_request_duration_seconds_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let count = cumulative + totals.duration_buckets[DURATION_BOUNDS.len()];
        let _ = writeln!(out, "sheepdog_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "sheepdog_request_duration_seconds_sum {}", totals.duration_sum_us as f64 / 1e6);
        let _ = writeln!(out, "sheepdog_request_duration_seconds_count {count}");
        let _ = writeln!(out, "# HELP sheepdog_in_flight_requests Chat completion requests being served now.");
        let _ = writeln!(out, "# TYPE sheepdog_in_flight_requests gauge");
        let _ = writeln!(out, "sheepdog_in_flight_requests {}", totals.in_flight);
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

impl Counters {
    fn count_ingress(&mut self, ingress: &'static str, n: u64) {
        match self.ingresses.iter_mut().find(|(i, _)| *i == ingress) {
            Some(e) => e.1 += n,
            None => self.ingresses.push((ingress, n)),
        }
    }

    fn count_request(&mut self, model: &str, provider: &str, status: u16, n: u64) {
        match self.requests.iter_mut().find(|(m, p, s, _)| *s == status && m == model && p == provider) {
            Some(e) => e.3 += n,
            None => self.requests.push((model.to_string(), provider.to_string(), status, n)),
        }
    }

    fn model(&mut self, model: &str) -> &mut (String, [u64; 3], u64) {
        let i = match self.models.iter().position(|(m, _, _)| m == model) {
            Some(i) => i,
            None => {
                self.models.push((model.to_string(), [0; 3], 0));
                self.models.len() - 1
            }
        };
        &mut self.models[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.request("gpt-4.1", "openai", 200, 0.02, "messages");
        m.tokens("gpt-4.1", 10, 5, 0, 60_000);
        m.rejected("invalid_api_key");
        let text = m.render(3, &[("openai".into(), 2)]);
        assert!(text.contains("sheepdog_breaker_state{provider=\"openai\"} 2"));
        assert!(text.contains("sheepdog_requests_total{model=\"gpt-4.1\",provider=\"openai\",status=\"200\"} 1"));
        assert!(text.contains("sheepdog_requests_by_ingress_total{ingress=\"messages\"} 1"));
        assert!(text.contains("sheepdog_request_duration_seconds_bucket{le=\"0.025\"} 1"));
        assert!(text.contains("sheepdog_request_duration_seconds_bucket{le=\"0.01\"} 0"));
        assert!(text.contains("sheepdog_cost_nanousd_total{model=\"gpt-4.1\"} 60000"));
        assert!(text.contains("sheepdog_accounting_queue_depth 3"));
        assert!(text.contains("sheepdog_rejected_requests_total{code=\"invalid_api_key\"} 1"));
        assert!(text.contains("sheepdog_tokens_total{kind=\"input\",model=\"gpt-4.1\"} 10"));
        assert!(!text.contains("kind=\"cached\""));
    }

    #[test]
    fn shards_of_many_threads_sum_exactly() {
        let m = std::sync::Arc::new(Metrics::default());
        let threads: Vec<_> = (0..20)
            .map(|t| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for i in 0..500u64 {
                        m.in_flight(1);
                        let model = if i % 2 == 0 { "a" } else { "b" };
                        m.request(model, "p", if t % 5 == 0 { 502 } else { 200 }, (i % 7) as f64 * 0.02, "chat");
                        m.tokens(model, 3, 2, i % 2, 10);
                        m.in_flight(-1);
                    }
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().is_ok());
        }
        m.in_flight(2);
        let text = m.render(0, &[]);
        assert!(text.contains("sheepdog_requests_total{model=\"a\",provider=\"p\",status=\"200\"} 4000"), "{text}");
        assert!(text.contains("sheepdog_requests_total{model=\"b\",provider=\"p\",status=\"502\"} 1000"), "{text}");
        assert!(text.contains("sheepdog_request_duration_seconds_count 10000"), "{text}");
        assert!(text.contains("sheepdog_request_duration_seconds_bucket{le=\"0.005\"} 1440"), "{text}");
        assert!(text.contains("sheepdog_request_duration_seconds_bucket{le=\"+Inf\"} 10000"), "{text}");
        assert!(text.contains("sheepdog_tokens_total{kind=\"input\",model=\"a\"} 15000"), "{text}");
        assert!(text.contains("sheepdog_tokens_total{kind=\"cached\",model=\"b\"} 5000"), "{text}");
        assert!(text.contains("sheepdog_cost_nanousd_total{model=\"a\"} 50000"), "{text}");
        assert!(text.contains("sheepdog_in_flight_requests 2"), "{text}");
    }
}
