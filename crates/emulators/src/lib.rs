//! Local HTTP emulators of three LLM provider wire formats (OpenAI Chat
//! Completions, Anthropic Messages, Gemini generateContent), written from the
//! providers' public API documentation. They validate what the real APIs
//! require (answering a provider-shaped 400 when violated), answer in each
//! provider's exact wire shape (streams included) and can be steered by
//! markers in the text of the last user message:
//!
//! - default: "Hello from the <wire> emulator." with deterministic usage
//!   (prompt = words over all message texts + 5, completion = reply words),
//!   streamed one word per chunk;
//! - `[emu:usage=IN,OUT]` exact usage; `[emu:cached=N]` N prompt tokens cached;
//! - `[emu:error=STATUS]` that status with the provider's error body
//!   ("emulated error STATUS"; 429/503 carry `Retry-After: 1`);
//! - `[emu:tool]` a call of the first declared tool with `{"city":"Paris"}`;
//! - `[emu:break]` streams stop after two content pieces with a broken body;
//! - `[emu:stall_ms=N]` wait N ms before answering;
//! - `[emu:malformed]` streams send a data line that is not JSON;
//! - `[emu:safety]` (Gemini) the prompt is blocked (`promptFeedback.blockReason`).

// Validation helpers return the ready-made error `Response` as their `Err`.
#![allow(clippy::result_large_err)]

mod anthropic;
mod common;
mod gemini;
mod openai;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::Router;
use serde_json::Value;

pub use common::Script;

/// A provider wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wire {
    OpenAi,
    Anthropic,
    Gemini,
}

impl Wire {
    /// The name used in the default reply ("Hello from the <name> emulator.").
    pub fn display_name(self) -> &'static str {
        match self {
            Wire::OpenAi => "OpenAI",
            Wire::Anthropic => "Anthropic",
            Wire::Gemini => "Gemini",
        }
    }
}

/// One request as the emulator received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Header names are lower-case.
    pub headers: Vec<(String, String)>,
    /// The JSON body (`Null` when the body was empty or not JSON).
    pub body: Value,
}

impl Recorded {
    /// The first header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// At most this many requests are kept for [`Emulator::requests`] (the first
/// ones); [`Emulator::request_count`] keeps counting past it, so a long
/// benchmark does not grow memory without bound.
pub const MAX_RECORDED: usize = 100_000;

pub(crate) struct Shared {
    wire: Wire,
    /// Scripts forced on the next requests, in order (see [`Emulator::push_script`]).
    forced: Mutex<std::collections::VecDeque<Script>>,
    /// A script forced on every request when the queue is empty.
    always: Mutex<Option<Script>>,
    log: Mutex<Vec<Recorded>>,
    count: AtomicUsize,
    ids: AtomicUsize,
}

impl Shared {
    /// A process-unique number for ids (`chatcmpl-emu…`, `msg_emu…`).
    pub(crate) fn next_id(&self) -> usize {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// The script of one request: its markers, overlaid by a forced script.
    pub(crate) fn script_for(&self, last_user_text: &str) -> Script {
        let parsed = Script::parse(last_user_text);
        let forced = self.forced.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
        match forced.or_else(|| self.always.lock().unwrap_or_else(|e| e.into_inner()).clone()) {
            Some(f) => parsed.overlay(&f),
            None => parsed,
        }
    }
}

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
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A parsed incoming request, handed to the wire-specific handler.
pub(crate) struct Incoming {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    /// `None` when the body is not JSON.
    pub body: Option<Value>,
}

impl Incoming {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A query parameter (no percent-decoding: the emulator's parameters are plain).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.as_deref()?.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then_some(v)
        })
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
    match shared.wire {
        Wire::OpenAi => openai::handle(&shared, incoming).await,
        Wire::Anthropic => anthropic::handle(&shared, incoming).await,
        Wire::Gemini => gemini::handle(&shared, incoming).await,
    }
}
