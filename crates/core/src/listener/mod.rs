//! Connection limits and shutdown of both listeners (SPEC §10), shared by
//! the gateway's workers ([`crate::workers`]) and the console
//! ([`serve_router`]).
//!
//! Each connection is served by hyper's HTTP/1.1 server under a watchdog:
//!
//! - **`header_read_timeout`**: a connection that has not sent a whole
//!   request head this long after it opened, or after the first byte of its
//!   next request, is closed.
//! - **`idle_timeout`**: a keep-alive connection with no request for this
//!   long after its last answer ended is closed. A request in flight (a
//!   long stream, a slow upstream) never counts as idle.
//! - **`max_connections`**: at the cap the listener stops accepting; more
//!   connections wait in the kernel's backlog (none is accepted and closed).
//! - **shutdown**: see [`Phases`].
//!
//! Cost per request. hyper's own header timer (`Builder::header_read_timeout`)
//! allocates a boxed `Sleep` for every request head and registers it in (and
//! removes it from) the runtime's timer wheel; it also runs while a
//! keep-alive connection waits for its next request, so it cannot be told
//! apart from the idle timeout. It is not used. Instead each connection has
//! one word of state — head / busy / idle, and since when — written as the
//! connection moves: the first byte read while idle (head, clock read), the
//! service called (busy, one store), the answer's body dropped (idle, clock
//! read). One `Sleep` per connection, armed when the connection opens,
//! enforces the deadline lazily: when it fires it reads the state and either
//! closes the connection or re-arms for the state's deadline. It re-arms at
//! most `min(header_read_timeout, idle_timeout)` ahead, so that a deadline
//! moving earlier (an idle connection starting a head) is still met exactly.
//! Per request that is two monotonic clock reads (vDSO, ~20 ns each), four
//! relaxed atomic stores and loads, and one `Arc` clone — no timer
//! registration, no allocation; per connection, one timer registration per
//! ten seconds (the default header timeout) at most. The shutdown stage is
//! a relaxed atomic load per wake-up instead of polling a cancellation
//! future (which locks a mutex shared by every connection of the process).

mod connection;
mod router;
mod shutdown;
mod watch;

pub use crate::config::ListenerLimits;
pub use connection::{serve_connection, ConnectionCap, Ended};
pub use router::serve_router;
pub use shutdown::{CloseOnDrop, Phases, ShutdownSignal, Stage, CLOSE_FLUSH};
pub(crate) use watch::delegate_async_write;
pub use watch::Tracked;
