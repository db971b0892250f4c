//! The error every console server function returns, so the UI can tell
//! "forbidden" from "not found" from "try again" without parsing strings.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ConsoleError {
    /// The signed-in user may not do this.
    #[error("you are not allowed to do this")]
    Forbidden,
    /// The thing asked for does not exist (or is not visible to this user).
    #[error("not found")]
    NotFound,
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

impl FromServerFnError for ConsoleError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        ConsoleError::Transport(value.to_string())
    }
}
