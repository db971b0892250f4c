//! The error every console server function returns, so the UI can tell
//! "sign in" from "forbidden" from "not found" from "fix the form" from
//! "try again" without parsing strings.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ConsoleError {
    /// No valid session: sign in (again).
    #[error("your session has ended; sign in again")]
    Unauthenticated,
    /// The signed-in user may not do this.
    #[error("you are not allowed to do this")]
    Forbidden,
    /// The thing asked for does not exist (or is not visible to this user).
    #[error("not found")]
    NotFound,
    /// The input was refused; the message says which field and why.
    #[error("{0}")]
    Invalid(String),
    /// The change clashes with existing data (duplicate name, alias, email).
    #[error("{0}")]
    Conflict(String),
    /// Wrong email or password (the same answer for both).
    #[error("wrong email or password")]
    InvalidCredentials,
    /// Too many failed sign-ins; try again after this many seconds.
    #[error("too many failed sign-ins; try again in {0} s")]
    TooManyAttempts(u64),
    /// A dependency (usually the gateway) did not answer; retrying may help.
    #[error("the service is unavailable right now; try again")]
    Unavailable,
    /// Something failed on the server; the cause is in the server's log.
    #[error("internal error; see the server log")]
    Internal,
    /// The server function call itself failed (network, encoding).
    #[error("request failed: {0}")]
    Transport(String),
}

impl ConsoleError {
    /// A stable machine-readable name (`data-error` attributes, tests).
    pub fn code(&self) -> &'static str {
        match self {
            ConsoleError::Unauthenticated => "unauthenticated",
            ConsoleError::Forbidden => "forbidden",
            ConsoleError::NotFound => "not_found",
            ConsoleError::Invalid(_) => "invalid",
            ConsoleError::Conflict(_) => "conflict",
            ConsoleError::InvalidCredentials => "invalid_credentials",
            ConsoleError::TooManyAttempts(_) => "too_many_attempts",
            ConsoleError::Unavailable => "unavailable",
            ConsoleError::Internal => "internal",
            ConsoleError::Transport(_) => "transport",
        }
    }
}

impl FromServerFnError for ConsoleError {
    type Encoder = JsonEncoding;

    /// Arguments that do not deserialize (or are missing) are the caller's
    /// mistake: `Invalid`, which the console answers `400` (see
    /// `server/src/console.rs`); anything else is `Transport`.
    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Args(why) => ConsoleError::Invalid(format!("malformed input: {why}")),
            ServerFnErrorErr::MissingArg(name) => ConsoleError::Invalid(format!("missing field: {name}")),
            other => ConsoleError::Transport(other.to_string()),
        }
    }
}
