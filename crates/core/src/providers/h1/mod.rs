//! The upstream client's path for plain `http://` upstreams (model servers
//! on the same host or network, sidecars, emulators): HTTP/1.1 spoken by the
//! request's own task over connections kept in an idle list per thread.
//!
//! There is no connection task: the request is written and its answer read
//! by the task that serves the client, so a call costs no channel hand-off
//! and no wake-up of another task (hyper's client connection, used before,
//! cost about an eighth of a proxied request's instructions). A request takes
//! the most recently used idle connection of its thread (or connects); the
//! connection goes back to the list when its answer has been read to the end
//! — or, when the answer is abandoned, if the rest of it is already on hand
//! (otherwise it is closed). A reused connection that the upstream closed
//! while it idled is noticed before the request is written, and the request
//! goes out on a new connection; a request that was written is never sent
//! twice.
//!
//! What is spoken: `POST` with a `Content-Length` body; answers framed by
//! `Content-Length`, by `Transfer-Encoding: chunked` (extensions and
//! trailers skipped) or by the connection's end; interim `1xx` answers
//! skipped; `Connection: close` and HTTP/1.0 answers honoured. Anything
//! malformed fails the call and closes the connection.

mod body;
mod conn;
mod error;
mod framing;
mod head;
mod request;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;

pub use body::Body;
pub use error::SendError;
pub use request::{post, Answer};

#[cfg(test)]
mod tests;
