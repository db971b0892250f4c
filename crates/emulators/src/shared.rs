//! What the three wire handlers share with the server: the wire format,
//! the recorded requests, the emulator's state (scripts, log, ids) and the
//! parsed incoming request.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use axum::http::{HeaderMap, Method};
use serde_json::Value;

use crate::common::Script;

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

/// At most this many requests are kept for [`crate::Emulator::requests`] (the
/// first ones); [`crate::Emulator::request_count`] keeps counting past it, so a long
/// benchmark does not grow memory without bound.
pub const MAX_RECORDED: usize = 100_000;

pub(crate) struct Shared {
    pub(crate) wire: Wire,
    /// Scripts forced on the next requests, in order (see `Emulator::push_script`).
    pub(crate) forced: Mutex<VecDeque<Script>>,
    /// A script forced on every request when the queue is empty.
    pub(crate) always: Mutex<Option<Script>>,
    pub(crate) log: Mutex<Vec<Recorded>>,
    pub(crate) count: AtomicUsize,
    pub(crate) ids: AtomicUsize,
    /// Requests being answered now (until the handler returns: the whole
    /// request for non-streamed answers), and the most at once.
    pub(crate) in_flight: AtomicUsize,
    pub(crate) peak: AtomicUsize,
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
