//! Child processes: spawning, graceful and forced stops, a guard process that
//! stops them if the benchmark itself dies, and CPU time from /proc.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use rustix::process::{kill_process, Pid, Signal};

fn signal(pid: u32, sig: Signal) {
    if let Some(p) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process(p, sig);
    }
}

/// A child process that is killed when dropped.
pub struct Proc {
    pub name: &'static str,
    child: Option<Child>,
    pid: u32,
}

impl Proc {
    pub fn spawn(name: &'static str, cmd: &mut Command) -> anyhow::Result<Proc> {
        let child = cmd.spawn().with_context(|| format!("cannot start {name} ({cmd:?})"))?;
        let pid = child.id();
        Ok(Proc { name, child: Some(child), pid })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn child_mut(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    /// Fails if the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(c) = self.child.as_mut() {
            if let Some(st) = c.try_wait()? {
                return Err(anyhow!("{} exited unexpectedly ({st})", self.name));
            }
        }
        Ok(())
    }

    /// Sends `sig`, waits up to `grace` for the exit, then kills. Returns the
    /// exit status and how long the stop took, or `None` if it had to be killed.
    pub async fn stop(&mut self, sig: Signal, grace: Duration) -> anyhow::Result<Option<(ExitStatus, Duration)>> {
        let Some(mut child) = self.child.take() else { return Ok(None) };
        let t0 = Instant::now();
        if child.try_wait()?.is_none() {
            signal(self.pid, sig);
        }
        while t0.elapsed() < grace {
            if let Some(st) = child.try_wait()? {
                return Ok(Some((st, t0.elapsed())));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        Ok(None)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

/// The guard: a `sheepdog-bench guard` child that is told which pids to stop
/// if the benchmark goes away without stopping them itself (its stdin closes).
pub struct Guard {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Guard {
    pub fn spawn(exe: &Path) -> anyhow::Result<Guard> {
        let mut child = Command::new(exe)
            .arg("guard")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start the guard process")?;
        let stdin = child.stdin.take();
        Ok(Guard { child, stdin })
    }

    fn say(&mut self, line: String) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = writeln!(s, "{line}");
            let _ = s.flush();
        }
    }

    pub fn watch(&mut self, pid: u32) {
        self.say(format!("watch {pid}"));
    }

    pub fn release(&mut self, pid: u32) {
        self.say(format!("release {pid}"));
    }

    /// A directory the guard removes if the benchmark dies without doing so.
    pub fn cleanup(&mut self, dir: &Path) {
        self.say(format!("cleanup {}", dir.display()));
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Closing stdin makes the guard stop what is still watched and exit.
        self.stdin = None;
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn alive(pid: u32) -> bool {
    // A zombie is as good as gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => stat_fields(&s).and_then(|f| f.first().copied()).is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

/// `sheepdog-bench guard`: reads `watch PID` / `release PID` lines; when stdin
/// closes, sends SIGTERM to every watched pid, SIGKILL after 5 s, and exits.
pub fn guard_main() -> anyhow::Result<()> {
    let mut watched = BTreeSet::new();
    let mut dirs = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.split_once(' ') {
            Some(("watch", p)) => {
                if let Ok(p) = p.trim().parse::<u32>() {
                    watched.insert(p);
                }
            }
            Some(("release", p)) => {
                if let Ok(p) = p.trim().parse::<u32>() {
                    watched.remove(&p);
                }
            }
            Some(("cleanup", d)) => dirs.push(PathBuf::from(d)),
            _ => {}
        }
    }
    let remove_dirs = || {
        for d in &dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    };
    if watched.is_empty() {
        remove_dirs();
        return Ok(());
    }
    eprintln!("bench guard: the benchmark went away; stopping {watched:?}");
    for &p in &watched {
        signal(p, Signal::TERM);
    }
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) && watched.iter().any(|&p| alive(p)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    for &p in &watched {
        if alive(p) {
            signal(p, Signal::KILL);
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    remove_dirs();
    Ok(())
}

/// Fields of /proc/PID/stat after the command name: [0] = state, [1] = ppid,
/// [11] = utime, [12] = stime.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().collect())
}

/// CPU time of `pid` (0: this process) in seconds: (user, system).
pub fn cpu_seconds(pid: u32) -> (f64, f64) {
    let path = if pid == 0 { "/proc/self/stat".to_string() } else { format!("/proc/{pid}/stat") };
    let Ok(s) = std::fs::read_to_string(path) else { return (0.0, 0.0) };
    let Some(f) = stat_fields(&s) else { return (0.0, 0.0) };
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) as f64;
    let hz = rustix::param::clock_ticks_per_second() as f64;
    (ticks(11) / hz, ticks(12) / hz)
}

/// Busy CPU time of the whole machine (all cores), in seconds: everything
/// in the first line of /proc/stat but idle and iowait.
pub fn machine_busy_seconds() -> f64 {
    let Ok(s) = std::fs::read_to_string("/proc/stat") else { return 0.0 };
    let Some(line) = s.lines().next() else { return 0.0 };
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let busy: u64 = v.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, x)| *x).sum();
    busy as f64 / rustix::param::clock_ticks_per_second() as f64
}

/// Direct children of `pid` (nginx workers).
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for e in dir.flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
            if stat_fields(&s).and_then(|f| f.get(1).and_then(|v| v.parse::<u32>().ok())) == Some(pid) {
                out.push(p);
            }
        }
    }
    out
}

/// `name` on PATH, if it is there.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// 32 random hex characters.
pub fn random_hex() -> anyhow::Result<String> {
    use std::io::Read;
    let mut buf = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The last `n` lines of a log file (for error messages).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
