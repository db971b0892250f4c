//! The OpenAI Responses format at the gateway's edge, written from OpenAI's
//! public API reference, stateless: a Responses request as the internal
//! (Chat Completions) request, the internal answer back as a `response`
//! object or its event stream. Nothing is stored: `previous_response_id` is
//! refused, `store` is ignored (answers say `"store": false`).

use serde_json::{json, Map, Value};

use super::messages::Invalid;
use super::Event;

fn invalid(field: &str, message: impl Into<String>) -> Invalid {
    Invalid { message: message.into(), field: field.to_string() }
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", crate::ids::new_uuid().simple())
}

/// Chat content of a Responses message's `content`.
fn content(c: &Value, at: &str) -> Result<Value, Invalid> {
    match c {
        Value::String(s) => Ok(json!(s)),
        Value::Array(parts) => {
            let mut out = Vec::new();
            for (i, p) in parts.iter().enumerate() {
                match p.get("type").and_then(Value::as_str) {
                    Some("input_text") | Some("output_text") | Some("text") => out.push(
                        json!({"type": "text", "text": p.get("text").and_then(Value::as_str).unwrap_or_default()}),
                    ),
                    Some("input_image") => {
                        let url = p.get("image_url").and_then(Value::as_str).unwrap_or_default();
                        out.push(json!({"type": "image_url", "image_url": {"url": url}}));
                    }
                    other => {
                        return Err(invalid(
                            &format!("{at}.content[{i}].type"),
                            format!("content part type {other:?} is not supported here"),
                        ))
                    }
                }
            }
            Ok(Value::Array(out))
        }
        _ => Err(invalid(&format!("{at}.content"), "content must be a string or a list of parts")),
    }
}

fn flat_text(c: &Value) -> String {
    match c {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect(),
        _ => String::new(),
    }
}

/// A Responses request as the internal (Chat Completions) request.
pub fn to_chat(body: &Value) -> Result<Value, Invalid> {
    let Some(req) = body.as_object() else {
        return Err(invalid("", "the body must be a JSON object"));
    };
    if req.get("previous_response_id").is_some_and(|v| !v.is_null()) {
        return Err(invalid(
            "previous_response_id",
            "previous_response_id is not supported: this gateway stores no responses; send the whole conversation in `input`",
        ));
    }
    let model = req.get("model").and_then(Value::as_str).filter(|m| !m.is_empty());
    let model = model.ok_or_else(|| invalid("model", "Missing required parameter: 'model'."))?;
    let mut messages = Vec::new();
    if let Some(i) = req.get("instructions").and_then(Value::as_str).filter(|i| !i.is_empty()) {
        messages.push(json!({"role": "system", "content": i}));
    }
    match req.get("input") {
        Some(Value::String(s)) => messages.push(json!({"role": "user", "content": s})),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let at = format!("input[{i}]");
                match item.get("type").and_then(Value::as_str) {
                    Some("function_call") => {
                        let call = json!({
                            "id": item.get("call_id").and_then(Value::as_str).unwrap_or_default(),
                            "type": "function",
                            "function": {
                                "name": item.get("name").and_then(Value::as_str).unwrap_or_default(),
                                "arguments": item.get("arguments").and_then(Value::as_str).unwrap_or("{}"),
                            },
                        });
                        // Consecutive calls belong to one assistant turn.
                        match messages.last_mut() {
                            Some(m) if m["role"] == "assistant" && m.get("tool_calls").is_some() => {
                                if let Some(calls) = m["tool_calls"].as_array_mut() {
                                    calls.push(call);
                                }
                            }
                            _ => messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
                        }
                    }
                    Some("function_call_output") => messages.push(json!({
                        "role": "tool",
                        "tool_call_id": item.get("call_id").and_then(Value::as_str).unwrap_or_default(),
                        "content": item.get("output").map(flat_text).unwrap_or_default(),
                    })),
                    Some("message") | None => {
                        let role = item.get("role").and_then(Value::as_str).unwrap_or_default();
                        if !["user", "assistant", "system", "developer"].contains(&role) {
                            return Err(invalid(&format!("{at}.role"), format!("Invalid value: '{role}'.")));
                        }
                        let c =
                            item.get("content").ok_or_else(|| invalid(&format!("{at}.content"), "Missing content."))?;
                        let c = if role == "user" { content(c, &at)? } else { json!(flat_text(c)) };
                        messages.push(json!({"role": role, "content": c}));
                    }
                    Some(other) => {
                        return Err(invalid(
                            &format!("{at}.type"),
                            format!("input item type '{other}' is not supported here"),
                        ))
                    }
                }
            }
        }
        _ => return Err(invalid("input", "Missing required parameter: 'input' (a string or a list of items).")),
    }
    if messages.iter().all(|m| m["role"] == "system") {
        return Err(invalid("input", "input must hold at least one message"));
    }
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert("messages".into(), Value::Array(messages));
    if let Some(n) = req.get("max_output_tokens").filter(|v| !v.is_null()) {
        let n = n
            .as_u64()
            .filter(|n| *n >= 1)
            .ok_or_else(|| invalid("max_output_tokens", "max_output_tokens must be an integer ≥ 1"))?;
        out.insert("max_tokens".into(), json!(n));
    }
    for key in ["temperature", "top_p", "parallel_tool_calls", "user"] {
        if let Some(v) = req.get(key).filter(|v| !v.is_null()) {
            out.insert(key.into(), v.clone());
        }
    }
    if req.get("stream") == Some(&Value::Bool(true)) {
        out.insert("stream".into(), Value::Bool(true));
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(tools) = req.get("tools").and_then(Value::as_array) {
        let mut fns = Vec::new();
        for (i, t) in tools.iter().enumerate() {
            if t.get("type").and_then(Value::as_str) != Some("function") {
                return Err(invalid(&format!("tools[{i}].type"), "only function tools are supported here"));
            }
            let name = t.get("name").and_then(Value::as_str).filter(|n| !n.is_empty());
            let name = name.ok_or_else(|| invalid(&format!("tools[{i}].name"), "Missing required parameter."))?;
            let mut f = json!({"name": name, "parameters": t.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object"}))});
            if let Some(d) = t.get("description").and_then(Value::as_str) {
                f["description"] = json!(d);
            }
            if let Some(s) = t.get("strict").and_then(Value::as_bool) {
                f["strict"] = json!(s);
            }
            fns.push(json!({"type": "function", "function": f}));
        }
        if !fns.is_empty() {
            out.insert("tools".into(), Value::Array(fns));
        }
    }
    match req.get("tool_choice") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if ["auto", "none", "required"].contains(&s.as_str()) => {
            out.insert("tool_choice".into(), json!(s));
        }
        Some(c) if c.get("type").and_then(Value::as_str) == Some("function") => {
            let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
            out.insert("tool_choice".into(), json!({"type": "function", "function": {"name": name}}));
        }
        Some(_) => return Err(invalid("tool_choice", "tool_choice must be auto, none, required or a function")),
    }
    Ok(Value::Object(out))
}

/// The Responses `usage` of an OpenAI `usage`.
pub fn usage(u: Option<&Value>) -> Value {
    let n = |p: &str| u.and_then(|u| u.pointer(p)).and_then(Value::as_u64).unwrap_or(0);
    let (input, output) = (n("/prompt_tokens"), n("/completion_tokens"));
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": n("/prompt_tokens_details/cached_tokens")},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": n("/completion_tokens_details/reasoning_tokens")},
        "total_tokens": input + output,
    })
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({"type": "message", "id": id, "status": status, "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}]})
}

fn call_item(id: &str, call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({"type": "function_call", "id": id, "call_id": call_id, "name": name, "arguments": arguments, "status": status})
}

/// The `response` object around `output`.
fn response(
    id: &str,
    created: i64,
    model: &str,
    status: &str,
    output: Vec<Value>,
    usage: Value,
    finish: Option<&str>,
) -> Value {
    let incomplete = (finish == Some("length")).then(|| json!({"reason": "max_output_tokens"}));
    let status = if incomplete.is_some() { "incomplete" } else { status };
    json!({
        "id": id, "object": "response", "created_at": created, "status": status, "model": model,
        "output": output, "usage": usage, "error": null, "incomplete_details": incomplete,
        "previous_response_id": null, "store": false, "parallel_tool_calls": true,
        "tool_choice": "auto", "tools": [], "text": {"format": {"type": "text"}}, "truncation": "disabled",
        "metadata": {},
    })
}

fn now() -> i64 {
    crate::providers::types::unix_now()
}

/// A `chat.completion` as a `response`.
pub fn from_chat(completion: &Value) -> Value {
    let model = completion.get("model").and_then(Value::as_str).unwrap_or_default();
    let choice = completion.pointer("/choices/0");
    let message = choice.and_then(|c| c.get("message"));
    let mut output = Vec::new();
    if let Some(t) = message.and_then(|m| m.get("content")).and_then(Value::as_str).filter(|t| !t.is_empty()) {
        output.push(message_item(&new_id("msg"), t, "completed"));
    }
    for call in message.and_then(|m| m.get("tool_calls")).and_then(Value::as_array).into_iter().flatten() {
        let f = call.get("function");
        output.push(call_item(
            &new_id("fc"),
            call.get("id").and_then(Value::as_str).unwrap_or_default(),
            f.and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or_default(),
            f.and_then(|f| f.get("arguments")).and_then(Value::as_str).unwrap_or("{}"),
            "completed",
        ));
    }
    let finish = choice.and_then(|c| c.get("finish_reason")).and_then(Value::as_str);
    response(&new_id("resp"), now(), model, "completed", output, usage(completion.get("usage")), finish)
}

/// A Responses error body (the same shape as Chat Completions').
pub fn error_body(message: &str, error_type: &str, code: Option<&str>, param: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": error_type, "code": code, "param": param}})
}

/// An open output item.
#[derive(Debug)]
enum Item {
    Text { id: String, index: u64, text: String },
    Call { id: String, index: u64, chat_index: u64, call_id: String, name: String, arguments: String },
}

/// Turns `chat.completion.chunk`s into the Responses event sequence.
#[derive(Debug)]
pub struct StreamTranslator {
    id: String,
    created: i64,
    model: String,
    started: bool,
    seq: u64,
    open: Option<Item>,
    done_items: Vec<Value>,
    finish: Option<String>,
    usage: Option<Value>,
    ended: bool,
}

impl Default for StreamTranslator {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamTranslator {
    pub fn new() -> Self {
        StreamTranslator {
            id: new_id("resp"),
            created: now(),
            model: String::new(),
            started: false,
            seq: 0,
            open: None,
            done_items: Vec::new(),
            finish: None,
            usage: None,
            ended: false,
        }
    }

    fn emit(&mut self, out: &mut Vec<Event>, kind: &'static str, mut data: Value) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.seq);
        self.seq += 1;
        out.push((kind, data));
    }

    fn snapshot(&self, status: &str, output: Vec<Value>, usage: Value) -> Value {
        response(&self.id, self.created, &self.model, status, output, usage, self.finish.as_deref())
    }

    fn start(&mut self, out: &mut Vec<Event>) {
        if self.started {
            return;
        }
        self.started = true;
        let r = self.snapshot("in_progress", Vec::new(), Value::Null);
        self.emit(out, "response.created", json!({"response": r.clone()}));
        self.emit(out, "response.in_progress", json!({"response": r}));
    }

    fn close(&mut self, out: &mut Vec<Event>) {
        let Some(item) = self.open.take() else { return };
        match item {
            Item::Text { id, index, text } => {
                let part = json!({"type": "output_text", "text": text, "annotations": []});
                self.emit(
                    out,
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "text": text}),
                );
                self.emit(
                    out,
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "part": part}),
                );
                let item = message_item(&id, &text, "completed");
                self.emit(out, "response.output_item.done", json!({"output_index": index, "item": item.clone()}));
                self.done_items.push(item);
            }
            Item::Call { id, index, call_id, name, arguments, .. } => {
                self.emit(
                    out,
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": index, "arguments": arguments}),
                );
                let item = call_item(&id, &call_id, &name, &arguments, "completed");
                self.emit(out, "response.output_item.done", json!({"output_index": index, "item": item.clone()}));
                self.done_items.push(item);
            }
        }
    }

    /// The events of one chunk.
    pub fn chunk(&mut self, chunk: &Value) -> Vec<Event> {
        let mut out = Vec::new();
        if self.model.is_empty() {
            if let Some(m) = chunk.get("model").and_then(Value::as_str) {
                self.model = m.to_string();
            }
        }
        self.start(&mut out);
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(u.clone());
        }
        let Some(choice) = chunk.pointer("/choices/0") else { return out };
        let delta = choice.get("delta");
        if let Some(text) = delta.and_then(|d| d.get("content")).and_then(Value::as_str).filter(|t| !t.is_empty()) {
            if !matches!(self.open, Some(Item::Text { .. })) {
                self.close(&mut out);
                let (id, index) = (new_id("msg"), self.done_items.len() as u64);
                let item =
                    json!({"type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": []});
                self.emit(&mut out, "response.output_item.added", json!({"output_index": index, "item": item}));
                self.emit(
                    &mut out,
                    "response.content_part.added",
                    json!({"item_id": id, "output_index": index,
                    "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
                );
                self.open = Some(Item::Text { id, index, text: String::new() });
            }
            if let Some(Item::Text { id, index, text: acc }) = &mut self.open {
                acc.push_str(text);
                let data = json!({"item_id": id, "output_index": index, "content_index": 0, "delta": text});
                self.emit(&mut out, "response.output_text.delta", data);
            }
        }
        for call in delta.and_then(|d| d.get("tool_calls")).and_then(Value::as_array).into_iter().flatten() {
            let n = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            if !matches!(&self.open, Some(Item::Call { chat_index, .. }) if *chat_index == n) {
                self.close(&mut out);
                let (id, index) = (new_id("fc"), self.done_items.len() as u64);
                let call_id = call.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
                let name = call.pointer("/function/name").and_then(Value::as_str).unwrap_or_default().to_string();
                let item = call_item(&id, &call_id, &name, "", "in_progress");
                self.emit(&mut out, "response.output_item.added", json!({"output_index": index, "item": item}));
                self.open = Some(Item::Call { id, index, chat_index: n, call_id, name, arguments: String::new() });
            }
            let args = call.pointer("/function/arguments").and_then(Value::as_str).unwrap_or_default();
            if let (Some(Item::Call { id, index, arguments, .. }), false) = (&mut self.open, args.is_empty()) {
                arguments.push_str(args);
                let data = json!({"item_id": id, "output_index": index, "delta": args});
                self.emit(&mut out, "response.function_call_arguments.delta", data);
            }
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(f.to_string());
        }
        out
    }

    /// The closing events once the internal stream ended.
    pub fn finish(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        self.ended = true;
        self.start(&mut out);
        self.close(&mut out);
        let r = self.snapshot("completed", self.done_items.clone(), usage(self.usage.as_ref()));
        let kind = if r["status"] == "incomplete" { "response.incomplete" } else { "response.completed" };
        self.emit(&mut out, kind, json!({"response": r}));
        out
    }
}
