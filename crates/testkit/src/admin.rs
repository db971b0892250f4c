//! The admin API as a test calls it: one client, one way to read an answer
//! (JSON, or the text when it is not JSON), one way to create a tenant and
//! its key.

use anyhow::{anyhow, bail};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The body as JSON, or as a JSON string holding the text when it is not JSON.
pub fn parse_json_or_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// The status and the body of an answer (see [`parse_json_or_text`]).
pub async fn json_or_text(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, parse_json_or_text(&text))
}

/// A minimal chat completion body.
pub fn chat_body(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

/// A shared-tier tenant named `name`, with default limits.
pub fn tenant_body(name: &str) -> Value {
    json!({"name": name, "tier": "shared"})
}

/// Admin API calls with a bearer token, against a gateway at `base`
/// (`http://host:port`, without a trailing slash).
#[derive(Clone, Debug)]
pub struct AdminClient {
    pub client: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl AdminClient {
    pub fn new(client: reqwest::Client, base: impl Into<String>, token: impl Into<String>) -> AdminClient {
        AdminClient { client, base: base.into(), token: token.into() }
    }

    /// With a client of its own.
    pub fn to(base: impl Into<String>, token: impl Into<String>) -> AdminClient {
        AdminClient::new(reqwest::Client::new(), base, token)
    }

    /// `method path` (from the root: `/admin/v1/...`) with an optional JSON
    /// body; the status and the answer (see [`json_or_text`]).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.try_call(method, path, body.as_ref()).await.unwrap_or_else(|e| panic!("{path}: {e:#}"))
    }

    async fn try_call(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<(StatusCode, Value)> {
        let mut rb = self.client.request(method, format!("{}{}", self.base, path)).bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = rb.send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        Ok((status, parse_json_or_text(&text)))
    }

    /// Creates a shared-tier tenant named `name` and one key for it;
    /// returns (tenant id, key).
    pub async fn tenant_with_key(&self, name: &str) -> (String, String) {
        self.tenant_and_key(tenant_body(name)).await
    }

    /// Creates the tenant `tenant` (a `POST /admin/v1/tenants` body) and one
    /// key for it; returns (tenant id, key). Both must answer 201.
    pub async fn tenant_and_key(&self, tenant: Value) -> (String, String) {
        self.try_tenant_and_key(&tenant).await.unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// [`AdminClient::tenant_and_key`], with an error instead of a panic.
    pub async fn try_tenant_and_key(&self, tenant: &Value) -> anyhow::Result<(String, String)> {
        let (status, t) = self.try_call(Method::POST, "/admin/v1/tenants", Some(tenant)).await?;
        if status != StatusCode::CREATED {
            bail!("creating the tenant: HTTP {status}: {t}");
        }
        let id = t["id"].as_str().ok_or_else(|| anyhow!("the tenant answer has no id: {t}"))?.to_string();
        let path = format!("/admin/v1/tenants/{id}/keys");
        let (status, k) = self.try_call(Method::POST, &path, Some(&json!({}))).await?;
        if status != StatusCode::CREATED {
            bail!("creating the key: HTTP {status}: {k}");
        }
        let key = k["key"].as_str().ok_or_else(|| anyhow!("the key answer has no key: {k}"))?.to_string();
        Ok((id, key))
    }
}
