//! The overview page (a placeholder until the console's real pages land).

use leptos::prelude::*;
use leptos_meta::Title;

use crate::health::GatewayHealthCard;

#[component]
pub fn HomePage() -> impl IntoView {
    // Starts `false` on the server and on the first client render (so
    // hydration matches), then flips in an effect, which only runs in the
    // browser once the page is interactive.
    let (hydrated, set_hydrated) = signal(false);
    Effect::new(move |_| set_hydrated.set(true));
    let (details_open, set_details_open) = signal(false);

    view! {
        <Title text="Overview"/>
        <section class="hero">
            <h1 data-testid="page-title">"Sheepdog console"</h1>
            <p class="lede" data-testid="coming-soon">
                "The full operations console is coming: tenants, keys, limits and budgets, "
                "cost attribution charts, rollouts and the audit log."
            </p>
        </section>
        <div class="grid">
            <GatewayHealthCard/>
            <section class="card" aria-labelledby="this-page-title">
                <h2 id="this-page-title">"This page"</h2>
                <p class="muted">
                    "Rendered: "
                    <span
                        class="mode"
                        data-testid="render-mode"
                        data-state=move || if hydrated.get() { "hydrated" } else { "server" }
                    >
                        {move || if hydrated.get() { "interactive (hydrated)" } else { "server-rendered" }}
                    </span>
                </p>
                <div class="card-row">
                    <button
                        class="button"
                        data-testid="details-toggle"
                        aria-expanded=move || details_open.get().to_string()
                        on:click=move |_| set_details_open.update(|open| *open = !*open)
                    >
                        {move || if details_open.get() { "Hide details" } else { "Show details" }}
                    </button>
                </div>
                <Show when=move || details_open.get()>
                    <p class="details" data-testid="details">
                        "The server rendered this HTML with Leptos; WebAssembly in your browser then "
                        "hydrated it, which is why this button works."
                    </p>
                </Show>
            </section>
        </div>
    }
}
