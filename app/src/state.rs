//! Server-side state the console's server functions reach through Leptos
//! context (provided by the `sheepdog` binary for every request).

use std::time::Duration;

use leptos::prelude::use_context;

use crate::ConsoleError;

/// What server functions need to reach the gateway.
#[derive(Clone, Debug)]
pub struct ConsoleState {
    gateway_url: String,
    http: reqwest::Client,
}

impl ConsoleState {
    /// `gateway_url` is the gateway's base URL (e.g. `http://127.0.0.1:8080`).
    pub fn new(gateway_url: &str) -> Result<ConsoleState, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(ConsoleState { gateway_url: gateway_url.trim_end_matches('/').to_string(), http })
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
        let s = ConsoleState::new("http://127.0.0.1:8080/").unwrap();
        assert_eq!(s.gateway_url(), "http://127.0.0.1:8080");
        assert_eq!(s.gateway_endpoint("/healthz"), "http://127.0.0.1:8080/healthz");
    }
}
