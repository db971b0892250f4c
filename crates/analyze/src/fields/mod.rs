//! Which values of a log record matter, where they are found, and how they
//! become a [`Record`].
//!
//! Every input format goes through one table of field paths (the union of
//! what applications, LiteLLM and Sheepdog write; see [`default_paths`]),
//! compiled into a small trie of lower-cased keys. A JSON record is read
//! with serde in one pass: keys on a wanted path are descended into, wanted
//! leaves are kept as borrowed scalars, and everything else (messages,
//! choices, …) is skipped with [`IgnoredAny`](serde::de::IgnoredAny)
//! without allocating. CSV columns are matched against the same trie once
//! per file. A JSON object written as a string (LiteLLM's `metadata` column,
//! stringified request bodies) is parsed on demand when a wanted path goes
//! through it.
//!
//! `field`: the canonical fields and their default paths; `slots`: the
//! values kept from one record; `plan`: the compiled trie of paths; `json`:
//! reading a JSON record (or a CSV cell) into slots; `record`: slots
//! resolved into a [`Record`].

mod field;
mod json;
mod plan;
mod record;
mod slots;

pub use field::{default_paths, Field, DEFAULT_TENANT_PATHS, FIELDS};
pub use plan::Plan;
pub use record::{Record, TimestampAt};
pub use slots::{Scalar, Slots, MAX_SLOTS};

#[cfg(test)]
mod tests;
