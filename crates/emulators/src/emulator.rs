//! The emulator's HTTP server: [`Emulator`] starts it on a free port, and
//! every request is recorded and handed to its wire's handler.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::Router;
use serde_json::Value;

use crate::common::Script;
use crate::shared::{Incoming, Recorded, Shared, Wire, MAX_RECORDED};
use crate::{anthropic, gemini, openai};

/// A running emulator bound to `127.0.0.1` on a free port. Dropping it stops
/// the server.
pub struct Emulator {
    wire: Wire,
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator").field("wire", &self.wire).field("addr", &self.addr).finish()
    }
}

impl Emulator {
    /// Starts an emulator of `wire` on `127.0.0.1:0` (must be called inside a Tokio runtime).
    pub async fn start(wire: Wire) -> anyhow::Result<Emulator> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            wire,
            forced: Mutex::new(std::collections::VecDeque::new()),
            always: Mutex::new(None),
            log: Mutex::new(Vec::new()),
            count: AtomicUsize::new(0),
            ids: AtomicUsize::new(1),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "emulator server stopped");
            }
        });
        Ok(Emulator { wire, addr, shared, task })
    }

    pub fn wire(&self) -> Wire {
        self.wire
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL a provider adapter is configured with.
    pub fn base_url(&self) -> String {
        match self.wire {
            Wire::OpenAi | Wire::Anthropic => format!("http://{}/v1", self.addr),
            Wire::Gemini => format!("http://{}/v1beta", self.addr),
        }
    }

    /// Every request received, in order (the first [`MAX_RECORDED`]).
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Forces `script` on the next chat request (queued in order), whatever
    /// its content says: scripted fault bursts for resilience tests.
    pub fn push_script(&self, script: Script) {
        self.shared.forced.lock().unwrap_or_else(|e| e.into_inner()).push_back(script);
    }

    /// Forces `script` on every request while no pushed script is queued
    /// (`None` to stop): e.g. a sick or slow upstream.
    pub fn set_script(&self, script: Option<Script>) {
        *self.shared.always.lock().unwrap_or_else(|e| e.into_inner()) = script;
    }

    /// How many requests were received.
    pub fn request_count(&self) -> usize {
        self.shared.count.load(Ordering::SeqCst)
    }

    /// The most requests answered at once so far (non-streamed answers
    /// count for their whole duration, streamed ones until their headers).
    pub fn peak_in_flight(&self) -> usize {
        self.shared.peak.load(Ordering::SeqCst)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json: Option<Value> = if body.is_empty() { None } else { serde_json::from_slice(&body).ok() };
    let incoming =
        Incoming { method, path: uri.path().to_string(), query: uri.query().map(str::to_string), headers, body: json };
    let n = shared.count.fetch_add(1, Ordering::SeqCst);
    if n < MAX_RECORDED {
        let recorded = Recorded {
            method: incoming.method.to_string(),
            path: incoming.path.clone(),
            query: incoming.query.clone(),
            headers: incoming
                .headers
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect(),
            body: incoming.body.clone().unwrap_or(Value::Null),
        };
        shared.log.lock().unwrap_or_else(|e| e.into_inner()).push(recorded);
    }
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.peak.fetch_max(now, Ordering::SeqCst);
    let response = match shared.wire {
        Wire::OpenAi => openai::handle(&shared, incoming).await,
        Wire::Anthropic => anthropic::handle(&shared, incoming).await,
        Wire::Gemini => gemini::handle(&shared, incoming).await,
    };
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}
