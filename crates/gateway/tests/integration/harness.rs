//! Test harness: the real gateway on port 0, a fresh database per test
//! (a new SQLite file, or a new Postgres database), provider emulators.

use std::future::Future;

use reqwest::StatusCode;
use serde_json::{json, Value};
use sheepdog_emulators::{Emulator, Wire};
use sheepdog_gateway::config::{Config, ModelConfig, PriceValue, ProviderConfig, ProviderKind, Settings};
use sheepdog_gateway::{AppState, Gateway};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A fresh database that removes itself.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

pub fn postgres_admin_url() -> String {
    std::env::var("SHEEPDOG_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

impl TestDb {
    pub async fn new(kind: Db) -> TestDb {
        match kind {
            Db::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("sheepdog.db").display());
                TestDb { url, _dir: Some(dir), pg_name: None }
            }
            Db::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("sd_test_{}", uuid::Uuid::new_v4().simple());
                let store = sheepdog_gateway::store::Store::connect_url(&admin, 1).await.unwrap();
                sqlx::query(&format!("CREATE DATABASE {name}")).execute(store.pool()).await.unwrap();
                store.close().await;
                let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
                TestDb { url: format!("{base}/{name}"), _dir: None, pg_name: Some(name) }
            }
        }
    }

    pub async fn cleanup(self) {
        if let Some(name) = self.pg_name {
            if let Ok(store) = sheepdog_gateway::store::Store::connect_url(&postgres_admin_url(), 1).await {
                let _ =
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(store.pool()).await;
                store.close().await;
            }
        }
    }
}

/// Runs `f` once on SQLite and once on Postgres.
pub async fn on_both<F, Fut>(f: F)
where
    F: Fn(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    f(Db::Sqlite).await;
    f(Db::Postgres).await;
}

pub struct TestGateway {
    pub url: String,
    pub client: reqwest::Client,
    pub state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    db: Option<TestDb>,
}

/// A provider entry pointing at an emulator.
pub fn emulated_provider(emu: &Emulator, wire: Wire) -> ProviderConfig {
    let kind = match wire {
        Wire::OpenAi => ProviderKind::Openai,
        Wire::Anthropic => ProviderKind::Anthropic,
        Wire::Gemini => ProviderKind::Gemini,
    };
    let mut p = simulated_provider();
    p.kind = kind;
    p.base_url = Some(emu.base_url());
    p.api_key_env = Some("TEST_UPSTREAM_KEY".into());
    p
}

pub fn simulated_provider() -> ProviderConfig {
    ProviderConfig {
        kind: ProviderKind::Simulated,
        base_url: None,
        api_key_env: None,
        api_version: None,
        connect_timeout_ms: 2_000,
        first_byte_timeout_ms: 2_000,
        stream_idle_timeout_ms: 5_000,
        total_timeout_ms: 20_000,
        latency_ms: 0,
        ttft_ms: 0,
        chunk_interval_ms: 0,
        error_ppm: 0,
        max_concurrency: None,
        requests_per_minute: None,
        tokens_per_minute: None,
        reserved: Default::default(),
        queue_timeout_ms: 30_000,
        max_queue_per_tenant: 64,
        max_retries: 2,
        retry_base_ms: 10,
        retry_max_ms: 100,
        breaker_failure_threshold: 5,
        breaker_error_rate_percent: 50,
        breaker_min_samples: 10,
        breaker_window_ms: 30_000,
        breaker_open_ms: 10_000,
    }
}

pub fn model(provider: &str, upstream: &str, input: &str, output: &str) -> ModelConfig {
    ModelConfig {
        provider: provider.into(),
        upstream_model: Some(upstream.into()),
        input_per_mtok: Some(PriceValue::Text(input.into())),
        output_per_mtok: Some(PriceValue::Text(output.into())),
        cached_input_per_mtok: None,
        fallbacks: vec![],
        max_output_tokens: None,
    }
}

impl TestGateway {
    /// The default configuration (simulated provider, default price table).
    pub async fn start(db: Db) -> TestGateway {
        Self::start_with(db, |_| {}).await
    }

    pub async fn start_with(db: Db, customize: impl FnOnce(&mut Config)) -> TestGateway {
        let db = TestDb::new(db).await;
        let mut config = Config::default();
        config.database.url = db.url.clone();
        config.accounting.flush_interval_ms = 20;
        customize(&mut config);
        let settings = Settings::from_config(config, "test", &|name| match name {
            "SHEEPDOG_ADMIN_TOKEN" => Some(ADMIN_TOKEN.to_string()),
            "TEST_UPSTREAM_KEY" => Some("upstream-secret-key".to_string()),
            _ => None,
        })
        .unwrap();
        let gateway = Gateway::build(settings).await.unwrap();
        let state = gateway.state().clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(gateway.serve(listener, async move {
            let _ = rx.await;
        }));
        TestGateway {
            url,
            client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            state,
            stop: Some(tx),
            handle: Some(handle),
            db: Some(db),
        }
    }

    /// Graceful stop: in-flight requests finish, queued usage is written; then the database is removed.
    pub async fn stop(mut self) {
        self.shutdown().await;
        if let Some(db) = self.db.take() {
            db.cleanup().await;
        }
    }

    /// Graceful stop, keeping the database (returns its URL).
    pub async fn shutdown(&mut self) -> String {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
        self.db.as_ref().map(|d| d.url.clone()).unwrap_or_default()
    }

    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut rb = self.client.request(method, format!("{}{}", self.url, path)).bearer_auth(ADMIN_TOKEN);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Creates a tenant and one key for it; returns (tenant id, key).
    pub async fn tenant_with_key(&self, name: &str) -> (String, String) {
        let (s, t) =
            self.admin(reqwest::Method::POST, "/admin/v1/tenants", Some(json!({"name": name, "tier": "shared"}))).await;
        assert_eq!(s, StatusCode::CREATED, "{t}");
        let id = t["id"].as_str().unwrap().to_string();
        let (s, k) = self.admin(reqwest::Method::POST, &format!("/admin/v1/tenants/{id}/keys"), Some(json!({}))).await;
        assert_eq!(s, StatusCode::CREATED, "{k}");
        (id, k["key"].as_str().unwrap().to_string())
    }

    pub fn chat(&self, key: &str) -> reqwest::RequestBuilder {
        self.client.post(format!("{}/v1/chat/completions", self.url)).bearer_auth(key)
    }
}

/// A minimal chat body.
pub fn chat_body(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

/// Reads an SSE response into its `data:` payloads.
pub async fn sse_data(resp: reqwest::Response) -> Vec<String> {
    let text = resp.text().await.unwrap();
    text.split("\n\n")
        .filter_map(|ev| ev.lines().find_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:"))))
        .map(|s| s.trim().to_string())
        .collect()
}
