//! Why an upstream answer's body could not be read: the error both body
//! readers give (hyper's for `https://`, [`super::h1`]'s for `http://`), so
//! the client ([`super::http`]), the HTTP/1.1 reader and the SSE reader
//! ([`super::sse`]) share it without importing each other.

/// Why an upstream answer's body could not be read to its end.
#[derive(Debug)]
pub enum BodyError {
    Hyper(hyper::Error),
    Io(std::io::Error),
    /// The upstream broke HTTP/1.1's framing (or closed the connection early).
    Protocol(&'static str),
}

impl BodyError {
    pub fn is_timeout(&self) -> bool {
        match self {
            BodyError::Hyper(e) => e.is_timeout(),
            BodyError::Io(e) => e.kind() == std::io::ErrorKind::TimedOut,
            BodyError::Protocol(_) => false,
        }
    }
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Hyper(e) => write!(f, "{e}"),
            BodyError::Io(e) => write!(f, "{e}"),
            BodyError::Protocol(why) => f.write_str(why),
        }
    }
}
