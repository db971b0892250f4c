//! The `sheepdog` binary's library half: the console listener, so that
//! integration tests can serve the real console in-process.

#![recursion_limit = "256"]

pub mod console;
pub mod sessions;
