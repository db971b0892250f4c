//! HTTP plumbing shared by the network adapters: the upstream client (a
//! connection pool per thread), timeouts (first byte, stream idle gap,
//! total), non-2xx mapping, and SSE over a response body.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::time::Instant;

use super::sse::{self, SseEvent};
use super::{retry_after_of, UpstreamError, UpstreamErrorKind};
use crate::config::ProviderSettings;

/// The upstream HTTP client: one connection pool per thread. With one shared
/// pool, a request served by one gateway worker would often reuse a
/// connection whose I/O task lives on another worker, and every response
/// would cost a cross-thread wake-up; per-thread pools keep a request, its
/// upstream connection and its I/O on one thread.
#[derive(Debug, Clone)]
pub struct HttpClient {
    spec: Arc<ClientSpec>,
}

#[derive(Debug)]
struct ClientSpec {
    id: u64,
    connect_timeout: Duration,
    /// Used where a per-thread client cannot be built (never expected).
    fallback: reqwest::Client,
}

thread_local! {
    /// (client spec id, this thread's client) for the specs used on this thread.
    static CLIENTS: RefCell<Vec<(u64, reqwest::Client)>> = const { RefCell::new(Vec::new()) };
}

/// Per-thread clients kept per thread at most (several gateways in one
/// process only happen in tests).
const CLIENTS_PER_THREAD: usize = 8;

impl HttpClient {
    pub fn new(connect_timeout: Duration) -> Result<Self, reqwest::Error> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let fallback = Self::build(connect_timeout)?;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Ok(HttpClient { spec: Arc::new(ClientSpec { id, connect_timeout, fallback }) })
    }

    fn build(connect_timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
        reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            // Our own retry layer (resilience::retry) decides what is retried
            // and honours Retry-After; redirects of a POST to a model API are
            // not followed (a 3xx is an upstream error).
            .retry(reqwest::retry::never())
            .redirect(reqwest::redirect::Policy::none())
            .referer(false)
            .build()
    }

    /// This thread's client (a cheap handle).
    pub fn get(&self) -> reqwest::Client {
        let spec = &self.spec;
        CLIENTS
            .try_with(|clients| {
                let mut clients = clients.borrow_mut();
                if let Some((_, c)) = clients.iter().find(|(id, _)| *id == spec.id) {
                    return c.clone();
                }
                let client = Self::build(spec.connect_timeout).unwrap_or_else(|_| spec.fallback.clone());
                if clients.len() >= CLIENTS_PER_THREAD {
                    clients.remove(0);
                }
                clients.push((spec.id, client.clone()));
                client
            })
            .unwrap_or_else(|_| spec.fallback.clone())
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
pub async fn send(
    provider: &str,
    request: reqwest::RequestBuilder,
    timeouts: Timeouts,
) -> Result<(reqwest::Response, Instant), UpstreamError> {
    let started = Instant::now();
    let deadline = started + timeouts.total;
    let wait = timeouts.first_byte.min(timeouts.total);
    let response = match tokio::time::timeout(wait, request.send()).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(UpstreamError::from_transport(provider, &e)),
        Err(_) => return Err(timeout_error(provider, "no response headers in time")),
    };
    let status = response.status();
    if !status.is_success() {
        let retry_after = retry_after_of(response.headers());
        let body = read_body_until(provider, response, deadline, 64 * 1024).await.unwrap_or_default();
        return Err(UpstreamError::from_status(provider, status.as_u16(), &body, retry_after));
    }
    Ok((response, deadline))
}

/// Reads a whole (non-streamed) body before `deadline`, at most `limit` bytes.
pub async fn read_body_until(
    provider: &str,
    response: reqwest::Response,
    deadline: Instant,
    limit: usize,
) -> Result<Bytes, UpstreamError> {
    let mut body = response.bytes_stream();
    let mut out = bytes::BytesMut::new();
    loop {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Err(_) => return Err(timeout_error(provider, "response body too slow")),
            Ok(None) => return Ok(out.freeze()),
            Ok(Some(Err(e))) => return Err(UpstreamError::from_transport(provider, &e)),
            Ok(Some(Ok(chunk))) => {
                if out.len() + chunk.len() > limit {
                    return Err(UpstreamError::protocol(format!("upstream {provider} answer too large")));
                }
                out.extend_from_slice(&chunk);
            }
        }
    }
}

/// The largest non-streamed answer we accept from an upstream.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// SSE events of a streamed response, with the idle-gap and total timeouts
/// applied: a stall yields a `Timeout` error as the last item.
pub fn sse_events(
    provider: &str,
    response: reqwest::Response,
    timeouts: Timeouts,
    deadline: Instant,
) -> impl Stream<Item = Result<SseEvent, UpstreamError>> + Send + 'static {
    let provider = provider.to_string();
    let events = Box::pin(sse::events(provider.clone(), response.bytes_stream()));
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
    pub events: Vec<Result<super::StreamEvent, UpstreamError>>,
    /// The upstream's terminal event was seen: stop reading.
    pub done: bool,
}

impl Step {
    pub fn emit(events: Vec<Result<super::StreamEvent, UpstreamError>>) -> Self {
        Step { events, done: false }
    }
    pub fn done(events: Vec<Result<super::StreamEvent, UpstreamError>>) -> Self {
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
    fn end(&mut self) -> Vec<Result<super::StreamEvent, UpstreamError>>;
}

/// Drives a translator over SSE events. After an error item nothing follows.
pub fn translate<S, T>(events: S, translator: T) -> super::EventStream
where
    S: Stream<Item = Result<SseEvent, UpstreamError>> + Send + 'static,
    T: StreamTranslate,
{
    use std::collections::VecDeque;
    let pending: VecDeque<Result<super::StreamEvent, UpstreamError>> = VecDeque::new();
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
