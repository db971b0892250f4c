//! What to analyse and how: the options of one analysis.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crate::agg::Caps;
use crate::fields::{Field, TimestampAt};
use crate::prices::{ModelMap, PriceTable};
use crate::source::Format;
use crate::tenants::TenantsFile;

/// Events kept in memory before a sorted run is spilled to disk (16 bytes
/// each: 2,000,000 = 32 MB), over all worker threads.
pub const DEFAULT_MAX_EVENTS_IN_MEMORY: usize = 2_000_000;
/// Recommended limits are the observed peaks plus this margin.
pub const DEFAULT_MARGIN_PERCENT: u32 = 25;

/// What to analyse and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// `None`: detect per input.
    pub format: Option<Format>,
    /// Paths where the tenant is found, first present wins; empty: the defaults.
    pub tenant_fields: Vec<String>,
    /// Explicit mappings (`--csv-map`): CSV column or JSON path → field.
    pub field_map: Vec<(String, Field)>,
    pub model_map: ModelMap,
    /// The current price table.
    pub prices: PriceTable,
    /// Overlaid on `prices` for the projection (`--prices`).
    pub projected_prices: Option<PriceTable>,
    pub tenants: TenantsFile,
    /// Upstream capacity (concurrent requests) for the fair-share test.
    pub upstream_concurrency: Option<u64>,
    /// Where `upstream_concurrency` came from (for the report).
    pub upstream_concurrency_source: Option<String>,
    pub margin_percent: u32,
    pub timestamp_at: TimestampAt,
    /// Parser threads for JSON lines.
    pub threads: usize,
    pub max_events_in_memory: usize,
    /// Where sorted runs are spilled (default: the system temp directory).
    pub spill_dir: Option<PathBuf>,
    pub caps: Caps,
    /// Tenants drawn as their own line in the time series.
    pub series_tenants: usize,
    /// Incremented with every byte read from the inputs (as given, compressed or not).
    pub progress: Option<Arc<AtomicU64>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            format: None,
            tenant_fields: Vec::new(),
            field_map: Vec::new(),
            model_map: ModelMap::default(),
            prices: PriceTable::default_table(),
            projected_prices: None,
            tenants: TenantsFile::default(),
            upstream_concurrency: None,
            upstream_concurrency_source: None,
            margin_percent: DEFAULT_MARGIN_PERCENT,
            timestamp_at: TimestampAt::Start,
            threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(8),
            max_events_in_memory: DEFAULT_MAX_EVENTS_IN_MEMORY,
            spill_dir: None,
            caps: Caps::default(),
            series_tenants: 5,
            progress: None,
        }
    }
}
