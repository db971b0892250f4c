//! Integration tests: the real gateway on port 0, local provider emulators,
//! SQLite and Postgres.

mod accounting;
mod admin_api;
mod admission;
mod analyses;
mod bad_input;
mod connections;
mod contract;
mod embeddings;
mod faults;
mod holes;
mod messages;
mod pools;
mod resilience;
mod rollouts;
mod scale_out;
mod storage;
mod tenancy;
mod upstreams;
