//! One run: the children started, a smoke request per path, the latency
//! and throughput phases per mode, the accounting check, then everything
//! stopped.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::args::RunArgs;
use crate::client::{self, Mode, Requester, Target};
use crate::procs::{self, Guard, Proc};
use crate::report::{self, Report};
use crate::services::{self, Env};
use crate::{admin, measure};

/// Runs the benchmark; every child is stopped and the temporary directory
/// removed however it ends (`Env` drops).
pub async fn run(args: &RunArgs) -> anyhow::Result<Report> {
    let started = Instant::now();
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let gateway_bin = match &args.gateway_bin {
        Some(p) => p.clone(),
        None => exe.with_file_name("sheepdog"),
    };
    if !gateway_bin.is_file() {
        bail!(
            "{} not found; build it with `cargo build --release -p sheepdog` or pass --gateway-bin",
            gateway_bin.display()
        );
    }
    // The gateway runs in its temporary directory: make the path absolute.
    let gateway_bin = std::fs::canonicalize(&gateway_bin)?;
    let mut notes = Vec::new();
    let nginx_bin = if args.no_nginx {
        notes.push("nginx reference skipped (--no-nginx)".to_string());
        None
    } else {
        match args.nginx_bin.clone().or_else(|| procs::which("nginx")) {
            Some(p) => Some(p),
            None => {
                notes.push(
                    "nginx not found on PATH: nginx reference skipped (apt-get install -y nginx to add it)".into(),
                );
                eprintln!("note: nginx not found on PATH; the nginx reference is skipped");
                None
            }
        }
    };

    let tmp = tempfile::Builder::new().prefix("sheepdog-bench-").tempdir()?;
    let guard = Guard::spawn(&exe)?;
    let mut env =
        Env { nginx: None, nginx_workers: Vec::new(), replicas: Vec::new(), gateway: None, upstream: None, guard, tmp };
    if args.keep_tmp {
        notes.push(format!("temporary directory kept: {}", env.tmp.path().display()));
    } else {
        let dir = env.tmp.path().to_path_buf();
        env.guard.cleanup(&dir);
    }

    // 1. The upstream.
    let up_addr = services::start_upstream(&mut env, &exe, args.upstream_threads).await?;

    // 2. The gateway.
    let admin_token = format!("sd-bench-admin-{}", procs::random_hex()?);
    let gw_addr = services::start_gateway(&mut env, &gateway_bin, up_addr, &admin_token).await?;
    let key = admin::create_tenant_key(gw_addr, &admin_token).await?;

    // 3. nginx, and the replicas sharing their state in Redis (`--redis`).
    let mut targets = vec![Target::new("direct", up_addr, &key)?, Target::new("gateway", gw_addr, &key)?];
    // The same gateway asked in Anthropic's Messages format: the cost of
    // translating at the edge, side by side with `gateway`.
    if !args.no_messages {
        targets.push(Target::messages("gw-messages", gw_addr, &key)?);
    }
    let mut redis_prefix = None;
    if let Some(url) = &args.redis {
        let prefix = format!("sdbench:{}:", procs::random_hex()?);
        let addrs =
            services::start_replicas(&mut env, &gateway_bin, up_addr, &admin_token, url, &prefix, args.replicas.max(1))
                .await?;
        notes.push(format!("gw-redis: {} replica(s) sharing their admission state in {url}", addrs.len()));
        targets.push(Target::spread("gw-redis", addrs, &key)?);
        redis_prefix = Some(prefix);
    }
    let mut nginx_version = None;
    if let Some(bin) = &nginx_bin {
        nginx_version = Some(services::command_version(bin, &["-v"]));
        let addr = services::start_nginx(&mut env, bin, up_addr, &args.nginx_workers).await?;
        eprintln!(
            "nginx      : http://{addr} (pid {}, workers {:?})",
            env.nginx.as_ref().map_or(0, Proc::pid),
            env.nginx_workers
        );
        targets.push(Target::new("nginx", addr, &key)?);
    }

    // Smoke: one request of each kind per path.
    for t in &targets {
        let mut r = Requester::new(t.clone());
        for mode in [Mode::NonStream, Mode::Stream] {
            r.send(mode).await.with_context(|| format!("smoke request via {} ({})", t.name, mode.label()))?;
        }
    }

    // 4. Phases.
    let modes: &[Mode] = if args.no_stream { &[Mode::NonStream] } else { &[Mode::NonStream, Mode::Stream] };
    let deadline = started + Duration::from_secs(args.max_seconds);
    let mut latency = Vec::new();
    let mut throughput = Vec::new();
    let mut accounting_lag = Vec::new();
    for &mode in modes {
        let (n, warm) = match mode {
            Mode::NonStream => (args.latency_requests, args.latency_warmup),
            Mode::Stream => (args.stream_latency_requests, args.stream_latency_warmup),
        };
        eprintln!(
            "latency    : {} — {n} sequential requests per path (+{warm} warm-up), {} interleaved blocks",
            mode.label(),
            args.rounds
        );
        let lat = client::latency_phase(&targets, mode, warm, n, args.rounds, deadline).await?;
        for l in &lat {
            eprintln!(
                "             {:<8} p50 {:>8.1} µs  p99 {:>8.1} µs  errors {}",
                l.target, l.stats.p50_us, l.stats.p99_us, l.errors.count
            );
        }
        latency.extend(lat);
        for t in &targets {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let row = measure::throughput_run(&env, t, mode, args).await?;
            eprintln!(
                "throughput : {} {:<8} c={} {:>9.0} req/s  p50 {:>8.1} µs  p99 {:>8.1} µs  errors {}",
                mode.label(),
                t.name,
                args.concurrency,
                row.result.rps,
                row.result.stats.p50_us,
                row.result.stats.p99_us,
                row.result.errors.count
            );
            throughput.push(row);
            if t.name == "gateway" {
                accounting_lag.push(admin::drain_accounting(gw_addr, mode).await?);
            }
            if t.name == "gw-messages" {
                admin::drain_accounting(gw_addr, mode).await?;
            }
            if t.name == "gw-redis" {
                for addr in t.addrs() {
                    admin::drain_accounting(*addr, mode).await?;
                }
            }
        }
    }

    // 5. Accounting: every answered request must be recorded.
    let gateways: Vec<_> =
        targets.iter().filter(|t| matches!(t.name, "gateway" | "gw-redis" | "gw-messages")).cloned().collect();
    let accounting = admin::check_accounting(gw_addr, &admin_token, &gateways, accounting_lag).await?;
    eprintln!(
        "accounting : gateway answered {} chat requests, usage records {} ({})",
        accounting.gateway_requests_sent,
        accounting.recorded_requests,
        if accounting.matches { "match" } else { "MISMATCH" }
    );

    // 6. Stop everything, the gateway gracefully.
    let (gateway_shutdown, gateway_stopped_ok) = services::stop_all(&mut env).await?;
    if let Some(prefix) = redis_prefix {
        if !sheepdog_testkit::process::delete_redis_keys(args.redis.as_deref().unwrap_or_default(), &prefix) {
            eprintln!("note: redis-cli not found; keys under {prefix} were left in Redis");
        }
    }
    if args.keep_tmp {
        let _ = env.tmp.keep();
    }

    Ok(Report::new(report::Inputs {
        args: args.clone(),
        nginx_version,
        notes,
        latency,
        throughput,
        accounting,
        gateway_shutdown,
        gateway_stopped_ok,
        wall_s: started.elapsed().as_secs_f64(),
    }))
}
