//! Answer translation: an Anthropic Messages answer as an OpenAI
//! `chat.completion`, its usage, its `finish_reason`.

use serde_json::{json, Value};

use crate::providers::types::{new_completion_id, unix_now, UpstreamError, UpstreamErrorKind, Usage};

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
