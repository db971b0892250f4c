//! The terminal front end of `sheepdog analyze`: options from flags, a
//! progress bar with throughput (stderr, hidden when stderr is not a
//! terminal), `report.json` and `report.html` in `--out DIR`, and the
//! summary on stdout.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::{
    analyze, parse_field_map, parse_tenant_fields, AnalyzeError, Format, Input, ModelMap, Options, PriceTable, Report,
    TenantsFile, TimestampAt,
};

/// The flags of `sheepdog analyze` (the binary's clap definition maps onto this).
#[derive(Debug, Clone, Default)]
pub struct CliArgs {
    pub files: Vec<PathBuf>,
    pub out: PathBuf,
    pub format: Option<String>,
    pub tenant_field: Option<String>,
    pub csv_map: Vec<String>,
    pub map: Vec<String>,
    pub prices: Option<PathBuf>,
    pub tenants: Option<PathBuf>,
    pub upstream_concurrency: Option<u64>,
    /// The price table of Sheepdog's configuration (`--config`), replacing the default table.
    pub config_prices: Option<PriceTable>,
    /// Upstream capacity from Sheepdog's configuration (sum of providers' `max_concurrency`).
    pub config_upstream_concurrency: Option<u64>,
    pub margin_percent: Option<u32>,
    pub timestamp_at: Option<String>,
    pub threads: Option<usize>,
    pub max_events_in_memory: Option<usize>,
    /// No progress bar even on a terminal.
    pub no_progress: bool,
    /// No summary on stdout.
    pub quiet: bool,
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    pub report: Report,
    pub json_path: PathBuf,
    pub html_path: PathBuf,
}

fn read_text(path: &Path, what: &str) -> Result<String, AnalyzeError> {
    std::fs::read_to_string(path)
        .map_err(|e| AnalyzeError::Options(format!("cannot read the {what} {}: {e}", path.display())))
}

/// Parses `start` or `end` (`--timestamp-at`).
pub fn parse_timestamp_at(text: &str) -> Result<TimestampAt, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "start" => Ok(TimestampAt::Start),
        "end" => Ok(TimestampAt::End),
        other => Err(format!("--timestamp-at {other:?}: use start or end")),
    }
}

/// Builds the analysis options from the flags (reading the prices and tenants files).
pub fn options(args: &CliArgs) -> Result<Options, AnalyzeError> {
    let mut o = Options::default();
    if let Some(f) = &args.format {
        o.format = Some(f.parse::<Format>().map_err(AnalyzeError::Options)?);
    }
    if let Some(t) = &args.tenant_field {
        o.tenant_fields = parse_tenant_fields(t);
    }
    for m in &args.csv_map {
        o.field_map.extend(parse_field_map(m).map_err(AnalyzeError::Options)?);
    }
    let mut map = ModelMap::default();
    for m in &args.map {
        map.parse_into(m).map_err(AnalyzeError::Options)?;
    }
    o.model_map = map;
    if let Some(p) = &args.config_prices {
        o.prices = p.clone();
    }
    if let Some(path) = &args.prices {
        let text = read_text(path, "price file")?;
        o.projected_prices =
            Some(PriceTable::from_toml(&text, &path.display().to_string()).map_err(AnalyzeError::Options)?);
    }
    if let Some(path) = &args.tenants {
        let text = read_text(path, "tenants file")?;
        o.tenants = TenantsFile::parse(&text, &path.display().to_string()).map_err(AnalyzeError::Options)?;
    }
    match (args.upstream_concurrency, args.config_upstream_concurrency) {
        (Some(n), _) => {
            o.upstream_concurrency = Some(n);
            o.upstream_concurrency_source = Some("--upstream-concurrency".into());
        }
        (None, Some(n)) => {
            o.upstream_concurrency = Some(n);
            o.upstream_concurrency_source = Some("the providers' max_concurrency in --config".into());
        }
        (None, None) => {}
    }
    if let Some(m) = args.margin_percent {
        o.margin_percent = m;
    }
    if let Some(t) = &args.timestamp_at {
        o.timestamp_at = parse_timestamp_at(t).map_err(AnalyzeError::Options)?;
    }
    if let Some(t) = args.threads {
        o.threads = t.max(1);
    }
    if let Some(m) = args.max_events_in_memory {
        o.max_events_in_memory = m;
    }
    crate::validate(&o)?;
    Ok(o)
}

/// Runs the analysis: reads the files, writes `report.json` and `report.html`
/// to `out`, prints the summary.
pub fn run(args: CliArgs) -> Result<Outcome, AnalyzeError> {
    let mut opts = options(&args)?;
    let mut inputs = Vec::new();
    let mut total = 0u64;
    for f in &args.files {
        let input = Input::open(f).map_err(|e| AnalyzeError::Options(format!("cannot open {}: {e}", f.display())))?;
        total += input.size.unwrap_or(0);
        inputs.push(input);
    }
    let counter = Arc::new(AtomicU64::new(0));
    opts.progress = Some(counter.clone());
    let bar = if args.no_progress {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
    };
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] [{wide_bar}] {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}, eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let done = AtomicBool::new(false);
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                bar.set_position(counter.load(Ordering::Relaxed));
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let r = analyze(inputs, &opts);
        done.store(true, Ordering::Relaxed);
        r
    });
    bar.finish_and_clear();
    let report = result?;
    let io_err = |what: &str, e: std::io::Error| AnalyzeError::Io { name: what.to_string(), source: e };
    std::fs::create_dir_all(&args.out).map_err(|e| io_err(&args.out.display().to_string(), e))?;
    let json_path = args.out.join("report.json");
    let html_path = args.out.join("report.html");
    let json =
        serde_json::to_vec_pretty(&report).map_err(|e| io_err("report.json", std::io::Error::other(e.to_string())))?;
    std::fs::write(&json_path, json).map_err(|e| io_err(&json_path.display().to_string(), e))?;
    std::fs::write(&html_path, crate::html::render(&report))
        .map_err(|e| io_err(&html_path.display().to_string(), e))?;
    if !args.quiet {
        print_summary(&report, &json_path, &html_path);
    }
    Ok(Outcome { report, json_path, html_path })
}

#[allow(clippy::print_stdout)]
fn print_summary(report: &Report, json: &Path, html: &Path) {
    print!("{}", crate::summary::text(report));
    println!("Wrote {} and {}", json.display(), html.display());
}
