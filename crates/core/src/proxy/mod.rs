//! `POST /v1/chat/completions`, `/v1/embeddings`, and `/v1/messages` and
//! `/v1/responses` (translated at the edge, `edge.rs`): the request path, one phase per function:
//! authenticate → admit → route → call the provider → respond, with
//! accounting on the side (a `Pending` record, see `pending.rs`, finished
//! exactly once: on success, on failure, or when the client goes away).

mod admit;
mod answer;
mod attempts;
mod closing;
mod complete;
pub mod edge;
mod estimate;
mod handler;
mod pending;
mod stream;

pub use crate::request::X_REQUEST_ID;
pub use admit::authenticate;
pub use answer::{X_SHEEPDOG_MODEL, X_SHEEPDOG_PROVIDER};
pub use handler::{chat_completions, count_tokens, embeddings, messages, responses};
