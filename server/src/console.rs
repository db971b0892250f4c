//! The console listener: the Leptos app (`app` crate) rendered on the server,
//! its server functions, CSV export, the analysis upload, and the built site (wasm, JS, CSS,
//! public assets) served from `console.site_root`; sessions in the database,
//! CSRF protection and security headers in front of all of it.
//!
//! The site is built by `cargo leptos build --release` (scripts/build-site.sh),
//! which writes `target/site` and `target/release/sheepdog`. The binary does
//! not need cargo-leptos at run time: the Leptos options are built here from
//! [`Settings`], not read from `Cargo.toml` or `LEPTOS_*` variables.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use app::{shell, App, ConsoleState, SessionPolicy, OUTPUT_NAME};
use axum::body::Body;
use axum::http::{header, HeaderValue, Request};
use axum::middleware::Next;
use axum::response::Response;
use leptos::config::{Env, LeptosOptions};
use leptos::prelude::{provide_context, use_context};
use leptos_axum::{file_and_error_handler_with_context, generate_route_list, LeptosRoutes};
use sheepdog_gateway::config::{ListenerLimits, Settings};
use sheepdog_gateway::listener::{self, Phases, ShutdownSignal, Stage};
use tower_sessions::cookie::SameSite;
use tower_sessions::session_store::ExpiredDeletion;
use tower_sessions::{Expiry, SessionManagerLayer, SessionStore};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use crate::sessions::HashedIds;

/// Directory under the site root that holds the wasm, JS and CSS bundle.
const PKG_DIR: &str = "pkg";
/// The session cookie.
pub const SESSION_COOKIE: &str = "sheepdog_session";
/// How often expired sessions are deleted from the store.
const SESSION_SWEEP: Duration = Duration::from_secs(15 * 60);

pub struct Console {
    router: axum::Router,
    limits: ListenerLimits,
}

impl Console {
    /// Checks the site, connects the session store and builds the router.
    pub async fn new(settings: &Settings) -> anyhow::Result<Console> {
        let site_root = settings.console.site_root.as_str();
        check_site(Path::new(site_root))?;
        let token = settings.console_admin_token().ok_or_else(|| {
            anyhow::anyhow!(
                "the console needs the gateway's admin token: set the environment variable {} \
                 (gateway.admin_token_env) to the admin token of the gateway at console.gateway_url {}",
                settings.gateway.admin_token_env,
                settings.console.gateway_url
            )
        })?;

        let options = LeptosOptions::builder()
            .output_name(OUTPUT_NAME)
            .site_root(site_root)
            .site_pkg_dir(PKG_DIR)
            .env(Env::PROD)
            .site_addr(settings.console.listen)
            .build();

        let policy = SessionPolicy {
            idle_timeout: Duration::from_secs(settings.console.session_idle_timeout_secs),
            absolute_timeout: Duration::from_secs(settings.console.session_absolute_timeout_secs),
            ..SessionPolicy::default()
        };
        let state = ConsoleState::new(&settings.console.gateway_url, token.expose(), policy.clone())
            .with_context(|| {
                format!("cannot build the HTTP client for console.gateway_url {}", settings.console.gateway_url)
            })?
            .with_max_upload_bytes(settings.gateway.max_analysis_upload_bytes)
            .with_trusted_proxies(trusted_proxies(settings)?);
        // Runs for every page render and server-function call: the state, and
        // this response's CSP nonce for the inline scripts Leptos renders.
        let context = {
            let state = state.clone();
            move || {
                provide_context(state.clone());
                let nonce = use_context::<axum::http::request::Parts>()
                    .and_then(|p| p.extensions.get::<CspNonce>().map(|n| n.0.clone()));
                if let Some(n) = nonce {
                    provide_context(leptos::nonce::Nonce::from_value(n));
                }
            }
        };

        let routes = generate_route_list(App);
        let csv_state = state.clone();
        let upload_state = state.clone();
        let router = axum::Router::new()
            .route(
                "/costs/export.csv",
                axum::routing::get(move |req: Request<Body>| app::costs::ssr::csv_export(csv_state.clone(), req)),
            )
            // The analysis upload: streamed to the gateway (session, role and CSRF checked).
            .route(
                app::analyses::UPLOAD_PATH,
                axum::routing::post(move |req: Request<Body>| app::analyses::upload::upload(upload_state.clone(), req)),
            )
            .leptos_routes_with_context(&options, routes, context.clone(), {
                let options = options.clone();
                move || shell(options.clone())
            })
            // Static files from the site root; anything else renders the app's 404 page.
            .fallback(file_and_error_handler_with_context(context, shell))
            .with_state(options);

        if let Some(warning) = public_url_warning(settings.console.listen, settings.console.public_url.as_deref()) {
            tracing::warn!("{warning}");
        }
        let public = settings.console.public_url.clone().map(|u| u.trim_end_matches('/').to_string());
        let secure = public.as_deref().is_some_and(|u| u.starts_with("https://"));
        let router = router
            .layer(axum::middleware::from_fn(malformed_input_is_400))
            .layer(axum::middleware::from_fn(move |req, next| app::security::csrf_guard(public.clone(), req, next)))
            .layer(axum::middleware::from_fn(move |req, next| security_headers(secure, req, next)));
        let router = with_sessions(router, &settings.database.url, &policy, secure).await?;

        tracing::debug!(site_root, gateway_url = %settings.console.gateway_url, secure_cookie = secure, "console ready");
        Ok(Console { router, limits: settings.console.limits() })
    }

    /// The console's router (tests serve it themselves).
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// Serves until `shutdown` resolves, then stops as [`Console::serve_until`] does.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        self.serve_until(listener, ShutdownSignal::from_future(shutdown)).await
    }

    /// Serves under the `[console]` connection limits (header and idle
    /// timeouts, `max_connections`) until `signal` asks for a stop; requests
    /// in flight then get `console.shutdown_grace_secs` (a second signal
    /// skips it) before their connections close.
    pub async fn serve_until(self, listener: tokio::net::TcpListener, signal: ShutdownSignal) -> anyhow::Result<()> {
        let phases = Phases::start(signal, self.limits.shutdown_grace, Stage::default());
        let _close_on_drop = phases.close_on_drop();
        listener::serve_router(listener, self.router, self.limits, phases).await?;
        Ok(())
    }
}

/// Adds the session layer with a store on the gateway's database (SQLite or
/// Postgres, by URL scheme; its own small pool) and starts the sweeper.
async fn with_sessions(
    router: axum::Router,
    database_url: &str,
    policy: &SessionPolicy,
    secure: bool,
) -> anyhow::Result<axum::Router> {
    fn layer<S: SessionStore + Clone>(store: S, policy: &SessionPolicy, secure: bool) -> SessionManagerLayer<S> {
        let idle = tower_sessions::cookie::time::Duration::seconds(policy.idle_timeout.as_secs() as i64);
        SessionManagerLayer::new(store)
            .with_name(SESSION_COOKIE)
            .with_http_only(true)
            .with_same_site(SameSite::Lax)
            .with_secure(secure)
            .with_path("/")
            .with_expiry(Expiry::OnInactivity(idle))
    }
    if database_url.starts_with("postgres") {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect(database_url)
            .await
            .context("cannot open the console's session database")?;
        let store = PostgresStore::new(pool);
        store.migrate().await.context("cannot create the console's session table")?;
        tokio::spawn(store.clone().continuously_delete_expired(SESSION_SWEEP));
        Ok(router.layer(layer(HashedIds::new(store), policy, secure)))
    } else {
        let path = sheepdog_gateway::config::sqlite_path(database_url)
            .ok_or_else(|| anyhow::anyhow!("database.url {database_url} names no SQLite file"))?;
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .with_context(|| format!("cannot open the console's session database {}", path.display()))?;
        let store = SqliteStore::new(pool)
            .with_table_name("console_sessions")
            .map_err(|e| anyhow::anyhow!("session table name: {e}"))?;
        store.migrate().await.context("cannot create the console's session table")?;
        tokio::spawn(store.clone().continuously_delete_expired(SESSION_SWEEP));
        Ok(router.layer(layer(HashedIds::new(store), policy, secure)))
    }
}

/// `console.trusted_proxies`, parsed (validated with the configuration already).
fn trusted_proxies(settings: &Settings) -> anyhow::Result<Vec<sheepdog_types::net::Cidr>> {
    settings
        .console
        .trusted_proxies
        .iter()
        .map(|p| sheepdog_types::net::Cidr::parse(p).map_err(|e| anyhow::anyhow!("console.trusted_proxies: {e}")))
        .collect()
}

/// The CSP nonce of one response (a request extension the Leptos context reads).
#[derive(Clone, Debug)]
pub struct CspNonce(pub String);

/// The `Content-Security-Policy` of every console response. Scripts: the
/// site's own files (`/pkg/…`), `'wasm-unsafe-eval'` to compile the wasm,
/// and the inline scripts Leptos renders (the hydration bootstrap and the
/// serialized server data), which carry this response's nonce. Styles: the
/// site's stylesheet and the migration report's inline stylesheet (by hash,
/// [`report_style_hash`]); inline `style` attributes (chart swatches,
/// meters) are allowed by `style-src-attr`, other inline `<style>` elements
/// are not.
pub fn content_security_policy(nonce: &str) -> String {
    let report = report_style_hash();
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self' '{report}'; \
         style-src-attr 'unsafe-inline'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
         object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
    )
}

/// `sha256-…` of the migration report's inline stylesheet: the analysis page
/// shows the report in a sandboxed `srcdoc` frame, which inherits this
/// policy, so its one `<style>` element is allowed by hash (nothing else inline).
pub fn report_style_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        use base64::Engine as _;
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(sheepdog_analyze::html::CSS.as_bytes());
        format!("sha256-{}", base64::engine::general_purpose::STANDARD.encode(digest))
    })
}

/// Security headers on every response (CSP with a fresh nonce, no framing,
/// no sniffing, same-origin referrers, HSTS when served over https); pages
/// (not the static bundle) are never cached, since they hold a signed-in
/// user's data.
async fn security_headers(https: bool, mut request: Request<Body>, next: Next) -> Response {
    let is_asset = request.uri().path().starts_with("/pkg/") || request.uri().path() == "/favicon.svg";
    let nonce = hex_nonce();
    request.extensions_mut().insert(CspNonce(nonce.clone()));
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&content_security_policy(&nonce)) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if https {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    if !is_asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// 128 random bits, hex (a valid CSP nonce).
fn hex_nonce() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The wasm file name the hydration script asks for. cargo-leptos sets
/// `LEPTOS_OUTPUT_NAME` while compiling, and then Leptos requests
/// `<name>.wasm`; a plain `cargo build` of this binary requests `<name>_bg.wasm`
/// (which cargo-leptos does not produce).
pub fn expected_wasm_file() -> String {
    if option_env!("LEPTOS_OUTPUT_NAME").is_some() {
        format!("{OUTPUT_NAME}.wasm")
    } else {
        format!("{OUTPUT_NAME}_bg.wasm")
    }
}

/// Fails early, with the fix, when the site has not been built.
fn check_site(site_root: &Path) -> anyhow::Result<()> {
    let pkg = site_root.join(PKG_DIR);
    let absolute = std::path::absolute(site_root).unwrap_or_else(|_| site_root.to_path_buf());
    let hint = "build it with `scripts/build-site.sh` (cargo leptos build --release), \
                or point console.site_root (SHEEPDOG_CONSOLE__SITE_ROOT) at a built site";
    if !pkg.is_dir() {
        anyhow::bail!(
            "console.site_root {} has no built site ({} is missing); {hint}",
            absolute.display(),
            pkg.display()
        );
    }
    let js = pkg.join(format!("{OUTPUT_NAME}.js"));
    if !js.is_file() {
        anyhow::bail!("console site is incomplete: {} is missing; {hint}", js.display());
    }
    let wasm = pkg.join(expected_wasm_file());
    if !wasm.is_file() {
        anyhow::bail!(
            "console site is incomplete or does not match this binary: {} is missing \
             (a binary built by plain `cargo build` looks for `{OUTPUT_NAME}_bg.wasm`; \
             build binary and site together with `cargo leptos build --release`); {hint}",
            wasm.display()
        );
    }
    Ok(())
}

/// The largest server-function error body read to decide its status.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Server functions refuse arguments that do not deserialize (or are
/// missing) before they run, and leptos answers every such error `500`:
/// an `Invalid` error body is answered `400` instead, the body kept.
async fn malformed_input_is_400(req: Request<Body>, next: axum::middleware::Next) -> axum::response::Response {
    let server_fn = req.uri().path().starts_with("/api/");
    let resp = next.run(req).await;
    if !server_fn || resp.status() != axum::http::StatusCode::INTERNAL_SERVER_ERROR {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ERROR_BODY).await else {
        return axum::response::Response::from_parts(parts, Body::empty());
    };
    if matches!(serde_json::from_slice::<app::ConsoleError>(&bytes), Ok(app::ConsoleError::Invalid(_))) {
        parts.status = axum::http::StatusCode::BAD_REQUEST;
    }
    axum::response::Response::from_parts(parts, Body::from(bytes))
}

/// Why a console reachable from other machines should name its public
/// address: without `console.public_url`, the cross-site check compares
/// `Origin` with the request's own `Host`, which a client chooses (behind a
/// reverse proxy, the proxy's address is the one to set).
fn public_url_warning(listen: std::net::SocketAddr, public_url: Option<&str>) -> Option<String> {
    if public_url.is_some() || listen.ip().is_loopback() {
        return None;
    }
    Some(format!(
        "the console listens on {listen}, which is not a loopback address, and console.public_url is unset: \
         cross-site request checks then trust the Host header the client sends; set console.public_url to the \
         address users reach (behind a reverse proxy, the proxy's https:// origin)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_console_without_its_url_is_warned_about() {
        let addr = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        assert!(public_url_warning(addr("127.0.0.1:3000"), None).is_none());
        assert!(public_url_warning(addr("[::1]:3000"), None).is_none());
        assert!(public_url_warning(addr("0.0.0.0:3000"), Some("https://console.example.com")).is_none());
        let w = public_url_warning(addr("0.0.0.0:3000"), None).unwrap();
        assert!(w.contains("console.public_url") && w.contains("0.0.0.0:3000"), "{w}");
    }

    #[test]
    fn missing_site_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("sheepdog-no-site-{}", std::process::id()));
        let err = check_site(&dir).unwrap_err().to_string();
        assert!(err.contains("has no built site"), "{err}");
        assert!(err.contains("build-site.sh"), "{err}");
    }

    #[test]
    fn site_with_bundle_passes() {
        let dir = std::env::temp_dir().join(format!("sheepdog-site-{}", std::process::id()));
        let pkg = dir.join(PKG_DIR);
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::write(pkg.join(format!("{OUTPUT_NAME}.js")), "").unwrap();
        assert!(check_site(&dir).is_err(), "wasm still missing");
        std::fs::write(pkg.join(expected_wasm_file()), "").unwrap();
        check_site(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
