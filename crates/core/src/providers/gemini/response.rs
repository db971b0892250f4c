//! Answer translation: a GenerateContentResponse as an OpenAI
//! `chat.completion` (one choice per candidate), its usage, its
//! `finish_reason`; the checks and part readers the stream shares.

use serde_json::{json, Value};

use crate::providers::types::{new_completion_id, unix_now, UpstreamError, UpstreamErrorKind, Usage};

pub(super) const FILTER_REASONS: [&str; 6] =
    ["SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"];

/// OpenAI `finish_reason` for a Gemini `finishReason`.
pub fn finish_reason(reason: &str, has_calls: bool) -> &'static str {
    if FILTER_REASONS.contains(&reason) {
        "content_filter"
    } else if has_calls {
        "tool_calls"
    } else if reason == "MAX_TOKENS" {
        "length"
    } else {
        "stop"
    }
}

pub(super) fn usage_of(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        input_tokens: n("promptTokenCount"),
        // Counts come from the upstream: saturate rather than overflow.
        output_tokens: n("candidatesTokenCount").saturating_add(n("thoughtsTokenCount")),
        cached_tokens: n("cachedContentTokenCount"),
    }
}

fn blocked_error(provider: &str, reason: &str) -> UpstreamError {
    UpstreamError::new(
        UpstreamErrorKind::ContentBlocked,
        format!("upstream {provider} blocked the prompt (blockReason {reason})"),
    )
}

/// `Err` when the response says the prompt was blocked or carries an error.
pub(super) fn check_response(provider: &str, v: &Value) -> Result<(), UpstreamError> {
    if let Some(msg) = v.get("error").map(|e| e.get("message").and_then(Value::as_str).unwrap_or("error")) {
        return Err(UpstreamError::new(
            UpstreamErrorKind::Status,
            format!("upstream {provider} reported an error: {msg}"),
        ));
    }
    let no_candidates = v.get("candidates").and_then(Value::as_array).is_none_or(Vec::is_empty);
    if let Some(reason) = v.pointer("/promptFeedback/blockReason").and_then(Value::as_str) {
        if no_candidates {
            return Err(blocked_error(provider, reason));
        }
    }
    Ok(())
}

/// The text (thought summaries excluded) and function calls of a candidate.
pub(super) fn candidate_parts(c: &Value) -> (String, Vec<(String, String)>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    for p in c.pointer("/content/parts").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
        if p.get("thought").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            text.push_str(t);
        }
        if let Some(fc) = p.get("functionCall") {
            let name = fc.get("name").and_then(Value::as_str).unwrap_or("").to_string();
            let args = fc.get("args").filter(|a| !a.is_null()).map(Value::to_string).unwrap_or_else(|| "{}".into());
            calls.push((name, args));
        }
    }
    (text, calls)
}

/// Translates a GenerateContentResponse into an OpenAI `chat.completion`
/// (one choice per candidate).
pub fn from_gemini(provider: &str, body: &[u8], upstream_model: &str) -> Result<(Value, Option<Usage>), UpstreamError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| UpstreamError::protocol(format!("upstream {provider} answered with invalid JSON")))?;
    check_response(provider, &v)?;
    let Some(candidates) = v.get("candidates").and_then(Value::as_array).filter(|c| !c.is_empty()) else {
        return Err(UpstreamError::protocol(format!("upstream {provider} answer has no candidates")));
    };
    let mut next_call = 0u64;
    let mut choices = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        let (text, calls) = candidate_parts(c);
        let tool_calls: Vec<Value> = calls
            .into_iter()
            .map(|(name, args)| {
                let id = format!("call_{next_call}");
                next_call += 1;
                json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})
            })
            .collect();
        let reason = c.get("finishReason").and_then(Value::as_str).unwrap_or("STOP");
        let finish = finish_reason(reason, !tool_calls.is_empty());
        let mut message = json!({
            "role": "assistant",
            "content": if text.is_empty() && (!tool_calls.is_empty() || finish == "content_filter") { Value::Null } else { Value::String(text) },
        });
        if !tool_calls.is_empty() {
            message["tool_calls"] = Value::Array(tool_calls);
        }
        let index = c.get("index").and_then(Value::as_u64).unwrap_or(i as u64);
        choices.push(json!({"index": index, "message": message, "logprobs": null, "finish_reason": finish}));
    }
    let usage = v.get("usageMetadata").map(usage_of);
    let mut out = json!({
        "id": new_completion_id(),
        "object": "chat.completion",
        "created": unix_now(),
        "model": upstream_model,
        "choices": choices,
    });
    if let Some(u) = &usage {
        out["usage"] = u.to_openai();
    }
    Ok((out, usage))
}
