//! The real gateway in-process on port 0 (or a listener of the test's
//! choosing), over a fresh database or a given one, stopped gracefully.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sheepdog_gateway::config::{Config, Secret, Settings};
use sheepdog_gateway::listener::ShutdownSignal;
use sheepdog_gateway::store::{Store, UsageRecord};
use sheepdog_gateway::{AppState, Gateway};

use crate::admin::AdminClient;
use crate::config::{UPSTREAM_KEY, UPSTREAM_KEY_ENV};
use crate::db::{Db, TestDb};

/// The admin token of a [`TestGateway`] (its `SHEEPDOG_ADMIN_TOKEN`).
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

type Customize<'a> = Box<dyn FnOnce(&mut Config) + 'a>;

/// How a [`TestGateway`] starts; see [`TestGateway::builder`].
pub struct GatewayBuilder<'a> {
    db: Db,
    database_url: Option<String>,
    customize: Vec<Customize<'a>>,
    env: Vec<(String, String)>,
    process_admin_token: Option<String>,
    listener: Option<tokio::net::TcpListener>,
    client_timeout: Option<Duration>,
}

impl<'a> GatewayBuilder<'a> {
    /// Runs on this database (kept: the test owns it) instead of a fresh one.
    pub fn database_url(mut self, url: impl Into<String>) -> Self {
        self.database_url = Some(url.into());
        self
    }

    /// Changes the configuration (after the kit's: a 20 ms accounting flush).
    pub fn config(mut self, customize: impl FnOnce(&mut Config) + 'a) -> Self {
        self.customize.push(Box::new(customize));
        self
    }

    /// An environment variable as the settings see it.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Admin calls use `token` as the process's own admin token (as `sheepdog
    /// serve` gives its console) instead of `SHEEPDOG_ADMIN_TOKEN`.
    pub fn process_admin_token(mut self, token: &str) -> Self {
        self.process_admin_token = Some(token.into());
        self
    }

    /// Serves on `listener` instead of a new one on port 0.
    pub fn listener(mut self, listener: tokio::net::TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Serves on 127.0.0.1:`port`.
    pub async fn port(self, port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        self.listener(listener)
    }

    /// A timeout for every request of [`TestGateway::client`] (none by default).
    pub fn client_timeout(mut self, timeout: Duration) -> Self {
        self.client_timeout = Some(timeout);
        self
    }

    pub async fn start(self) -> TestGateway {
        let (db, db_url) = match self.database_url {
            Some(url) => (None, url),
            None => {
                let db = TestDb::new(self.db).await;
                let url = db.url.clone();
                (Some(db), url)
            }
        };
        let mut config = Config::default();
        config.database.url = db_url.clone();
        config.accounting.flush_interval_ms = 20;
        // One journal directory for every test gateway: segments are tagged
        // with their database, so tests never replay each other's records.
        config.accounting.journal_dir = test_journal_dir();
        for customize in self.customize {
            customize(&mut config);
        }
        let env_admin = self.process_admin_token.is_none();
        let env = self.env;
        let mut settings = Settings::from_config(config, "test", &|name| match name {
            "SHEEPDOG_ADMIN_TOKEN" if env_admin => Some(ADMIN_TOKEN.to_string()),
            UPSTREAM_KEY_ENV => Some(UPSTREAM_KEY.to_string()),
            other => env.iter().find(|(k, _)| k == other).map(|(_, v)| v.clone()),
        })
        .unwrap();
        let token = self.process_admin_token.unwrap_or_else(|| ADMIN_TOKEN.to_string());
        if !env_admin {
            settings.process_admin_token = Some(Secret::new(token.clone()));
        }
        let gateway = Gateway::build(settings.clone()).await.unwrap();
        let state = gateway.state().clone();
        let metrics_addr = gateway.metrics_addr();
        let admin_password =
            gateway.bootstrap().and_then(|b| b.admin_user.as_ref()).map(|(_, password)| password.expose().to_string());
        let listener = match self.listener {
            Some(l) => l,
            None => tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        };
        let addr = listener.local_addr().unwrap();
        let signal = ShutdownSignal::new();
        let handle = tokio::spawn(gateway.serve_until(listener, signal.clone()));
        let mut client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        if let Some(t) = self.client_timeout {
            client = client.timeout(t);
        }
        let client = client.build().unwrap();
        let url = format!("http://{addr}");
        TestGateway {
            admin: AdminClient::new(client.clone(), url.clone(), token),
            url,
            addr,
            client,
            state,
            settings,
            metrics_addr,
            admin_password,
            signal,
            handle: Some(handle),
            db,
            db_url,
        }
    }
}

/// Where test gateways journal usage (under the system's temp directory).
pub fn test_journal_dir() -> String {
    std::env::temp_dir().join("sheepdog-test-journals").to_string_lossy().into_owned()
}

/// The real gateway serving on a local port. Dropped without
/// [`TestGateway::stop`], it starts a graceful stop in the background.
pub struct TestGateway {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    pub addr: SocketAddr,
    /// No redirects followed.
    pub client: reqwest::Client,
    pub state: AppState,
    /// The settings it was built from.
    pub settings: Settings,
    /// Where `/metrics` listens when `gateway.metrics_listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    /// The console admin's first-start password, when this start created the user.
    pub admin_password: Option<String>,
    /// Stops it: [`ShutdownSignal::request`] (graceful), then
    /// [`ShutdownSignal::request_immediate`] (ends the grace).
    pub signal: ShutdownSignal,
    admin: AdminClient,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    db: Option<TestDb>,
    db_url: String,
}

impl TestGateway {
    /// A builder: a fresh `db`, the default configuration (simulated
    /// provider, default price table) with a 20 ms accounting flush.
    pub fn builder<'a>(db: Db) -> GatewayBuilder<'a> {
        GatewayBuilder {
            db,
            database_url: None,
            customize: Vec::new(),
            env: Vec::new(),
            process_admin_token: None,
            listener: None,
            client_timeout: None,
        }
    }

    /// A builder over an existing database (the test owns it).
    pub fn builder_on_url<'a>(database_url: &str) -> GatewayBuilder<'a> {
        TestGateway::builder(Db::Sqlite).database_url(database_url)
    }

    /// The default configuration (simulated provider, default price table).
    pub async fn start(db: Db) -> TestGateway {
        TestGateway::builder(db).start().await
    }

    /// The default configuration, changed by `customize`.
    pub async fn start_with<'a>(db: Db, customize: impl FnOnce(&mut Config) + 'a) -> TestGateway {
        TestGateway::builder(db).config(customize).start().await
    }

    /// Its database's URL.
    pub fn db_url(&self) -> &str {
        &self.db_url
    }

    /// Graceful stop (in-flight requests finish, queued usage is written,
    /// within 60 s); then its fresh database is removed.
    pub async fn stop(mut self) {
        self.shutdown().await;
        if let Some(db) = self.db.take() {
            db.cleanup().await;
        }
    }

    /// Graceful stop, keeping the database (returns its URL).
    pub async fn shutdown(&mut self) -> String {
        self.signal.request();
        self.finished_within(Duration::from_secs(60)).await;
        self.db_url.clone()
    }

    /// Waits at most `limit` for the gateway to finish serving (after a
    /// stop it was asked for) and asserts it finished without error.
    pub async fn finished_within(&mut self, limit: Duration) {
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(limit, h).await.unwrap().unwrap().unwrap();
        }
    }

    /// An admin API call with its token; the status and the answer (JSON, or the text).
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.admin.call(method, path, body).await
    }

    /// The admin API client (its token, its base URL).
    pub fn admin_client(&self) -> &AdminClient {
        &self.admin
    }

    /// Creates a shared-tier tenant named `name` and one key for it; returns (tenant id, key).
    pub async fn tenant_with_key(&self, name: &str) -> (String, String) {
        self.admin.tenant_with_key(name).await
    }

    /// Creates the tenant `tenant` (a `POST /admin/v1/tenants` body) and one
    /// key for it; returns (tenant id, key).
    pub async fn tenant_and_key(&self, tenant: Value) -> (String, String) {
        self.admin.tenant_and_key(tenant).await
    }

    /// `POST /v1/chat/completions` with `key`.
    pub fn chat(&self, key: &str) -> reqwest::RequestBuilder {
        self.client.post(format!("{}/v1/chat/completions", self.url)).bearer_auth(key)
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.signal.request();
    }
}

/// The usage records of `tenant` in the database at `db_url`.
pub async fn usage_records(db_url: &str, tenant: &str) -> Vec<UsageRecord> {
    let store = Store::connect_url(db_url, 1).await.unwrap();
    let records = store.usage_records(tenant).await.unwrap();
    store.close().await;
    records
}

/// `n` gpt-4.1 requests (`max_tokens` 100, 100 completion tokens) released
/// together by a barrier, spread over `gateways` in turn: how many were
/// answered 200. Every other answer must be `429 insufficient_quota` (a hard
/// budget or pool refusing what could overspend it).
pub async fn budget_race(gateways: &[std::sync::Arc<TestGateway>], key: &str, n: usize) -> usize {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(n));
    let mut handles = Vec::new();
    for i in 0..n {
        let (gw, key, barrier) = (gateways[i % gateways.len()].clone(), key.to_string(), barrier.clone());
        handles.push(tokio::spawn(async move {
            let req = gw.chat(&key).json(&serde_json::json!({"model": "gpt-4.1", "max_tokens": 100,
                "messages": [{"role": "user", "content": format!("request {i} [sim:tokens=100]")}]}));
            barrier.wait().await;
            let r = req.send().await.unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap())
        }));
    }
    let mut ok = 0;
    for h in handles {
        let (status, v) = h.await.unwrap();
        match status {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => assert_eq!(v["error"]["code"], "insufficient_quota", "{v}"),
            other => panic!("{other}: {v}"),
        }
    }
    ok
}
