//! The Anthropic Messages format at the gateway's edge, written from
//! Anthropic's public API reference: a Messages request as the gateway's
//! internal request (the OpenAI Chat Completions body every route already
//! takes), and the internal answer — a `chat.completion`, or its chunks —
//! back as a Messages answer or its event stream. Pure: no I/O, no clock
//! but the ids' counter.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Map, Value};

use super::Event;

/// Why a Messages request cannot be translated: the 400's message and the
/// offending field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub message: String,
    pub field: String,
}

fn invalid(field: &str, message: impl Into<String>) -> Invalid {
    Invalid { message: message.into(), field: field.to_string() }
}

/// An Anthropic error body: `{"type": "error", "error": {"type", "message"}}`.
pub fn error_body(error_type: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": error_type, "message": message}})
}

/// Anthropic's error type for an HTTP status (its documented table; a
/// saturated upstream, 503, is `overloaded_error` as Anthropic's own 529).
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        _ => "api_error",
    }
}

/// Text of a `system` (a string or text blocks).
fn system_text(system: &Value) -> Result<String, Invalid> {
    match system {
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => {
            let mut out = Vec::new();
            for (i, b) in blocks.iter().enumerate() {
                match (b.get("type").and_then(Value::as_str), b.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => out.push(t),
                    _ => return Err(invalid(&format!("system.{i}"), "system blocks must be text blocks")),
                }
            }
            Ok(out.join("\n\n"))
        }
        Value::Null => Ok(String::new()),
        _ => Err(invalid("system", "system: expected a string or a list of text blocks")),
    }
}

/// An image block as an OpenAI `image_url` part.
fn image_part(b: &Value, at: &str) -> Result<Value, Invalid> {
    let source = b.get("source").ok_or_else(|| invalid(&format!("{at}.source"), "Field required"))?;
    let url = match source.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let media = source.get("media_type").and_then(Value::as_str).unwrap_or("image/png");
            let data = source.get("data").and_then(Value::as_str).unwrap_or_default();
            format!("data:{media};base64,{data}")
        }
        Some("url") => source.get("url").and_then(Value::as_str).unwrap_or_default().to_string(),
        _ => return Err(invalid(&format!("{at}.source.type"), "image source type must be base64 or url")),
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// Text of a `tool_result`'s content (a string or text blocks).
fn tool_result_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => {
            blocks.iter().filter_map(|b| b.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n")
        }
        _ => String::new(),
    }
}

/// One Messages turn as OpenAI messages (a user turn's tool results become
/// `tool` messages, before the rest of the turn).
fn turn(m: &Value, i: usize, out: &mut Vec<Value>) -> Result<(), Invalid> {
    let at = format!("messages.{i}");
    let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
    if role != "user" && role != "assistant" {
        return Err(invalid(&format!("{at}.role"), format!("Input should be 'user' or 'assistant' (got '{role}')")));
    }
    let blocks = match m.get("content") {
        Some(Value::String(s)) => {
            out.push(json!({"role": role, "content": s}));
            return Ok(());
        }
        Some(Value::Array(b)) => b,
        _ => return Err(invalid(&format!("{at}.content"), "Field required: a string or a list of content blocks")),
    };
    let mut parts: Vec<Value> = Vec::new();
    let mut calls: Vec<Value> = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let bat = format!("{at}.content.{j}");
        match b.get("type").and_then(Value::as_str) {
            Some("text") => {
                let t = b.get("text").and_then(Value::as_str).unwrap_or_default();
                parts.push(json!({"type": "text", "text": t}));
            }
            Some("image") if role == "user" => parts.push(image_part(b, &bat)?),
            Some("tool_use") if role == "assistant" => calls.push(json!({
                "id": b.get("id").and_then(Value::as_str).unwrap_or_default(),
                "type": "function",
                "function": {
                    "name": b.get("name").and_then(Value::as_str).unwrap_or_default(),
                    "arguments": b.get("input").cloned().unwrap_or_else(|| json!({})).to_string(),
                },
            })),
            Some("tool_result") if role == "user" => {
                let mut text = tool_result_text(b.get("content"));
                if b.get("is_error") == Some(&Value::Bool(true)) {
                    text = format!("Error: {text}");
                }
                out.push(json!({
                    "role": "tool",
                    "tool_call_id": b.get("tool_use_id").and_then(Value::as_str).unwrap_or_default(),
                    "content": text,
                }));
            }
            // Thinking blocks of earlier turns carry nothing another model can use.
            Some("thinking") | Some("redacted_thinking") if role == "assistant" => {}
            Some(other) => {
                return Err(invalid(
                    &format!("{bat}.type"),
                    format!("content block type '{other}' is not supported here"),
                ))
            }
            None => return Err(invalid(&format!("{bat}.type"), "Field required")),
        }
    }
    if role == "assistant" {
        let text: String = parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect();
        let mut msg = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }});
        if !calls.is_empty() {
            msg["tool_calls"] = Value::Array(calls);
        }
        out.push(msg);
    } else if !parts.is_empty() {
        out.push(json!({"role": "user", "content": parts}));
    }
    Ok(())
}

/// A Messages request as the internal (OpenAI Chat Completions) request.
/// `stream` adds `stream_options.include_usage` (the usage the final
/// `message_delta` reports).
pub fn to_chat(body: &Value) -> Result<Value, Invalid> {
    let Some(req) = body.as_object() else {
        return Err(invalid("", "the body must be a JSON object"));
    };
    let model = req.get("model").and_then(Value::as_str).filter(|m| !m.is_empty());
    let model = model.ok_or_else(|| invalid("model", "model: Field required"))?;
    let max_tokens = match req.get("max_tokens") {
        Some(v) => {
            v.as_u64().filter(|n| *n >= 1).ok_or_else(|| invalid("max_tokens", "max_tokens: must be an integer ≥ 1"))?
        }
        None => return Err(invalid("max_tokens", "max_tokens: Field required")),
    };
    let Some(turns) = req.get("messages").and_then(Value::as_array) else {
        return Err(invalid("messages", "messages: Field required"));
    };
    let mut messages = Vec::new();
    if let Some(system) = req.get("system") {
        let text = system_text(system)?;
        if !text.is_empty() {
            messages.push(json!({"role": "system", "content": text}));
        }
    }
    for (i, m) in turns.iter().enumerate() {
        turn(m, i, &mut messages)?;
    }
    if messages.iter().all(|m| m["role"] == "system") {
        return Err(invalid("messages", "messages: at least one message is required"));
    }
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert("messages".into(), Value::Array(messages));
    out.insert("max_tokens".into(), json!(max_tokens));
    for key in ["temperature", "top_p"] {
        if let Some(v) = req.get(key).filter(|v| v.is_number()) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(stops) = req.get("stop_sequences").and_then(Value::as_array).filter(|s| !s.is_empty()) {
        out.insert("stop".into(), Value::Array(stops.clone()));
    }
    if let Some(user) = req.get("metadata").and_then(|m| m.get("user_id")).and_then(Value::as_str) {
        out.insert("user".into(), json!(user));
    }
    if req.get("stream") == Some(&Value::Bool(true)) {
        out.insert("stream".into(), Value::Bool(true));
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(tools) = req.get("tools").and_then(Value::as_array) {
        let mut fns = Vec::new();
        for (i, t) in tools.iter().enumerate() {
            let name = t.get("name").and_then(Value::as_str).filter(|n| !n.is_empty());
            let name = name.ok_or_else(|| invalid(&format!("tools.{i}.name"), "Field required"))?;
            let mut f = json!({"name": name});
            if let Some(d) = t.get("description").and_then(Value::as_str) {
                f["description"] = json!(d);
            }
            f["parameters"] = t.get("input_schema").cloned().unwrap_or_else(|| json!({"type": "object"}));
            fns.push(json!({"type": "function", "function": f}));
        }
        if !fns.is_empty() {
            out.insert("tools".into(), Value::Array(fns));
        }
    }
    if let Some(choice) = req.get("tool_choice") {
        let c = match choice.get("type").and_then(Value::as_str) {
            Some("auto") => json!("auto"),
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => {
                let name = choice.get("name").and_then(Value::as_str).unwrap_or_default();
                json!({"type": "function", "function": {"name": name}})
            }
            _ => return Err(invalid("tool_choice.type", "tool_choice type must be auto, any, tool or none")),
        };
        out.insert("tool_choice".into(), c);
        if choice.get("disable_parallel_tool_use") == Some(&Value::Bool(true)) {
            out.insert("parallel_tool_calls".into(), Value::Bool(false));
        }
    }
    Ok(Value::Object(out))
}

static IDS: AtomicU64 = AtomicU64::new(1);

/// A fresh `msg_…` id.
pub fn new_message_id() -> String {
    format!("msg_sd{:016x}{:08x}", crate::ids::new_uuid().as_u128() as u64, IDS.fetch_add(1, Ordering::Relaxed))
}

/// Anthropic's `stop_reason` for an OpenAI `finish_reason`: a stop caused by
/// one of the request's `stop_sequences` is `stop_sequence` when the
/// upstream says which (`stop_sequence`), else `end_turn`.
pub fn stop_reason(finish: Option<&str>, stop_sequence: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls") | Some("function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ if stop_sequence.is_some() => "stop_sequence",
        _ => "end_turn",
    }
}

/// Anthropic usage of an OpenAI `usage`: cached prompt tokens are reported
/// apart (`cache_read_input_tokens`), as Anthropic counts them.
pub fn usage(u: Option<&Value>) -> Value {
    let n = |p: &str| u.and_then(|u| u.pointer(p)).and_then(Value::as_u64).unwrap_or(0);
    let cached = n("/prompt_tokens_details/cached_tokens");
    json!({
        "input_tokens": n("/prompt_tokens").saturating_sub(cached),
        "output_tokens": n("/completion_tokens"),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    })
}

/// Arguments text as the `input` object (`{}` when it is not one).
fn input_of(arguments: Option<&Value>) -> Value {
    match arguments.and_then(Value::as_str).map(serde_json::from_str::<Value>) {
        Some(Ok(v @ Value::Object(_))) => v,
        _ => json!({}),
    }
}

/// A `chat.completion` as a Messages answer for `model` (the name the
/// client asked for).
pub fn from_chat(completion: &Value, model: &str) -> Value {
    let choice = completion.pointer("/choices/0");
    let message = choice.and_then(|c| c.get("message"));
    let mut content = Vec::new();
    if let Some(t) = message.and_then(|m| m.get("content")).and_then(Value::as_str).filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": t}));
    }
    for call in message.and_then(|m| m.get("tool_calls")).and_then(Value::as_array).into_iter().flatten() {
        let f = call.get("function");
        content.push(json!({
            "type": "tool_use",
            "id": call.get("id").and_then(Value::as_str).unwrap_or_default(),
            "name": f.and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or_default(),
            "input": input_of(f.and_then(|f| f.get("arguments"))),
        }));
    }
    let finish = choice.and_then(|c| c.get("finish_reason")).and_then(Value::as_str);
    let sequence = choice.and_then(|c| c.get("stop_sequence")).and_then(Value::as_str);
    json!({
        "id": new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(finish, sequence),
        "stop_sequence": sequence,
        "usage": usage(completion.get("usage")),
    })
}

/// Which content block is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    Text,
    /// A tool call (its OpenAI index).
    Tool(u64),
}

/// Turns `chat.completion.chunk`s into the Messages event sequence:
/// `message_start`, `ping`, then per block `content_block_start`,
/// `content_block_delta`s (`text_delta`, `input_json_delta`) and
/// `content_block_stop`, then `message_delta` (stop reason, usage) and
/// `message_stop`.
#[derive(Debug)]
pub struct StreamTranslator {
    model: String,
    started: bool,
    open: Open,
    index: u64,
    finish: Option<String>,
    sequence: Option<String>,
    usage: Option<Value>,
    done: bool,
}

impl StreamTranslator {
    pub fn new(model: &str) -> Self {
        StreamTranslator {
            model: model.to_string(),
            started: false,
            open: Open::None,
            index: 0,
            finish: None,
            sequence: None,
            usage: None,
            done: false,
        }
    }

    /// The model the message names (until `message_start` is out).
    pub fn set_model(&mut self, model: &str) {
        if !self.started && self.model.is_empty() {
            self.model = model.to_string();
        }
    }

    fn start(&mut self, out: &mut Vec<Event>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push((
            "message_start",
            json!({"type": "message_start", "message": {
                "id": new_message_id(), "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0}}}),
        ));
        out.push(("ping", json!({"type": "ping"})));
    }

    fn close(&mut self, out: &mut Vec<Event>) {
        if self.open != Open::None {
            out.push(("content_block_stop", json!({"type": "content_block_stop", "index": self.index})));
            self.index += 1;
            self.open = Open::None;
        }
    }

    /// The events of one chunk.
    pub fn chunk(&mut self, chunk: &Value) -> Vec<Event> {
        let mut out = Vec::new();
        self.start(&mut out);
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(u.clone());
        }
        let Some(choice) = chunk.pointer("/choices/0") else { return out };
        let delta = choice.get("delta");
        if let Some(text) = delta.and_then(|d| d.get("content")).and_then(Value::as_str).filter(|t| !t.is_empty()) {
            if self.open != Open::Text {
                self.close(&mut out);
                self.open = Open::Text;
                out.push((
                    "content_block_start",
                    json!({"type": "content_block_start", "index": self.index,
                        "content_block": {"type": "text", "text": ""}}),
                ));
            }
            out.push((
                "content_block_delta",
                json!({"type": "content_block_delta", "index": self.index,
                    "delta": {"type": "text_delta", "text": text}}),
            ));
        }
        for call in delta.and_then(|d| d.get("tool_calls")).and_then(Value::as_array).into_iter().flatten() {
            let n = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            if self.open != Open::Tool(n) {
                self.close(&mut out);
                self.open = Open::Tool(n);
                let f = call.get("function");
                out.push((
                    "content_block_start",
                    json!({"type": "content_block_start", "index": self.index, "content_block": {
                        "type": "tool_use",
                        "id": call.get("id").and_then(Value::as_str).unwrap_or_default(),
                        "name": f.and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or_default(),
                        "input": {}}}),
                ));
            }
            let args = call.pointer("/function/arguments").and_then(Value::as_str).unwrap_or_default();
            if !args.is_empty() {
                out.push((
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": self.index,
                        "delta": {"type": "input_json_delta", "partial_json": args}}),
                ));
            }
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(f.to_string());
            self.sequence = choice.get("stop_sequence").and_then(Value::as_str).map(str::to_string);
        }
        out
    }

    /// The closing events, once the internal stream ended.
    pub fn finish(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        self.done = true;
        self.start(&mut out);
        self.close(&mut out);
        let u = usage(self.usage.as_ref());
        out.push((
            "message_delta",
            json!({"type": "message_delta",
                "delta": {"stop_reason": stop_reason(self.finish.as_deref(), self.sequence.as_deref()),
                          "stop_sequence": self.sequence},
                "usage": u}),
        ));
        out.push(("message_stop", json!({"type": "message_stop"})));
        out
    }
}
