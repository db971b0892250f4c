//! The upstream client's path for plain `http://` upstreams (model servers
//! on the same host or network, sidecars, emulators): HTTP/1.1 connections
//! made with hyper's connection API and kept in an idle list per thread.
//!
//! hyper-util's pooled client (still used for `https://`) does more per
//! request than such an upstream needs: a pool keyed by a case-insensitively
//! hashed authority (hashed three times a request), a race between checkout
//! and connect, and a task spawned per response to give the connection back.
//! Here a request takes the most recently used idle connection of its thread
//! (or connects), and the connection returns to the list when its answer is
//! dropped — read to the end, or abandoned (hyper then drains the rest if it
//! is already buffered, or closes the connection, which the next checkout
//! notices). A request that a reused connection could not send (the upstream
//! closed it while idle) is sent again on a new connection; a request that
//! was sent is never sent twice.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::{Builder, SendRequest};
use hyper::header::{HeaderMap, HeaderValue, HOST};
use hyper::http::uri::{Authority, PathAndQuery};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;

type Sender = SendRequest<Full<Bytes>>;

/// Idle connections kept per upstream (host:port) and thread.
const MAX_IDLE_PER_UPSTREAM: usize = 256;
/// An idle connection older than this is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// One upstream's idle connections on this thread, most recently used last.
struct IdleList {
    client: u64,
    authority: Authority,
    senders: Vec<(Sender, Instant)>,
}

thread_local! {
    static IDLE: RefCell<Vec<IdleList>> = const { RefCell::new(Vec::new()) };
}

/// Why a request could not be sent.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be made (resolution, refusal, timeout).
    Connect,
    /// The connection failed while sending or waiting for the answer.
    Request(hyper::Error),
}

/// A connection lent to one request. Dropping it gives the connection back to
/// this thread's idle list (unless it is closed).
pub struct Lease {
    client: u64,
    authority: Authority,
    sender: Option<Sender>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(sender) = self.sender.take() else { return };
        if sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let _ = IDLE.try_with(|idle| {
            let mut idle = idle.borrow_mut();
            let list = match idle.iter().position(|l| l.client == self.client && l.authority == self.authority) {
                Some(i) => &mut idle[i],
                None => {
                    idle.push(IdleList { client: self.client, authority: self.authority.clone(), senders: Vec::new() });
                    let last = idle.len() - 1;
                    &mut idle[last]
                }
            };
            // The least recently used connection goes first when it has idled
            // too long or the list is full.
            if list.senders.first().is_some_and(|(_, since)| now.duration_since(*since) > IDLE_TIMEOUT)
                || list.senders.len() >= MAX_IDLE_PER_UPSTREAM
            {
                list.senders.remove(0);
            }
            list.senders.push((sender, now));
        });
    }
}

/// The most recently used open idle connection to `authority`, if any.
fn checkout(client: u64, authority: &Authority) -> Option<Sender> {
    IDLE.try_with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.iter_mut().find(|l| l.client == client && &l.authority == authority)?;
        while let Some((sender, since)) = list.senders.pop() {
            if !sender.is_closed() && since.elapsed() <= IDLE_TIMEOUT {
                return Some(sender);
            }
        }
        None
    })
    .ok()
    .flatten()
}

/// Opens a connection to `uri`'s host and port (80 by default) and starts its
/// I/O task on the current runtime.
async fn connect(uri: &Uri, connect_timeout: Duration) -> Result<Sender, SendError> {
    let host = uri.host().ok_or(SendError::Connect)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(80);
    let attempt = async {
        let mut last = None;
        for addr in tokio::net::lookup_host((host, port)).await? {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address")))
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
    let (sender, conn) = Builder::new().handshake(TokioIo::new(stream)).await.map_err(|e| {
        tracing::debug!(error = %e, "upstream handshake failed");
        SendError::Connect
    })?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

/// Sends a POST to `uri` (which must be `http://…`) and waits for the answer's
/// head. The answer's body is read by the caller, holding the [`Lease`].
pub async fn post(
    client: u64,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    connect_timeout: Duration,
) -> Result<(hyper::Response<hyper::body::Incoming>, Lease), SendError> {
    let authority = uri.authority().cloned().ok_or(SendError::Connect)?;
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = Method::POST;
    // Origin form on the wire (`/v1/chat/completions`), the host in `Host`.
    *request.uri_mut() = Uri::from(uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/")));
    *request.headers_mut() = headers;
    if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
        request.headers_mut().insert(HOST, host);
    }

    // A reused connection: if it turns out closed before the request was
    // written, the request comes back and goes out on a new connection.
    while let Some(mut sender) = checkout(client, &authority) {
        if sender.ready().await.is_err() {
            continue;
        }
        match sender.try_send_request(request).await {
            Ok(response) => return Ok((response, Lease { client, authority, sender: Some(sender) })),
            Err(mut e) => match e.take_message() {
                Some(unsent) => request = unsent,
                None => return Err(SendError::Request(e.into_error())),
            },
        }
    }
    let mut sender = connect(&uri, connect_timeout).await?;
    match sender.send_request(request).await {
        Ok(response) => Ok((response, Lease { client, authority, sender: Some(sender) })),
        Err(e) => Err(SendError::Request(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A keep-alive HTTP/1.1 server answering every request with `answer`;
    /// counts the connections it accepted. With `close_after_one`, it closes
    /// each connection after its first answer (without saying so).
    async fn server(answer: &'static str, close_after_one: bool) -> (Uri, Arc<AtomicUsize>) {
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("bind: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("addr: {e}"),
        };
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        // One request: headers, then a Content-Length body.
                        let (head_end, length) = loop {
                            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                                let length = head
                                    .lines()
                                    .find_map(|l| l.strip_prefix("content-length:"))
                                    .and_then(|v| v.trim().parse::<usize>().ok())
                                    .unwrap_or(0);
                                break (end + 4, length);
                            }
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        while buf.len() < head_end + length {
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        buf.drain(..head_end + length);
                        let reply = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                            answer.len()
                        );
                        if socket.write_all(reply.as_bytes()).await.is_err() || close_after_one {
                            return;
                        }
                    }
                });
            }
        });
        let uri = match format!("http://{addr}/v1/chat/completions").parse::<Uri>() {
            Ok(u) => u,
            Err(e) => panic!("uri: {e}"),
        };
        (uri, accepted)
    }

    async fn call(client: u64, uri: &Uri) -> Bytes {
        use http_body_util::BodyExt;
        let (response, lease) = match post(
            client,
            uri.clone(),
            HeaderMap::new(),
            Bytes::from_static(b"{}"),
            Duration::from_secs(2),
        )
        .await
        {
            Ok(r) => r,
            Err(e) => panic!("post: {e:?}"),
        };
        assert_eq!(response.status(), 200);
        let body = match response.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => panic!("body: {e}"),
        };
        drop(lease);
        body
    }

    /// Lets the connection tasks run (they share this test's runtime).
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn sequential_requests_reuse_one_connection() {
        let (uri, accepted) = server(r#"{"ok":1}"#, false).await;
        for _ in 0..5 {
            assert_eq!(call(9_001, &uri).await, Bytes::from_static(br#"{"ok":1}"#));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_connection_closed_while_idle_is_replaced() {
        let (uri, accepted) = server(r#"{"ok":2}"#, true).await;
        for _ in 0..3 {
            assert_eq!(call(9_002, &uri).await, Bytes::from_static(br#"{"ok":2}"#));
            settle().await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_abandoned_answer_does_not_poison_the_list() {
        let (uri, _) = server(r#"{"ok":3}"#, false).await;
        // The answer's head is read, its body never: the connection goes back
        // to the list (drained or closed by hyper), and the next call works.
        match post(9_003, uri.clone(), HeaderMap::new(), Bytes::from_static(b"{}"), Duration::from_secs(2)).await {
            Ok((response, lease)) => {
                drop(response);
                drop(lease);
            }
            Err(e) => panic!("post: {e:?}"),
        }
        settle().await;
        assert_eq!(call(9_003, &uri).await, Bytes::from_static(br#"{"ok":3}"#));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn refused_connections_are_connect_errors() {
        let port = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
            Ok(a) => a.port(),
            Err(e) => panic!("bind: {e}"),
        };
        let uri = match format!("http://127.0.0.1:{port}/x").parse::<Uri>() {
            Ok(u) => u,
            Err(e) => panic!("uri: {e}"),
        };
        let result = post(9_004, uri, HeaderMap::new(), Bytes::new(), Duration::from_secs(2)).await;
        assert!(matches!(result, Err(SendError::Connect)), "{:?}", result.err());
    }
}
