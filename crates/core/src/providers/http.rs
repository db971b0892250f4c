//! HTTP plumbing shared by the network adapters: the upstream client (a
//! connection pool per thread), timeouts (first byte, stream idle gap,
//! total), non-2xx mapping, and SSE over a response body.

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http_body_util::Full;
use hyper::body::Body as _;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

pub use super::body::BodyError;
use super::sse::{self, SseEvent};
use super::types::{retry_after_of, EventStream, StreamEvent, UpstreamError, UpstreamErrorKind};
use crate::config::ProviderSettings;
use crate::limited::{collect_limited, CollectError};

/// An upstream's answer: status, headers and a body still to be read.
pub struct Response {
    status: hyper::StatusCode,
    /// All of them from hyper; from the plain-HTTP path only those of an
    /// answer that is not a success (all that is read of them).
    headers: HeaderMap,
    body: Body,
}

/// An upstream answer's body: hyper's for `https://`, the in-task HTTP/1.1
/// reader for `http://` (which gives its connection back once read).
enum Body {
    Hyper(hyper::body::Incoming),
    H1(super::h1::Body),
}

impl Stream for Body {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut() {
            Body::H1(body) => Pin::new(body).poll_next(cx),
            Body::Hyper(body) => loop {
                match ready!(Pin::new(&mut *body).poll_frame(cx)) {
                    None => return Poll::Ready(None),
                    Some(Err(e)) => return Poll::Ready(Some(Err(BodyError::Hyper(e)))),
                    // Trailers carry nothing the gateway reads.
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            return Poll::Ready(Some(Ok(data)));
                        }
                    }
                }
            },
        }
    }
}

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
type Pool = Client<Connector, Full<Bytes>>;

/// The upstream HTTP client: for `https://` hyper's pooled client over rustls
/// (Mozilla's roots, HTTP/2 by ALPN, HTTP/1.1 otherwise), for `http://`
/// HTTP/1.1 connections in an idle list (see [`super::h1`]); one pool per thread.
/// With one shared pool, a request served by one gateway worker would often
/// reuse a connection whose I/O task lives on another worker, and every
/// response would cost a cross-thread wake-up; per-thread pools keep a
/// request, its upstream connection and its I/O on one thread.
///
/// It is hyper directly, not a general-purpose client: no redirects (a 3xx is
/// an upstream error), no automatic retries (`resilience::retry` decides), no
/// cookies, no proxy environment variables, no compression.
#[derive(Clone)]
pub struct HttpClient {
    spec: Arc<ClientSpec>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").field("connect_timeout", &self.spec.connect_timeout).finish()
    }
}

struct ClientSpec {
    id: u64,
    connect_timeout: Duration,
    tls: rustls::ClientConfig,
}

thread_local! {
    /// (client spec id, this thread's pool) for the specs used on this thread.
    static CLIENTS: RefCell<Vec<(u64, Pool)>> = const { RefCell::new(Vec::new()) };
}

/// Per-thread clients kept per thread at most (several gateways in one
/// process only happen in tests).
const CLIENTS_PER_THREAD: usize = 8;

impl HttpClient {
    pub fn new(connect_timeout: Duration) -> Result<Self, rustls::Error> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() })
            .with_no_client_auth();
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Ok(HttpClient { spec: Arc::new(ClientSpec { id, connect_timeout, tls }) })
    }

    fn build(spec: &ClientSpec) -> Pool {
        let mut tcp = HttpConnector::new();
        tcp.set_connect_timeout(Some(spec.connect_timeout));
        tcp.set_nodelay(true);
        tcp.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(spec.tls.clone())
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(tcp);
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector)
    }

    /// This thread's pool (a cheap handle).
    fn pool(&self) -> Pool {
        let spec = &self.spec;
        CLIENTS
            .try_with(|clients| {
                let mut clients = clients.borrow_mut();
                if let Some((_, c)) = clients.iter().find(|(id, _)| *id == spec.id) {
                    return c.clone();
                }
                let client = Self::build(spec);
                if clients.len() >= CLIENTS_PER_THREAD {
                    clients.remove(0);
                }
                clients.push((spec.id, client.clone()));
                client
            })
            .unwrap_or_else(|_| Self::build(spec))
    }

    /// A JSON POST to `target` on this thread's pool.
    pub fn post(&self, target: Target, body: Vec<u8>) -> Post {
        let mut headers = HeaderMap::with_capacity(4);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Post { client: self.clone(), target, headers, body: Bytes::from(body) }
    }

    /// Like [`HttpClient::post`] for a URL built per request.
    pub fn post_url(&self, url: &str, body: Vec<u8>) -> Post {
        self.post(parse_uri(url), body)
    }
}

/// Where an upstream request goes, or why it cannot be sent.
pub type Target = Result<Uri, &'static str>;

/// Parses an upstream URL (once, at configuration time, where it is fixed).
pub fn parse_uri(url: &str) -> Target {
    url.parse::<Uri>().map_err(|_| "the upstream URL is not valid")
}

/// One upstream request being built. A header value that cannot be sent
/// (a key with a line break, say) fails the request when it is sent, with a
/// message that never contains the value.
pub struct Post {
    client: HttpClient,
    /// The URI, or the first reason found while building that the request
    /// cannot be sent (a bad URL or header value).
    target: Target,
    headers: HeaderMap,
    body: Bytes,
}

impl Post {
    /// Adds a header.
    pub fn header(self, name: &'static str, value: &str) -> Self {
        self.insert(name, value, false)
    }

    /// Adds a header holding a credential: marked sensitive (never indexed by
    /// HTTP/2 header compression).
    pub fn secret_header(self, name: &'static str, value: &str) -> Self {
        self.insert(name, value, true)
    }

    /// Adds `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        let mut v = String::with_capacity(7 + token.len());
        v.push_str("Bearer ");
        v.push_str(token);
        self.insert("authorization", &v, true)
    }

    fn insert(mut self, name: &'static str, value: &str, sensitive: bool) -> Self {
        match HeaderValue::from_str(value) {
            Ok(mut v) => {
                v.set_sensitive(sensitive);
                self.headers.insert(HeaderName::from_static(name), v);
            }
            Err(_) if self.target.is_ok() => {
                self.target = Err("a configured upstream header value (API key or version) is not valid");
            }
            Err(_) => {}
        }
        self
    }
}

/// The timeouts of one upstream call.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub first_byte: Duration,
    pub idle: Duration,
    pub total: Duration,
}

impl Timeouts {
    pub fn of(settings: &ProviderSettings) -> Self {
        Timeouts {
            first_byte: Duration::from_millis(settings.first_byte_timeout_ms),
            idle: Duration::from_millis(settings.stream_idle_timeout_ms),
            total: Duration::from_millis(settings.total_timeout_ms),
        }
    }
}

fn timeout_error(provider: &str, what: &str) -> UpstreamError {
    UpstreamError::new(UpstreamErrorKind::Timeout, format!("upstream {provider} timed out ({what})"))
}

/// Sends the request and waits for response headers within the first-byte
/// timeout. A non-2xx answer is read (bounded) and returned as an error that
/// keeps the upstream's message.
pub async fn send(provider: &str, post: Post, timeouts: Timeouts) -> Result<(Response, Instant), UpstreamError> {
    let started = Instant::now();
    let deadline = started + timeouts.total;
    let wait = timeouts.first_byte.min(timeouts.total);
    let uri = match post.target {
        Ok(uri) => uri,
        Err(why) => return Err(UpstreamError::new(UpstreamErrorKind::Connect, format!("upstream {provider}: {why}"))),
    };
    let response = if uri.scheme() == Some(&hyper::http::uri::Scheme::HTTP) {
        let spec = &post.client.spec;
        let call = super::h1::post(spec.id, &uri, &post.headers, &post.body, spec.connect_timeout);
        match tokio::time::timeout(wait, call).await {
            Ok(Ok(answer)) => Response { status: answer.status, headers: answer.headers, body: Body::H1(answer.body) },
            Ok(Err(super::h1::SendError::Connect)) => return Err(UpstreamError::connect_failed(provider)),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, provider, "upstream request failed");
                return Err(UpstreamError::request_failed(provider));
            }
            Err(_) => return Err(timeout_error(provider, "no response headers in time")),
        }
    } else {
        let mut request = Request::new(Full::new(post.body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        *request.headers_mut() = post.headers;
        match tokio::time::timeout(wait, post.client.pool().request(request)).await {
            Ok(Ok(inner)) => {
                let (head, body) = inner.into_parts();
                Response { status: head.status, headers: head.headers, body: Body::Hyper(body) }
            }
            Ok(Err(e)) => return Err(UpstreamError::from_client(provider, &e)),
            Err(_) => return Err(timeout_error(provider, "no response headers in time")),
        }
    };
    let status = response.status;
    if !status.is_success() {
        let retry_after = retry_after_of(&response.headers);
        let body = read_body_until(provider, response, deadline, 64 * 1024).await.unwrap_or_default();
        return Err(UpstreamError::from_status(provider, status.as_u16(), &body, retry_after));
    }
    Ok((response, deadline))
}

/// Reads a whole (non-streamed) body before `deadline`, at most `limit` bytes.
pub async fn read_body_until(
    provider: &str,
    response: Response,
    deadline: Instant,
    limit: usize,
) -> Result<Bytes, UpstreamError> {
    let mut body = response.body;
    match tokio::time::timeout_at(deadline, collect_limited(&mut body, limit as u64)).await {
        Err(_) => Err(timeout_error(provider, "response body too slow")),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(CollectError::TooLarge)) => {
            Err(UpstreamError::protocol(format!("upstream {provider} answer too large")))
        }
        Ok(Err(CollectError::Read(e))) => Err(UpstreamError::from_body(provider, &e)),
    }
}

/// The largest non-streamed answer we accept from an upstream.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// SSE events of a streamed response, with the idle-gap and total timeouts
/// applied: a stall yields a `Timeout` error as the last item.
pub fn sse_events(
    provider: &str,
    response: Response,
    timeouts: Timeouts,
    deadline: Instant,
) -> impl Stream<Item = Result<SseEvent, UpstreamError>> + Send + 'static {
    let provider = provider.to_string();
    let events = Box::pin(sse::events(provider.clone(), response.body));
    futures::stream::unfold((events, false), move |(mut events, done)| {
        let provider = provider.clone();
        async move {
            if done {
                return None;
            }
            let idle_deadline = (Instant::now() + timeouts.idle).min(deadline);
            match tokio::time::timeout_at(idle_deadline, events.next()).await {
                Err(_) => {
                    let what = if idle_deadline >= deadline { "total time exceeded" } else { "stream stalled" };
                    Some((Err(timeout_error(&provider, what)), (events, true)))
                }
                Ok(None) => None,
                Ok(Some(Err(e))) => Some((Err(e), (events, true))),
                Ok(Some(Ok(ev))) => Some((Ok(ev), (events, false))),
            }
        }
    })
}

/// What a stream translator makes of one upstream SSE event.
#[derive(Debug, Default)]
pub struct Step {
    pub events: Vec<Result<StreamEvent, UpstreamError>>,
    /// The upstream's terminal event was seen: stop reading.
    pub done: bool,
}

impl Step {
    pub fn emit(events: Vec<Result<StreamEvent, UpstreamError>>) -> Self {
        Step { events, done: false }
    }
    pub fn done(events: Vec<Result<StreamEvent, UpstreamError>>) -> Self {
        Step { events, done: true }
    }
    pub fn fail(err: UpstreamError) -> Self {
        Step { events: vec![Err(err)], done: true }
    }
}

/// A pure translator from one provider's stream events to OpenAI chunks.
pub trait StreamTranslate: Send + 'static {
    fn event(&mut self, event: &SseEvent) -> Step;
    /// The upstream closed the stream without a terminal event: return what is
    /// still owed (e.g. usage) or an error saying the stream was cut.
    fn end(&mut self) -> Vec<Result<StreamEvent, UpstreamError>>;
}

/// Drives a translator over SSE events. After an error item nothing follows.
pub fn translate<S, T>(events: S, translator: T) -> EventStream
where
    S: Stream<Item = Result<SseEvent, UpstreamError>> + Send + 'static,
    T: StreamTranslate,
{
    use std::collections::VecDeque;
    let pending: VecDeque<Result<StreamEvent, UpstreamError>> = VecDeque::new();
    let state = (Box::pin(events), translator, pending, false);
    Box::pin(futures::stream::unfold(state, |(mut events, mut t, mut pending, mut finished)| async move {
        loop {
            if let Some(item) = pending.pop_front() {
                let is_err = item.is_err();
                if is_err {
                    pending.clear();
                    finished = true;
                }
                return Some((item, (events, t, pending, finished)));
            }
            if finished {
                return None;
            }
            match events.next().await {
                Some(Ok(ev)) => {
                    let step = t.event(&ev);
                    pending.extend(step.events);
                    finished = step.done;
                }
                Some(Err(e)) => {
                    pending.push_back(Err(e));
                }
                None => {
                    pending.extend(t.end());
                    finished = true;
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> HttpClient {
        match HttpClient::new(Duration::from_secs(2)) {
            Ok(c) => c,
            Err(e) => panic!("TLS defaults build: {e}"),
        }
    }

    fn quick() -> Timeouts {
        Timeouts { first_byte: Duration::from_secs(5), idle: Duration::from_secs(5), total: Duration::from_secs(5) }
    }

    /// A port nothing listens on (bound, then released).
    fn closed_port() -> u16 {
        match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
            Ok(a) => a.port(),
            Err(e) => panic!("bind: {e}"),
        }
    }

    #[tokio::test]
    async fn refused_connections_are_connect_errors_over_http_and_https() {
        let port = closed_port();
        for scheme in ["http", "https"] {
            let post = client().post_url(&format!("{scheme}://127.0.0.1:{port}/v1/chat/completions"), b"{}".to_vec());
            let err = match send("up", post, quick()).await {
                Err(e) => e,
                Ok(_) => panic!("{scheme}: a closed port answered"),
            };
            assert_eq!(err.kind, UpstreamErrorKind::Connect, "{scheme}");
            assert_eq!(err.message, "could not connect to upstream up");
        }
    }

    #[tokio::test]
    async fn unusable_urls_and_header_values_fail_without_echoing_them() {
        let err = match send("up", client().post_url("not a url at all", Vec::new()), quick()).await {
            Err(e) => e,
            Ok(_) => panic!("sent to an invalid URL"),
        };
        assert_eq!(err.kind, UpstreamErrorKind::Connect);
        assert!(err.message.contains("URL is not valid") && !err.message.contains("not a url"), "{}", err.message);

        let secret = "sk-line\nbreak";
        let post = client().post_url("http://127.0.0.1:9/x", Vec::new()).bearer(secret);
        let err = match send("up", post, quick()).await {
            Err(e) => e,
            Ok(_) => panic!("sent an invalid header"),
        };
        assert!(err.message.contains("header value") && !err.message.contains("sk-line"), "{}", err.message);
    }

    #[test]
    fn credentials_are_marked_sensitive() {
        let post = client().post_url("http://127.0.0.1:9/x", Vec::new()).bearer("sk-1").secret_header("x-api-key", "k");
        let auth = post.headers.get("authorization").map(|v| (v.is_sensitive(), v.as_bytes().to_vec()));
        assert_eq!(auth, Some((true, b"Bearer sk-1".to_vec())));
        assert!(post.headers.get("x-api-key").is_some_and(|v| v.is_sensitive()));
        assert!(post.headers.get("content-type").is_some_and(|v| v.as_bytes() == b"application/json"));
    }
}
