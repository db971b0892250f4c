//! A throughput phase with the CPU time of every process measured over its
//! window (and the rest of the machine as a noise gauge).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::args::RunArgs;
use crate::client::{self, Mode, Target};
use crate::procs;
use crate::report::{CpuUse, ThroughputRow};
use crate::services::Env;

/// Pids whose CPU time is measured: (label, pids); 0 = this process.
fn cpu_pids(env: &Env) -> Vec<(&'static str, Vec<u32>)> {
    let mut v = vec![("loadgen", vec![0])];
    if let Some(u) = &env.upstream {
        v.push(("upstream", vec![u.pid()]));
    }
    if let Some(g) = &env.gateway {
        v.push(("gateway", vec![g.pid()]));
    }
    if !env.replicas.is_empty() {
        v.push(("replicas", env.replicas.iter().map(procs::Proc::pid).collect()));
    }
    if let Some(n) = &env.nginx {
        let mut p = vec![n.pid()];
        p.extend(env.nginx_workers.iter().copied());
        v.push(("nginx", p));
    }
    v
}

/// CPU seconds (user, system) of each measured process, then the whole
/// machine's busy seconds (as user time).
fn cpu_snapshot(pids: &[(&'static str, Vec<u32>)]) -> Vec<(f64, f64)> {
    let mut v: Vec<(f64, f64)> = pids
        .iter()
        .map(|(_, ps)| ps.iter().map(|&p| procs::cpu_seconds(p)).fold((0.0, 0.0), |(u, k), (pu, pk)| (u + pu, k + pk)))
        .collect();
    v.push((procs::machine_busy_seconds(), 0.0));
    v
}

pub async fn throughput_run(env: &Env, t: &Arc<Target>, mode: Mode, args: &RunArgs) -> anyhow::Result<ThroughputRow> {
    let pids = cpu_pids(env);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let on_window = move |from: Instant, end: Instant| {
        tokio::spawn(async move {
            tokio::time::sleep_until(tokio::time::Instant::from_std(from)).await;
            let a = cpu_snapshot(&pids);
            tokio::time::sleep_until(tokio::time::Instant::from_std(end)).await;
            let b = cpu_snapshot(&pids);
            let secs = end.duration_since(from).as_secs_f64();
            // (process, all seconds, kernel seconds)
            let mut used: Vec<(&'static str, f64, f64)> = pids
                .iter()
                .zip(a.iter().zip(b.iter()))
                .map(|((name, _), (a, b))| (*name, (b.0 + b.1 - a.0 - a.1).max(0.0), (b.1 - a.1).max(0.0)))
                .collect();
            // The rest of the machine (other processes, interrupts): a noise gauge.
            let ours: f64 = used.iter().map(|(_, s, _)| s).sum();
            let machine = (b.last().map_or(0.0, |m| m.0) - a.last().map_or(0.0, |m| m.0)).max(0.0);
            used.push(("other", (machine - ours).max(0.0), 0.0));
            let _ = tx.send((used, secs));
        });
    };
    let result = client::throughput_phase(
        t,
        mode,
        args.concurrency,
        Duration::from_secs_f64(args.warmup),
        Duration::from_secs_f64(args.duration),
        on_window,
    )
    .await?;
    let (used, secs) = rx.await.unwrap_or_default();
    let per_request = |s: f64| if result.requests > 0 { s * 1e6 / result.requests as f64 } else { 0.0 };
    let cpu = used
        .into_iter()
        .map(|(name, s, kernel)| CpuUse {
            process: name,
            percent_of_one_core: if secs > 0.0 { s / secs * 100.0 } else { 0.0 },
            us_per_request: per_request(s),
            kernel_us_per_request: per_request(kernel),
        })
        .collect();
    Ok(ThroughputRow { result, cpu })
}
