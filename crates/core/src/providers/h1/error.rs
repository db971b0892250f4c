//! Why a request got no answer head.

use std::io;

/// Why a request got no answer head.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be made (resolution, refusal, timeout).
    Connect,
    /// The connection failed while sending or waiting for the answer.
    Io(io::Error),
    /// The upstream closed the connection or answered with a malformed head.
    Protocol(&'static str),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect => f.write_str("no connection"),
            SendError::Io(e) => write!(f, "{e}"),
            SendError::Protocol(why) => f.write_str(why),
        }
    }
}
