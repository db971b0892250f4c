//! Results: derived numbers (added latency, ratios, target checks), the JSON
//! file, the Markdown table and the printed summary.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::args::RunArgs;
use crate::client::{LatencyResult, Mode, ThroughputResult};

#[derive(Debug, Serialize)]
pub struct CpuUse {
    pub process: &'static str,
    /// CPU time over the measured window / window length (200 % = both cores).
    pub percent_of_one_core: f64,
    /// CPU time of this process per answered request.
    pub us_per_request: f64,
    /// The part of `us_per_request` spent in the kernel (system time).
    pub kernel_us_per_request: f64,
}

#[derive(Debug, Serialize)]
pub struct ThroughputRow {
    #[serde(flatten)]
    pub result: ThroughputResult,
    pub cpu: Vec<CpuUse>,
}

#[derive(Debug, Serialize)]
pub struct Lag {
    pub mode: Mode,
    pub queue_depth_after_window: u64,
    pub drain_ms: f64,
    pub drained: bool,
}

#[derive(Debug, Serialize)]
pub struct Accounting {
    /// Chat requests the gateway answered (every phase, warm-ups and smoke included).
    pub gateway_requests_sent: u64,
    /// `requests` of GET /admin/v1/usage?group_by=tenant.
    pub recorded_requests: u64,
    pub recorded_input_tokens: u64,
    pub recorded_output_tokens: u64,
    pub recorded_cost_nanos: i64,
    pub expected_cost_nanos: i64,
    pub matches: bool,
    pub usage_query_ms: f64,
    pub lag: Vec<Lag>,
}

#[derive(Debug, Serialize)]
pub struct Added {
    pub mode: Mode,
    pub target: &'static str,
    pub added_p50_us: f64,
    pub added_p99_us: f64,
}

#[derive(Debug, Serialize)]
pub struct Ratio {
    pub mode: Mode,
    pub target: &'static str,
    pub rps: f64,
    pub direct_rps: f64,
    pub ratio: f64,
}

/// Gateway throughput if the phase had to wait for accounting to catch up:
/// every request of the phase / (warm-up + window + time to drain the queue).
#[derive(Debug, Serialize)]
pub struct Sustained {
    pub mode: Mode,
    pub rps: f64,
    pub ratio: f64,
}

#[derive(Debug, Serialize)]
pub struct TargetCheck {
    pub name: String,
    pub mode: Mode,
    pub value: f64,
    pub limit: f64,
    pub met: bool,
}

#[derive(Debug, Serialize)]
pub struct Host {
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
}

#[derive(Debug, Serialize)]
pub struct Config {
    pub concurrency: usize,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub latency_requests: usize,
    pub latency_warmup: usize,
    pub stream_latency_requests: usize,
    pub stream_latency_warmup: usize,
    pub latency_rounds: usize,
    pub client_threads: usize,
    pub upstream_threads: usize,
    pub nginx_workers: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub timestamp: String,
    #[serde(skip)]
    pub file_stamp: String,
    pub git_commit: Option<String>,
    pub host: Host,
    pub config: Config,
    pub nginx_version: Option<String>,
    pub latency: Vec<LatencyResult>,
    pub added_latency: Vec<Added>,
    pub throughput: Vec<ThroughputRow>,
    pub throughput_ratios: Vec<Ratio>,
    pub gateway_with_accounting_drained: Vec<Sustained>,
    pub accounting: Accounting,
    pub targets: Vec<TargetCheck>,
    pub total_errors: u64,
    pub gateway_shutdown: String,
    pub gateway_stopped_ok: bool,
    pub notes: Vec<String>,
    pub wall_s: f64,
}

pub struct Inputs {
    pub args: RunArgs,
    pub nginx_version: Option<String>,
    pub notes: Vec<String>,
    pub latency: Vec<LatencyResult>,
    pub throughput: Vec<ThroughputRow>,
    pub accounting: Accounting,
    pub gateway_shutdown: String,
    pub gateway_stopped_ok: bool,
    pub wall_s: f64,
}

fn host() -> Host {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).trim().to_string()))
        .unwrap_or_default();
    Host {
        cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        cpu_model,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string(),
    }
}

fn git_commit() -> Option<String> {
    let o = std::process::Command::new("git").args(["rev-parse", "--short", "HEAD"]).output().ok()?;
    o.status.success().then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

impl Report {
    pub fn new(i: Inputs) -> Report {
        let now = chrono::Utc::now();
        let mut added = Vec::new();
        let mut ratios = Vec::new();
        let mut targets = Vec::new();
        for mode in [Mode::NonStream, Mode::Stream] {
            let lat = |name: &str| i.latency.iter().find(|l| l.mode == mode && l.target == name);
            if let Some(d) = lat("direct") {
                for name in ["gateway", "gw-messages", "gw-redis", "nginx"] {
                    if let Some(l) = lat(name) {
                        added.push(Added {
                            mode,
                            target: l.target,
                            added_p50_us: l.stats.p50_us - d.stats.p50_us,
                            added_p99_us: l.stats.p99_us - d.stats.p99_us,
                        });
                    }
                }
            }
            let tp = |name: &str| i.throughput.iter().find(|t| t.result.mode == mode && t.result.target == name);
            if let Some(d) = tp("direct") {
                for name in ["gateway", "gw-messages", "gw-redis", "nginx"] {
                    if let Some(t) = tp(name) {
                        let ratio = if d.result.rps > 0.0 { t.result.rps / d.result.rps } else { 0.0 };
                        ratios.push(Ratio {
                            mode,
                            target: t.result.target,
                            rps: t.result.rps,
                            direct_rps: d.result.rps,
                            ratio,
                        });
                    }
                }
            }
            if let Some(r) = ratios.iter().find(|r| r.mode == mode && r.target == "gateway") {
                targets.push(TargetCheck {
                    name: "gateway throughput / direct".into(),
                    mode,
                    value: r.ratio,
                    limit: i.args.min_ratio,
                    met: r.ratio >= i.args.min_ratio,
                });
            }
            if let Some(a) = added.iter().find(|a| a.mode == mode && a.target == "gateway") {
                targets.push(TargetCheck {
                    name: "gateway added p50 latency (µs)".into(),
                    mode,
                    value: a.added_p50_us,
                    limit: i.args.max_added_p50_us,
                    met: a.added_p50_us <= i.args.max_added_p50_us,
                });
            }
            // Shared state in Redis against the in-memory gateway.
            if let (Some(m), Some(r)) = (tp("gateway"), tp("gw-redis")) {
                let ratio = if m.result.rps > 0.0 { r.result.rps / m.result.rps } else { 0.0 };
                targets.push(TargetCheck {
                    name: "gw-redis throughput / gateway (in-memory)".into(),
                    mode,
                    value: ratio,
                    limit: i.args.min_redis_ratio,
                    met: ratio >= i.args.min_redis_ratio,
                });
            }
            if let (Some(m), Some(r)) = (lat("gateway"), lat("gw-redis")) {
                let added = r.stats.p50_us - m.stats.p50_us;
                targets.push(TargetCheck {
                    name: "gw-redis p50 above the in-memory gateway's (µs)".into(),
                    mode,
                    value: added,
                    limit: i.args.max_redis_added_p50_us,
                    met: added <= i.args.max_redis_added_p50_us,
                });
            }
        }
        let mut sustained = Vec::new();
        for l in &i.accounting.lag {
            let gw = i.throughput.iter().find(|t| t.result.mode == l.mode && t.result.target == "gateway");
            let direct = i.throughput.iter().find(|t| t.result.mode == l.mode && t.result.target == "direct");
            if let Some(g) = gw {
                let secs = g.result.warmup_s + g.result.duration_s + l.drain_ms / 1000.0;
                let rps = g.result.sent_total as f64 / secs;
                let ratio = direct.filter(|d| d.result.rps > 0.0).map_or(0.0, |d| rps / d.result.rps);
                sustained.push(Sustained { mode: l.mode, rps, ratio });
            }
        }
        let total_errors = i.latency.iter().map(|l| l.errors.count).sum::<u64>()
            + i.throughput.iter().map(|t| t.result.errors.count).sum::<u64>();
        let has_nginx = i.latency.iter().any(|l| l.target == "nginx");
        let mut notes = i.notes;
        // What translating at the edge costs: the gateway asked in the
        // Messages format against the same gateway asked in its own.
        for mode in [Mode::NonStream, Mode::Stream] {
            let lat = |name: &str| i.latency.iter().find(|l| l.mode == mode && l.target == name);
            let gw_cpu = |name: &str| {
                i.throughput
                    .iter()
                    .find(|t| t.result.mode == mode && t.result.target == name)
                    .and_then(|t| t.cpu.iter().find(|c| c.process == "gateway"))
                    .map(|c| c.us_per_request)
            };
            if let (Some(chat), Some(msgs)) = (lat("gateway"), lat("gw-messages")) {
                let cpu = match (gw_cpu("gateway"), gw_cpu("gw-messages")) {
                    (Some(a), Some(b)) => format!("; the gateway's CPU {a:.1} → {b:.1} µs per request ({:+.1})", b - a),
                    _ => String::new(),
                };
                notes.push(format!(
                    "/v1/messages translation ({}): p50 {:+.1} µs, p99 {:+.1} µs over the same gateway's /v1/chat/completions at c=1{cpu}",
                    mode.label(),
                    msgs.stats.p50_us - chat.stats.p50_us,
                    msgs.stats.p99_us - chat.stats.p99_us,
                ));
            }
        }
        for t in &i.throughput {
            if let Some(o) = t.cpu.iter().find(|c| c.process == "other").filter(|c| c.percent_of_one_core > 15.0) {
                notes.push(format!(
                    "other processes used {:.0} % of a core during the {} {} window: that number is noisy",
                    o.percent_of_one_core,
                    t.result.mode.label(),
                    t.result.target
                ));
            }
        }
        Report {
            timestamp: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            file_stamp: now.format("%Y%m%dT%H%M%SZ").to_string(),
            git_commit: git_commit(),
            host: host(),
            config: Config {
                concurrency: i.args.concurrency,
                warmup_s: i.args.warmup,
                duration_s: i.args.duration,
                latency_requests: i.args.latency_requests,
                latency_warmup: i.args.latency_warmup,
                stream_latency_requests: i.args.stream_latency_requests,
                stream_latency_warmup: i.args.stream_latency_warmup,
                latency_rounds: i.args.rounds,
                client_threads: i.args.client_threads,
                upstream_threads: i.args.upstream_threads,
                nginx_workers: has_nginx.then(|| i.args.nginx_workers.clone()),
            },
            nginx_version: i.nginx_version,
            latency: i.latency,
            added_latency: added,
            throughput: i.throughput,
            throughput_ratios: ratios,
            gateway_with_accounting_drained: sustained,
            accounting: i.accounting,
            targets,
            total_errors,
            gateway_shutdown: i.gateway_shutdown,
            gateway_stopped_ok: i.gateway_stopped_ok,
            notes,
            wall_s: i.wall_s,
        }
    }

    /// What makes the run fail whatever the numbers.
    pub fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        if self.total_errors > 0 {
            let mut samples: Vec<&str> = self
                .latency
                .iter()
                .flat_map(|l| l.errors.samples.iter())
                .chain(self.throughput.iter().flat_map(|t| t.result.errors.samples.iter()))
                .map(String::as_str)
                .take(3)
                .collect();
            samples.dedup();
            f.push(format!("{} request errors (e.g. {})", self.total_errors, samples.join(" | ")));
        }
        let a = &self.accounting;
        if !a.matches {
            f.push(format!(
                "accounting mismatch: gateway answered {} requests, usage shows {} requests / {} input / {} output tokens / {} nano-USD (expected {})",
                a.gateway_requests_sent, a.recorded_requests, a.recorded_input_tokens, a.recorded_output_tokens, a.recorded_cost_nanos, a.expected_cost_nanos
            ));
        }
        if a.lag.iter().any(|l| !l.drained) {
            f.push("the accounting queue did not drain within 60 s".into());
        }
        if !self.gateway_stopped_ok {
            f.push(format!("gateway shutdown: {}", self.gateway_shutdown));
        }
        f
    }

    pub fn missed_targets(&self) -> Vec<String> {
        self.targets
            .iter()
            .filter(|t| !t.met)
            .map(|t| format!("{} ({}): {:.3} vs limit {}", t.name, t.mode.label(), t.value, t.limit))
            .collect()
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let c = &self.config;
        let _ = writeln!(s, "### Sheepdog benchmark — {}", self.timestamp);
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "Host: {} CPUs ({}), kernel {}; commit {}. Latency (c=1): {} sequential requests per path after {} warm-up ({} / {} streamed), {} interleaved blocks. \
             Throughput: concurrency {} for {} s after a {} s warm-up.{}",
            self.host.cpus,
            self.host.cpu_model,
            self.host.kernel,
            self.git_commit.as_deref().unwrap_or("?"),
            c.latency_requests,
            c.latency_warmup,
            c.stream_latency_requests,
            c.stream_latency_warmup,
            c.latency_rounds,
            c.concurrency,
            c.duration_s,
            c.warmup_s,
            match (&self.nginx_version, &c.nginx_workers) {
                (Some(v), Some(w)) => format!(" Reference: {v}, worker_processes {w}."),
                _ => String::new(),
            }
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "| mode | path | p50 µs (c=1) | p99 µs (c=1) | added p50 µs | added p99 µs | req/s (c={}) | vs direct | p50 / p99 µs (c={}) | errors |",
            c.concurrency, c.concurrency
        );
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for mode in [Mode::NonStream, Mode::Stream] {
            for name in ["direct", "gateway", "gw-messages", "gw-redis", "nginx"] {
                let lat = self.latency.iter().find(|l| l.mode == mode && l.target == name);
                let tp = self.throughput.iter().find(|t| t.result.mode == mode && t.result.target == name);
                if lat.is_none() && tp.is_none() {
                    continue;
                }
                let add = self.added_latency.iter().find(|a| a.mode == mode && a.target == name);
                let ratio = self.throughput_ratios.iter().find(|r| r.mode == mode && r.target == name);
                let errors = lat.map_or(0, |l| l.errors.count) + tp.map_or(0, |t| t.result.errors.count);
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    mode.label(),
                    name,
                    lat.map_or("–".into(), |l| format!("{:.1}", l.stats.p50_us)),
                    lat.map_or("–".into(), |l| format!("{:.1}", l.stats.p99_us)),
                    add.map_or("–".into(), |a| format!("{:+.1}", a.added_p50_us)),
                    add.map_or("–".into(), |a| format!("{:+.1}", a.added_p99_us)),
                    tp.map_or("–".into(), |t| format!("{:.0}", t.result.rps)),
                    match (name, ratio) {
                        ("direct", _) if tp.is_some() => "100 %".to_string(),
                        (_, Some(r)) => format!("{:.1} %", r.ratio * 100.0),
                        _ => "–".into(),
                    },
                    tp.map_or("–".into(), |t| format!("{:.0} / {:.0}", t.result.stats.p50_us, t.result.stats.p99_us)),
                    errors
                );
            }
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "CPU during the c={} windows (% of one core; µs of CPU per request, of which in the kernel):",
            c.concurrency
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "| mode | path | loadgen | upstream | gateway | replicas | nginx | ours total | other (noise) |"
        );
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for t in &self.throughput {
            let cell = |p: &str| {
                t.cpu.iter().find(|c| c.process == p).filter(|c| c.percent_of_one_core >= 0.5).map_or(
                    "–".into(),
                    |c| {
                        format!(
                            "{:.0} % ({:.1}; {:.1})",
                            c.percent_of_one_core, c.us_per_request, c.kernel_us_per_request
                        )
                    },
                )
            };
            let ours = t.cpu.iter().filter(|c| c.process != "other");
            let total_pct: f64 = ours.clone().map(|c| c.percent_of_one_core).sum();
            let total_us: f64 = ours.clone().map(|c| c.us_per_request).sum();
            let total_kernel_us: f64 = ours.map(|c| c.kernel_us_per_request).sum();
            let other = t.cpu.iter().find(|c| c.process == "other").map_or(0.0, |c| c.percent_of_one_core);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {:.0} % ({:.1}; {:.1}) | {:.0} % |",
                t.result.mode.label(),
                t.result.target,
                cell("loadgen"),
                cell("upstream"),
                cell("gateway"),
                cell("replicas"),
                cell("nginx"),
                total_pct,
                total_us,
                total_kernel_us,
                other
            );
        }
        let _ = writeln!(s);
        let a = &self.accounting;
        let _ = writeln!(
            s,
            "Accounting: the gateway answered **{}** chat requests; `GET /admin/v1/usage?group_by=tenant` shows **{}** requests, {} input / {} output tokens, {} nano-USD (expected {}) — **{}**.",
            a.gateway_requests_sent,
            a.recorded_requests,
            a.recorded_input_tokens,
            a.recorded_output_tokens,
            a.recorded_cost_nanos,
            a.expected_cost_nanos,
            if a.matches { "match" } else { "MISMATCH" }
        );
        for l in &a.lag {
            let _ = writeln!(
                s,
                "Accounting queue right after the {} c={} window: {} events; empty {:.0} ms later.",
                l.mode.label(),
                c.concurrency,
                l.queue_depth_after_window,
                l.drain_ms
            );
        }
        for g in &self.gateway_with_accounting_drained {
            let _ = writeln!(
                s,
                "Gateway {} throughput counting the time to drain accounting (all requests of the phase / (warm-up + window + drain)): {:.0} req/s ({:.1} % of direct).",
                g.mode.label(),
                g.rps,
                g.ratio * 100.0
            );
        }
        let _ = writeln!(s, "Gateway shutdown: {}.", self.gateway_shutdown);
        let _ = writeln!(s);
        for t in &self.targets {
            let shown = if t.name.contains("µs") {
                format!("{:.1} µs (≤ {} µs)", t.value, t.limit)
            } else {
                format!("{:.1} % (≥ {:.0} %)", t.value * 100.0, t.limit * 100.0)
            };
            let _ = writeln!(
                s,
                "- Target {} [{}]: {} — {}",
                t.name,
                t.mode.label(),
                shown,
                if t.met { "met" } else { "MISSED" }
            );
        }
        let _ = writeln!(s, "- Errors: {}{}", self.total_errors, if self.total_errors == 0 { "" } else { " — FAILED" });
        for n in &self.notes {
            let _ = writeln!(s, "- Note: {n}");
        }
        s
    }
}

/// Writes `bench-<stamp>.json` and `bench-<stamp>.md` into `dir`.
pub fn write(r: &Report, dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let json = dir.join(format!("bench-{}.json", r.file_stamp));
    let md = dir.join(format!("bench-{}.md", r.file_stamp));
    std::fs::write(&json, serde_json::to_vec_pretty(r)?)?;
    std::fs::write(&md, r.markdown())?;
    Ok((json, md))
}

/// The one place that prints to stdout: the Markdown summary.
#[allow(clippy::print_stdout)]
pub fn print(r: &Report) {
    println!("{}", r.markdown());
}
