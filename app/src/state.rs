//! Server-side state the console's server functions reach through Leptos
//! context (provided by the `sheepdog` binary for every request).

use std::sync::Arc;
use std::time::Duration;

use leptos::prelude::use_context;

use crate::api::AdminApi;
use crate::error::ConsoleError;

/// Session rules (console.session_* settings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session unused for this long ends.
    pub idle_timeout: Duration,
    /// A session ends this long after sign-in, used or not.
    pub absolute_timeout: Duration,
    /// How often a session re-reads its user (disabled users and role changes
    /// take effect within this time).
    pub recheck_every: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(12 * 3600),
            recheck_every: Duration::from_secs(30),
        }
    }
}

/// What server functions need: the admin API client and the session rules.
#[derive(Clone, Debug)]
pub struct ConsoleState {
    gateway_url: String,
    http: reqwest::Client,
    api: AdminApi,
    policy: Arc<SessionPolicy>,
    max_upload_bytes: u64,
    trusted_proxies: Arc<[sheepdog_types::net::Cidr]>,
    sign_in_slots: Arc<tokio::sync::Semaphore>,
}

/// Sign-in checks one console sends to the gateway at once: 4 per core
/// (the gateway hashes one per core at a time; several consoles may share it).
pub fn sign_in_slots() -> usize {
    4 * std::thread::available_parallelism().map(usize::from).unwrap_or(1)
}

/// The largest analysis upload by default (gateway.max_analysis_upload_bytes).
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 256 * 1024 * 1024;

impl ConsoleState {
    /// `gateway_url` is the gateway's base URL (e.g. `http://127.0.0.1:8080`);
    /// `admin_token` the bearer token of its admin API.
    pub fn new(gateway_url: &str, admin_token: &str, policy: SessionPolicy) -> Result<ConsoleState, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let gateway_url = gateway_url.trim_end_matches('/').to_string();
        let api = AdminApi::new(http.clone(), &gateway_url, admin_token);
        Ok(ConsoleState {
            gateway_url,
            http,
            api,
            policy: Arc::new(policy),
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            trusted_proxies: Arc::new([]),
            sign_in_slots: Arc::new(tokio::sync::Semaphore::new(sign_in_slots())),
        })
    }

    /// The largest log file the analysis upload page forwards to the gateway
    /// (the gateway's `gateway.max_analysis_upload_bytes`).
    pub fn with_max_upload_bytes(mut self, bytes: u64) -> ConsoleState {
        self.max_upload_bytes = bytes;
        self
    }

    /// Reverse proxies whose `X-Forwarded-For` is believed (console.trusted_proxies).
    pub fn with_trusted_proxies(mut self, proxies: Vec<sheepdog_types::net::Cidr>) -> ConsoleState {
        self.trusted_proxies = proxies.into();
        self
    }

    pub fn trusted_proxies(&self) -> &[sheepdog_types::net::Cidr] {
        &self.trusted_proxies
    }

    /// A slot for one sign-in check at the gateway, or `None` when
    /// [`sign_in_slots`] are already waiting on it: a flood of sign-ins is
    /// answered "try again" by the console at once instead of piling up
    /// requests on the gateway's event loops (the gateway bounds its own
    /// password hashes too).
    pub fn try_sign_in_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.sign_in_slots.clone().try_acquire_owned().ok()
    }

    pub fn max_upload_bytes(&self) -> u64 {
        self.max_upload_bytes
    }

    /// The gateway's base URL, without a trailing slash.
    pub fn gateway_url(&self) -> &str {
        &self.gateway_url
    }

    /// `{gateway_url}{path}`; `path` starts with `/`.
    pub fn gateway_endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.gateway_url)
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The typed admin API client.
    pub fn api(&self) -> &AdminApi {
        &self.api
    }

    pub fn policy(&self) -> &SessionPolicy {
        &self.policy
    }

    /// The state provided for this request; a missing context is a wiring bug.
    pub fn current() -> Result<ConsoleState, ConsoleError> {
        use_context::<ConsoleState>().ok_or_else(|| {
            tracing::error!("ConsoleState is not provided in the Leptos context");
            ConsoleError::Internal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_slash_is_trimmed() {
        let s = ConsoleState::new("http://127.0.0.1:8080/", "t", SessionPolicy::default()).unwrap();
        assert_eq!(s.gateway_url(), "http://127.0.0.1:8080");
        assert_eq!(s.gateway_endpoint("/healthz"), "http://127.0.0.1:8080/healthz");
    }
}
