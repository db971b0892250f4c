//! `sheepdog-bench`: a zero-delay OpenAI-compatible upstream called directly,
//! through the Sheepdog gateway (authentication + accounting on) and, when
//! nginx is on PATH, through an nginx reverse-proxy hop as a reference.
//! Measures added latency at concurrency 1 and throughput at concurrency 64,
//! non-streamed and streamed, checks that accounting recorded every request,
//! and writes JSON + Markdown to `bench-results/`. See docs/benchmark.md.

mod client;
mod procs;
mod report;
mod upstream;

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use clap::{Args, Parser, Subcommand};
use hyper::{Method, StatusCode};
use rustix::process::Signal;

use crate::client::{Mode, Requester, Target};
use crate::procs::{Guard, Proc};
use crate::report::{Accounting, CpuUse, Report, ThroughputRow};

#[derive(Parser)]
#[command(
    name = "sheepdog-bench",
    about = "Direct upstream vs through the Sheepdog gateway (and nginx as a reference)"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Internal>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Internal {
    /// (internal) The zero-delay upstream; prints its port, exits when stdin closes.
    #[command(hide = true)]
    Upstream {
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// (internal) Stops the benchmark's children if the benchmark dies.
    #[command(hide = true)]
    Guard,
}

#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    /// The sheepdog binary (default: `sheepdog` next to this executable).
    #[arg(long, value_name = "FILE")]
    gateway_bin: Option<PathBuf>,
    /// The nginx binary (default: `nginx` on PATH; skipped when absent).
    #[arg(long, value_name = "FILE")]
    nginx_bin: Option<PathBuf>,
    /// Skip the nginx reference even if nginx is installed.
    #[arg(long)]
    no_nginx: bool,
    /// nginx `worker_processes`.
    #[arg(long, default_value = "auto")]
    nginx_workers: String,
    /// Connections (and in-flight requests) of the throughput phases.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Measured seconds of each throughput phase.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Warm-up seconds before each throughput window.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Measured sequential requests per path for the latency phase.
    #[arg(long, default_value_t = 5000)]
    latency_requests: usize,
    /// Warm-up sequential requests per path before the latency phase.
    #[arg(long, default_value_t = 500)]
    latency_warmup: usize,
    /// Measured sequential streamed requests per path.
    #[arg(long, default_value_t = 1000)]
    stream_latency_requests: usize,
    /// Warm-up sequential streamed requests per path.
    #[arg(long, default_value_t = 100)]
    stream_latency_warmup: usize,
    /// Interleaved blocks of the latency phase (path order rotates per block).
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Only non-streamed requests.
    #[arg(long)]
    no_stream: bool,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Worker threads of the upstream (1 = current-thread runtime).
    #[arg(long, default_value_t = 2)]
    upstream_threads: usize,
    /// Where the JSON and Markdown results go.
    #[arg(long, default_value = "bench-results")]
    out_dir: PathBuf,
    /// Keep the temporary directory (config, database, logs).
    #[arg(long)]
    keep_tmp: bool,
    /// Target: gateway throughput at least this fraction of direct.
    #[arg(long, default_value_t = 0.35)]
    min_ratio: f64,
    /// Target: added p50 latency at concurrency 1 at most this many µs.
    #[arg(long, default_value_t = 100.0)]
    max_added_p50_us: f64,
    /// Exit non-zero when a target is missed (errors and accounting always do).
    #[arg(long)]
    enforce_targets: bool,
    /// Hard limit on the whole run, in seconds.
    #[arg(long, default_value_t = 900)]
    max_seconds: u64,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Internal::Upstream { threads }) => upstream::main(threads),
        Some(Internal::Guard) => procs::guard_main(),
        None => bench_main(cli.run),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sheepdog-bench: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn bench_main(args: RunArgs) -> anyhow::Result<()> {
    if args.concurrency == 0
        || args.duration <= 0.0
        || args.warmup < 0.0
        || args.latency_requests == 0
        || args.stream_latency_requests == 0
    {
        bail!("--concurrency, --duration and the latency request counts must be positive");
    }
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.client_threads.max(1)).enable_all().build()?;
    let limit = Duration::from_secs(args.max_seconds);
    let report = rt.block_on(async {
        tokio::select! {
            r = tokio::time::timeout(limit, run(&args)) => r.map_err(|_| anyhow!("the run exceeded --max-seconds {}", args.max_seconds))?,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    })?;
    let (json_path, md_path) = report::write(&report, &args.out_dir)?;
    report::print(&report);
    eprintln!("results: {} and {}", json_path.display(), md_path.display());
    let failures = report.failures();
    if !failures.is_empty() {
        bail!("benchmark FAILED: {}", failures.join("; "));
    }
    let missed = report.missed_targets();
    if args.enforce_targets && !missed.is_empty() {
        bail!("targets missed: {}", missed.join("; "));
    }
    Ok(())
}

/// Children and temporary files; everything is stopped and removed on drop
/// (fields drop in order: processes first, then the guard, then the files).
struct Env {
    nginx: Option<Proc>,
    nginx_workers: Vec<u32>,
    gateway: Option<Proc>,
    upstream: Option<Proc>,
    guard: Guard,
    tmp: tempfile::TempDir,
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

async fn run(args: &RunArgs) -> anyhow::Result<Report> {
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
    let mut env = Env { nginx: None, nginx_workers: Vec::new(), gateway: None, upstream: None, guard, tmp };
    if args.keep_tmp {
        notes.push(format!("temporary directory kept: {}", env.tmp.path().display()));
    } else {
        let dir = env.tmp.path().to_path_buf();
        env.guard.cleanup(&dir);
    }

    // 1. The upstream.
    let mut up = Proc::spawn(
        "upstream",
        Command::new(&exe)
            .args(["upstream", "--threads", &args.upstream_threads.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    )?;
    env.guard.watch(up.pid());
    let out = up.child_mut().and_then(|c| c.stdout.take()).ok_or_else(|| anyhow!("upstream has no stdout"))?;
    env.upstream = Some(up);
    let line = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufReader::new(out).read_line(&mut line).map(|_| line)
        }),
    )
    .await
    .map_err(|_| anyhow!("the upstream did not report its port in 10 s"))???;
    let up_port: u16 = line.trim().parse().with_context(|| format!("upstream said {line:?}, not a port"))?;
    let up_addr = loopback(up_port);
    eprintln!("upstream   : http://{up_addr} (pid {})", env.upstream.as_ref().map_or(0, Proc::pid));

    // 2. The gateway.
    let admin_token = format!("sd-bench-admin-{}", procs::random_hex()?);
    let gw_addr = loopback(procs::free_port()?);
    let gw_dir = env.tmp.path().join("gateway");
    std::fs::create_dir_all(&gw_dir)?;
    let config_path = gw_dir.join("sheepdog.toml");
    std::fs::write(&config_path, gateway_config(gw_addr, &gw_dir.join("sheepdog.db"), up_addr))?;
    let log_path = gw_dir.join("gateway.log");
    let log = std::fs::File::create(&log_path)?;
    let mut cmd = Command::new(&gateway_bin);
    cmd.arg("gateway").arg("--config").arg(&config_path).current_dir(&gw_dir);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SHEEPDOG_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("SHEEPDOG_ADMIN_TOKEN", &admin_token)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let gw = Proc::spawn("gateway", &mut cmd)?;
    env.guard.watch(gw.pid());
    env.gateway = Some(gw);
    wait_ready(&mut env, gw_addr, &log_path).await?;
    eprintln!("gateway    : http://{gw_addr} (pid {})", env.gateway.as_ref().map_or(0, Proc::pid));
    let key = create_tenant_key(gw_addr, &admin_token).await?;

    // 3. nginx.
    let mut targets = vec![Target::new("direct", up_addr, &key)?, Target::new("gateway", gw_addr, &key)?];
    let mut nginx_version = None;
    if let Some(bin) = &nginx_bin {
        nginx_version = Some(command_version(bin, &["-v"]));
        let addr = start_nginx(&mut env, bin, up_addr, &args.nginx_workers).await?;
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
            let row = throughput_run(&env, t, mode, args).await?;
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
                accounting_lag.push(drain_accounting(gw_addr, mode).await?);
            }
        }
    }

    // 5. Accounting: every answered request must be recorded.
    let accounting = check_accounting(gw_addr, &admin_token, &targets[1], accounting_lag).await?;
    eprintln!(
        "accounting : gateway answered {} chat requests, usage records {} ({})",
        accounting.gateway_requests_sent,
        accounting.recorded_requests,
        if accounting.matches { "match" } else { "MISMATCH" }
    );

    // 6. Stop everything, the gateway gracefully.
    if let Some(mut n) = env.nginx.take() {
        n.stop(Signal::QUIT, Duration::from_secs(10)).await?;
        env.guard.release(n.pid());
        for w in std::mem::take(&mut env.nginx_workers) {
            env.guard.release(w);
        }
    }
    let mut gateway_shutdown = "killed after 30 s (did not stop on SIGTERM)".to_string();
    let mut gateway_stopped_ok = false;
    if let Some(mut g) = env.gateway.take() {
        if let Some((st, took)) = g.stop(Signal::TERM, Duration::from_secs(30)).await? {
            gateway_stopped_ok = st.success();
            gateway_shutdown = format!("stopped on SIGTERM in {} ms ({st})", took.as_millis());
        }
        env.guard.release(g.pid());
    }
    if let Some(mut u) = env.upstream.take() {
        u.stop(Signal::TERM, Duration::from_secs(5)).await?;
        env.guard.release(u.pid());
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

fn gateway_config(listen: SocketAddr, db: &Path, up: SocketAddr) -> String {
    format!(
        r#"[gateway]
listen = "{listen}"

[database]
url = "sqlite://{db}"

[providers.up]
kind = "openai"
base_url = "http://{up}/v1"

[models."bench-model"]
provider = "up"
upstream_model = "bench-model"
input_per_mtok = 2
output_per_mtok = 8
"#,
        db = db.display()
    )
}

async fn wait_ready(env: &mut Env, addr: SocketAddr, log: &Path) -> anyhow::Result<()> {
    let t0 = Instant::now();
    loop {
        if let Some(g) = env.gateway.as_mut() {
            if let Err(e) = g.check_alive() {
                bail!("{e}; its log:\n{}", procs::tail(log, 30));
            }
        }
        if let Ok((StatusCode::OK, _)) = client::call(addr, Method::GET, "/readyz", None, None).await {
            return Ok(());
        }
        if t0.elapsed() > Duration::from_secs(30) {
            bail!("the gateway was not ready within 30 s; its log:\n{}", procs::tail(log, 30));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create_tenant_key(gw: SocketAddr, admin: &str) -> anyhow::Result<String> {
    let body = br#"{"name":"bench","tier":"shared","limits":{"requests_per_minute":100000000,"tokens_per_minute":100000000000}}"#;
    let (st, b) = client::call(gw, Method::POST, "/admin/v1/tenants", Some(admin), Some(body)).await?;
    if !st.is_success() {
        bail!("creating the tenant: HTTP {st}: {}", String::from_utf8_lossy(&b));
    }
    let v: serde_json::Value = serde_json::from_slice(&b)?;
    let id = v["id"].as_str().ok_or_else(|| anyhow!("tenant answer has no id: {v}"))?;
    let (st, b) =
        client::call(gw, Method::POST, &format!("/admin/v1/tenants/{id}/keys"), Some(admin), Some(b"{}")).await?;
    if !st.is_success() {
        bail!("creating the key: HTTP {st}: {}", String::from_utf8_lossy(&b));
    }
    let v: serde_json::Value = serde_json::from_slice(&b)?;
    Ok(v["key"].as_str().ok_or_else(|| anyhow!("key answer has no key"))?.to_string())
}

fn nginx_config(dir: &Path, listen: SocketAddr, up: SocketAddr, workers: &str) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process on;
worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream bench_upstream {{
        server {up};
        keepalive 128;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }}
    server {{
        listen {listen};
        keepalive_requests 1000000;
        keepalive_timeout 60s;
        location / {{
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"#
    )
}

async fn start_nginx(env: &mut Env, bin: &Path, up: SocketAddr, workers: &str) -> anyhow::Result<SocketAddr> {
    let dir = env.tmp.path().join("nginx");
    std::fs::create_dir_all(&dir)?;
    let addr = loopback(procs::free_port()?);
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, nginx_config(&dir, addr, up, workers))?;
    let log_path = dir.join("stderr.log");
    let log = std::fs::File::create(&log_path)?;
    let mut prefix = dir.clone().into_os_string();
    prefix.push("/");
    let p = Proc::spawn(
        "nginx",
        Command::new(bin)
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log),
    )?;
    env.guard.watch(p.pid());
    env.nginx = Some(p);
    // Ready when a request goes through it to the upstream.
    let probe = Target::new("nginx", addr, "probe")?;
    let t0 = Instant::now();
    loop {
        if let Some(n) = env.nginx.as_mut() {
            if let Err(e) = n.check_alive() {
                bail!("{e}; its log:\n{}\n{}", procs::tail(&log_path, 20), procs::tail(&dir.join("error.log"), 20));
            }
        }
        if Requester::new(probe.clone()).send(Mode::NonStream).await.is_ok() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(15) {
            bail!("nginx was not ready within 15 s; its log:\n{}", procs::tail(&dir.join("error.log"), 20));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let master = env.nginx.as_ref().map_or(0, Proc::pid);
    env.nginx_workers = procs::children_of(master);
    for w in env.nginx_workers.clone() {
        env.guard.watch(w);
    }
    Ok(addr)
}

/// Pids whose CPU time is measured: (label, pids); 0 = this process.
fn cpu_pids(env: &Env) -> Vec<(&'static str, Vec<u32>)> {
    let mut v = vec![("loadgen", vec![0])];
    if let Some(u) = &env.upstream {
        v.push(("upstream", vec![u.pid()]));
    }
    if let Some(g) = &env.gateway {
        v.push(("gateway", vec![g.pid()]));
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

async fn throughput_run(env: &Env, t: &Arc<Target>, mode: Mode, args: &RunArgs) -> anyhow::Result<ThroughputRow> {
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
async fn drain_accounting(gw: SocketAddr, mode: Mode) -> anyhow::Result<report::Lag> {
    let depth = metric(gw, "sheepdog_accounting_queue_depth").await?;
    let t0 = Instant::now();
    let mut now = depth;
    while now > 0.0 && t0.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        now = metric(gw, "sheepdog_accounting_queue_depth").await?;
    }
    Ok(report::Lag {
        mode,
        queue_depth_after_window: depth as u64,
        drain_ms: t0.elapsed().as_secs_f64() * 1000.0,
        drained: now <= 0.0,
    })
}

async fn check_accounting(
    gw: SocketAddr,
    admin: &str,
    gateway: &Target,
    lag: Vec<report::Lag>,
) -> anyhow::Result<Accounting> {
    let sent = gateway.sent.load(Ordering::Relaxed);
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

fn command_version(bin: &Path, args: &[&str]) -> String {
    match Command::new(bin).args(args).output() {
        Ok(o) => {
            let s = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
            s.trim().to_string()
        }
        Err(_) => "unknown".into(),
    }
}
