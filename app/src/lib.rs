//! The Sheepdog operations console: components, routes and server functions.
//!
//! Compiled twice: with `ssr` into the `sheepdog` binary (server rendering and
//! the server functions' bodies) and with `hydrate` into the wasm `frontend`
//! (which makes the server-rendered HTML interactive). Server-only
//! dependencies are optional and only switched on by `ssr`.

pub mod error;
pub mod health;
mod home;
mod layout;
#[cfg(feature = "ssr")]
pub mod state;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Link, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::StaticSegment;

pub use error::ConsoleError;
#[cfg(feature = "ssr")]
pub use state::ConsoleState;

/// The name cargo-leptos gives the site's JS, wasm and CSS files
/// (`[[workspace.metadata.leptos]] name`).
pub const OUTPUT_NAME: &str = "sheepdog";

/// The HTML document around [`App`], rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The console application: the same tree renders on the server and hydrates
/// in the browser.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    view! {
        <Stylesheet id="leptos" href=format!("/pkg/{OUTPUT_NAME}.css")/>
        <Link rel="icon" type_="image/svg+xml" href="/favicon.svg"/>
        <Title formatter=|page: String| {
            if page.is_empty() { "Sheepdog console".to_string() } else { format!("{page} · Sheepdog console") }
        }/>
        <Router>
            <layout::Layout>
                <Routes fallback=layout::NotFound>
                    <Route path=StaticSegment("") view=home::HomePage/>
                </Routes>
            </layout::Layout>
        </Router>
    }
}
