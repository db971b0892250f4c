//! Upstreams (`GET /admin/v1/upstreams`): every configured upstream's
//! circuit breaker and capacity in use.

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BreakerView {
    /// `closed`, `open` or `half_open`.
    pub state: String,
    pub consecutive_failures: u32,
    pub window_calls: u32,
    pub window_failures: u32,
    pub opened_total: u64,
    pub open_for_ms: Option<u64>,
    pub last_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UpstreamView {
    pub provider: String,
    pub kind: String,
    pub breaker: BreakerView,
    pub slots_in_use_shared: u32,
    pub slots_in_use_reserved: u32,
    pub queued: usize,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UpstreamList {
    pub data: Vec<UpstreamView>,
}
