//! Migration analysis upload (SPEC §7, operators): a log file goes from the
//! browser through the console to the gateway's `POST /admin/v1/analyses`
//! as a stream (never held in memory, at most
//! `gateway.max_analysis_upload_bytes`), and the report comes back: a
//! summary, each tenant's recommendation, the report's own charts, and an
//! "Apply" button per tenant that turns a recommendation into the matching
//! tenant's tier and limits after a confirmation showing the change.
//!
//! The upload is a plain route of the console server (`POST
//! /analyses/upload`, [`upload::upload`]) rather than a server function, so the
//! body can be piped to the gateway chunk by chunk; it checks the session
//! and the role like the server functions do, and the CSRF guard in front
//! of the console checks its origin.
//!
//! The report is the admin API's ([`sheepdog_types::analysis::Report`]).
//! [`upload`]: the upload proxy (server only); [`server`]: the server
//! functions; [`page`]: the page and its form; [`report`]: the report on
//! the page.

use serde::{Deserialize, Serialize};
use sheepdog_types::analysis::{Report, TenantReport};
use sheepdog_types::{Limits, Tenant, TenantStatus, Tier};

pub mod page;
pub mod report;
pub mod server;
#[cfg(feature = "ssr")]
pub mod upload;

pub use page::AnalysesPage;
pub use server::*;

/// Where the page sends the log file.
pub const UPLOAD_PATH: &str = "/analyses/upload";

/// Query parameters the upload accepts (passed on to the gateway).
pub const PARAMS: [&str; 7] =
    ["format", "tenant_field", "map", "csv_map", "timestamp_at", "upstream_concurrency", "margin"];

// ---- tenant matching and the change a recommendation makes -------------------------

/// The console tenant a log's tenant identifier names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchedTenant {
    pub id: String,
    pub name: String,
    /// `id`, `alias` or `name`.
    pub matched_by: String,
    pub tier: Tier,
    pub status: TenantStatus,
    pub limits: Limits,
}

/// The tier and limits a recommendation sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedChange {
    pub tier: Tier,
    /// Why the tier differs from the recommendation's, if it does.
    pub tier_note: Option<String>,
    pub requests_per_minute: u64,
    pub tokens_per_minute: u64,
    pub max_concurrency: u64,
}

impl PlannedChange {
    /// Whether `t` already has exactly these settings.
    pub fn is_applied_to(&self, t: &MatchedTenant) -> bool {
        t.tier == self.tier
            && t.limits.requests_per_minute == self.requests_per_minute
            && t.limits.tokens_per_minute == self.tokens_per_minute
            && t.limits.max_concurrency == Some(self.max_concurrency)
    }
}

/// One tenant of the report with its match and planned change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantPlan {
    /// The identifier in the log.
    pub tenant: String,
    pub matched: Option<MatchedTenant>,
    /// Why no tenant matched (the Apply button is disabled with this text).
    pub unmatched: Option<String>,
    pub change: PlannedChange,
}

/// What the upload answers the page.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnalysisResult {
    pub report: Report,
    /// The self-contained `report.html` (shown in a sandboxed frame).
    pub html: String,
    /// One per `report.tenants`, in the same order.
    pub plans: Vec<TenantPlan>,
}

/// The console tenant `key` (a log's tenant identifier) names: its id, one of
/// its aliases, or its name (ignoring case) when exactly one tenant has it.
pub fn match_tenant(key: &str, tenants: &[Tenant]) -> Result<MatchedTenant, String> {
    let key = key.trim();
    if key.is_empty() || key == "(none)" {
        return Err("These records carry no tenant identifier.".into());
    }
    if key == "(other)" {
        return Err("Several tenants folded together (the report keeps the largest ones apart).".into());
    }
    let found = |t: &Tenant, by: &str| MatchedTenant {
        id: t.id.clone(),
        name: t.name.clone(),
        matched_by: by.into(),
        tier: t.tier,
        status: t.status,
        limits: t.limits.clone(),
    };
    if let Some(t) = tenants.iter().find(|t| t.id.eq_ignore_ascii_case(key)) {
        return Ok(found(t, "id"));
    }
    if let Some(t) = tenants.iter().find(|t| t.aliases.iter().any(|a| a == key)) {
        return Ok(found(t, "alias"));
    }
    let named: Vec<&Tenant> = tenants.iter().filter(|t| t.name.trim().eq_ignore_ascii_case(key)).collect();
    match named.as_slice() {
        [t] => Ok(found(t, "name")),
        [] => Err(format!(
            "No tenant has the id, alias or name {key:?}: create it, or add {key:?} as an alias of the right tenant."
        )),
        many => Err(format!(
            "{} tenants are named {key:?}: add {key:?} as an alias of the right one to tell them apart.",
            many.len()
        )),
    }
}

/// The settings a tenant's recommendation turns into: the recommended tier
/// (a `shared` recommendation keeps a `pooled` tenant pooled: it shares
/// upstream capacity the same way and draws on its credit pool) and the
/// recommended limits (each at least 1).
pub fn planned_change(t: &TenantReport, current: Option<Tier>) -> PlannedChange {
    let recommended = if t.recommendation.tier == "dedicated" { Tier::Dedicated } else { Tier::Shared };
    let (tier, tier_note) = match (recommended, current) {
        (Tier::Shared, Some(Tier::Pooled)) => {
            (Tier::Pooled, Some("stays pooled: pooled tenants share upstream capacity like shared ones".to_string()))
        }
        (r, _) => (r, None),
    };
    let l = &t.usage.recommended_limits;
    PlannedChange {
        tier,
        tier_note,
        requests_per_minute: l.requests_per_minute.max(1),
        tokens_per_minute: l.tokens_per_minute.max(1),
        max_concurrency: l.max_concurrency.max(1),
    }
}

/// Every tenant of `report` with its match among `tenants` and its change.
pub fn plans(report: &Report, tenants: &[Tenant]) -> Vec<TenantPlan> {
    report
        .tenants
        .iter()
        .map(|t| {
            let (matched, unmatched) = match match_tenant(&t.tenant, tenants) {
                Ok(m) => (Some(m), None),
                Err(why) => (None, Some(why)),
            };
            let change = planned_change(t, matched.as_ref().map(|m| m.tier));
            TenantPlan { tenant: t.tenant.clone(), matched, unmatched, change }
        })
        .collect()
}

/// `1536` → `1.5 KiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The message for a file over the limit.
pub fn too_large_message(size: Option<u64>, limit: u64) -> String {
    let what = match size {
        Some(s) => format!("The file is {}", bytes(s)),
        None => "The upload is larger than that".to_string(),
    };
    format!(
        "{what}; the most an analysis accepts is {} (gateway.max_analysis_upload_bytes). \
         Compress it with gzip (the analysis reads gzip), or run `sheepdog analyze FILE` on the server.",
        bytes(limit)
    )
}

/// Epoch milliseconds → `MM-DD hh:mm` (UTC), for chart labels.
pub fn utc_label(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 → civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    format!("{m:02}-{d:02} {:02}:{:02}", rem / 3600, rem % 3600 / 60)
}

/// What the page needs before an upload: the size limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSettings {
    pub max_upload_bytes: u64,
}

#[cfg(test)]
mod tests {
    use sheepdog_types::analysis::{Limits as RecommendedLimits, TierRecommendation, Usage};

    use super::page::upload_error;
    use super::*;

    fn tenant(id: &str, name: &str, aliases: &[&str], tier: Tier) -> Tenant {
        Tenant {
            id: id.into(),
            name: name.into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            tier,
            status: TenantStatus::Active,
            limits: Limits { requests_per_minute: 1000, tokens_per_minute: 1_000_000, max_concurrency: None },
            budget: Default::default(),
            allowed_models: None,
            created_at: String::new(),
            pool_id: None,
        }
    }

    fn report_tenant(key: &str, tier: &str, limits: (u64, u64, u64)) -> TenantReport {
        TenantReport {
            tenant: key.into(),
            usage: Usage {
                recommended_limits: RecommendedLimits {
                    requests_per_minute: limits.0,
                    tokens_per_minute: limits.1,
                    max_concurrency: limits.2,
                    margin_percent: 25,
                    above_default_limits: false,
                },
                ..Usage::default()
            },
            recommendation: TierRecommendation { tier: tier.into(), reasons: vec!["because".into()] },
            ..TenantReport::default()
        }
    }

    #[test]
    fn log_tenants_match_by_id_alias_or_unique_name() {
        let ts = vec![
            tenant("0b7c1a8e-1111-4aaa-8bbb-000000000001", "Acme Corp", &["acme"], Tier::Shared),
            tenant("0b7c1a8e-1111-4aaa-8bbb-000000000002", "Globex", &[], Tier::Pooled),
            tenant("0b7c1a8e-1111-4aaa-8bbb-000000000003", "Twin", &[], Tier::Shared),
            tenant("0b7c1a8e-1111-4aaa-8bbb-000000000004", "twin", &[], Tier::Shared),
        ];
        let m = match_tenant("0B7C1A8E-1111-4AAA-8BBB-000000000001", &ts).unwrap();
        assert_eq!((m.name.as_str(), m.matched_by.as_str()), ("Acme Corp", "id"));
        assert_eq!(match_tenant("acme", &ts).unwrap().matched_by, "alias");
        assert_eq!(match_tenant(" globex ", &ts).unwrap().matched_by, "name");
        assert!(match_tenant("twin", &ts).unwrap_err().contains("2 tenants are named"));
        assert!(match_tenant("initech", &ts).unwrap_err().contains("No tenant has the id, alias or name"));
        assert!(match_tenant("(none)", &ts).unwrap_err().contains("no tenant identifier"));
        assert!(match_tenant("(other)", &ts).is_err());
    }

    #[test]
    fn a_recommendation_becomes_tier_and_limits() {
        let ts = vec![
            tenant("0b7c1a8e-1111-4aaa-8bbb-000000000001", "Acme", &["acme"], Tier::Shared),
            tenant("0b7c1a8e-1111-4aaa-8bbb-000000000002", "Globex", &["globex"], Tier::Pooled),
        ];
        let report = Report {
            tenants: vec![
                report_tenant("acme", "dedicated", (750, 125_000, 8)),
                report_tenant("globex", "shared", (10, 0, 0)),
                report_tenant("nobody", "shared", (5, 5, 1)),
            ],
            ..Report::default()
        };
        let p = plans(&report, &ts);
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].change.tier, Tier::Dedicated);
        assert_eq!(
            (p[0].change.requests_per_minute, p[0].change.tokens_per_minute, p[0].change.max_concurrency),
            (750, 125_000, 8)
        );
        assert!(!p[0].change.is_applied_to(p[0].matched.as_ref().unwrap()));
        // A shared recommendation keeps a pooled tenant pooled; limits are at least 1.
        assert_eq!(p[1].change.tier, Tier::Pooled);
        assert!(p[1].change.tier_note.as_deref().unwrap().contains("pooled"));
        assert_eq!((p[1].change.tokens_per_minute, p[1].change.max_concurrency), (1, 1));
        assert!(p[2].matched.is_none() && p[2].unmatched.is_some());
        let mut m = p[0].matched.clone().unwrap();
        m.tier = Tier::Dedicated;
        m.limits = Limits { requests_per_minute: 750, tokens_per_minute: 125_000, max_concurrency: Some(8) };
        assert!(p[0].change.is_applied_to(&m));
    }

    /// The page reads the analyzer's own report type: a report without one
    /// of its fields is refused rather than shown with zeros.
    #[test]
    fn report_json_is_the_analyzer_report() {
        let mut r = Report { schema: "sheepdog.analysis.v1".into(), ..Report::default() };
        r.overall.peak_concurrency.value = 2;
        r.tenants.push(report_tenant("acme", "dedicated", (4, 5, 3)));
        r.tenants[0].usage.cost.monthly.nanos = 1_000_000_000;
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["tenants"][0]["recommendation"]["tier"], "dedicated");
        assert_eq!(json["tenants"][0]["requests_per_minute"]["peak"], 0, "usage is flattened into the tenant");
        assert_eq!(serde_json::from_value::<Report>(json.clone()).unwrap(), r);
        let mut partial = json;
        partial["overall"].as_object_mut().unwrap().remove("peak_concurrency");
        assert!(serde_json::from_value::<Report>(partial).is_err());
    }

    #[test]
    fn sizes_labels_and_messages() {
        assert_eq!(bytes(512), "512 bytes");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(268_435_456), "256.0 MiB");
        let m = too_large_message(Some(3 * 1024 * 1024), 1024 * 1024);
        assert!(
            m.contains("3.0 MiB") && m.contains("1.0 MiB") && m.contains("gateway.max_analysis_upload_bytes"),
            "{m}"
        );
        assert_eq!(utc_label(0), "01-01 00:00");
        assert_eq!(utc_label(1_772_323_200_000 + 3_723_000), "03-01 01:02"); // 2026-03-01T01:02:03Z
        assert_eq!(utc_label(951_782_400_000), "02-29 00:00"); // 2000-02-29
        assert_eq!(upload_error(413, r#"{"error":"too_large","message":"too big"}"#), "too big");
        assert_eq!(upload_error(500, "oops"), "The upload failed (HTTP 500).");
    }
}
