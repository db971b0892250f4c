//! `sheepdog-bench`: a zero-delay OpenAI-compatible upstream called directly,
//! through the Sheepdog gateway (authentication + accounting on) and, when
//! nginx is on PATH, through an nginx reverse-proxy hop as a reference.
//! Measures added latency at concurrency 1 and throughput at concurrency 64,
//! non-streamed and streamed, checks that accounting recorded every request,
//! and writes JSON + Markdown to `bench-results/`. See docs/benchmark.md.
//!
//! `args`: the command line; `run`: the run, phase by phase; `services`:
//! the children it starts (upstream, gateway, nginx) and stops; `measure`:
//! the throughput phase with CPU use per process; `admin`: the gateway's
//! admin API and metrics (tenant key, accounting); `client`: the load
//! generator; `procs`: process control; `report`: the results; `upstream`:
//! the zero-delay upstream.

mod admin;
mod args;
mod client;
mod measure;
mod procs;
mod report;
mod run;
mod services;
mod upstream;

use std::time::Duration;

use anyhow::{anyhow, bail};
use clap::Parser;

use crate::args::{Cli, Internal, RunArgs};

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
            r = tokio::time::timeout(limit, run::run(&args)) => r.map_err(|_| anyhow!("the run exceeded --max-seconds {}", args.max_seconds))?,
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
