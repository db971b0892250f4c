//! The wasm entry point of the console. cargo-leptos builds this crate to
//! `pkg/sheepdog.wasm`; the `HydrationScripts` in the server-rendered page
//! load it and call [`hydrate`], which attaches the reactive system to the
//! HTML the server already sent.

#![recursion_limit = "256"]

use wasm_bindgen::prelude::wasm_bindgen;

#[wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
