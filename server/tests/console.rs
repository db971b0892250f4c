//! The real console router in-process, in front of a real gateway on port 0
//! with a fresh SQLite database: sign-in and sessions, CSRF, and the
//! server-side authorization of every kind of server function (a viewer
//! cannot change anything; a tenant user cannot read or change another
//! tenant, even when it names the other tenant in the request), and the
//! analysis upload (streamed to the gateway, size-limited, operators only)
//! with its "apply a recommendation" server function.
// Helpers outside #[test] functions, which clippy.toml's test allowances do not reach.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, ORIGIN, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sheepdog::console::{Console, SESSION_COOKIE};
use sheepdog_gateway::config::Config;
use sheepdog_testkit::process::fake_site;
use sheepdog_testkit::{json_or_text, AdminClient, TestGateway};

const TOKEN: &str = "console-test-admin-token";

struct Env {
    console: String,
    admin_password: String,
    admin: AdminClient,
    _gateway: TestGateway,
    _dir: tempfile::TempDir,
}

/// A client that behaves like a browser on the console's pages: cookies
/// kept, no redirects followed, `Origin` set to the console.
fn browser(console: &str) -> reqwest::Client {
    let mut h = HeaderMap::new();
    h.insert(ORIGIN, HeaderValue::from_str(console).unwrap());
    h.insert(reqwest::header::ACCEPT, HeaderValue::from_static("text/html,application/xhtml+xml"));
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(h)
        .build()
        .unwrap()
}

async fn start() -> Env {
    start_with(|_| {}).await
}

async fn start_with(adjust: impl FnOnce(&mut Config)) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let site = fake_site(dir.path());
    // The gateway's address goes into the console's configuration.
    let gw_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = format!("http://{}", gw_listener.local_addr().unwrap());
    let gw = TestGateway::builder_on_url(&format!("sqlite://{}", dir.path().join("sheepdog.db").display()))
        .listener(gw_listener)
        .process_admin_token(TOKEN)
        .config(|config| {
            config.console.site_root = site.display().to_string();
            config.console.gateway_url = gateway.clone();
            adjust(config);
        })
        .start()
        .await;
    let admin_password = gw.admin_password.clone().unwrap();
    let console = Console::new(&gw.settings).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(console.serve(listener, std::future::pending()));
    let admin = AdminClient::new(reqwest::Client::new(), gateway, TOKEN);
    Env { console: url, admin_password, admin, _gateway: gw, _dir: dir }
}

impl Env {
    /// The admin API, as an operator's script would call it.
    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, answer) = self.admin.call(method, &format!("/admin/v1{path}"), body).await;
        assert!(status.is_success(), "{path}: {status}");
        answer
    }

    async fn tenant(&self, name: &str) -> String {
        let t = self.admin(reqwest::Method::POST, "/tenants", Some(json!({"name": name, "tier": "shared"}))).await;
        t["id"].as_str().unwrap().to_string()
    }

    async fn user(&self, email: &str, role: &str, tenant: Option<&str>) {
        let body = json!({"email": email, "role": role, "tenant_id": tenant, "password": "correct horse battery"});
        self.admin(reqwest::Method::POST, "/users", Some(body)).await;
    }

    /// Signs in a new browser; panics unless it works.
    async fn signed_in(&self, email: &str, password: &str) -> reqwest::Client {
        let b = browser(&self.console);
        let (status, body) = call(&b, &self.console, "login", &[("email", email), ("password", password)]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        b
    }

    async fn as_admin(&self) -> reqwest::Client {
        self.signed_in("admin@sheepdog.local", &self.admin_password.clone()).await
    }
}

/// Calls a server function the way the hydrated page does (form-encoded POST).
async fn call(client: &reqwest::Client, console: &str, endpoint: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = client
        .post(format!("{console}/api/{endpoint}"))
        .header("accept", "application/json")
        .form(form)
        .send()
        .await
        .unwrap();
    json_or_text(resp).await
}

fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(SESSION_COOKIE))
        .map(str::to_string)
}

#[tokio::test]
async fn sign_in_sets_a_safe_cookie_rotates_the_session_and_sign_out_destroys_it() {
    let env = start().await;
    let b = browser(&env.console);

    // Pages need a session: the server answers with a redirect, not a page.
    let resp = b.get(format!("{}/tenants", env.console)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(resp.headers()["location"], "/login?next=/tenants");

    let login = |b: reqwest::Client| {
        let url = format!("{}/api/login", env.console);
        let pw = env.admin_password.clone();
        async move {
            b.post(url)
                .header("accept", "application/json")
                .form(&[("email", "admin@sheepdog.local"), ("password", pw.as_str())])
                .send()
                .await
                .unwrap()
        }
    };
    let first = login(b.clone()).await;
    assert_eq!(first.status(), StatusCode::OK);
    let cookie = session_cookie(&first).expect("a session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain-HTTP console: no Secure flag ({cookie})");
    let user: Value = first.json().await.unwrap();
    assert_eq!(user["role"], "admin");

    // Signing in again gets a new session id (no fixation).
    let second = login(b.clone()).await;
    let cookie2 = session_cookie(&second).expect("a session cookie");
    let id = |c: &str| c.split(';').next().unwrap().to_string();
    assert_ne!(id(&cookie), id(&cookie2));

    let (status, who) = call(&b, &env.console, "whoami", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(who["email"], "admin@sheepdog.local");
    let page = b.get(format!("{}/tenants", env.console)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert_eq!(page.headers()["x-frame-options"], "DENY");

    // Sign out, then replay the old cookie: the session is gone from the store.
    let (status, _) = call(&b, &env.console, "logout", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let (_, who) = call(&b, &env.console, "whoami", &[]).await;
    assert_eq!(who, Value::Null);
    let replay = browser(&env.console)
        .post(format!("{}/api/whoami", env.console))
        .header("cookie", id(&cookie2))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(replay.json::<Value>().await.unwrap(), Value::Null);
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same_and_failures_are_throttled() {
    let env = start().await;
    env.user("ops@example.com", "operator", None).await;
    let b = browser(&env.console);
    let mut timings = Vec::new();
    for email in ["ops@example.com", "nobody@example.com"] {
        let started = Instant::now();
        let (status, body) =
            call(&b, &env.console, "login", &[("email", email), ("password", "wrong password!")]).await;
        timings.push(started.elapsed());
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body, json!("InvalidCredentials"));
    }
    // Both ran one argon2id verification: neither is an order of magnitude faster.
    let (a, b_) = (timings[0].as_secs_f64(), timings[1].as_secs_f64());
    assert!(a / b_ < 4.0 && b_ / a < 4.0, "known {a:.3}s vs unknown {b_:.3}s");

    // A few more failures for this (email, address): the pair then waits
    // before its next attempt is checked, even with the right password.
    let mut throttled = None;
    for _ in 0..8 {
        let (status, body) =
            call(&b, &env.console, "login", &[("email", "ops@example.com"), ("password", "wrong password!")]).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            throttled = Some(body);
            break;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    let body = throttled.expect("the pair is delayed after a few failures");
    assert!(body["TooManyAttempts"].as_u64().unwrap() > 0, "{body}");
    let (status, body) =
        call(&b, &env.console, "login", &[("email", "ops@example.com"), ("password", "correct horse battery")]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // Without console.trusted_proxies, X-Forwarded-For is not believed: a
    // made-up address does not escape the delay.
    let spoofed = b
        .post(format!("{}/api/login", env.console))
        .header("accept", "application/json")
        .header("x-forwarded-for", "198.51.100.99")
        .form(&[("email", "ops@example.com"), ("password", "correct horse battery")])
        .send()
        .await
        .unwrap();
    assert_eq!(spoofed.status(), StatusCode::TOO_MANY_REQUESTS);
    // Other users are not delayed.
    env.as_admin().await;
}

/// A sign-in from the address `ip`, as a trusted proxy forwards it.
async fn login_from(env: &Env, ip: &str, email: &str, password: &str) -> reqwest::Response {
    browser(&env.console)
        .post(format!("{}/api/login", env.console))
        .header("accept", "application/json")
        .header("x-forwarded-for", format!("6.6.6.6, {ip}"))
        .form(&[("email", email), ("password", password)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn someone_elses_failures_never_lock_out_the_right_password() {
    let env = start_with(|c| c.console.trusted_proxies = vec!["127.0.0.0/8".into()]).await;
    let pw = env.admin_password.clone();
    // An attacker at one address fails until its (email, address) pair must wait.
    let mut throttled = None;
    for _ in 0..6 {
        let r = login_from(&env, "198.51.100.66", "admin@sheepdog.local", "not the password").await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            throttled = Some(r);
            break;
        }
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let throttled = throttled.expect("the attacker's pair is delayed after a few failures");
    let wait = throttled.json::<Value>().await.unwrap()["TooManyAttempts"].as_u64().unwrap();
    assert!(wait >= 1, "Retry-After in whole seconds");
    // Even the right password waits at the attacker's address...
    let r = login_from(&env, "198.51.100.66", "admin@sheepdog.local", &pw).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // ...but the admin at another address (the right-most untrusted entry) signs in at once.
    let r = login_from(&env, "203.0.113.7", "admin@sheepdog.local", &pw).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    // After the delay the attacker's pair is checked again (and fails again).
    tokio::time::sleep(Duration::from_millis(wait * 1000 + 100)).await;
    let r = login_from(&env, "198.51.100.66", "admin@sheepdog.local", "not the password").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn after_sign_in_the_browser_goes_only_to_local_paths() {
    let env = start().await;
    let pw = env.admin_password.clone();
    let target = |next: &'static str| {
        let (console, pw) = (env.console.clone(), pw.clone());
        async move {
            let resp = browser(&console)
                .post(format!("{console}/api/login"))
                .form(&[("email", "admin@sheepdog.local"), ("password", pw.as_str()), ("next", next)])
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::FOUND, "{next:?}: a plain form post is redirected");
            resp.headers()["location"].to_str().unwrap().to_string()
        }
    };
    assert_eq!(target("/tenants?x=1").await, "/tenants?x=1");
    for evil in [
        "/\\evil.example",
        "//evil.example",
        "/%5Cevil.example",
        "/\t/evil.example",
        "https://evil.example",
        "/%2F%2Fevil.example",
    ] {
        assert_eq!(target(evil).await, "/", "{evil:?} must not leave the console");
    }
}

#[tokio::test]
async fn dot_segments_in_ids_cannot_reach_other_admin_paths() {
    let env = start().await;
    let t = env.tenant("Acme").await;
    let platform = env
        .admin(reqwest::Method::POST, "/keys", Some(json!({"scope": "platform", "tenants": "*", "name": "platform"})))
        .await;
    let platform_id = platform["id"].as_str().unwrap().to_string();
    let admin = env.as_admin().await;
    let c = &env.console;
    for tenant_id in ["..", ".", "%2e%2e", "../keys", "a/../.."] {
        let (status, body) =
            call(&admin, c, "revoke_tenant_key", &[("tenant_id", tenant_id), ("key_id", platform_id.as_str())]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{tenant_id}: {body}");
    }
    // A real tenant, but the platform key is not one of its keys.
    let (status, _) =
        call(&admin, c, "revoke_tenant_key", &[("tenant_id", t.as_str()), ("key_id", &platform_id)]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let keys = env.admin(reqwest::Method::GET, "/keys", None).await;
    let key = keys["data"].as_array().unwrap().iter().find(|k| k["id"] == platform_id.as_str()).unwrap().clone();
    assert_eq!(key["status"], "active", "the platform key was not revoked");
}

#[tokio::test]
async fn every_response_carries_the_security_headers_and_scripts_carry_the_nonce() {
    let env = start().await;
    let resp = browser(&env.console).get(format!("{}/login", env.console)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let h = resp.headers().clone();
    let csp = h["content-security-policy"].to_str().unwrap().to_string();
    for part in [
        "default-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "'wasm-unsafe-eval'",
    ] {
        assert!(csp.contains(part), "{part} missing from {csp}");
    }
    assert!(!csp.contains("script-src 'self' 'unsafe-inline'") && !csp.contains("'unsafe-eval'"), "{csp}");
    // The migration report (shown in a srcdoc frame, which inherits the policy) keeps its stylesheet.
    let report_css = {
        use base64::Engine as _;
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(sheepdog_analyze::html::CSS.as_bytes());
        format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest))
    };
    assert!(csp.contains(&format!("style-src 'self' {report_css}")), "{csp}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "same-origin");
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(h.get("strict-transport-security").is_none(), "no HSTS over plain http");
    let nonce = csp.split("'nonce-").nth(1).unwrap().split('\'').next().unwrap().to_string();
    assert!(nonce.len() >= 32, "{nonce}");
    // Every inline script Leptos rendered (hydration bootstrap, serialized data) carries the nonce.
    let html = resp.text().await.unwrap();
    let scripts: Vec<&str> =
        html.match_indices("<script").map(|(i, _)| &html[i..html[i..].find('>').unwrap() + i]).collect();
    assert!(!scripts.is_empty(), "the page hydrates with scripts");
    for s in &scripts {
        assert!(s.contains(&format!("nonce=\"{nonce}\"")), "{s} lacks the response's nonce");
    }
    assert!(html.contains("type=\"module\""), "the hydration bootstrap is there");
    // A fresh nonce per response; static files and errors get the headers too.
    let again = browser(&env.console).get(format!("{}/login", env.console)).send().await.unwrap();
    assert_ne!(again.headers()["content-security-policy"].to_str().unwrap(), csp);
    for path in ["/pkg/sheepdog.css", "/no-such-page"] {
        let r = browser(&env.console).get(format!("{}{path}", env.console)).send().await.unwrap();
        assert!(r.headers().contains_key("content-security-policy"), "{path}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
    }

    // Served over https (console.public_url): HSTS too.
    let env = start_with(|c| c.console.public_url = Some("https://console.example.com".into())).await;
    let resp = browser(&env.console).get(format!("{}/login", env.console)).send().await.unwrap();
    assert_eq!(resp.headers()["strict-transport-security"], "max-age=31536000");
}

#[tokio::test]
async fn the_session_table_never_holds_the_cookies_session_id() {
    let env = start().await;
    let b = browser(&env.console);
    let resp = b
        .post(format!("{}/api/login", env.console))
        .header("accept", "application/json")
        .form(&[("email", "admin@sheepdog.local"), ("password", env.admin_password.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = session_cookie(&resp).unwrap();
    let value = cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_string();
    let id: tower_sessions::session::Id = value.parse().unwrap();
    let raw = id.0.to_le_bytes();
    // The session works.
    let (_, who) = call(&b, &env.console, "whoami", &[]).await;
    assert_eq!(who["email"], "admin@sheepdog.local");

    let db = env._dir.path().join("sheepdog.db");
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&db))
        .await
        .unwrap();
    let rows: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT id, data FROM console_sessions").fetch_all(&pool).await.unwrap();
    assert!(!rows.is_empty());
    for (stored, data) in &rows {
        assert_ne!(stored, &value, "the cookie's id is not a key in the table");
        assert!(!data.windows(raw.len()).any(|w| w == raw), "nor inside a record");
        assert!(!data.windows(value.len()).any(|w| w == value.as_bytes()), "nor inside a record (text)");
    }
    let hashed = sheepdog::sessions::stored_id(&id).to_string();
    assert!(rows.iter().any(|(stored, _)| stored == &hashed), "the session is stored under its hash");
    pool.close().await;
}

#[tokio::test]
async fn cross_origin_state_changes_are_refused() {
    let env = start().await;
    let admin = env.as_admin().await;
    for origin in ["http://evil.example", "null"] {
        let resp = admin
            .post(format!("{}/api/onboard_tenant", env.console))
            .header(ORIGIN, origin)
            .form(&[("name", "Evil"), ("tier", "shared")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{origin}");
    }
    // No Origin, no Sec-Fetch-Site, no Referer: refused too.
    let bare = reqwest::Client::new();
    let resp = bare.post(format!("{}/api/login", env.console)).form(&[("email", "a@b.c")]).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = bare
        .post(format!("{}/api/login", env.console))
        .header("sec-fetch-site", "cross-site")
        .form(&[("email", "a@b.c")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // Nothing was created.
    let list = env.admin(reqwest::Method::GET, "/tenants", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn viewers_read_but_cannot_change_anything() {
    let env = start().await;
    let t = env.tenant("Acme").await;
    env.user("viewer@example.com", "viewer", None).await;
    let v = env.signed_in("viewer@example.com", "correct horse battery").await;
    let c = &env.console;

    assert_eq!(call(&v, c, "tenants", &[]).await.0, StatusCode::OK);
    assert_eq!(call(&v, c, "tenant_detail", &[("id", &t)]).await.0, StatusCode::OK);
    assert_eq!(call(&v, c, "overview", &[]).await.0, StatusCode::OK);
    for (endpoint, form) in [
        ("onboard_tenant", vec![("name", "X"), ("tier", "shared")]),
        ("update_limits", vec![("id", t.as_str()), ("requests_per_minute", "1"), ("tokens_per_minute", "1")]),
        ("update_budget", vec![("id", t.as_str()), ("monthly_limit_usd", "1")]),
        ("set_tenant_status", vec![("id", t.as_str()), ("status", "suspended")]),
        ("create_tenant_key", vec![("tenant_id", t.as_str())]),
        ("users", vec![]),
        ("create_user", vec![("email", "x@y.z"), ("role", "admin"), ("password", "0123456789abcdef")]),
    ] {
        let form: Vec<(&str, &str)> = form;
        let (status, body) = call(&v, c, endpoint, &form).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{endpoint}: {body}");
        assert_eq!(body, json!("Forbidden"), "{endpoint}");
    }
    let tenant = env.admin(reqwest::Method::GET, &format!("/tenants/{t}"), None).await;
    assert_eq!(tenant["status"], "active");
    assert_eq!(tenant["limits"]["requests_per_minute"], 1000);
    // The pages render read-only for a viewer: no forms it cannot use.
    for (path, form) in [("/tenants/new", "onboard-form"), ("/users", "user-form")] {
        let page = v.get(format!("{c}{path}")).header("accept", "text/html").send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{path}");
        let html = page.text().await.unwrap();
        assert!(!html.contains(&format!("data-testid=\"{form}\"")), "{path} shows {form} to a viewer");
    }
    let onboard = v.get(format!("{c}/tenants/new")).send().await.unwrap().text().await.unwrap();
    assert!(onboard.contains("Read only"), "{onboard}");
}

#[tokio::test]
async fn a_tenant_user_sees_and_changes_only_its_own_tenant() {
    let env = start().await;
    let mine = env.tenant("Mine").await;
    let other = env.tenant("Other").await;
    let other_key = env.admin(reqwest::Method::POST, &format!("/tenants/{other}/keys"), Some(json!({}))).await;
    let other_key_id = other_key["id"].as_str().unwrap().to_string();
    env.user("me@mine.example", "tenant", Some(&mine)).await;
    let me = env.signed_in("me@mine.example", "correct horse battery").await;
    let c = &env.console;

    // Operator functions, with the other tenant's id: refused.
    for (endpoint, form) in [
        ("tenants", vec![]),
        ("tenant_detail", vec![("id", other.as_str())]),
        ("update_limits", vec![("id", other.as_str()), ("requests_per_minute", "1"), ("tokens_per_minute", "1")]),
        ("set_tenant_status", vec![("id", other.as_str()), ("status", "suspended")]),
        ("create_tenant_key", vec![("tenant_id", other.as_str())]),
        ("revoke_tenant_key", vec![("tenant_id", other.as_str()), ("key_id", other_key_id.as_str())]),
        ("cost_report", vec![("range", "7d")]),
        ("audit", vec![]),
        ("overview", vec![]),
    ] {
        let form: Vec<(&str, &str)> = form;
        let (status, body) = call(&me, c, endpoint, &form).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{endpoint}: {body}");
    }

    // Portal functions ignore a smuggled tenant id and answer for the session's tenant.
    let (status, summary) = call(&me, c, "portal_summary", &[("tenant_id", other.as_str())]).await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["tenant"]["id"], mine.as_str());
    let (_, created) = call(&me, c, "portal_create_key", &[("name", "ci"), ("tenant_id", other.as_str())]).await;
    assert_eq!(created["tenant_id"], mine.as_str());
    let (_, keys) = call(&me, c, "portal_keys", &[("tenant_id", other.as_str())]).await;
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert!(keys.iter().all(|k| k["tenant_id"] == mine.as_str()));

    // Revoking the other tenant's key: not found, and the key stays active.
    let (status, _) = call(&me, c, "portal_revoke_key", &[("key_id", other_key_id.as_str())]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let theirs = env.admin(reqwest::Method::GET, &format!("/tenants/{other}/keys"), None).await;
    assert_eq!(theirs["data"][0]["status"], "active");

    // Pages: the operator console sends a tenant user to the portal; CSV export is refused.
    let resp = me.get(format!("{c}/tenants/{other}")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(resp.headers()["location"], "/portal");
    let resp = me.get(format!("{c}/costs/export.csv?group_by=tenant")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let page = me.get(format!("{c}/portal")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("Mine") && !html.contains("Other"), "the portal shows only its own tenant");
}

#[tokio::test]
async fn operators_changes_are_audited_with_their_name_and_pages_render_without_javascript() {
    let env = start().await;
    let admin = env.as_admin().await;
    let c = &env.console;
    let (status, done) = call(
        &admin,
        c,
        "onboard_tenant",
        &[
            ("name", "Globex"),
            ("tier", "pooled"),
            ("aliases", "globex"),
            ("requests_per_minute", "60"),
            ("tokens_per_minute", "100000"),
            ("max_concurrency", ""),
            ("monthly_budget_usd", "25"),
            ("budget_hard", "true"),
            ("signup_credit_usd", "5"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert!(done["key"]["key"].as_str().unwrap().starts_with("sk-sd-"));
    let id = done["tenant"]["id"].as_str().unwrap().to_string();
    assert_eq!(done["tenant"]["limits"]["requests_per_minute"], 60);
    assert_eq!(done["tenant"]["budget"]["hard"], true);

    let (status, body) =
        call(&admin, c, "update_limits", &[("id", &id), ("requests_per_minute", "abc"), ("tokens_per_minute", "1")])
            .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["Invalid"].as_str().unwrap().contains("Requests per minute"), "{body}");
    // Input the server function cannot even read (a required field missing,
    // a field of the wrong shape) is a 400 with a message too, never a 500.
    let (status, body) = call(&admin, c, "onboard_tenant", &[("tier", "shared")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["Invalid"].as_str().unwrap().contains("name"), "{body}");
    let (status, body) = call(&admin, c, "update_limits", &[("id", &id), ("id", "twice")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["Invalid"].is_string(), "{body}");

    let audit = env.admin(reqwest::Method::GET, "/audit?actor=console:", None).await;
    let actions: Vec<&str> = audit["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"tenant.create") && actions.contains(&"key.create"), "{actions:?}");
    assert!(audit["data"].as_array().unwrap().iter().all(|e| e["actor"] == "console:admin@sheepdog.local"));
    let by_token = env.admin(reqwest::Method::GET, "/audit?actor=admin-token", None).await;
    assert_eq!(by_token["data"].as_array().unwrap().len(), 0);

    // Server-rendered pages hold the data (readable with JavaScript off).
    for (path, needle) in [
        ("/tenants".to_string(), "Globex"),
        (format!("/tenants/{id}"), "data-testid=\"keys-table\""),
        ("/costs?range=24h".to_string(), "data-testid=\"by-tenant\""),
        ("/audit?action=tenant.".to_string(), "tenant.create"),
        ("/".to_string(), "data-testid=\"stat-requests\""),
        ("/users".to_string(), "admin@sheepdog.local"),
    ] {
        let resp = admin.get(format!("{c}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let html = resp.text().await.unwrap();
        assert!(html.contains(needle), "{path} lacks {needle}");
    }
    let csv = admin.get(format!("{c}/costs/export.csv?group_by=model&range=24h")).send().await.unwrap();
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(csv.text().await.unwrap().starts_with("group_by,key,label"));
    let _ = Duration::ZERO;
}

/// JSON lines of `n` requests per tenant, each tenant's requests all in
/// flight together (so the first tenant has the larger share of the peak).
fn log_lines(tenants: &[(&str, usize)]) -> String {
    let mut out = String::new();
    for (t, n) in tenants {
        for i in 0..*n {
            out.push_str(&format!(
                "{{\"timestamp\":\"2026-03-02T10:00:{:02}.000Z\",\"duration_ms\":60000,\"status\":200,\"metadata\":{{\"tenant_id\":\"{t}\"}},\"request\":{{\"model\":\"gpt-4.1\"}},\"usage\":{{\"prompt_tokens\":1000,\"completion_tokens\":200}}}}\n",
                i % 50
            ));
        }
    }
    out
}

async fn upload(
    client: &reqwest::Client,
    console: &str,
    query: &str,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, Value) {
    let resp = client
        .post(format!("{console}/analyses/upload{query}"))
        .header("accept", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    json_or_text(resp).await
}

#[tokio::test]
async fn an_uploaded_log_is_analysed_matched_to_tenants_and_applied_with_an_audit_trail() {
    let env = start_with(|c| c.gateway.max_analysis_upload_bytes = 64 * 1024).await;
    let acme = env
        .admin(
            reqwest::Method::POST,
            "/tenants",
            Some(json!({"name": "Acme Corp", "tier": "shared", "aliases": ["acme"]})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    env.tenant("Small Co").await;
    let admin = env.as_admin().await;
    let c = &env.console;
    let log = log_lines(&[("acme", 6), ("small co", 1), ("stranger", 1)]);

    let (status, r) = upload(&admin, c, "?tenant_field=metadata.tenant_id&margin=0", log.clone()).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["report"]["quality"]["records"], 8);
    assert_eq!(r["report"]["overall"]["peak_concurrency"]["value"], 8);
    assert!(r["html"].as_str().unwrap().contains("<svg"), "the report's own charts");
    let plans = r["plans"].as_array().unwrap();
    let plan = |key: &str| plans.iter().find(|p| p["tenant"] == key).unwrap_or_else(|| panic!("{key}: {r}"));
    assert_eq!(plan("acme")["matched"]["id"], acme.as_str());
    assert_eq!(plan("acme")["matched"]["matched_by"], "alias");
    assert_eq!(plan("acme")["change"]["tier"], "dedicated", "6 of 8 in flight: over its fair share");
    assert_eq!(plan("acme")["change"]["max_concurrency"], 6);
    assert_eq!(plan("small co")["matched"]["matched_by"], "name");
    assert_eq!(plan("small co")["change"]["tier"], "shared");
    assert!(plan("stranger")["matched"].is_null());
    assert!(plan("stranger")["unmatched"].as_str().unwrap().contains("No tenant"), "{r}");

    // A body without a length is streamed too, and cut off at the limit.
    let chunks: Vec<Result<String, std::io::Error>> = vec![Ok(log.clone())];
    let (status, r) = upload(&admin, c, "", reqwest::Body::wrap_stream(futures_stream(chunks))).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let big: Vec<Result<String, std::io::Error>> = (0..100).map(|_| Ok("x".repeat(1024))).collect();
    let (status, r) = upload(&admin, c, "", reqwest::Body::wrap_stream(futures_stream(big))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{r}");
    assert!(r["message"].as_str().unwrap().contains("64.0 KiB"), "{r}");
    // Declared too large: refused before anything is sent on.
    let (status, r) = upload(&admin, c, "", "y".repeat(65 * 1024)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{r}");
    assert!(r["message"].as_str().unwrap().contains("gateway.max_analysis_upload_bytes"), "{r}");
    // Garbage, nothing, and unknown options: 400 with the reason.
    let (status, r) = upload(&admin, c, "", "this is not a log\nat all\n").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{r}");
    assert!(r["message"].as_str().unwrap().contains("No usable request record"), "{r}");
    assert_eq!(upload(&admin, c, "", "").await.0, StatusCode::BAD_REQUEST);
    let (status, r) = upload(&admin, c, "?colour=blue", log.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(r["message"].as_str().unwrap().contains("colour"), "{r}");
    let (status, r) = upload(&admin, c, "?map=gpt-4.1%3Dno-such-model", log.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{r}");

    // Applying the recommendation: tier and limits, audited under the operator's name.
    let (status, t) = call(
        &admin,
        c,
        "apply_analysis",
        &[
            ("tenant_id", acme.as_str()),
            ("tier", "dedicated"),
            ("requests_per_minute", "12"),
            ("tokens_per_minute", "14400"),
            ("max_concurrency", "6"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{t}");
    assert_eq!(t["tier"], "dedicated");
    let t = env.admin(reqwest::Method::GET, &format!("/tenants/{acme}"), None).await;
    assert_eq!(t["tier"], "dedicated");
    assert_eq!(t["limits"], json!({"requests_per_minute": 12, "tokens_per_minute": 14400, "max_concurrency": 6}));
    let audit = env.admin(reqwest::Method::GET, &format!("/audit?target={acme}"), None).await;
    let entries = audit["data"].as_array().unwrap();
    for action in ["tenant.update", "tenant.limits"] {
        let e = entries.iter().find(|e| e["action"] == action).unwrap_or_else(|| panic!("{action}: {audit}"));
        assert_eq!(e["actor"], "console:admin@sheepdog.local");
    }
    let runs = env.admin(reqwest::Method::GET, "/audit?action=analysis.run", None).await;
    assert_eq!(runs["data"][0]["actor"], "console:admin@sheepdog.local");
    // Bad values change nothing.
    for (tier, rpm) in [("pooled", "5"), ("gold", "5"), ("shared", "0")] {
        let form = [
            ("tenant_id", acme.as_str()),
            ("tier", tier),
            ("requests_per_minute", rpm),
            ("tokens_per_minute", "1"),
            ("max_concurrency", "1"),
        ];
        assert_eq!(call(&admin, c, "apply_analysis", &form).await.0, StatusCode::BAD_REQUEST, "{tier} {rpm}");
    }
    assert_eq!(env.admin(reqwest::Method::GET, &format!("/tenants/{acme}"), None).await["tier"], "dedicated");
}

#[tokio::test]
async fn only_signed_in_operators_from_the_console_may_upload_or_apply() {
    let env = start().await;
    let acme = env.tenant("Acme").await;
    let c = &env.console;
    let log = log_lines(&[("Acme", 2)]);
    // No session.
    let (status, r) = upload(&browser(c), c, "", log.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{r}");
    // A viewer: the page says not allowed, the upload and the apply are refused.
    env.user("viewer@example.com", "viewer", None).await;
    let v = env.signed_in("viewer@example.com", "correct horse battery").await;
    let (status, r) = upload(&v, c, "", log.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{r}");
    let home = v.get(format!("{c}/")).send().await.unwrap().text().await.unwrap();
    assert!(home.contains("nav-rollouts") && !home.contains("nav-analyses"), "viewers have no Analysis entry");
    let page = v.get(format!("{c}/analyses")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    assert!(page.text().await.unwrap().contains("data-error=\"forbidden\""));
    let form = [
        ("tenant_id", acme.as_str()),
        ("tier", "dedicated"),
        ("requests_per_minute", "5"),
        ("tokens_per_minute", "5"),
        ("max_concurrency", "1"),
    ];
    assert_eq!(call(&v, c, "apply_analysis", &form).await.0, StatusCode::FORBIDDEN);
    assert_eq!(call(&v, c, "analysis_settings", &[]).await.0, StatusCode::FORBIDDEN);
    // An operator: allowed; the page renders the form with the limit.
    env.user("ops@example.com", "operator", None).await;
    let ops = env.signed_in("ops@example.com", "correct horse battery").await;
    let page = ops.get(format!("{c}/analyses")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("data-testid=\"analysis-form\"") && html.contains("256.0 MiB"), "{html}");
    assert!(html.contains("nav-analyses"), "operators have the Analysis entry");
    let (status, r) = upload(&ops, c, "", log.clone()).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    // Another origin: refused by the CSRF guard, whoever is signed in.
    let resp = ops
        .post(format!("{c}/analyses/upload"))
        .header(ORIGIN, "http://evil.example")
        .body(log.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.text().await.unwrap().contains("cross_origin_refused"));
    assert_eq!(env.admin(reqwest::Method::GET, &format!("/tenants/{acme}"), None).await["tier"], "shared");
}

/// A stream of chunks (a body without a Content-Length).
fn futures_stream(
    chunks: Vec<Result<String, std::io::Error>>,
) -> impl futures::Stream<Item = Result<String, std::io::Error>> {
    futures::stream::iter(chunks)
}
