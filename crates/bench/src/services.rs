//! The children the benchmark starts — the upstream, the gateway, nginx —
//! their configurations, readiness and stop, all watched by the guard.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use hyper::{Method, StatusCode};
use rustix::process::Signal;

use crate::client::{self, Mode, Requester, Target};
use crate::procs::{self, Guard, Proc};

/// Children and temporary files; everything is stopped and removed on drop
/// (fields drop in order: processes first, then the guard, then the files).
pub struct Env {
    pub nginx: Option<Proc>,
    pub nginx_workers: Vec<u32>,
    /// The `gw-redis` replicas (`--redis`).
    pub replicas: Vec<Proc>,
    pub gateway: Option<Proc>,
    pub upstream: Option<Proc>,
    pub guard: Guard,
    pub tmp: tempfile::TempDir,
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Starts the upstream (this executable's `upstream` subcommand) and reads
/// the port it prints.
pub async fn start_upstream(env: &mut Env, exe: &Path, threads: usize) -> anyhow::Result<SocketAddr> {
    let mut up = Proc::spawn(
        "upstream",
        Command::new(exe)
            .args(["upstream", "--threads", &threads.to_string()])
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
    Ok(up_addr)
}

/// Starts the gateway in its own directory (config, database, log) with
/// `admin_token`, and waits until it is ready.
pub async fn start_gateway(
    env: &mut Env,
    bin: &Path,
    up_addr: SocketAddr,
    admin_token: &str,
) -> anyhow::Result<SocketAddr> {
    let dir = env.tmp.path().join("gateway");
    let db = dir.join("sheepdog.db");
    let spec = Spec { name: "gateway", dir: &dir, db: &db, redis: None };
    let (gw, addr) = spawn_gateway(env, bin, up_addr, admin_token, spec).await?;
    eprintln!("gateway    : http://{addr} (pid {})", gw.pid());
    env.gateway = Some(gw);
    Ok(addr)
}

/// Starts `n` replicas sharing their admission state in `redis` (under a
/// fresh key prefix), on the gateway's database; their addresses.
pub async fn start_replicas(
    env: &mut Env,
    bin: &Path,
    up_addr: SocketAddr,
    admin_token: &str,
    redis: &str,
    prefix: &str,
    n: usize,
) -> anyhow::Result<Vec<SocketAddr>> {
    let db = env.tmp.path().join("gateway").join("sheepdog.db");
    let mut addrs = Vec::new();
    for i in 0..n {
        let dir = env.tmp.path().join(format!("replica-{i}"));
        let spec = Spec { name: "replica", dir: &dir, db: &db, redis: Some((redis, prefix)) };
        let (gw, addr) = spawn_gateway(env, bin, up_addr, admin_token, spec).await?;
        eprintln!("gw-redis   : http://{addr} (pid {}, replica {i})", gw.pid());
        env.replicas.push(gw);
        addrs.push(addr);
    }
    Ok(addrs)
}

/// What one gateway process runs with.
struct Spec<'a> {
    name: &'static str,
    /// Its directory (config, log).
    dir: &'a Path,
    /// Its SQLite database.
    db: &'a Path,
    /// The URL and key prefix of shared admission state.
    redis: Option<(&'a str, &'a str)>,
}

/// One `sheepdog gateway` process, ready.
async fn spawn_gateway(
    env: &mut Env,
    bin: &Path,
    up_addr: SocketAddr,
    admin_token: &str,
    spec: Spec<'_>,
) -> anyhow::Result<(Proc, SocketAddr)> {
    let Spec { name, dir, db, redis } = spec;
    let gw_addr = loopback(sheepdog_testkit::try_free_port()?);
    std::fs::create_dir_all(dir)?;
    let config_path = dir.join("sheepdog.toml");
    std::fs::write(&config_path, gateway_config(gw_addr, db, up_addr, redis))?;
    let log_path = dir.join("gateway.log");
    let log = std::fs::File::create(&log_path)?;
    let mut cmd = Command::new(bin);
    cmd.arg("gateway").arg("--config").arg(&config_path).current_dir(dir);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SHEEPDOG_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("SHEEPDOG_ADMIN_TOKEN", admin_token)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let mut gw = Proc::spawn(name, &mut cmd)?;
    env.guard.watch(gw.pid());
    wait_ready(&mut gw, gw_addr, &log_path).await?;
    Ok((gw, gw_addr))
}

fn gateway_config(listen: SocketAddr, db: &Path, up: SocketAddr, redis: Option<(&str, &str)>) -> String {
    let redis = match redis {
        Some((url, prefix)) => format!("\n[redis]\nurl = \"{url}\"\nkey_prefix = \"{prefix}\"\n"),
        None => String::new(),
    };
    format!(
        r#"[gateway]
listen = "{listen}"

[database]
url = "sqlite://{db}"
{redis}
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

async fn wait_ready(gw: &mut Proc, addr: SocketAddr, log: &Path) -> anyhow::Result<()> {
    let t0 = Instant::now();
    loop {
        if let Err(e) = gw.check_alive() {
            bail!("{e}; its log:\n{}", procs::tail(log, 30));
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

pub async fn start_nginx(env: &mut Env, bin: &Path, up: SocketAddr, workers: &str) -> anyhow::Result<SocketAddr> {
    let dir = env.tmp.path().join("nginx");
    std::fs::create_dir_all(&dir)?;
    let addr = loopback(sheepdog_testkit::try_free_port()?);
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

/// Stops everything, the gateway gracefully (SIGTERM, 30 s): how the
/// gateway stopped, and whether it exited successfully.
pub async fn stop_all(env: &mut Env) -> anyhow::Result<(String, bool)> {
    if let Some(mut n) = env.nginx.take() {
        n.stop(Signal::QUIT, Duration::from_secs(10)).await?;
        env.guard.release(n.pid());
        for w in std::mem::take(&mut env.nginx_workers) {
            env.guard.release(w);
        }
    }
    for mut r in std::mem::take(&mut env.replicas) {
        r.stop(Signal::TERM, Duration::from_secs(30)).await?;
        env.guard.release(r.pid());
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
    Ok((gateway_shutdown, gateway_stopped_ok))
}

pub fn command_version(bin: &Path, args: &[&str]) -> String {
    match Command::new(bin).args(args).output() {
        Ok(o) => {
            let s = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
            s.trim().to_string()
        }
        Err(_) => "unknown".into(),
    }
}
