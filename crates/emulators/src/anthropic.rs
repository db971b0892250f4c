//! Anthropic Messages emulator: `POST /v1/messages`.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use crate::common::{
    content_texts, emulated_message, json_response, prompt_tokens, reply_pieces, status_code, streamed_response,
    tool_args, with_retry_after, Piece, TOOL_CALL_TOKENS,
};
use crate::shared::{Incoming, Shared, Wire};

const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];
const TOOL_PREAMBLE: &str = "Let me check.";

fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

fn error(status: u16, message: &str) -> Response {
    let body = json!({
        "type": "error",
        "error": {"type": error_type(status), "message": message},
        "request_id": "req_emulator",
    });
    with_retry_after(json_response(status_code(status), &body), status)
}

fn invalid(message: &str) -> Response {
    error(400, message)
}

pub(crate) async fn handle(shared: &Shared, req: Incoming) -> Response {
    match (&req.method, req.path.as_str()) {
        (&Method::POST, "/v1/messages") => messages(shared, req).await,
        _ => error(404, "Not Found"),
    }
}

fn validate_block(block: &Value, role: &str, prev_tool_uses: &[String], at: &str) -> Result<(), Response> {
    let kind = block.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "text" => match block.get("text").and_then(Value::as_str) {
            Some(t) if !t.is_empty() => Ok(()),
            Some(_) => Err(invalid(&format!("{at}: text content blocks must be non-empty"))),
            None => Err(invalid(&format!("{at}.text: Field required"))),
        },
        "image" => {
            let source = block.get("source");
            match source.and_then(|s| s.get("type")).and_then(Value::as_str) {
                Some("base64") => {
                    let mt = source.and_then(|s| s.get("media_type")).and_then(Value::as_str).unwrap_or("");
                    if !IMAGE_TYPES.contains(&mt) {
                        return Err(invalid(&format!(
                            "{at}.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
                        )));
                    }
                    match source.and_then(|s| s.get("data")).and_then(Value::as_str) {
                        Some(d) if !d.is_empty() => Ok(()),
                        _ => Err(invalid(&format!("{at}.source.base64.data: Field required"))),
                    }
                }
                Some("url") => match source.and_then(|s| s.get("url")).and_then(Value::as_str) {
                    Some(u) if u.starts_with("http://") || u.starts_with("https://") => Ok(()),
                    _ => Err(invalid(&format!("{at}.source.url.url: Field required"))),
                },
                _ => Err(invalid(&format!(
                    "{at}.source: Input tag does not match any of the expected tags: 'base64', 'url'"
                ))),
            }
        }
        "tool_use" if role == "assistant" => {
            let ok = block.get("id").and_then(Value::as_str).is_some_and(|s| !s.is_empty())
                && block.get("name").and_then(Value::as_str).is_some_and(|s| !s.is_empty())
                && block.get("input").is_some_and(Value::is_object);
            if ok {
                Ok(())
            } else {
                Err(invalid(&format!("{at}: tool_use blocks need an id, a name and an input object")))
            }
        }
        "tool_result" if role == "user" => {
            let id = block.get("tool_use_id").and_then(Value::as_str).unwrap_or("");
            if !prev_tool_uses.iter().any(|t| t == id) {
                return Err(invalid(&format!(
                    "{at}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                )));
            }
            Ok(())
        }
        "tool_use" | "tool_result" => Err(invalid(&format!("{at}: {kind} blocks are not allowed in {role} messages"))),
        "thinking" | "redacted_thinking" | "document" | "search_result" => Ok(()),
        other => Err(invalid(&format!(
            "{at}.type: Input tag '{other}' found using 'type' does not match any of the expected tags"
        ))),
    }
}

/// Checks what the real API requires; `Err` is the error to answer.
fn validate(req: &Incoming) -> Result<&Value, Response> {
    if req.header("x-api-key").is_none_or(str::is_empty) {
        return Err(error(401, "x-api-key header is required"));
    }
    if req.header("anthropic-version").is_none_or(str::is_empty) {
        return Err(invalid("anthropic-version: header is required"));
    }
    let Some(body) = req.body.as_ref().filter(|b| b.is_object()) else {
        return Err(invalid("The request body is not valid JSON."));
    };
    match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => {}
        _ => return Err(invalid("model: Field required")),
    }
    match body.get("max_tokens") {
        Some(v) if v.as_u64().is_some_and(|n| n >= 1) => {}
        Some(_) => return Err(invalid("max_tokens: Input should be a valid integer greater than or equal to 1")),
        None => return Err(invalid("max_tokens: Field required")),
    }
    let messages = match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => return Err(invalid("messages: at least one message is required")),
        _ => return Err(invalid("messages: Field required")),
    };
    let mut prev_role = "";
    let mut prev_tool_uses: Vec<String> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        match role {
            "user" | "assistant" => {}
            "system" => {
                return Err(invalid(&format!(
                    "messages.{i}.role: Unexpected role \"system\". The Messages API accepts a top-level `system` parameter, not \"system\" as an input message role."
                )))
            }
            other => return Err(invalid(&format!("messages.{i}.role: Input should be 'user' or 'assistant' (got {other:?})"))),
        }
        if i == 0 && role != "user" {
            return Err(invalid("messages: first message must use the \"user\" role"));
        }
        if role == prev_role {
            return Err(invalid(&format!(
                "messages: roles must alternate between \"user\" and \"assistant\", but found multiple \"{role}\" roles in a row"
            )));
        }
        let at = format!("messages.{i}.content");
        let mut tool_uses = Vec::new();
        match m.get("content") {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(Value::Array(blocks)) if !blocks.is_empty() => {
                for (j, b) in blocks.iter().enumerate() {
                    validate_block(b, role, &prev_tool_uses, &format!("{at}.{j}"))?;
                    if b.get("type").and_then(Value::as_str) == Some("tool_use") {
                        if let Some(id) = b.get("id").and_then(Value::as_str) {
                            tool_uses.push(id.to_string());
                        }
                    }
                }
            }
            _ => {
                return Err(invalid(&format!(
                    "messages.{i}: all messages must have non-empty content except for the optional final assistant message"
                )))
            }
        }
        prev_tool_uses = tool_uses;
        prev_role = role;
    }
    if let Some(tools) = body.get("tools") {
        let Some(tools) = tools.as_array() else {
            return Err(invalid("tools: Input should be a valid list"));
        };
        for (i, t) in tools.iter().enumerate() {
            if t.get("name").and_then(Value::as_str).is_none_or(str::is_empty) {
                return Err(invalid(&format!("tools.{i}.name: Field required")));
            }
            if t.get("type").is_none() && t.pointer("/input_schema/type").and_then(Value::as_str) != Some("object") {
                return Err(invalid(&format!("tools.{i}.custom.input_schema.type: Input should be 'object'")));
            }
        }
    }
    if let Some(tc) = body.get("tool_choice") {
        match tc.get("type").and_then(Value::as_str) {
            Some("auto" | "any" | "none") => {}
            Some("tool") if tc.get("name").and_then(Value::as_str).is_some() => {}
            _ => {
                return Err(invalid(
                    "tool_choice: Input tag does not match any of the expected tags: 'auto', 'any', 'tool', 'none'",
                ))
            }
        }
    }
    Ok(body)
}

async fn messages(shared: &Shared, req: Incoming) -> Response {
    let body = match validate(&req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let messages = body.get("messages").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let mut texts = Vec::new();
    if let Some(system) = body.get("system") {
        content_texts(system, &mut texts);
    }
    for m in messages {
        if let Some(c) = m.get("content") {
            content_texts(c, &mut texts);
        }
    }
    let prompt_default = prompt_tokens(texts.iter().copied());
    let mut last_texts = Vec::new();
    if let Some(c) = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(|m| m.get("content"))
    {
        content_texts(c, &mut last_texts);
    }
    let script = shared.script_for(&last_texts.join(" "));
    script.stall().await;
    if script.reset {
        return crate::common::reset_response();
    }
    if let Some(status) = script.error {
        return error(status, &emulated_message(status));
    }

    let model = body.get("model").and_then(Value::as_str).unwrap_or("");
    let stream = body.get("stream") == Some(&Value::Bool(true));
    let tool_name = body.pointer("/tools/0/name").and_then(Value::as_str).filter(|_| script.tool).map(str::to_string);
    let pieces = reply_pieces(Wire::Anthropic.display_name());
    let completion_default = if tool_name.is_some() { TOOL_CALL_TOKENS } else { pieces.len() as u64 };
    let (p, c, cached) = script.usage(prompt_default, completion_default);
    let n = shared.next_id();
    let id = format!("msg_emu{n:08}");
    let tool_id = format!("toolu_emu{n:08}");
    let usage = |output: u64| {
        json!({
            "input_tokens": p - cached,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cached,
            "output_tokens": output,
            "service_tier": "standard",
        })
    };
    let stop_reason = if tool_name.is_some() { "tool_use" } else { "end_turn" };

    if !stream {
        let content = match &tool_name {
            Some(name) => json!([
                {"type": "text", "text": TOOL_PREAMBLE},
                {"type": "tool_use", "id": tool_id, "name": name, "input": tool_args()},
            ]),
            None => json!([{"type": "text", "text": pieces.concat()}]),
        };
        let answer = json!({
            "id": id, "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop_reason, "stop_sequence": null, "usage": usage(c),
        });
        if script.malformed {
            return streamed_response("application/json", vec![Piece::text("{\"id\": \"msg_")]);
        }
        if script.break_stream {
            let text = answer.to_string();
            let half = text.len() / 2;
            return streamed_response("application/json", vec![Piece::text(&text[..half]), Piece::Abort]);
        }
        return json_response(StatusCode::OK, &answer);
    }

    let ev = |name: &str, data: Value| Piece::text(format!("event: {name}\ndata: {data}\n\n"));
    let mut head = vec![ev(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": usage(1),
        }}),
    )];
    let text_start = ev(
        "content_block_start",
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    );
    let text_delta = |text: &str| {
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
        )
    };
    let block_stop = |index: u64| ev("content_block_stop", json!({"type": "content_block_stop", "index": index}));
    let ping = ev("ping", json!({"type": "ping"}));

    let mut content: Vec<Piece> = Vec::new();
    match &tool_name {
        Some(name) => {
            content.push(text_delta("Let me"));
            content.push(text_delta(" check."));
            content.push(block_stop(0));
            content.push(ev(
                "content_block_start",
                json!({"type": "content_block_start", "index": 1,
                       "content_block": {"type": "tool_use", "id": tool_id, "name": name, "input": {}}}),
            ));
            for part in ["", "{\"city\": ", "\"Paris\"}"] {
                content.push(ev(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 1,
                           "delta": {"type": "input_json_delta", "partial_json": part}}),
                ));
            }
            content.push(block_stop(1));
        }
        None => {
            for piece in &pieces {
                content.push(text_delta(piece));
            }
            content.push(block_stop(0));
        }
    }
    head.push(text_start);
    head.push(ping);
    let mut out = head;
    if script.break_stream {
        out.extend(content.into_iter().take(2));
        out.push(Piece::Abort);
        return crate::common::streamed_response_paced("text/event-stream; charset=utf-8", out, script.trickle_ms);
    }
    if script.malformed {
        out.push(Piece::text(
            "event: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\n\n",
        ));
    }
    out.extend(content);
    out.push(ev(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null},
               "usage": {"output_tokens": c}}),
    ));
    out.push(ev("message_stop", json!({"type": "message_stop"})));
    crate::common::streamed_response_paced("text/event-stream; charset=utf-8", out, script.trickle_ms)
}
