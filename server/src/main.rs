//! The `sheepdog` binary: wires the gateway (data plane + admin API) and the
//! console (Leptos SSR) into the commands of SPEC §1.

#![recursion_limit = "256"]

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sheepdog::console;

/// mimalloc: the request path allocates many small, short-lived buffers;
/// glibc's allocator showed up in profiles (consolidation, chunk unlinking).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use sheepdog_gateway::config::Settings;
use sheepdog_gateway::listener::ShutdownSignal;

/// Sheepdog: a self-hosted, multi-tenant LLM gateway with an operations console.
#[derive(Parser)]
#[command(name = "sheepdog", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct ConfigArg {
    /// TOML configuration file. Every key can be overridden by an environment
    /// variable SHEEPDOG_<SECTION>__<KEY> (e.g. SHEEPDOG_DATABASE__URL).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway and the console in one process (the default deployment).
    Serve(ConfigArg),
    /// Run the data plane and the admin API only (scale out: run N of these).
    Gateway(ConfigArg),
    /// Run the console only; it sends admin calls to console.gateway_url.
    Console(ConfigArg),
    /// Apply database migrations and exit.
    Migrate(ConfigArg),
    /// Migration analysis of existing API logs (JSON lines or CSV).
    Analyze {
        /// Log files to read: JSON lines, LiteLLM spend logs (JSON or CSV),
        /// Sheepdog usage exports, CSV; gzip detected from the content.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Directory for report.json and report.html.
        #[arg(long, value_name = "DIR", default_value = "sheepdog-report")]
        out: PathBuf,
        /// Input format; detected per file when not given.
        #[arg(long, value_name = "FORMAT", value_parser = ["jsonl", "litellm-json", "litellm-csv", "sheepdog-csv", "sheepdog-jsonl", "csv"])]
        format: Option<String>,
        /// Where the tenant identifier is: a dotted path, or several comma-separated
        /// (first present wins), e.g. metadata.tenant_id, user, headers.x-tenant-id.
        #[arg(long, value_name = "PATH")]
        tenant_field: Option<String>,
        /// Map CSV columns (or JSON paths) to fields, e.g. ts=start,org=tenant,took=duration_ms
        /// (fields: start, end, duration_ms, duration_s, endpoint, status, error, model,
        /// input_tokens, output_tokens, total_tokens, cached_tokens, cache_read_tokens, tenant).
        #[arg(long, value_name = "COL=FIELD,...")]
        csv_map: Vec<String>,
        /// Model mapping for the projected cost, e.g. gpt-4.1=deepseek-v3.2 (repeatable).
        #[arg(long, value_name = "FROM=TO")]
        map: Vec<String>,
        /// Another price table for the projection (TOML, [models."NAME"] with
        /// input_per_mtok and output_per_mtok), overlaid on the current one.
        #[arg(long, value_name = "FILE.toml")]
        prices: Option<PathBuf>,
        /// Tenants file (TOML or JSON): names, tiers and tags such as data-residency:eu.
        #[arg(long, value_name = "FILE")]
        tenants: Option<PathBuf>,
        /// Upstream capacity in concurrent requests, for the dedicated-tier test
        /// (default: the providers' max_concurrency in --config, else the observed peak).
        #[arg(long, value_name = "N")]
        upstream_concurrency: Option<u64>,
        /// Sheepdog configuration to take the current price table (and upstream capacity) from
        /// (default: the default price table).
        #[arg(long, short = 'c', value_name = "FILE")]
        config: Option<PathBuf>,
        /// Margin over the observed peaks for the recommended limits, in percent.
        #[arg(long, value_name = "PCT", default_value_t = 25)]
        margin: u32,
        /// Whether the logged timestamps are request starts or ends.
        #[arg(long, value_name = "WHEN", value_parser = ["start", "end"], default_value = "start")]
        timestamp_at: String,
        /// Parser threads for JSON lines (default: the machine's cores).
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
        /// Do not print the summary.
        #[arg(long, short = 'q')]
        quiet: bool,
        /// No progress bar (it is off anyway when stderr is not a terminal).
        #[arg(long)]
        no_progress: bool,
    },
    /// Manage console users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage the admin API token.
    AdminToken {
        #[command(subcommand)]
        command: AdminTokenCommand,
    },
}

#[derive(Subcommand)]
enum AdminTokenCommand {
    /// Issue a new admin token and revoke the stored one (every gateway on the
    /// database stops accepting it within 1 s). The new token is printed once
    /// to standard output.
    Rotate(ConfigArg),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a console user; the password is read from standard input.
    Create {
        #[arg(long, value_name = "E")]
        email: String,
        /// admin, operator, viewer or tenant.
        #[arg(long, value_name = "R")]
        role: String,
        /// The tenant a `tenant` user belongs to (id or alias).
        #[arg(long, value_name = "ID")]
        tenant: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn load(config: &ConfigArg) -> anyhow::Result<Settings> {
    let settings = Settings::load(config.config.as_deref())?;
    sheepdog_gateway::telemetry::init(&settings.log);
    Ok(settings)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(c) => {
            let mut settings = load(&c)?;
            // The console reaches this gateway's admin API with a token that
            // lives only as long as this process.
            settings.process_admin_token = Some(sheepdog_gateway::config::Secret::new(format!(
                "sd-process-{}",
                &sheepdog_gateway::auth::generate_key()[sheepdog_gateway::auth::KEY_PREFIX.len()..]
            )));
            let shutdown = shutdown_signal();
            let gateway = sheepdog_gateway::Gateway::build(settings.clone()).await?;
            print_bootstrap(&gateway);
            let gw_listener = tokio::net::TcpListener::bind(settings.gateway.listen)
                .await
                .with_context(|| format!("cannot listen on gateway.listen {}", settings.gateway.listen))?;
            let console = console::Console::new(&settings).await?;
            let console_listener = tokio::net::TcpListener::bind(settings.console.listen)
                .await
                .with_context(|| format!("cannot listen on console.listen {}", settings.console.listen))?;
            tracing::info!(gateway = %settings.gateway.listen, console = %settings.console.listen, "sheepdog serving");
            let gw = gateway.serve_until(gw_listener, shutdown.clone());
            let cs = console.serve_until(console_listener, shutdown);
            let (a, b) = tokio::join!(gw, cs);
            a.and(b)
        }
        Command::Gateway(c) => {
            let settings = load(&c)?;
            let shutdown = shutdown_signal();
            let gateway = sheepdog_gateway::Gateway::build(settings.clone()).await?;
            print_bootstrap(&gateway);
            let listener = tokio::net::TcpListener::bind(settings.gateway.listen)
                .await
                .with_context(|| format!("cannot listen on gateway.listen {}", settings.gateway.listen))?;
            tracing::info!(gateway = %settings.gateway.listen, "sheepdog gateway serving");
            gateway.serve_until(listener, shutdown).await
        }
        Command::Console(c) => {
            let settings = load(&c)?;
            let shutdown = shutdown_signal();
            let console = console::Console::new(&settings).await?;
            let listener = tokio::net::TcpListener::bind(settings.console.listen)
                .await
                .with_context(|| format!("cannot listen on console.listen {}", settings.console.listen))?;
            tracing::info!(console = %settings.console.listen, gateway_url = %settings.console.gateway_url, "sheepdog console serving");
            console.serve_until(listener, shutdown).await
        }
        Command::Migrate(c) => {
            let settings = load(&c)?;
            let store = sheepdog_gateway::store::Store::connect(&settings.database).await?;
            store.migrate().await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Analyze {
            files,
            out,
            format,
            tenant_field,
            csv_map,
            map,
            prices,
            tenants,
            upstream_concurrency,
            config,
            margin,
            timestamp_at,
            threads,
            quiet,
            no_progress,
        } => {
            use sheepdog_gateway::admin::analyses::{price_table, upstream_capacity};
            let settings = match &config {
                Some(path) => Some(Settings::load(Some(path))?),
                None => None,
            };
            let config_prices = settings.as_ref().map(|s| {
                let mut t = price_table(&s.models);
                t.label = format!("the price table of {}", s.source);
                t
            });
            let args = sheepdog_analyze::cli::CliArgs {
                files,
                out,
                format,
                tenant_field,
                csv_map,
                map,
                prices,
                tenants,
                upstream_concurrency,
                config_prices,
                config_upstream_concurrency: settings.as_ref().and_then(|s| upstream_capacity(&s.providers)),
                margin_percent: Some(margin),
                timestamp_at: Some(timestamp_at),
                threads,
                max_events_in_memory: None,
                no_progress,
                quiet,
            };
            tokio::task::spawn_blocking(move || sheepdog_analyze::cli::run(args))
                .await
                .context("the analysis task failed")??;
            Ok(())
        }
        Command::User { command: UserCommand::Create { email, role, tenant, config } } => {
            let settings = load(&config)?;
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password).context("cannot read the password from stdin")?;
            let password = password.trim_end_matches(['\r', '\n']).to_string();
            let store = sheepdog_gateway::store::Store::connect(&settings.database).await?;
            store.migrate().await?;
            let user =
                sheepdog_gateway::users::create_user(&store, &email, &role, tenant.as_deref(), &password).await?;
            eprintln!("created {} user {} ({})", user.role, user.email, user.id);
            Ok(())
        }
        Command::AdminToken { command: AdminTokenCommand::Rotate(config) } => {
            let settings = load(&config)?;
            rotate_admin_token(&settings).await
        }
    }
}

/// `sheepdog admin-token rotate`: the new token on stdout, nothing else there.
#[allow(clippy::print_stdout)]
async fn rotate_admin_token(settings: &Settings) -> anyhow::Result<()> {
    if settings.admin_token.is_some() {
        anyhow::bail!(
            "the admin token is managed by the environment variable {} (gateway.admin_token_env): change it there \
             and restart the gateways; the stored token is not used while it is set",
            settings.gateway.admin_token_env
        );
    }
    let store = sheepdog_gateway::store::Store::connect(&settings.database).await?;
    store.migrate().await?;
    let token = sheepdog_gateway::admin_tokens::rotate_stored(&store, "cli").await.map_err(|e| anyhow::anyhow!("{e}"));
    store.close().await;
    let token = token?;
    println!("{}", token.expose());
    eprintln!(
        "new admin token issued (fingerprint {}); the previous stored token stops working on every gateway within 1 s",
        sheepdog_gateway::admin_tokens::fingerprint(token.expose())
    );
    Ok(())
}

/// Prints the one-time bootstrap secrets (first admin token and console user).
#[allow(clippy::print_stdout)]
fn print_bootstrap(gateway: &sheepdog_gateway::Gateway) {
    if let Some(b) = gateway.bootstrap() {
        println!("================ Sheepdog first start ================");
        if let Some(token) = &b.admin_token {
            println!("Admin API token (shown once): {}", token.expose());
        }
        if let Some((email, password)) = &b.admin_user {
            println!("Console admin: {email}  password (shown once): {}", password.expose());
        }
        println!("=======================================================");
    }
}

/// The first Ctrl-C or SIGTERM starts a graceful stop (requests in flight
/// get `shutdown_grace_secs`); a second one skips the grace. Accounting
/// drains either way.
fn shutdown_signal() -> ShutdownSignal {
    let signal = ShutdownSignal::new();
    let s = signal.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        loop {
            let ctrl_c = async {
                if tokio::signal::ctrl_c().await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            #[cfg(unix)]
            let sigterm = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            #[cfg(not(unix))]
            let sigterm = std::future::pending::<()>();
            tokio::select! {
                () = ctrl_c => {},
                () = sigterm => {},
            }
            if s.is_requested() {
                // Later signals change nothing: the accounting drain is never skipped.
                tracing::warn!("another shutdown request: skipping the grace (accounting still drains)");
                s.request_immediate();
            } else {
                tracing::info!(
                    "shutdown requested: finishing the requests in flight (a second signal skips the grace)"
                );
                s.request();
            }
        }
    });
    signal
}
