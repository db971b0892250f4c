//! Credit pools (`/admin/v1/pools`): pools, ledger entries, and the bodies
//! that create a pool and add credit.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// A credit pool. Amounts are decimal USD strings with nine places.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Pool {
    pub id: String,
    pub name: String,
    /// A hard pool refuses (429 `insufficient_quota`) what it cannot cover and never goes negative.
    pub hard: bool,
    /// Credits − debits in the ledger.
    #[cfg_attr(feature = "openapi", schema(example = "12.500000000"))]
    pub balance_usd: String,
    /// Sum of top-ups, grants and signup credits.
    pub credited_usd: String,
    /// Sum of usage debits.
    pub debited_usd: String,
    /// The balance minus what requests in flight have reserved (their worst-case cost).
    pub available_usd: String,
    pub created_at: String,
}

/// A credit pool as the admin API answers it (the older name of [`Pool`]).
pub type PoolInfo = Pool;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PoolList {
    pub data: Vec<Pool>,
}

/// One ledger entry: positive for credits, negative for usage debits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PoolLedgerEntry {
    pub id: String,
    pub pool_id: String,
    pub tenant_id: Option<String>,
    /// `topup`, `grant`, `signup` or `usage`.
    pub kind: String,
    #[cfg_attr(feature = "openapi", schema(example = "-0.000812000"))]
    pub amount_usd: String,
    pub amount_nanos: i64,
    /// The request a `usage` entry bills.
    pub request_id: Option<String>,
    pub note: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LedgerList {
    pub data: Vec<PoolLedgerEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreatePool {
    pub name: String,
    /// Default true.
    #[serde(default)]
    pub hard: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum CreditKind {
    Topup,
    Grant,
}

/// Credit to add: `amount_usd` > 0 as a number or decimal string (at most nine places).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreditInput {
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "25.000000000"))]
    pub amount_usd: Value,
    pub kind: CreditKind,
    #[serde(default)]
    pub note: Option<String>,
    /// The tenant (id or alias) this credit is attributed to.
    #[serde(default)]
    pub tenant_id: Option<String>,
}
