//! Migration analysis of an uploaded log (SPEC §7), for the console's upload
//! page: `POST /admin/v1/analyses` takes the raw log file as the body (JSON
//! lines, LiteLLM or Sheepdog exports, CSV; gzip or not, detected from the
//! content), streams it to an unnamed temporary file (never into memory,
//! at most `gateway.max_analysis_upload_bytes`), runs `sheepdog_analyze` on a
//! blocking thread with this gateway's price table and upstream capacity,
//! and answers `{"report": <report.json>, "html": "<report.html>"}`.

use std::io::{Seek, SeekFrom};
use std::sync::OnceLock;

use axum::body::{Body, BodyDataStream};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde::Serialize;
use sheepdog_analyze::{
    analyze, parse_field_map, parse_tenant_fields, AnalyzeError, Format, Input, ModelMap, Options, Price, PriceTable,
    Report, TimestampAt,
};
use sheepdog_types::{AnalysisResponse, ErrorBody, ErrorDetail};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use utoipa::ToSchema;

use crate::audit::audit;
use crate::error::AdminError;
use sheepdog_core::config::{ModelSettings, ProviderSettings, Settings};
use sheepdog_core::state::AppState;

use crate::query::AdminQuery;

/// Analyses running at once at most (each holds its upload on disk and one core).
const CONCURRENT_ANALYSES: usize = 2;

fn slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| Semaphore::new(CONCURRENT_ANALYSES))
}

/// Query of `POST /admin/v1/analyses`; an unknown name is a 400.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AnalysisParams {
    /// `jsonl`, `litellm-json`, `litellm-csv`, `sheepdog-csv`, `sheepdog-jsonl` or `csv`; default: detected from the content.
    pub format: Option<String>,
    /// Where the tenant identifier is, as a dotted path (`metadata.tenant_id`, `user`, `headers.x-tenant-id`); several, comma-separated, first present wins.
    pub tenant_field: Option<String>,
    /// Model mapping for the projected cost: `gpt-4.1=deepseek-v3.2[,FROM=TO...]`.
    pub map: Option<String>,
    /// CSV columns (or JSON paths) to fields: `ts=start,org=tenant,took=duration_ms`.
    pub csv_map: Option<String>,
    /// Whether logged timestamps are the `start` (default) or the `end` of requests.
    pub timestamp_at: Option<String>,
    /// Upstream capacity (concurrent requests) for the dedicated-tier test; default: the providers' `max_concurrency`, else the observed peak.
    pub upstream_concurrency: Option<u64>,
    /// Margin added to the observed peaks for the recommended limits, percent (default 25).
    pub margin: Option<u32>,
}

/// The raw log file (any supported format, gzip or not).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct LogFile(Vec<u8>);

/// This gateway's price table (its configured models), for the analyzer.
pub fn price_table(models: &[ModelSettings]) -> PriceTable {
    let mut t = PriceTable::new("this gateway's price table (its configured models)");
    for m in models {
        t.insert(
            &m.name,
            Price {
                input: m.input_nanos_per_token,
                output: m.output_nanos_per_token,
                cached_input: m.cached_input_nanos_per_token,
            },
        );
    }
    t
}

/// Upstream capacity: the sum of the providers' `max_concurrency`, when every provider declares one.
pub fn upstream_capacity(providers: &[ProviderSettings]) -> Option<u64> {
    if providers.is_empty() {
        return None;
    }
    providers.iter().map(|p| p.max_concurrency.map(u64::from)).sum()
}

/// Analysis options with this configuration's prices and capacity.
pub fn base_options(settings: &Settings) -> Options {
    let mut o = Options { prices: price_table(&settings.models), ..Options::default() };
    if let Some(c) = upstream_capacity(&settings.providers) {
        o.upstream_concurrency = Some(c);
        o.upstream_concurrency_source = Some("the providers' max_concurrency".into());
    }
    o
}

fn options(settings: &Settings, q: &AnalysisParams) -> Result<Options, AdminError> {
    let bad = |name: &str, e: String| AdminError::BadRequest(format!("`{name}`: {e}."));
    let mut o = base_options(settings);
    // The gateway serves requests too: one parser thread per analysis.
    o.threads = 1;
    if let Some(f) = q.format.as_deref().filter(|v| !v.is_empty()) {
        o.format = Some(f.parse::<Format>().map_err(|e| bad("format", e))?);
    }
    if let Some(t) = &q.tenant_field {
        o.tenant_fields = parse_tenant_fields(t);
    }
    if let Some(m) = &q.map {
        let mut map = ModelMap::default();
        map.parse_into(m).map_err(|e| bad("map", e))?;
        o.model_map = map;
    }
    if let Some(m) = &q.csv_map {
        o.field_map = parse_field_map(m).map_err(|e| bad("csv_map", e))?;
    }
    if let Some(t) = &q.timestamp_at {
        o.timestamp_at = match t.as_str() {
            "start" => TimestampAt::Start,
            "end" => TimestampAt::End,
            other => return Err(bad("timestamp_at", format!("{other:?} is not start or end"))),
        };
    }
    if let Some(n) = q.upstream_concurrency {
        if n == 0 {
            return Err(bad("upstream_concurrency", "0 is not a positive integer".into()));
        }
        o.upstream_concurrency = Some(n);
        o.upstream_concurrency_source = Some("upstream_concurrency".into());
    }
    if let Some(m) = q.margin {
        if m > 1000 {
            return Err(bad("margin", format!("{m} is not a percentage from 0 to 1000")));
        }
        o.margin_percent = m;
    }
    sheepdog_analyze::validate(&o).map_err(|e| AdminError::BadRequest(format!("{e}.")))?;
    Ok(o)
}

fn too_large(limit: u64) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            message: format!(
                "The upload is larger than {limit} bytes, the most an analysis accepts (gateway.max_analysis_upload_bytes); compress it with gzip or run `sheepdog analyze` on the file."
            ),
            kind: "invalid_request_error".into(),
            code: "request_too_large".into(),
            param: None,
        },
    };
    (StatusCode::PAYLOAD_TOO_LARGE, Json(body)).into_response()
}

enum Spool {
    File(std::fs::File, u64),
    TooLarge,
}

/// Streams the body to an unnamed temporary file (removed when closed).
async fn spool(mut stream: BodyDataStream, limit: u64) -> Result<Spool, AdminError> {
    let internal =
        |e: std::io::Error| AdminError::Internal(anyhow::Error::new(e).context("spooling an analysis upload"));
    let std_file = tokio::task::spawn_blocking(tempfile::tempfile)
        .await
        .map_err(|e| AdminError::Internal(anyhow::Error::new(e)))?
        .map_err(internal)?;
    let mut file = tokio::fs::File::from_std(std_file);
    let mut total: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| AdminError::BadRequest(format!("The upload could not be read: {e}.")))?;
        total += chunk.len() as u64;
        if total > limit {
            sheepdog_core::request::discard_rest(&mut stream).await;
            return Ok(Spool::TooLarge);
        }
        file.write_all(&chunk).await.map_err(internal)?;
    }
    file.flush().await.map_err(internal)?;
    let mut f = file.into_std().await;
    f.seek(SeekFrom::Start(0)).map_err(internal)?;
    Ok(Spool::File(f, total))
}

/// Why nothing in the upload could be analysed, for the 400 message.
fn nothing_usable(r: &Report) -> String {
    let input = r.inputs.first();
    let format = input.map(|i| i.format.as_str()).unwrap_or("unknown");
    let mut msg = if format == "empty" {
        "The upload has no records (it is empty or blank).".to_string()
    } else {
        format!("No usable request record in the upload (read as {format}")
            + &match input {
                Some(i) => format!(", {} lines, {} malformed).", i.lines, i.malformed),
                None => ").".to_string(),
            }
    };
    if let Some(e) = input.and_then(|i| i.error.as_ref()) {
        msg.push_str(&format!(" {e}."));
    }
    for m in r.quality.malformed_examples.iter().take(3) {
        let at = m.line.map(|l| format!("line {l}")).or(m.record.map(|n| format!("record {n}"))).unwrap_or_default();
        msg.push_str(&format!(" {at}: {}.", m.reason));
    }
    msg.push_str(" Supported: JSON lines of request/response records, LiteLLM spend logs (JSON or CSV), Sheepdog usage exports, CSV with `csv_map`; gzip or not.");
    msg
}

#[derive(Serialize)]
struct AuditSummary<'a> {
    bytes: u64,
    format: &'a str,
    gzip: bool,
    records: u64,
    malformed: u64,
    tenants: usize,
    peak_concurrency: u64,
    monthly_cost_usd: &'a str,
}

#[utoipa::path(post, path = "/admin/v1/analyses", tag = "analyses",
    description = "Migration analysis of an uploaded API log (SPEC §7): peak concurrency, rates, token mix, cost now and projected, dedicated-tier candidates. The body is the raw log file (JSON lines, LiteLLM spend logs as JSON or CSV, Sheepdog usage exports, CSV with `csv_map`), gzip or not; at most `gateway.max_analysis_upload_bytes` (default 256 MiB). It is streamed to a temporary file, never held in memory.",
    params(AnalysisParams),
    request_body(content = LogFile, content_type = "application/octet-stream", description = "The log file"),
    responses(
        (status = 200, body = AnalysisResponse),
        (status = 400, description = "Bad parameters, an empty upload or no usable record", body = sheepdog_types::ErrorBody),
        (status = 413, description = "Larger than gateway.max_analysis_upload_bytes", body = sheepdog_types::ErrorBody)),
    security(("admin_token" = [])))]
pub async fn create_analysis(
    State(state): State<AppState>,
    headers: HeaderMap,
    AdminQuery(q): AdminQuery<AnalysisParams>,
    body: Body,
) -> Result<Response, AdminError> {
    let opts = options(state.settings(), &q)?;
    let limit = state.settings().gateway.max_analysis_upload_bytes;
    let mut stream = body.into_data_stream();
    if sheepdog_core::request::refuse_declared_oversize(&headers, &mut stream, limit).await {
        return Ok(too_large(limit));
    }
    let _permit = slots().acquire().await.map_err(|e| AdminError::Internal(anyhow::Error::new(e)))?;
    let (file, bytes) = match spool(stream, limit).await? {
        Spool::File(f, n) => (f, n),
        Spool::TooLarge => return Ok(too_large(limit)),
    };
    if bytes == 0 {
        return Err(AdminError::BadRequest(
            "The upload is empty: send the log file as the request body (JSON lines, LiteLLM or Sheepdog export, CSV; gzip or not).".into(),
        ));
    }
    let result = tokio::task::spawn_blocking(move || {
        let input = Input { name: "upload".into(), reader: Box::new(file), size: Some(bytes) };
        let report = analyze(vec![input], &opts)?;
        let html = sheepdog_analyze::html::render(&report);
        Ok::<_, AnalyzeError>((report, html))
    })
    .await
    .map_err(|e| AdminError::Internal(anyhow::Error::new(e).context("the analysis task failed")))?;
    let (report, html) = match result {
        Ok(x) => x,
        Err(AnalyzeError::Options(m)) => return Err(AdminError::BadRequest(format!("{m}."))),
        Err(e) => return Err(AdminError::Internal(anyhow::Error::new(e).context("analysing an upload"))),
    };
    if report.quality.records == 0 {
        return Err(AdminError::BadRequest(nothing_usable(&report)));
    }
    let input = report.inputs.first();
    let summary = AuditSummary {
        bytes,
        format: input.map(|i| i.format.as_str()).unwrap_or(""),
        gzip: input.is_some_and(|i| i.gzip),
        records: report.quality.records,
        malformed: report.quality.malformed,
        tenants: report.tenants.len(),
        peak_concurrency: report.overall.peak_concurrency.value,
        monthly_cost_usd: &report.cost.monthly.usd,
    };
    audit(&state, "analysis.run", "upload", None::<&()>, Some(&summary)).await;
    Ok(Json(AnalysisResponse { report, html }).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_price_tables_agree() {
        let settings = Settings::from_config(sheepdog_core::config::Config::default(), "test", &|_| None)
            .unwrap_or_else(|e| {
                unreachable!("default config: {e}");
            });
        let mine = price_table(&settings.models);
        let theirs = PriceTable::default_table();
        let a: Vec<_> = mine.iter().map(|(k, p)| (k.to_string(), *p)).collect();
        let b: Vec<_> = theirs.iter().map(|(k, p)| (k.to_string(), *p)).collect();
        assert_eq!(a, b);
        assert_eq!(sheepdog_core::config::DEFAULT_PRICES, sheepdog_analyze::prices::DEFAULT_PRICES);
        assert_eq!(upstream_capacity(&settings.providers), None);
    }

    #[test]
    fn query_parameters_are_checked() {
        let settings = Settings::from_config(sheepdog_core::config::Config::default(), "test", &|_| None)
            .unwrap_or_else(|e| {
                unreachable!("default config: {e}");
            });
        let q = |query: &str| {
            let uri: axum::http::Uri =
                format!("/admin/v1/analyses?{query}").parse().unwrap_or_else(|e| unreachable!("{e}"));
            axum::extract::Query::<AnalysisParams>::try_from_uri(&uri).map(|axum::extract::Query(p)| p)
        };
        let parsed =
            q("format=litellm-csv&map=gpt-4.1%3Ddeepseek-v3.2&margin=10").unwrap_or_else(|e| unreachable!("{e}"));
        let o = options(&settings, &parsed).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(o.format, Some(Format::LitellmCsv));
        assert_eq!(o.margin_percent, 10);
        // Wrong types and unknown names are refused by the typed decoding.
        for bad in ["colour=blue", "margin=ten", "upstream_concurrency=-1"] {
            assert!(q(bad).is_err(), "{bad}");
        }
        for bad in [
            "format=xml",
            "map=gpt-4.1",
            "map=gpt-4.1%3Dunknown-model",
            "timestamp_at=middle",
            "upstream_concurrency=0",
            "margin=1001",
            "csv_map=a%3Db",
        ] {
            let bad = q(bad).unwrap_or_else(|e| unreachable!("{bad}: {e}"));
            assert!(matches!(options(&settings, &bad), Err(AdminError::BadRequest(_))), "{bad:?}");
        }
    }
}
