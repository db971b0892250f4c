//! Calls to the gateway's admin API and `/metrics`: the benchmark tenant's
//! key, the accounting queue's drain after a phase, and the check that
//! usage records match what was sent.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use hyper::{Method, StatusCode};
use sheepdog_testkit::AdminClient;

use crate::client::{self, Mode, Target};
use crate::report::{Accounting, Lag};
use crate::upstream;

/// Creates the benchmark tenant (limits far above what the run sends) and a key for it.
pub async fn create_tenant_key(gw: SocketAddr, admin: &str) -> anyhow::Result<String> {
    let tenant = serde_json::json!({"name": "bench", "tier": "shared",
        "limits": {"requests_per_minute": 100_000_000u64, "tokens_per_minute": 100_000_000_000u64}});
    let (_, key) = AdminClient::to(format!("http://{gw}"), admin).try_tenant_and_key(&tenant).await?;
    Ok(key)
}

async fn metric(gw: SocketAddr, name: &str) -> anyhow::Result<f64> {
    let (st, b) = client::call(gw, Method::GET, "/metrics", None, None).await?;
    if st != StatusCode::OK {
        bail!("/metrics: HTTP {st}");
    }
    let text = String::from_utf8_lossy(&b);
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
        .ok_or_else(|| anyhow!("/metrics has no {name}"))
}

/// Accounting queue depth right after a gateway throughput phase, and how
/// long the queue takes to empty (the next phase waits for it).
pub async fn drain_accounting(gw: SocketAddr, mode: Mode) -> anyhow::Result<Lag> {
    let depth = metric(gw, "sheepdog_accounting_queue_depth").await?;
    let t0 = Instant::now();
    let mut now = depth;
    while now > 0.0 && t0.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        now = metric(gw, "sheepdog_accounting_queue_depth").await?;
    }
    Ok(Lag {
        mode,
        queue_depth_after_window: depth as u64,
        drain_ms: t0.elapsed().as_secs_f64() * 1000.0,
        drained: now <= 0.0,
    })
}

/// Usage records (all gateways share the database) against the chat
/// requests sent through every gateway path.
pub async fn check_accounting(
    gw: SocketAddr,
    admin: &str,
    gateways: &[std::sync::Arc<Target>],
    lag: Vec<Lag>,
) -> anyhow::Result<Accounting> {
    let sent: u64 = gateways.iter().map(|g| g.sent.load(Ordering::Relaxed)).sum();
    let path = "/admin/v1/usage?group_by=tenant&from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z";
    let t0 = Instant::now();
    let (st, b) = client::call(gw, Method::GET, path, Some(admin), None).await?;
    let query_ms = t0.elapsed().as_secs_f64() * 1000.0;
    if st != StatusCode::OK {
        bail!("usage report: HTTP {st}: {}", String::from_utf8_lossy(&b));
    }
    let v: serde_json::Value = serde_json::from_slice(&b)?;
    let rows = v["data"].as_array().cloned().unwrap_or_default();
    let sum = |f: &str| rows.iter().map(|r| r[f].as_u64().unwrap_or(0)).sum::<u64>();
    let (requests, input, output) = (sum("requests"), sum("input_tokens"), sum("output_tokens"));
    let cost_nanos: i64 = rows.iter().map(|r| r["cost_nanos"].as_i64().unwrap_or(0)).sum();
    let expected_cost =
        sent as i64 * (upstream::PROMPT_TOKENS as i64 * 2_000 + upstream::COMPLETION_TOKENS as i64 * 8_000);
    let matches = requests == sent
        && input == sent * upstream::PROMPT_TOKENS
        && output == sent * upstream::COMPLETION_TOKENS
        && cost_nanos == expected_cost;
    Ok(Accounting {
        gateway_requests_sent: sent,
        recorded_requests: requests,
        recorded_input_tokens: input,
        recorded_output_tokens: output,
        recorded_cost_nanos: cost_nanos,
        expected_cost_nanos: expected_cost,
        matches,
        usage_query_ms: query_ms,
        lag,
    })
}
