//! The command line: the run's options and the internal subcommands the
//! benchmark starts itself with.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sheepdog-bench",
    about = "Direct upstream vs through the Sheepdog gateway (and nginx as a reference)"
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Internal>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand)]
pub enum Internal {
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
    pub gateway_bin: Option<PathBuf>,
    /// The nginx binary (default: `nginx` on PATH; skipped when absent).
    #[arg(long, value_name = "FILE")]
    pub nginx_bin: Option<PathBuf>,
    /// Skip the nginx reference even if nginx is installed.
    #[arg(long)]
    pub no_nginx: bool,
    /// nginx `worker_processes`.
    #[arg(long, default_value = "auto")]
    pub nginx_workers: String,
    /// Connections (and in-flight requests) of the throughput phases.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Measured seconds of each throughput phase.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Warm-up seconds before each throughput window.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Measured sequential requests per path for the latency phase.
    #[arg(long, default_value_t = 5000)]
    pub latency_requests: usize,
    /// Warm-up sequential requests per path before the latency phase.
    #[arg(long, default_value_t = 500)]
    pub latency_warmup: usize,
    /// Measured sequential streamed requests per path.
    #[arg(long, default_value_t = 1000)]
    pub stream_latency_requests: usize,
    /// Warm-up sequential streamed requests per path.
    #[arg(long, default_value_t = 100)]
    pub stream_latency_warmup: usize,
    /// Interleaved blocks of the latency phase (path order rotates per block).
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    /// Only non-streamed requests.
    #[arg(long)]
    pub no_stream: bool,
    /// Skip the `gw-messages` path (the gateway asked in Anthropic's Messages format).
    #[arg(long)]
    pub no_messages: bool,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 2)]
    pub client_threads: usize,
    /// Worker threads of the upstream (1 = current-thread runtime).
    #[arg(long, default_value_t = 2)]
    pub upstream_threads: usize,
    /// Where the JSON and Markdown results go.
    #[arg(long, default_value = "bench-results")]
    pub out_dir: PathBuf,
    /// Keep the temporary directory (config, database, logs).
    #[arg(long)]
    pub keep_tmp: bool,
    /// Target: gateway throughput at least this fraction of direct.
    #[arg(long, default_value_t = 0.35)]
    pub min_ratio: f64,
    /// Target: added p50 latency at concurrency 1 at most this many µs.
    #[arg(long, default_value_t = 100.0)]
    pub max_added_p50_us: f64,
    /// Exit non-zero when a target is missed (errors and accounting always do).
    #[arg(long)]
    pub enforce_targets: bool,
    /// Adds a path `gw-redis`: gateway replicas sharing their admission state
    /// in this Redis (default `redis://127.0.0.1:6379/0`), on the in-memory
    /// gateway's database, the load spread over them.
    #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "redis://127.0.0.1:6379/0")]
    pub redis: Option<String>,
    /// Replicas of the `gw-redis` path (with `--redis`).
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// Target: `gw-redis` throughput at least this fraction of the in-memory gateway's.
    #[arg(long, default_value_t = 0.6)]
    pub min_redis_ratio: f64,
    /// Target: `gw-redis` p50 at c=1 at most this many µs above the in-memory gateway's.
    #[arg(long, default_value_t = 150.0)]
    pub max_redis_added_p50_us: f64,
    /// Hard limit on the whole run, in seconds.
    #[arg(long, default_value_t = 900)]
    pub max_seconds: u64,
}
