//! Connections: opening one, reading from it, and this thread's idle list
//! of connections whose last answer was read to the end.

use std::cell::RefCell;
use std::io;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hyper::http::uri::Authority;
use hyper::Uri;
use tokio::net::TcpStream;

use super::error::SendError;

/// Idle connections kept per upstream (host:port) and thread.
const MAX_IDLE_PER_UPSTREAM: usize = 256;
/// An idle connection older than this is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Room made in the read buffer before each read.
pub(super) const READ_SIZE: usize = 16 * 1024;

/// An open connection and what has been read from it but not yet used.
pub(super) struct Conn {
    pub(super) stream: TcpStream,
    pub(super) buf: BytesMut,
}

impl Conn {
    /// Whether the upstream left this idle connection usable: nothing to
    /// read, neither its end nor bytes nobody asked for. (Readiness comes from
    /// the runtime's poller; a socket not marked readable costs no system call.)
    fn is_open(&mut self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Reads what the socket has into the buffer (0: the upstream closed).
    pub(super) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.buf.reserve(READ_SIZE);
        loop {
            ready!(self.stream.poll_read_ready(cx))?;
            match self.stream.try_read_buf(&mut self.buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                result => return Poll::Ready(result),
            }
        }
    }
}

/// One upstream's idle connections on this thread, most recently used last.
struct IdleList {
    client: u64,
    authority: Authority,
    conns: Vec<(Conn, Instant)>,
}

thread_local! {
    static IDLE: RefCell<Vec<IdleList>> = const { RefCell::new(Vec::new()) };
}

/// Gives a connection whose last answer was read to the end back to this
/// thread's idle list.
pub(super) fn give_back(client: u64, authority: &Authority, conn: Conn) {
    let now = Instant::now();
    let _ = IDLE.try_with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = match idle.iter().position(|l| l.client == client && &l.authority == authority) {
            Some(i) => &mut idle[i],
            None => {
                idle.push(IdleList { client, authority: authority.clone(), conns: Vec::new() });
                let last = idle.len() - 1;
                &mut idle[last]
            }
        };
        // The least recently used connection goes first when it has idled
        // too long or the list is full.
        if list.conns.first().is_some_and(|(_, since)| now.duration_since(*since) > IDLE_TIMEOUT)
            || list.conns.len() >= MAX_IDLE_PER_UPSTREAM
        {
            list.conns.remove(0);
        }
        list.conns.push((conn, now));
    });
}

/// The most recently used open idle connection to `authority`, if any.
pub(super) fn checkout(client: u64, authority: &Authority) -> Option<Conn> {
    IDLE.try_with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.iter_mut().find(|l| l.client == client && &l.authority == authority)?;
        while let Some((mut conn, since)) = list.conns.pop() {
            if since.elapsed() <= IDLE_TIMEOUT && conn.is_open() {
                return Some(conn);
            }
        }
        None
    })
    .ok()
    .flatten()
}

/// Opens a connection to `uri`'s host and port (80 by default).
pub(super) async fn connect(uri: &Uri, connect_timeout: Duration) -> Result<Conn, SendError> {
    let host = uri.host().ok_or(SendError::Connect)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(80);
    let attempt = async {
        let mut last = None;
        for addr in tokio::net::lookup_host((host, port)).await? {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address")))
    };
    let stream = match tokio::time::timeout(connect_timeout, attempt).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "upstream connect failed");
            return Err(SendError::Connect);
        }
        Err(_) => return Err(SendError::Connect),
    };
    // Streamed requests and answers are small writes: no Nagle delay.
    let _ = stream.set_nodelay(true);
    Ok(Conn { stream, buf: BytesMut::new() })
}
