//! Structured logs through `tracing`; level from `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

use crate::config::LogConfig;

/// Installs the global subscriber (once; later calls are ignored).
pub fn init(cfg: &LogConfig) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,hyper=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if cfg.format == "json" { builder.json().try_init() } else { builder.try_init() };
}
