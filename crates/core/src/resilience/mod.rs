//! Resilience: retries with backoff ([`retry`]) and per-upstream circuit
//! breakers ([`breaker`]). The attempt loop that uses them (route, retries,
//! fallbacks) is in `proxy/attempts.rs`; the order of routes comes from
//! `routing.rs`.

pub mod breaker;
pub mod retry;
