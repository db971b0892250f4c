//! The HTML document and the console application: the [`App`] component
//! with every route, each page from its domain module.

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Link, MetaTags, Stylesheet, Title};
use leptos_router::components::{ParentRoute, Route, Router, Routes};
use leptos_router::{path, SsrMode};

use crate::{analyses, audit, costs, layout, overview, portal, rollouts, tenants, users};

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
/// in the browser. Every route renders completely on the server before the
/// response is sent (`SsrMode::Async`), so pages read without JavaScript and
/// sign-in redirects are real HTTP redirects.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Runs in the browser only, once the page is interactive: tests (and
    // curious people) can tell a hydrated page by `<body data-hydrated>`.
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });

    view! {
        <Stylesheet id="leptos" href=format!("/pkg/{OUTPUT_NAME}.css")/>
        <Link rel="icon" type_="image/svg+xml" href="/favicon.svg"/>
        <Title formatter=|page: String| {
            if page.is_empty() { "Sheepdog console".to_string() } else { format!("{page} · Sheepdog") }
        }/>
        <Router>
            <Routes fallback=layout::NotFound>
                <Route path=path!("/login") view=layout::LoginPage ssr=SsrMode::Async/>
                <ParentRoute path=path!("/portal") view=layout::PortalLayout ssr=SsrMode::Async>
                    <Route path=path!("") view=portal::PortalHome ssr=SsrMode::Async/>
                    <Route path=path!("keys") view=portal::PortalKeysPage ssr=SsrMode::Async/>
                </ParentRoute>
                <ParentRoute path=path!("") view=layout::ConsoleLayout ssr=SsrMode::Async>
                    <Route path=path!("") view=overview::OverviewPage ssr=SsrMode::Async/>
                    <Route path=path!("tenants") view=tenants::TenantsPage ssr=SsrMode::Async/>
                    <Route path=path!("tenants/new") view=tenants::OnboardPage ssr=SsrMode::Async/>
                    <Route path=path!("tenants/:id") view=tenants::TenantDetailPage ssr=SsrMode::Async/>
                    <Route path=path!("costs") view=costs::CostsPage ssr=SsrMode::Async/>
                    <Route path=path!("audit") view=audit::AuditPage ssr=SsrMode::Async/>
                    <Route path=path!("rollouts") view=rollouts::RolloutsPage ssr=SsrMode::Async/>
                    <Route path=path!("rollouts/:id") view=rollouts::RolloutDetailPage ssr=SsrMode::Async/>
                    <Route path=path!("analyses") view=analyses::AnalysesPage ssr=SsrMode::Async/>
                    <Route path=path!("users") view=users::UsersPage ssr=SsrMode::Async/>
                </ParentRoute>
            </Routes>
        </Router>
    }
}
