//! Benchmark helper for `scripts/bench-analyze.sh`:
//!
//! ```text
//! bench gen --size 1G --out FILE     # synthetic JSON-lines log of about SIZE bytes
//! bench run FILE... [--out DIR] [--threads N] [--max-events N]
//!                                    # the `sheepdog analyze` code path; prints one JSON line
//! ```
//!
//! `run` goes through `sheepdog_analyze::cli::run`, exactly what `sheepdog
//! analyze` calls (reports written, progress and summary off), and prints
//! bytes, seconds, MB/s and the process's peak RSS (VmHWM).
#![allow(clippy::print_stdout)]

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use sheepdog_analyze::cli::{run, CliArgs};
use sheepdog_analyze::synth::{self, Generator, SynthConfig};

fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_uppercase();
    let (num, mult) = match t.chars().last() {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t.as_str(), 1),
    };
    let n: f64 = num.parse().map_err(|_| format!("bad size {s:?} (e.g. 1G, 200M)"))?;
    Ok((n * mult as f64) as u64)
}

fn vm_hwm_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn gen(args: &[String]) -> Result<(), String> {
    let mut size = 1u64 << 30;
    let mut out = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--size" => size = parse_size(it.next().ok_or("--size needs a value")?)?,
            "--out" => out = Some(PathBuf::from(it.next().ok_or("--out needs a value")?)),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let out = out.ok_or("--out FILE is required")?;
    let f = std::fs::File::create(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let started = Instant::now();
    let cfg = SynthConfig {
        tenants: 200,
        mean_gap_ms: 100,
        jitter_ms: 5_000,
        no_duration_per_mille: 5,
        ..SynthConfig::default()
    };
    let mut g = Generator::new(cfg);
    let mut text = synth::Rng::new(7);
    let (mut bytes, mut records) = (0u64, 0u64);
    let mut line = Vec::with_capacity(4096);
    while bytes < size {
        let Some(r) = g.next() else { break };
        let (pn, an) = (200 + text.below(400) as usize, 100 + text.below(300) as usize);
        let prompt = synth::filler(&mut text, pn);
        let answer = synth::filler(&mut text, an);
        line.clear();
        synth::write_jsonl(&mut line, &r, &prompt, &answer, records).map_err(|e| e.to_string())?;
        w.write_all(&line).map_err(|e| e.to_string())?;
        bytes += line.len() as u64;
        records += 1;
    }
    w.flush().map_err(|e| e.to_string())?;
    println!(
        "{{\"file\":{:?},\"bytes\":{bytes},\"records\":{records},\"seconds\":{:.2}}}",
        out.display().to_string(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn bench_run(args: &[String]) -> Result<(), String> {
    let mut cli = CliArgs {
        no_progress: true,
        quiet: true,
        out: std::env::temp_dir().join("sheepdog-bench-report"),
        ..CliArgs::default()
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => cli.out = PathBuf::from(it.next().ok_or("--out needs a value")?),
            "--threads" => {
                cli.threads = Some(it.next().ok_or("--threads needs a value")?.parse().map_err(|_| "bad --threads")?)
            }
            "--max-events" => {
                cli.max_events_in_memory =
                    Some(it.next().ok_or("--max-events needs a value")?.parse().map_err(|_| "bad --max-events")?)
            }
            f => cli.files.push(PathBuf::from(f)),
        }
    }
    if cli.files.is_empty() {
        return Err("run FILE... is required".into());
    }
    let bytes: u64 = cli.files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    let started = Instant::now();
    let outcome = run(cli).map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    let r = &outcome.report;
    println!(
        "{{\"bytes\":{bytes},\"records\":{},\"malformed\":{},\"tenants\":{},\"seconds\":{secs:.3},\"mb_per_s\":{:.1},\"vm_hwm_kb\":{},\"spill_runs\":{},\"spilled_events\":{},\"threads\":{},\"peak_concurrency\":{}}}",
        r.quality.records,
        r.quality.malformed,
        r.tenants.len(),
        bytes as f64 / 1e6 / secs,
        vm_hwm_kb().map(|v| v.to_string()).unwrap_or_else(|| "null".into()),
        r.quality.spill_runs,
        r.quality.spilled_events,
        r.settings.threads,
        r.overall.peak_concurrency.value,
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("gen") => gen(&args[1..]),
        Some("run") => bench_run(&args[1..]),
        _ => {
            Err("usage: bench gen --size 1G --out FILE | bench run FILE... [--out DIR] [--threads N] [--max-events N]"
                .into())
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
