//! A listener's connection limits (`[gateway]` and `[console]`) and their bounds.

use super::file::{ConsoleConfig, GatewayConfig};

/// A listener's connection limits (`[gateway]` or `[console]`), validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    pub header_read_timeout: std::time::Duration,
    pub idle_timeout: std::time::Duration,
    pub max_connections: usize,
    pub shutdown_grace: std::time::Duration,
}

impl GatewayConfig {
    pub fn limits(&self) -> ListenerLimits {
        limits(self.header_read_timeout_ms, self.idle_timeout_ms, self.max_connections, self.shutdown_grace_secs)
    }
}

impl ConsoleConfig {
    pub fn limits(&self) -> ListenerLimits {
        limits(self.header_read_timeout_ms, self.idle_timeout_ms, self.max_connections, self.shutdown_grace_secs)
    }
}

fn limits(header_ms: u64, idle_ms: u64, max_connections: usize, grace_secs: u64) -> ListenerLimits {
    ListenerLimits {
        header_read_timeout: std::time::Duration::from_millis(header_ms),
        idle_timeout: std::time::Duration::from_millis(idle_ms),
        max_connections,
        shutdown_grace: std::time::Duration::from_secs(grace_secs),
    }
}

/// Connection limits that make no sense: 0 timeouts or connections, or
/// values beyond a day / a million (a typo, and timers that far out).
pub(super) fn check_limits(section: &str, l: &ListenerLimits) -> Result<(), (String, String)> {
    const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);
    let key = |k: &str| format!("{section}.{k}");
    if l.header_read_timeout.is_zero() || l.header_read_timeout > DAY {
        return Err((key("header_read_timeout_ms"), "must be between 1 and 86400000 (a day)".into()));
    }
    if l.idle_timeout.is_zero() || l.idle_timeout > DAY {
        return Err((key("idle_timeout_ms"), "must be between 1 and 86400000 (a day)".into()));
    }
    if l.max_connections == 0 || l.max_connections > 1_000_000 {
        return Err((key("max_connections"), "must be between 1 and 1000000".into()));
    }
    if l.shutdown_grace > DAY {
        return Err((key("shutdown_grace_secs"), "must be at most 86400 (a day)".into()));
    }
    Ok(())
}
