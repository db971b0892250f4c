//! Processes under test: free ports, the `sheepdog` binary with a clean
//! environment, waiting for its ports and its exit, its peak memory, a
//! placeholder console site; gzip for uploads.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, read and released).
pub fn try_free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A free TCP port on 127.0.0.1 (bound, read and released).
pub fn free_port() -> u16 {
    try_free_port().unwrap()
}

/// Removes every `SHEEPDOG_*` variable the tests themselves run with.
pub fn clear_sheepdog_env(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars() {
        if k.starts_with("SHEEPDOG_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// The binary at `exe` (`env!("CARGO_BIN_EXE_sheepdog")`) without any
/// `SHEEPDOG_*` variable, logging at `rust_log`.
pub fn sheepdog_command(exe: &str, rust_log: &str) -> Command {
    let mut c = Command::new(exe);
    clear_sheepdog_env(&mut c);
    c.env("RUST_LOG", rust_log);
    c
}

/// Waits (60 s at most) until 127.0.0.1:`port` accepts connections; fails
/// the test at once if `child` exits first (showing `log`, when given).
pub fn wait_for_port(port: u16, child: &mut Child, log: Option<&Path>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} did not open within 60 s");
        if let Some(status) = child.try_wait().unwrap() {
            let log = log.map(|l| std::fs::read_to_string(l).unwrap_or_default()).unwrap_or_default();
            panic!("the process exited ({status}) before port {port} opened: {log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends SIGTERM to `pid`.
pub fn sigterm(pid: u32) {
    let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(status.success(), "kill -TERM {pid}: {status}");
}

/// Waits (blocking) at most `limit` for `child` to exit; kills it and
/// returns `None` if it did not.
pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The peak resident memory of process `pid` (`VmHWM`), in KiB.
pub fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A console site root under `dir` (`site/`, with placeholder `pkg/`
/// files: one byte each); returns its path.
pub fn fake_site(dir: &Path) -> PathBuf {
    let site = dir.join("site");
    let pkg = site.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    for f in ["sheepdog.js", "sheepdog.wasm", "sheepdog_bg.wasm", "sheepdog.css"] {
        std::fs::write(pkg.join(f), "x").unwrap();
    }
    site
}

/// `data` gzipped.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// `sheepdog gateway` (the binary at `exe`) started in `dir` with the
/// configuration `config` (written to `dir/sheepdog.toml`), `admin_token` as
/// its admin token and its log in `dir/sheepdog.log`; returns once `port`
/// (the configuration's `gateway.listen` port) accepts connections.
pub fn spawn_gateway(exe: &str, dir: &Path, config: &str, port: u16, admin_token: &str) -> Child {
    let path = dir.join("sheepdog.toml");
    std::fs::write(&path, config).unwrap();
    let log = dir.join("sheepdog.log");
    let mut child = sheepdog_command(exe, "info")
        .current_dir(dir)
        .args(["gateway", "--config"])
        .arg(&path)
        .env("SHEEPDOG_ADMIN_TOKEN", admin_token)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for_port(port, &mut child, Some(&log));
    child
}

/// Deletes every key under `prefix` in the Redis at `url` (a test's or the
/// benchmark's keys) with `redis-cli`; `false` when `redis-cli` is not
/// installed.
pub fn delete_redis_keys(url: &str, prefix: &str) -> bool {
    let scan = Command::new("redis-cli").args(["-u", url, "--scan", "--pattern", &format!("{prefix}*")]).output();
    let Ok(out) = scan else { return false };
    let text = String::from_utf8_lossy(&out.stdout);
    let keys: Vec<&str> = text.lines().filter(|k| !k.is_empty()).collect();
    // A few hundred keys per command: one process per key took minutes
    // after a benchmark.
    for chunk in keys.chunks(500) {
        let _ = Command::new("redis-cli").args(["-u", url, "DEL"]).args(chunk).output();
    }
    true
}
