//! The console listener: the Leptos app (`app` crate) rendered on the server,
//! its server functions, and the built site (wasm, JS, CSS, public assets)
//! served from `console.site_root`.
//!
//! The site is built by `cargo leptos build --release` (scripts/build-site.sh),
//! which writes `target/site` and `target/release/sheepdog`. The binary does
//! not need cargo-leptos at run time: the Leptos options are built here from
//! [`Settings`], not read from `Cargo.toml` or `LEPTOS_*` variables.

use std::future::Future;
use std::path::Path;

use anyhow::Context;
use app::{shell, App, ConsoleState, OUTPUT_NAME};
use leptos::config::{Env, LeptosOptions};
use leptos::prelude::provide_context;
use leptos_axum::{file_and_error_handler_with_context, generate_route_list, LeptosRoutes};
use sheepdog_gateway::config::Settings;

/// Directory under the site root that holds the wasm, JS and CSS bundle.
const PKG_DIR: &str = "pkg";

pub struct Console {
    router: axum::Router,
}

impl Console {
    pub fn new(settings: &Settings) -> anyhow::Result<Console> {
        let site_root = settings.console.site_root.as_str();
        check_site(Path::new(site_root))?;

        let options = LeptosOptions::builder()
            .output_name(OUTPUT_NAME)
            .site_root(site_root)
            .site_pkg_dir(PKG_DIR)
            .env(Env::PROD)
            .site_addr(settings.console.listen)
            .build();

        let state = ConsoleState::new(&settings.console.gateway_url).with_context(|| {
            format!("cannot build the HTTP client for console.gateway_url {}", settings.console.gateway_url)
        })?;
        // Runs for every page render and server-function call.
        let context = move || provide_context(state.clone());

        let routes = generate_route_list(App);
        let router = axum::Router::new()
            .leptos_routes_with_context(&options, routes, context.clone(), {
                let options = options.clone();
                move || shell(options.clone())
            })
            // Static files from the site root; anything else renders the app's 404 page.
            .fallback(file_and_error_handler_with_context(context, shell))
            .with_state(options);

        tracing::debug!(site_root, gateway_url = %settings.console.gateway_url, "console ready");
        Ok(Console { router })
    }

    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        axum::serve(listener, self.router).with_graceful_shutdown(shutdown).await?;
        Ok(())
    }
}

/// The wasm file name the hydration script asks for. cargo-leptos sets
/// `LEPTOS_OUTPUT_NAME` while compiling, and then Leptos requests
/// `<name>.wasm`; a plain `cargo build` of this binary requests `<name>_bg.wasm`
/// (which cargo-leptos does not produce).
fn expected_wasm_file() -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
