//! The load generator: one HTTP/1.1 keep-alive connection per worker (hyper's
//! low-level client, no pool to contend on), the same code for every path, and
//! byte-exact validation of every answer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;

use crate::upstream;

/// Longest a single request may take before it counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub const BODY: &[u8] = br#"{"model":"bench-model","messages":[{"role":"user","content":"hello"}]}"#;
pub const STREAM_BODY: &[u8] =
    br#"{"model":"bench-model","messages":[{"role":"user","content":"hello"}],"stream":true,"stream_options":{"include_usage":true}}"#;

/// The same request in Anthropic's Messages format (`POST /v1/messages`).
pub const MESSAGES_BODY: &[u8] =
    br#"{"model":"bench-model","max_tokens":64,"messages":[{"role":"user","content":"hello"}]}"#;
pub const MESSAGES_STREAM_BODY: &[u8] =
    br#"{"model":"bench-model","max_tokens":64,"messages":[{"role":"user","content":"hello"}],"stream":true}"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    NonStream,
    Stream,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::NonStream => "non-stream",
            Mode::Stream => "stream",
        }
    }
}

/// One path under test.
#[derive(Debug)]
pub struct Target {
    pub name: &'static str,
    /// Every address of this path (replicas): new connections take them in turn.
    addrs: Vec<SocketAddr>,
    next: std::sync::atomic::AtomicUsize,
    host: HeaderValue,
    auth: HeaderValue,
    /// Chat requests handed to this path (all phases, warm-ups included).
    pub sent: AtomicU64,
    expected_json: Bytes,
    expected_sse: Bytes,
    /// Requests go to `/v1/messages` in the Messages format (the gateway
    /// translates them): answers are checked against the first one, ids aside.
    messages: bool,
    /// The first answer of each mode (non-stream, stream), ids blanked.
    first_messages: [std::sync::OnceLock<Bytes>; 2],
}

impl Target {
    pub fn new(name: &'static str, addr: SocketAddr, key: &str) -> anyhow::Result<Arc<Target>> {
        Target::spread(name, vec![addr], key)
    }

    /// A path served by several replicas: connections spread over `addrs`.
    pub fn spread(name: &'static str, addrs: Vec<SocketAddr>, key: &str) -> anyhow::Result<Arc<Target>> {
        let addr = *addrs.first().ok_or_else(|| anyhow!("{name}: no address"))?;
        Ok(Arc::new(Target {
            name,
            addrs,
            next: std::sync::atomic::AtomicUsize::new(0),
            host: HeaderValue::from_str(&addr.to_string())?,
            auth: HeaderValue::from_str(&format!("Bearer {key}"))?,
            sent: AtomicU64::new(0),
            expected_json: Bytes::from_static(upstream::COMPLETION),
            expected_sse: Bytes::from(upstream::sse_bytes()),
            messages: false,
            first_messages: Default::default(),
        }))
    }

    /// The gateway at `addr`, asked in Anthropic's Messages format.
    pub fn messages(name: &'static str, addr: SocketAddr, key: &str) -> anyhow::Result<Arc<Target>> {
        let mut t = Target::spread(name, vec![addr], key)?;
        if let Some(t) = Arc::get_mut(&mut t) {
            t.messages = true;
        }
        Ok(t)
    }

    /// Whether a Messages answer is right: the same as this path's first
    /// answer of the mode once `msg_…` ids are blanked, and that first one a
    /// complete message holding the upstream's text.
    fn check_messages(&self, mode: Mode, bytes: &Bytes) -> bool {
        let blanked = blank_ids(bytes);
        let first = self.first_messages[usize::from(mode == Mode::Stream)].get_or_init(|| blanked.clone());
        let text = String::from_utf8_lossy(first);
        let complete = match mode {
            Mode::NonStream => text.contains("\"type\":\"message\"") && text.contains("How can I help you today?"),
            Mode::Stream => {
                text.starts_with("event: message_start")
                    && text.contains(" How can I help you today?")
                    && text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
            }
        };
        complete && *first == blanked
    }

    /// The address of the next new connection (round robin over replicas).
    pub fn next_addr(&self) -> SocketAddr {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.addrs[i % self.addrs.len()]
    }

    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }
}

pub async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await.with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One keep-alive connection to one target.
pub struct Requester {
    target: Arc<Target>,
    sender: Option<SendRequest<Full<Bytes>>>,
    pub connects: u64,
}

impl Requester {
    pub fn new(target: Arc<Target>) -> Self {
        Requester { target, sender: None, connects: 0 }
    }

    async fn ready_sender(&mut self) -> anyhow::Result<&mut SendRequest<Full<Bytes>>> {
        // A connection the server closed (keep-alive limit) is replaced, once.
        for _ in 0..2 {
            let usable = match self.sender.as_mut() {
                Some(s) if !s.is_closed() => s.ready().await.is_ok(),
                _ => false,
            };
            if usable {
                break;
            }
            self.sender = Some(connect(self.target.next_addr()).await?);
            self.connects += 1;
        }
        self.sender.as_mut().ok_or_else(|| anyhow!("no connection"))
    }

    /// Sends one chat request and checks the answer byte for byte.
    pub async fn send(&mut self, mode: Mode) -> anyhow::Result<()> {
        let r = tokio::time::timeout(REQUEST_TIMEOUT, self.send_inner(mode)).await;
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                self.sender = None;
                Err(anyhow!("{}: no complete answer within {REQUEST_TIMEOUT:?}", self.target.name))
            }
        }
    }

    async fn send_inner(&mut self, mode: Mode) -> anyhow::Result<()> {
        let target = self.target.clone();
        let body = match (mode, target.messages) {
            (Mode::NonStream, false) => BODY,
            (Mode::Stream, false) => STREAM_BODY,
            (Mode::NonStream, true) => MESSAGES_BODY,
            (Mode::Stream, true) => MESSAGES_STREAM_BODY,
        };
        let req = Request::builder()
            .method(Method::POST)
            .uri(if target.messages { "/v1/messages" } else { "/v1/chat/completions" })
            .header(HOST, target.host.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(AUTHORIZATION, target.auth.clone())
            .body(Full::new(Bytes::from_static(body)))?;
        let sender = self.ready_sender().await?;
        target.sent.fetch_add(1, Ordering::Relaxed);
        let resp = sender.send_request(req).await.with_context(|| format!("{}: request failed", target.name))?;
        let status = resp.status();
        let bytes =
            resp.into_body().collect().await.with_context(|| format!("{}: body failed", target.name))?.to_bytes();
        if status != StatusCode::OK {
            return Err(anyhow!(
                "{}: HTTP {status}: {}",
                target.name,
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            ));
        }
        let expected = match mode {
            Mode::NonStream => &target.expected_json,
            Mode::Stream => &target.expected_sse,
        };
        let right = if target.messages { target.check_messages(mode, &bytes) } else { bytes == *expected };
        if !right {
            return Err(anyhow!(
                "{}: unexpected {} answer: {}",
                target.name,
                mode.label(),
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            ));
        }
        Ok(())
    }
}

/// The answer with every `"msg_…"` id blanked to `"msg_"`.
fn blank_ids(bytes: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"\"msg_") {
            out.extend_from_slice(b"\"msg_");
            i += 5;
            while i < bytes.len() && bytes[i] != b'"' {
                i += 1;
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Bytes::from(out)
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub n: usize,
    pub min_us: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl Stats {
    pub fn of(mut nanos: Vec<u64>) -> Stats {
        if nanos.is_empty() {
            return Stats::default();
        }
        nanos.sort_unstable();
        let n = nanos.len();
        let q = |p: f64| {
            let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
            nanos[rank - 1] as f64 / 1000.0
        };
        let sum: u128 = nanos.iter().map(|&x| u128::from(x)).sum();
        Stats {
            n,
            min_us: nanos[0] as f64 / 1000.0,
            mean_us: (sum as f64 / n as f64) / 1000.0,
            p50_us: q(0.50),
            p90_us: q(0.90),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: nanos[n - 1] as f64 / 1000.0,
        }
    }
}

/// Errors of a phase: how many, and the first few messages.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Errors {
    pub count: u64,
    pub samples: Vec<String>,
}

impl Errors {
    pub fn add(&mut self, e: &anyhow::Error) {
        self.count += 1;
        if self.samples.len() < 5 {
            self.samples.push(format!("{e:#}"));
        }
    }
    pub fn merge(&mut self, other: Errors) {
        self.count += other.count;
        for s in other.samples {
            if self.samples.len() < 5 {
                self.samples.push(s);
            }
        }
    }
}

/// Beyond this many errors a phase stops early (the run fails anyway).
const MAX_ERRORS: u64 = 100;

#[derive(Debug, Serialize)]
pub struct LatencyResult {
    pub mode: Mode,
    pub target: &'static str,
    pub warmup: usize,
    pub stats: Stats,
    pub errors: Errors,
}

/// Concurrency 1: `warmup` requests per target, then `n` measured ones per
/// target, sent in `rounds` interleaved blocks (target order rotating) so
/// slow drifts of the machine hit every path alike.
pub async fn latency_phase(
    targets: &[Arc<Target>],
    mode: Mode,
    warmup: usize,
    n: usize,
    rounds: usize,
    deadline: Instant,
) -> anyhow::Result<Vec<LatencyResult>> {
    let mut reqs: Vec<Requester> = targets.iter().map(|t| Requester::new(t.clone())).collect();
    let mut errors: Vec<Errors> = vec![Errors::default(); targets.len()];
    let mut samples: Vec<Vec<u64>> = vec![Vec::with_capacity(n); targets.len()];
    for (i, r) in reqs.iter_mut().enumerate() {
        for _ in 0..warmup {
            if let Err(e) = r.send(mode).await {
                errors[i].add(&e);
            }
        }
    }
    let rounds = rounds.max(1);
    let per_round = n.div_ceil(rounds);
    for round in 0..rounds {
        for k in 0..targets.len() {
            let i = (round + k) % targets.len();
            let todo = per_round.min(n - samples[i].len().min(n));
            for _ in 0..todo {
                if Instant::now() > deadline {
                    return Err(anyhow!("latency phase ({}) ran out of time", mode.label()));
                }
                let t0 = Instant::now();
                let r = reqs[i].send(mode).await;
                let dt = t0.elapsed();
                match r {
                    Ok(()) => samples[i].push(dt.as_nanos() as u64),
                    Err(e) => {
                        errors[i].add(&e);
                        if errors[i].count > MAX_ERRORS {
                            return Err(anyhow!("too many errors on {}: {e:#}", targets[i].name));
                        }
                    }
                }
            }
        }
    }
    Ok(targets
        .iter()
        .zip(samples)
        .zip(errors)
        .map(|((t, s), e)| LatencyResult { mode, target: t.name, warmup, stats: Stats::of(s), errors: e })
        .collect())
}

#[derive(Debug, Serialize)]
pub struct ThroughputResult {
    pub mode: Mode,
    pub target: &'static str,
    pub concurrency: usize,
    pub warmup_s: f64,
    pub duration_s: f64,
    /// Answers completed inside the measured window.
    pub requests: u64,
    pub rps: f64,
    /// Latency of the requests that started and ended inside the window.
    pub stats: Stats,
    pub errors: Errors,
    pub connects: u64,
    /// Every request sent in the phase (warm-up and overhang included).
    pub sent_total: u64,
}

/// Concurrency `c` for `warmup + duration`; throughput is the answers
/// completed inside the window after the warm-up. Workers finish their last
/// request after the window (it is not counted) and stop.
pub async fn throughput_phase(
    target: &Arc<Target>,
    mode: Mode,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    on_window: impl FnOnce(Instant, Instant),
) -> anyhow::Result<ThroughputResult> {
    let start = Instant::now();
    let from = start + warmup;
    let end = from + duration;
    on_window(from, end);
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let t = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut r = Requester::new(t);
            let mut lat: Vec<u64> = Vec::with_capacity(16_384);
            let mut done_in_window = 0u64;
            let mut sent = 0u64;
            let mut errors = Errors::default();
            loop {
                let t0 = Instant::now();
                if t0 >= end || errors.count > MAX_ERRORS {
                    break;
                }
                let res = r.send(mode).await;
                let t1 = Instant::now();
                sent += 1;
                match res {
                    Ok(()) => {
                        if t1 >= from && t1 < end {
                            done_in_window += 1;
                            if t0 >= from {
                                lat.push(t1.duration_since(t0).as_nanos() as u64);
                            }
                        }
                    }
                    Err(e) => errors.add(&e),
                }
            }
            (done_in_window, lat, errors, r.connects, sent)
        }));
    }
    let mut requests = 0;
    let mut all = Vec::new();
    let mut errors = Errors::default();
    let mut connects = 0;
    let mut sent_total = 0;
    for t in tasks {
        let (d, lat, e, c, s) = t.await.map_err(|e| anyhow!("load task failed: {e}"))?;
        requests += d;
        all.extend(lat);
        errors.merge(e);
        connects += c;
        sent_total += s;
    }
    let secs = duration.as_secs_f64();
    Ok(ThroughputResult {
        mode,
        target: target.name,
        concurrency,
        warmup_s: warmup.as_secs_f64(),
        duration_s: secs,
        requests,
        rps: requests as f64 / secs,
        stats: Stats::of(all),
        errors,
        connects,
        sent_total,
    })
}

/// A one-off request (admin API, readiness): status and body.
pub async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<&[u8]>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let mut sender = connect(addr).await?;
    let mut b = Request::builder().method(method).uri(path).header(HOST, addr.to_string());
    if let Some(t) = bearer {
        b = b.header(AUTHORIZATION, format!("Bearer {t}"));
    }
    if body.is_some() {
        b = b.header(CONTENT_TYPE, "application/json");
    }
    let req = b.body(Full::new(Bytes::copy_from_slice(body.unwrap_or_default())))?;
    let fut = async {
        sender.ready().await?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, bytes))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, fut)
        .await
        .map_err(|_| anyhow!("{path}: no answer within {REQUEST_TIMEOUT:?}"))?
}
