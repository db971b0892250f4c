//! Page frames: the operator console (top bar with navigation by role), the
//! tenant portal, the sign-in page and the 404 page. Each frame checks the
//! session on the server first: no session → `/login?next=…`; the wrong kind
//! of user → the other frame.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::{Outlet, Redirect, A};
use leptos_router::hooks::{use_location, use_query_map};
use sheepdog_types::Role;

use crate::auth::{whoami, Login, Logout, SessionUser};
use crate::components::{ErrorBox, Loading};
use crate::error::ConsoleError;

fn login_path(path: &str) -> String {
    if path.is_empty() || path == "/" {
        "/login".into()
    } else {
        format!("/login?next={}", crate::format::format_url_component(path))
    }
}

/// Which frame a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Frame {
    Console,
    Portal,
}

fn guarded(frame: Frame) -> impl IntoView {
    let user = Resource::new(|| (), |_| whoami());
    let location = use_location();
    let here = move || format!("{}{}", location.pathname.get_untracked(), location.search.get_untracked());
    view! {
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match user.await {
                    Ok(Some(u)) => {
                        match (frame, u.role) {
                            (Frame::Console, Role::Tenant) => view! { <Redirect path="/portal"/> }.into_any(),
                            (Frame::Portal, r) if r != Role::Tenant => view! { <Redirect path="/"/> }.into_any(),
                            (Frame::Console, _) => view! { <ConsoleShell user=u/> }.into_any(),
                            (Frame::Portal, _) => view! { <PortalShell user=u/> }.into_any(),
                        }
                    }
                    Ok(None) | Err(ConsoleError::Unauthenticated) => {
                        view! { <Redirect path=login_path(&here())/> }.into_any()
                    }
                    Err(e) => view! { <main class="page"><ErrorBox error=e/></main> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// The operator console's frame (admin, operator, viewer).
#[component]
pub fn ConsoleLayout() -> impl IntoView {
    guarded(Frame::Console)
}

/// The tenant portal's frame (tenant users).
#[component]
pub fn PortalLayout() -> impl IntoView {
    guarded(Frame::Portal)
}

#[component]
fn UserMenu(user: SessionUser) -> impl IntoView {
    let logout = ServerAction::<Logout>::new();
    view! {
        <div class="user-menu">
            <span class="user-email" data-testid="user-email">{user.email.clone()}</span>
            <span class="pill pill-role" data-testid="user-role">{user.role.as_str()}</span>
            <ActionForm action=logout attr:class="inline-form">
                <button type="submit" class="button button-ghost" data-testid="logout">"Sign out"</button>
            </ActionForm>
        </div>
    }
}

#[component]
fn ConsoleShell(user: SessionUser) -> impl IntoView {
    let admin = user.is_admin();
    let operate = user.can_operate();
    provide_context(user.clone());
    view! {
        <header class="topbar">
            <a class="brand" href="/" data-testid="brand">
                <span class="brand-mark" aria-hidden="true">"◆"</span>
                "Sheepdog"
            </a>
            <MainNav>
                <A href="/" exact=true>"Overview"</A>
                <A href="/tenants">"Tenants"</A>
                <A href="/costs">"Cost attribution"</A>
                <A href="/audit">"Audit log"</A>
                {admin.then(|| view! { <A href="/users">"Users"</A> })}
                <A href="/rollouts" attr:data-testid="nav-rollouts">"Rollouts"</A>
                {operate.then(|| view! { <A href="/analyses" attr:data-testid="nav-analyses">"Analysis"</A> })}
            </MainNav>
            <UserMenu user=user/>
        </header>
        <main class="page">
            <Outlet/>
        </main>
        <footer class="footer">"Sheepdog · multi-tenant LLM gateway · times in UTC"</footer>
    }
}

/// The main navigation: a row of links, or below 768 px a "Menu" button
/// (keyboard operable, `aria-expanded`) that shows them as a list; following
/// a link closes it.
#[component]
fn MainNav(children: Children) -> impl IntoView {
    let open = RwSignal::new(false);
    view! {
        <button
            type="button"
            class="nav-toggle"
            aria-controls="main-nav"
            aria-expanded=move || open.get().to_string()
            data-testid="nav-toggle"
            on:click=move |_| open.update(|o| *o = !*o)
        >
            <span aria-hidden="true">"☰ "</span>
            "Menu"
        </button>
        <nav
            id="main-nav"
            class=move || if open.get() { "nav nav-open" } else { "nav" }
            aria-label="Main"
            data-testid="main-nav"
            on:click=move |_| open.set(false)
        >
            {children()}
        </nav>
    }
}

#[component]
fn PortalShell(user: SessionUser) -> impl IntoView {
    provide_context(user.clone());
    view! {
        <header class="topbar topbar-portal">
            <a class="brand" href="/portal" data-testid="brand">
                <span class="brand-mark" aria-hidden="true">"◆"</span>
                "Sheepdog"
                <span class="brand-sub">"tenant portal"</span>
            </a>
            <MainNav>
                <A href="/portal" exact=true>"Usage"</A>
                <A href="/portal/keys">"API keys"</A>
            </MainNav>
            <UserMenu user=user/>
        </header>
        <main class="page">
            <Outlet/>
        </main>
        <footer class="footer">"Sheepdog · your organisation's usage, limits and keys · times in UTC"</footer>
    }
}

/// The sign-in page (works without JavaScript: a plain form POST).
#[component]
pub fn LoginPage() -> impl IntoView {
    let login = ServerAction::<Login>::new();
    let query = use_query_map();
    let next = move || query.with_untracked(|q| q.get("next").unwrap_or_default());
    let user = Resource::new(|| (), |_| whoami());
    view! {
        <Title text="Sign in"/>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                match user.await {
                    Ok(Some(u)) => view! { <Redirect path=u.home()/> }.into_any(),
                    _ => ().into_any(),
                }
            })}
        </Suspense>
        <main class="login">
            <div class="login-card">
                <div class="brand brand-dark">
                    <span class="brand-mark" aria-hidden="true">"◆"</span>
                    "Sheepdog"
                </div>
                <h1 data-testid="page-title">"Sign in"</h1>
                <p class="muted">"Operators and tenant users sign in with their email and password."</p>
                <ActionForm action=login attr:class="form" attr:data-testid="login-form">
                    <input type="hidden" name="next" value=next/>
                    <label>
                        "Email"
                        <input type="email" name="email" autocomplete="username" required=true data-testid="login-email"/>
                    </label>
                    <label>
                        "Password"
                        <input
                            type="password"
                            name="password"
                            autocomplete="current-password"
                            required=true
                            data-testid="login-password"
                        />
                    </label>
                    <button type="submit" class="button button-wide" data-testid="login-submit">
                        {move || if login.pending().get() { "Signing in…" } else { "Sign in" }}
                    </button>
                </ActionForm>
                {move || {
                    login
                        .value()
                        .get()
                        .and_then(|r| r.err())
                        .map(|e| {
                            let code = e.code();
                            view! {
                                <p class="alert alert-error" role="alert" data-testid="login-error" data-error=code>
                                    {match e {
                                        ConsoleError::InvalidCredentials => "Wrong email or password.".to_string(),
                                        other => other.to_string(),
                                    }}
                                </p>
                            }
                        })
                }}
            </div>
        </main>
    }
}

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
        res.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Not found"/>
        <main class="page">
            <section class="hero">
                <h1 data-testid="not-found">"Page not found"</h1>
                <p class="lede">
                    <a href="/">"Back to the console"</a>
                </p>
            </section>
        </main>
    }
}
