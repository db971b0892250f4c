//! Anthropic Messages API (`POST /v1/messages`). The client's OpenAI Chat
//! Completions body is translated into a Messages request; the answer (or the
//! `message_start` … `message_stop` event stream) is translated back into
//! OpenAI `chat.completion` / `chat.completion.chunk` objects.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::http::{self, Step, StreamTranslate, Timeouts, MAX_RESPONSE_BYTES};
use super::sse::SseEvent;
use super::types::{
    chunk_bytes, new_completion_id, unix_now, usage_chunk_bytes, ChatRequest, Completion, EventStream, RouteTarget,
    StreamEvent, UpstreamError, UpstreamErrorKind, Usage,
};
use crate::config::{ProviderSettings, Secret};

/// `anthropic-version` sent when the provider configures none.
pub const DEFAULT_API_VERSION: &str = "2023-06-01";
/// `max_tokens` is required by Anthropic; used when the client gives none.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

#[derive(Debug)]
pub struct Anthropic {
    name: String,
    /// The Messages endpoint, parsed once (an invalid one fails every call).
    target: http::Target,
    api_key: Option<Secret>,
    api_version: String,
    timeouts: Timeouts,
    http: super::http::HttpClient,
}

/// The Messages endpoint for a base URL (with or without its `/v1`).
pub fn messages_url(base_url: &str) -> String {
    let base = base_url.trim_end_matches('/');
    if base.ends_with("/v1") {
        format!("{base}/messages")
    } else {
        format!("{base}/v1/messages")
    }
}

impl Anthropic {
    pub fn new(settings: &ProviderSettings, http: super::http::HttpClient) -> Self {
        Anthropic {
            name: settings.name.clone(),
            target: http::parse_uri(&messages_url(&settings.base_url)),
            api_key: settings.api_key.clone(),
            api_version: settings.api_version.clone().unwrap_or_else(|| DEFAULT_API_VERSION.to_string()),
            timeouts: Timeouts::of(settings),
            http,
        }
    }

    fn request(&self, body: Vec<u8>) -> http::Post {
        let post = self.http.post(self.target.clone(), body).header("anthropic-version", &self.api_version);
        match &self.api_key {
            Some(key) => post.secret_header("x-api-key", key.expose()),
            None => post,
        }
    }

    pub async fn complete(&self, req: &ChatRequest, target: &RouteTarget) -> Result<Completion, UpstreamError> {
        let model = target.upstream_model.clone();
        let body = super::types::translate_body(req, move |client| to_anthropic(client, &model, false)).await;
        let (response, deadline) = http::send(&self.name, self.request(body), self.timeouts).await?;
        let bytes = http::read_body_until(&self.name, response, deadline, MAX_RESPONSE_BYTES).await?;
        let (body, usage) = from_anthropic(&self.name, &bytes, &target.upstream_model)?;
        Ok(Completion { body: Bytes::from(body.to_string()), usage: Some(usage) })
    }

    pub async fn stream(&self, req: &ChatRequest, target: &RouteTarget) -> Result<EventStream, UpstreamError> {
        let model = target.upstream_model.clone();
        let body = super::types::translate_body(req, move |client| to_anthropic(client, &model, true)).await;
        let (response, deadline) = http::send(&self.name, self.request(body), self.timeouts).await?;
        let events = http::sse_events(&self.name, response, self.timeouts, deadline);
        Ok(http::translate(events, StreamTranslator::new(&self.name, &target.upstream_model)))
    }
}

// ---------------------------------------------------------------------------
// Request translation
// ---------------------------------------------------------------------------

/// Text of an OpenAI `content` (a string, or the `text` of its text parts).
fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter(|p| matches!(p.get("type").and_then(Value::as_str), Some("text") | None))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// An OpenAI `image_url` part as an Anthropic image block.
fn image_block(part: &Value) -> Option<Value> {
    let url = match part.get("image_url") {
        Some(Value::String(s)) => s.as_str(),
        Some(v) => v.get("url").and_then(Value::as_str)?,
        None => return None,
    };
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest.split_once(',')?;
        let media_type = meta.strip_suffix(";base64")?;
        let media_type = if media_type.is_empty() { "image/png" } else { media_type };
        Some(json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}))
    } else {
        Some(json!({"type": "image", "source": {"type": "url", "url": url}}))
    }
}

/// Anthropic content blocks of an OpenAI user/assistant `content`.
fn content_blocks(content: Option<&Value>) -> Vec<Value> {
    let mut out = Vec::new();
    match content {
        Some(Value::String(s)) if !s.is_empty() => out.push(json!({"type": "text", "text": s})),
        Some(Value::Array(parts)) => {
            for p in parts {
                match p.get("type").and_then(Value::as_str) {
                    Some("text") | Some("refusal") => {
                        let key = if p.get("text").is_some() { "text" } else { "refusal" };
                        if let Some(t) = p.get(key).and_then(Value::as_str).filter(|t| !t.is_empty()) {
                            out.push(json!({"type": "text", "text": t}));
                        }
                    }
                    Some("image_url") => out.extend(image_block(p)),
                    // Audio and file parts have no Messages equivalent here: dropped.
                    _ => {}
                }
            }
        }
        _ => {}
    }
    out
}

/// `arguments` (a JSON string) as the `input` object Anthropic requires.
fn tool_input(arguments: Option<&Value>) -> Value {
    match arguments {
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            _ => json!({}),
        },
        Some(v @ Value::Object(_)) => v.clone(),
        _ => json!({}),
    }
}

/// Appends blocks to the conversation, merging consecutive same-role turns
/// (Anthropic requires user and assistant to alternate).
fn push_turn(messages: &mut Vec<(String, Vec<Value>)>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    match messages.last_mut() {
        Some((r, existing)) if r == role => existing.extend(blocks),
        _ => messages.push((role.to_string(), blocks)),
    }
}

/// Translates the client's OpenAI body into an Anthropic Messages request.
/// OpenAI-only fields without an equivalent are dropped.
pub fn to_anthropic(client: &Map<String, Value>, upstream_model: &str, stream: bool) -> Value {
    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<(String, Vec<Value>)> = Vec::new();
    let empty = Vec::new();
    let messages = client.get("messages").and_then(Value::as_array).unwrap_or(&empty);
    for m in messages {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        match role {
            "system" | "developer" => {
                let t = text_of(m.get("content"));
                if !t.is_empty() {
                    system.push(t);
                }
            }
            "user" => push_turn(&mut turns, "user", content_blocks(m.get("content"))),
            "assistant" => {
                let mut blocks = content_blocks(m.get("content"));
                if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
                    for c in calls {
                        let f = c.get("function");
                        blocks.push(json!({
                            "type": "tool_use",
                            "id": c.get("id").and_then(Value::as_str).unwrap_or(""),
                            "name": f.and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or(""),
                            "input": tool_input(f.and_then(|f| f.get("arguments"))),
                        }));
                    }
                }
                push_turn(&mut turns, "assistant", blocks);
            }
            "tool" => {
                let mut block = json!({
                    "type": "tool_result",
                    "tool_use_id": m.get("tool_call_id").and_then(Value::as_str).unwrap_or(""),
                });
                let text = text_of(m.get("content"));
                if !text.is_empty() {
                    block["content"] = Value::String(text);
                }
                push_turn(&mut turns, "user", vec![block]);
            }
            _ => {}
        }
    }
    // In a user turn, tool results must come before any other content.
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, mut blocks)| {
            if role == "user" {
                blocks.sort_by_key(|b| b.get("type").and_then(Value::as_str) != Some("tool_result"));
            }
            json!({"role": role, "content": blocks})
        })
        .collect();

    let max_tokens = client
        .get("max_completion_tokens")
        .and_then(Value::as_u64)
        .or_else(|| client.get("max_tokens").and_then(Value::as_u64))
        .unwrap_or(DEFAULT_MAX_TOKENS);
    let mut out = Map::new();
    out.insert("model".into(), Value::String(upstream_model.to_string()));
    out.insert("max_tokens".into(), json!(max_tokens));
    out.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        out.insert("system".into(), Value::String(system.join("\n\n")));
    }
    if let Some(t) = client.get("temperature").and_then(Value::as_f64) {
        // OpenAI allows 0..=2, Anthropic 0..=1.
        out.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    if let Some(p) = client.get("top_p").and_then(Value::as_f64) {
        out.insert("top_p".into(), json!(p));
    }
    let stops: Vec<Value> = match client.get("stop") {
        Some(Value::String(s)) if !s.is_empty() => vec![Value::String(s.clone())],
        Some(Value::Array(a)) => a.iter().filter(|s| s.as_str().is_some_and(|s| !s.is_empty())).cloned().collect(),
        _ => Vec::new(),
    };
    if !stops.is_empty() {
        out.insert("stop_sequences".into(), Value::Array(stops));
    }
    if stream {
        out.insert("stream".into(), Value::Bool(true));
    }
    if let Some(user) = client.get("user").and_then(Value::as_str).filter(|u| !u.is_empty()) {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    let tools: Vec<Value> = client
        .get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter(|t| t.get("type").and_then(Value::as_str).unwrap_or("function") == "function")
                .filter_map(|t| {
                    let f = t.get("function")?;
                    let name = f.get("name").and_then(Value::as_str)?;
                    let mut tool = json!({"name": name});
                    if let Some(d) = f.get("description").and_then(Value::as_str) {
                        tool["description"] = Value::String(d.to_string());
                    }
                    tool["input_schema"] = match f.get("parameters") {
                        Some(p @ Value::Object(_)) => p.clone(),
                        _ => json!({"type": "object", "properties": {}}),
                    };
                    Some(tool)
                })
                .collect()
        })
        .unwrap_or_default();
    let has_tools = !tools.is_empty();
    if has_tools {
        out.insert("tools".into(), Value::Array(tools));
    }
    let mut choice = match client.get("tool_choice") {
        Some(Value::String(s)) if s == "auto" => Some(json!({"type": "auto"})),
        Some(Value::String(s)) if s == "none" => Some(json!({"type": "none"})),
        Some(Value::String(s)) if s == "required" => Some(json!({"type": "any"})),
        Some(Value::Object(o)) => o
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map(|name| json!({"type": "tool", "name": name})),
        _ => None,
    };
    if client.get("parallel_tool_calls") == Some(&Value::Bool(false)) && has_tools {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if c["type"] != "none" {
            c["disable_parallel_tool_use"] = Value::Bool(true);
        }
    }
    if let Some(c) = choice.filter(|_| has_tools) {
        out.insert("tool_choice".into(), c);
    }
    Value::Object(out)
}

// ---------------------------------------------------------------------------
// Response translation
// ---------------------------------------------------------------------------

/// OpenAI `finish_reason` for an Anthropic `stop_reason`.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// Usage from an Anthropic `usage` object: prompt tokens include cache reads
/// and cache writes.
fn usage_of(u: Option<&Value>) -> Usage {
    let n = |k: &str| u.and_then(|u| u.get(k)).and_then(Value::as_u64).unwrap_or(0);
    let cached = n("cache_read_input_tokens");
    Usage {
        // Counts come from the upstream: saturate rather than overflow.
        input_tokens: n("input_tokens").saturating_add(cached).saturating_add(n("cache_creation_input_tokens")),
        output_tokens: n("output_tokens"),
        cached_tokens: cached,
    }
}

/// Translates an Anthropic Messages answer into an OpenAI `chat.completion`.
pub fn from_anthropic(provider: &str, body: &[u8], upstream_model: &str) -> Result<(Value, Usage), UpstreamError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| UpstreamError::protocol(format!("upstream {provider} answered with invalid JSON")))?;
    if v.get("type").and_then(Value::as_str) == Some("error") {
        let msg = v.pointer("/error/message").and_then(Value::as_str).unwrap_or("error");
        return Err(UpstreamError::new(
            UpstreamErrorKind::Status,
            format!("upstream {provider} reported an error: {msg}"),
        ));
    }
    let Some(blocks) = v.get("content").and_then(Value::as_array) else {
        return Err(UpstreamError::protocol(format!("upstream {provider} answer has no content")));
    };
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => tool_calls.push(json!({
                "id": b.get("id").and_then(Value::as_str).unwrap_or(""),
                "type": "function",
                "function": {
                    "name": b.get("name").and_then(Value::as_str).unwrap_or(""),
                    "arguments": b.get("input").map(Value::to_string).unwrap_or_else(|| "{}".into()),
                },
            })),
            _ => {}
        }
    }
    let usage = usage_of(v.get("usage"));
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { Value::String(text) },
    });
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    let body = json!({
        "id": new_completion_id(),
        "object": "chat.completion",
        "created": unix_now(),
        "model": upstream_model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(v.get("stop_reason").and_then(Value::as_str)),
        }],
        "usage": usage.to_openai(),
    });
    Ok((body, usage))
}

// ---------------------------------------------------------------------------
// Stream translation
// ---------------------------------------------------------------------------

/// Turns Anthropic stream events into OpenAI chunks.
#[derive(Debug)]
pub struct StreamTranslator {
    provider: String,
    id: String,
    created: i64,
    model: String,
    role_sent: bool,
    /// Anthropic content block index → OpenAI tool call index.
    tool_blocks: HashMap<u64, u64>,
    next_tool: u64,
    input_tokens: u64,
    cache_read: u64,
    cache_creation: u64,
    output_tokens: u64,
    finish_sent: bool,
}

impl StreamTranslator {
    pub fn new(provider: &str, upstream_model: &str) -> Self {
        StreamTranslator {
            provider: provider.to_string(),
            id: new_completion_id(),
            created: unix_now(),
            model: upstream_model.to_string(),
            role_sent: false,
            tool_blocks: HashMap::new(),
            next_tool: 0,
            input_tokens: 0,
            cache_read: 0,
            cache_creation: 0,
            output_tokens: 0,
            finish_sent: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Result<StreamEvent, UpstreamError> {
        let choices = json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
        Ok(StreamEvent::Chunk(chunk_bytes(&self.id, self.created, &self.model, choices)))
    }

    /// The role chunk, once, before anything else.
    fn role(&mut self, out: &mut Vec<Result<StreamEvent, UpstreamError>>) {
        if !self.role_sent {
            self.role_sent = true;
            out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
        }
    }

    fn read_usage(&mut self, u: &Value) {
        let get = |k: &str| u.get(k).and_then(Value::as_u64);
        if let Some(n) = get("input_tokens") {
            self.input_tokens = n;
        }
        if let Some(n) = get("cache_read_input_tokens") {
            self.cache_read = n;
        }
        if let Some(n) = get("cache_creation_input_tokens") {
            self.cache_creation = n;
        }
        if let Some(n) = get("output_tokens") {
            self.output_tokens = n;
        }
    }

    fn usage(&self) -> Usage {
        Usage {
            input_tokens: self.input_tokens.saturating_add(self.cache_read).saturating_add(self.cache_creation),
            output_tokens: self.output_tokens,
            cached_tokens: self.cache_read,
        }
    }
}

impl StreamTranslate for StreamTranslator {
    fn event(&mut self, event: &SseEvent) -> Step {
        let provider = self.provider.clone();
        let data = event.data.trim();
        if data.is_empty() {
            return Step::default();
        }
        let v: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(_) => {
                return Step::fail(UpstreamError::protocol(format!(
                    "upstream {provider} sent a malformed stream event"
                )))
            }
        };
        let kind = v.get("type").and_then(Value::as_str).unwrap_or(event.event.as_str());
        let mut out = Vec::new();
        match kind {
            "message_start" => {
                if let Some(u) = v.pointer("/message/usage") {
                    self.read_usage(u);
                }
                self.role(&mut out);
            }
            "content_block_start" => {
                self.role(&mut out);
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = v.get("content_block");
                match block.and_then(|b| b.get("type")).and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(t) =
                            block.and_then(|b| b.get("text")).and_then(Value::as_str).filter(|t| !t.is_empty())
                        {
                            out.push(self.chunk(json!({"content": t}), None));
                        }
                    }
                    Some("tool_use") => {
                        let tool = self.next_tool;
                        self.next_tool += 1;
                        self.tool_blocks.insert(index, tool);
                        let id = block.and_then(|b| b.get("id")).and_then(Value::as_str).unwrap_or("");
                        let name = block.and_then(|b| b.get("name")).and_then(Value::as_str).unwrap_or("");
                        out.push(self.chunk(
                            json!({"tool_calls": [{"index": tool, "id": id, "type": "function",
                                                   "function": {"name": name, "arguments": ""}}]}),
                            None,
                        ));
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                self.role(&mut out);
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let delta = v.get("delta");
                match delta.and_then(|d| d.get("type")).and_then(Value::as_str) {
                    Some("text_delta") => {
                        if let Some(t) =
                            delta.and_then(|d| d.get("text")).and_then(Value::as_str).filter(|t| !t.is_empty())
                        {
                            out.push(self.chunk(json!({"content": t}), None));
                        }
                    }
                    Some("input_json_delta") => {
                        let part = delta.and_then(|d| d.get("partial_json")).and_then(Value::as_str).unwrap_or("");
                        if let (Some(tool), false) = (self.tool_blocks.get(&index), part.is_empty()) {
                            out.push(self.chunk(
                                json!({"tool_calls": [{"index": tool, "function": {"arguments": part}}]}),
                                None,
                            ));
                        }
                    }
                    // thinking, signature and citation deltas have no chat equivalent.
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(u) = v.get("usage") {
                    self.read_usage(u);
                }
                self.role(&mut out);
                let reason = v.pointer("/delta/stop_reason").and_then(Value::as_str);
                if !self.finish_sent && reason.is_some() {
                    self.finish_sent = true;
                    out.push(self.chunk(json!({}), Some(finish_reason(reason))));
                }
            }
            "message_stop" => {
                self.role(&mut out);
                if !self.finish_sent {
                    self.finish_sent = true;
                    out.push(self.chunk(json!({}), Some("stop")));
                }
                let usage = self.usage();
                let chunk = usage_chunk_bytes(&self.id, self.created, &self.model, &usage);
                out.push(Ok(StreamEvent::Usage { usage, chunk }));
                return Step::done(out);
            }
            "error" => {
                let msg = v.pointer("/error/message").and_then(Value::as_str).unwrap_or("error event");
                out.push(Err(UpstreamError::new(
                    UpstreamErrorKind::Status,
                    format!("upstream {provider} reported an error mid-stream: {msg}"),
                )));
                return Step::done(out);
            }
            // ping, content_block_stop and unknown events carry nothing to forward.
            _ => {}
        }
        Step::emit(out)
    }

    fn end(&mut self) -> Vec<Result<StreamEvent, UpstreamError>> {
        vec![Err(UpstreamError::new(
            UpstreamErrorKind::Connect,
            format!("upstream {} stream ended before message_stop", self.provider),
        ))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn url_with_and_without_v1() {
        assert_eq!(messages_url("https://api.anthropic.com"), "https://api.anthropic.com/v1/messages");
        assert_eq!(messages_url("http://127.0.0.1:9/v1"), "http://127.0.0.1:9/v1/messages");
    }

    #[test]
    fn request_system_merge_and_params() {
        let b = body(json!({
            "model": "alias",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
                {"role": "user", "content": "Hi"},
                {"role": "user", "content": [{"type": "text", "text": "there"}]},
                {"role": "assistant", "content": "Bonjour"},
                {"role": "user", "content": "Again"},
            ],
            "max_completion_tokens": 99, "max_tokens": 5, "temperature": 1.7, "top_p": 0.9,
            "stop": "END", "user": "u-1", "logit_bias": {"1": 2}, "n": 1, "stream_options": {"include_usage": true},
        }));
        let out = to_anthropic(&b, "claude-x", true);
        assert_eq!(out["model"], "claude-x");
        assert_eq!(out["system"], "Be brief.\n\nUse French.");
        assert_eq!(out["max_tokens"], 99);
        assert_eq!(out["temperature"], 1.0);
        assert_eq!(out["top_p"], 0.9);
        assert_eq!(out["stop_sequences"], json!(["END"]));
        assert_eq!(out["metadata"], json!({"user_id": "u-1"}));
        assert_eq!(out["stream"], true);
        for dropped in ["logit_bias", "n", "stream_options", "user", "max_completion_tokens"] {
            assert!(out.get(dropped).is_none(), "{dropped} leaked");
        }
        let msgs = out["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[0]["role"], "user");
        assert_eq!(msgs[0]["content"], json!([{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}]));
        assert_eq!(msgs[1]["role"], "assistant");
        assert_eq!(msgs[2]["content"][0]["text"], "Again");

        let b = body(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": ["a", "b"]}));
        let out = to_anthropic(&b, "m", false);
        assert_eq!(out["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(out["stop_sequences"], json!(["a", "b"]));
        assert!(out.get("stream").is_none() && out.get("system").is_none());
        let b = body(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 12}));
        assert_eq!(to_anthropic(&b, "m", false)["max_tokens"], 12);
    }

    #[test]
    fn request_images() {
        let b = body(json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}},
        ]}]}));
        let out = to_anthropic(&b, "m", false);
        let c = &out["messages"][0]["content"];
        assert_eq!(
            c[1],
            json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}})
        );
        assert_eq!(c[2], json!({"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}));
    }

    #[test]
    fn request_tools_and_tool_results() {
        let b = body(json!({
            "model": "m",
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}},
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "rainy"}]},
                {"role": "user", "content": "Thanks"},
            ],
            "tools": [{"type": "function", "function": {"name": "weather", "description": "Get weather",
                       "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
                      {"type": "function", "function": {"name": "noargs"}}],
            "tool_choice": "required",
            "parallel_tool_calls": false,
        }));
        let out = to_anthropic(&b, "m", false);
        let msgs = out["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 3);
        assert_eq!(
            msgs[1]["content"][0],
            json!({"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}})
        );
        assert_eq!(msgs[1]["content"][1]["input"], json!({"city": "Rome"}));
        assert_eq!(msgs[2]["role"], "user");
        assert_eq!(msgs[2]["content"][0], json!({"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"}));
        assert_eq!(msgs[2]["content"][1], json!({"type": "tool_result", "tool_use_id": "call_2", "content": "rainy"}));
        assert_eq!(msgs[2]["content"][2], json!({"type": "text", "text": "Thanks"}));
        assert_eq!(
            out["tools"][0],
            json!({"name": "weather", "description": "Get weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}})
        );
        assert_eq!(out["tools"][1], json!({"name": "noargs", "input_schema": {"type": "object", "properties": {}}}));
        assert_eq!(out["tool_choice"], json!({"type": "any", "disable_parallel_tool_use": true}));

        let choice = |c: Value| {
            let b = body(json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": c}));
            to_anthropic(&b, "m", false)["tool_choice"].clone()
        };
        assert_eq!(choice(json!("auto")), json!({"type": "auto"}));
        assert_eq!(choice(json!("none")), json!({"type": "none"}));
        assert_eq!(
            choice(json!({"type": "function", "function": {"name": "f"}})),
            json!({"type": "tool", "name": "f"})
        );
    }

    #[test]
    fn response_text_tools_and_usage() {
        let answer = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 30, "cache_creation_input_tokens": 5, "output_tokens": 7},
        });
        let (v, usage) = from_anthropic("a", answer.to_string().as_bytes(), "claude-x").unwrap();
        assert_eq!(usage, Usage { input_tokens: 45, output_tokens: 7, cached_tokens: 30 });
        assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "claude-x");
        let choice = &v["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], "Let me check.");
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!(call["id"], "toolu_1");
        assert_eq!(call["function"]["name"], "weather");
        let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"city": "Paris"}));
        assert_eq!(v["usage"]["prompt_tokens"], 45);
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 30);

        for (stop, finish) in [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length")] {
            let answer = json!({"content": [{"type": "text", "text": "x"}], "stop_reason": stop, "usage": {"input_tokens": 1, "output_tokens": 1}});
            let (v, _) = from_anthropic("a", answer.to_string().as_bytes(), "m").unwrap();
            assert_eq!(v["choices"][0]["finish_reason"], finish);
            assert!(v["choices"][0]["message"].get("tool_calls").is_none());
        }
        assert!(from_anthropic("a", b"nope", "m").is_err());
        assert!(from_anthropic("a", b"{}", "m").is_err());
    }

    fn ev(name: &str, data: Value) -> SseEvent {
        SseEvent { event: name.to_string(), data: data.to_string() }
    }

    fn chunks(step: &Step) -> Vec<Value> {
        step.events
            .iter()
            .filter_map(|e| match e {
                Ok(StreamEvent::Chunk(b)) => Some(serde_json::from_slice(b).unwrap()),
                _ => None,
            })
            .collect()
    }

    /// A recorded Anthropic stream: text, then a tool use in pieces.
    fn recorded() -> Vec<SseEvent> {
        vec![
            ev(
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                "content": [], "model": "claude-x", "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 12, "cache_creation_input_tokens": 3, "cache_read_input_tokens": 20, "output_tokens": 1}}}),
            ),
            ev(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            ev("ping", json!({"type": "ping"})),
            ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me"}}),
            ),
            ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " check."}}),
            ),
            ev("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
            ev(
                "content_block_start",
                json!({"type": "content_block_start", "index": 1,
                "content_block": {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}}),
            ),
            ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
            ),
            ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": "}}),
            ),
            ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}}),
            ),
            ev("content_block_stop", json!({"type": "content_block_stop", "index": 1})),
            ev(
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 42}}),
            ),
            ev("message_stop", json!({"type": "message_stop"})),
        ]
    }

    #[test]
    fn stream_full_sequence() {
        let mut t = StreamTranslator::new("a", "claude-x");
        let mut all = Vec::new();
        let mut usage = None;
        let mut done = false;
        for e in recorded() {
            assert!(!done, "event after done");
            let step = t.event(&e);
            all.extend(chunks(&step));
            for item in &step.events {
                match item {
                    Ok(StreamEvent::Usage { usage: u, chunk }) => {
                        assert!(usage.is_none(), "two usage events");
                        usage = Some(*u);
                        let c: Value = serde_json::from_slice(chunk).unwrap();
                        assert_eq!(c["choices"], json!([]));
                        assert_eq!(c["usage"]["prompt_tokens"], 35);
                    }
                    Ok(_) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            done = step.done;
        }
        assert!(done);
        assert_eq!(usage, Some(Usage { input_tokens: 35, output_tokens: 42, cached_tokens: 20 }));
        assert_eq!(all[0]["choices"][0]["delta"]["role"], "assistant");
        assert!(all.iter().all(|c| c["object"] == "chat.completion.chunk" && c["model"] == "claude-x"));
        let ids: Vec<_> = all.iter().map(|c| c["id"].clone()).collect();
        assert!(ids.iter().all(|i| *i == ids[0]));
        let text: String = all.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(text, "Let me check.");
        let calls: Vec<&Value> = all.iter().filter_map(|c| c["choices"][0]["delta"].get("tool_calls")).collect();
        assert_eq!(
            calls[0][0],
            json!({"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": ""}})
        );
        let args: String = calls.iter().filter_map(|c| c[0]["function"]["arguments"].as_str()).collect();
        assert_eq!(args, "{\"city\": \"Paris\"}");
        assert!(calls.iter().all(|c| c[0]["index"] == 0));
        let last = all.last().unwrap();
        assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(all.iter().filter(|c| !c["choices"][0]["finish_reason"].is_null()).count(), 1);
    }

    #[test]
    fn stream_error_event_and_cut() {
        let mut t = StreamTranslator::new("a", "m");
        let events = recorded();
        for e in &events[..4] {
            assert!(t.event(e).events.iter().all(|r| r.is_ok()));
        }
        let step = t.event(&ev(
            "error",
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ));
        assert!(step.done);
        assert!(matches!(&step.events[..], [Err(e)] if e.message.contains("Overloaded")));

        let mut t = StreamTranslator::new("a", "m");
        for e in &events[..5] {
            t.event(e);
        }
        let end = t.end();
        assert!(matches!(&end[..], [Err(e)] if e.message.contains("message_stop")), "{end:?}");

        let mut t = StreamTranslator::new("a", "m");
        let step = t.event(&SseEvent { event: "content_block_delta".into(), data: "{\"type\": \"content".into() });
        assert!(step.done && matches!(&step.events[..], [Err(e)] if e.kind == UpstreamErrorKind::Protocol));
    }

    #[test]
    fn huge_upstream_counts_saturate() {
        let max = u64::MAX;
        let answer = json!({"content": [], "usage": {"input_tokens": max, "cache_read_input_tokens": 1,
            "cache_creation_input_tokens": max, "output_tokens": max}});
        let (_, usage) = from_anthropic("a", answer.to_string().as_bytes(), "m").unwrap();
        assert_eq!(usage, Usage { input_tokens: max, output_tokens: max, cached_tokens: 1 });
        let mut t = StreamTranslator::new("a", "m");
        t.event(&ev("message_start", json!({"type": "message_start", "message": {"usage": answer["usage"]}})));
        let step = t.event(&ev("message_stop", json!({"type": "message_stop"})));
        assert!(step.done);
        assert!(matches!(&step.events[..], [.., Ok(StreamEvent::Usage { usage: u, .. })] if u.input_tokens == max));
    }

    #[test]
    fn stream_second_tool_gets_next_index() {
        let mut t = StreamTranslator::new("a", "m");
        t.event(&recorded()[0]);
        for (block, id) in [(0, "t0"), (1, "t1")] {
            let s = t.event(&ev(
                "content_block_start",
                json!({"type": "content_block_start", "index": block,
                "content_block": {"type": "tool_use", "id": id, "name": "f", "input": {}}}),
            ));
            assert_eq!(chunks(&s)[0]["choices"][0]["delta"]["tool_calls"][0]["index"], block);
        }
        let s = t.event(&ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
        ));
        assert_eq!(chunks(&s)[0]["choices"][0]["delta"]["tool_calls"][0]["index"], 1);
    }
}
