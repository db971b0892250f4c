//! Tenants: the list (search, tier and status filters), onboarding (ends by
//! showing the first key once), and the tenant page (limits, budget, pool,
//! keys, hourly charts, suspend and reactivate).
//!
//! [`server`]: the server functions (and their server-only helpers);
//! [`list`]: the list page; [`onboard`]: onboarding; [`detail`]: the
//! tenant page.

use serde::{Deserialize, Serialize};
use sheepdog_types::{KeyCreated, KeyInfo, PoolInfo, Tenant, TenantMetrics};

pub mod detail;
pub mod list;
pub mod onboard;
pub mod server;

pub use detail::{MetricsCharts, TenantDetailPage};
pub use list::TenantsPage;
pub use onboard::OnboardPage;
#[cfg(feature = "ssr")]
pub use server::ssr;
pub use server::*;

/// Everything the tenant page shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantDetail {
    pub tenant: Tenant,
    /// One page of its keys, newest first.
    pub keys: Vec<KeyInfo>,
    /// How many keys it has in all, and how many come before this page.
    pub keys_total: u64,
    pub keys_offset: u64,
    pub metrics: TenantMetrics,
    pub pool: Option<PoolInfo>,
    /// Spend this calendar month (UTC), decimal USD.
    pub month_spend_usd: String,
}

/// What onboarding created: the tenant and its first key (shown once).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Onboarded {
    pub tenant: Tenant,
    pub key: KeyCreated,
}

pub(crate) use crate::auth::can_operate;
