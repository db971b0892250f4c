//! The page frame: top bar with navigation, content area, footer.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

/// Sections of the console that are planned but not built yet.
const COMING: [&str; 5] = ["Tenants", "Keys", "Usage & cost", "Rollouts", "Audit log"];

#[component]
pub fn Layout(children: Children) -> impl IntoView {
    view! {
        <header class="topbar">
            <a class="brand" href="/" data-testid="brand">
                <span class="brand-mark" aria-hidden="true">"◆"</span>
                "Sheepdog"
            </a>
            <nav class="nav" aria-label="Main">
                <A href="/" exact=true>"Overview"</A>
                {COMING
                    .iter()
                    .map(|name| view! { <span class="nav-soon" aria-disabled="true" title="Coming soon">{*name}</span> })
                    .collect_view()}
            </nav>
        </header>
        <main class="page">{children()}</main>
        <footer class="footer">"Sheepdog · multi-tenant LLM gateway"</footer>
    }
}

#[component]
pub fn NotFound() -> impl IntoView {
    view! {
        <Title text="Not found"/>
        <section class="hero">
            <h1 data-testid="not-found">"Page not found"</h1>
            <p class="lede">
                <a href="/">"Back to the overview"</a>
            </p>
        </section>
    }
}
