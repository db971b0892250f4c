//! Stream translation: the `message_start` … `message_stop` events as
//! OpenAI `chat.completion.chunk` objects, usage last.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::response::finish_reason;
use crate::providers::http::{Step, StreamTranslate};
use crate::providers::sse::SseEvent;
use crate::providers::types::{
    chunk_bytes, new_completion_id, unix_now, usage_chunk_bytes, StreamEvent, UpstreamError, UpstreamErrorKind, Usage,
};

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
