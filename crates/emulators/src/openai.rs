//! OpenAI Chat Completions emulator: `POST /v1/chat/completions`, `GET /v1/models`.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use crate::common::{
    content_texts, emulated_message, json_response, prompt_tokens, reply_pieces, status_code, streamed_response,
    tool_args, unix_now, with_retry_after, Piece, TOOL_CALL_TOKENS,
};
use crate::shared::{Incoming, Shared, Wire};

const ROLES: [&str; 6] = ["system", "developer", "user", "assistant", "tool", "function"];

fn error(status: u16, message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": param, "code": code}});
    with_retry_after(json_response(status_code(status), &body), status)
}

fn invalid(message: &str, param: Option<&str>) -> Response {
    error(400, message, "invalid_request_error", param, None)
}

fn scripted_error(status: u16) -> Response {
    let (kind, code) = match status {
        401 => ("invalid_request_error", Some("invalid_api_key")),
        429 => ("requests", Some("rate_limit_exceeded")),
        s if s >= 500 => ("server_error", None),
        _ => ("invalid_request_error", None),
    };
    error(status, &emulated_message(status), kind, None, code)
}

pub(crate) async fn handle(shared: &Shared, req: Incoming) -> Response {
    match (&req.method, req.path.as_str()) {
        (&Method::POST, "/v1/chat/completions") => chat(shared, req).await,
        (&Method::POST, "/v1/embeddings") => crate::embeddings::openai(shared, req).await,
        (&Method::GET, "/v1/models") => json_response(
            StatusCode::OK,
            &json!({"object": "list", "data": [
                {"id": "gpt-4o-mini", "object": "model", "created": 1_721_172_741, "owned_by": "system"},
                {"id": "gpt-4.1", "object": "model", "created": 1_744_316_542, "owned_by": "system"},
            ]}),
        ),
        (m, p) => error(404, &format!("Invalid URL ({m} {p})"), "invalid_request_error", None, None),
    }
}

/// Checks what the real API requires; `Err` is the 400 to answer.
fn validate(body: &Value) -> Result<(), Response> {
    let Some(obj) = body.as_object() else {
        return Err(invalid("We could not parse the JSON body of your request.", None));
    };
    match obj.get("model") {
        Some(Value::String(m)) if !m.is_empty() => {}
        _ => return Err(invalid("you must provide a model parameter", None)),
    }
    let messages = match obj.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => return Err(invalid("[] is too short - 'messages'", Some("messages"))),
        _ => return Err(invalid("Missing required parameter: 'messages'.", Some("messages"))),
    };
    let mut open_calls: Vec<String> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        if !ROLES.contains(&role) {
            return Err(invalid(
                &format!("Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'."),
                Some(&format!("messages[{i}].role")),
            ));
        }
        match role {
            "assistant" => {
                open_calls = m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .map(|calls| {
                        calls.iter().filter_map(|c| c.get("id").and_then(Value::as_str).map(str::to_string)).collect()
                    })
                    .unwrap_or_default();
            }
            "tool" => {
                let id = m.get("tool_call_id").and_then(Value::as_str).unwrap_or("");
                if !open_calls.iter().any(|c| c == id) {
                    return Err(invalid(
                        "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
                        Some(&format!("messages.[{i}].role")),
                    ));
                }
            }
            _ => open_calls.clear(),
        }
    }
    if obj.contains_key("stream_options") && obj.get("stream") != Some(&Value::Bool(true)) {
        return Err(invalid(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            Some("stream_options"),
        ));
    }
    Ok(())
}

async fn chat(shared: &Shared, req: Incoming) -> Response {
    let Some(body) = req.body else {
        return invalid("We could not parse the JSON body of your request.", None);
    };
    if let Err(r) = validate(&body) {
        return r;
    }
    let messages = body.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut texts = Vec::new();
    for m in &messages {
        if let Some(c) = m.get("content") {
            content_texts(c, &mut texts);
        }
    }
    let prompt_default = prompt_tokens(texts.iter().copied());
    let last_user = messages.iter().rev().find(|m| m.get("role").and_then(Value::as_str) == Some("user"));
    let mut last_texts = Vec::new();
    if let Some(c) = last_user.and_then(|m| m.get("content")) {
        content_texts(c, &mut last_texts);
    }
    let script = shared.script_for(&last_texts.join(" "));
    script.stall().await;
    if script.reset {
        return crate::common::reset_response();
    }
    if let Some(status) = script.error {
        return scripted_error(status);
    }

    let model = body.get("model").and_then(Value::as_str).unwrap_or("").to_string();
    let stream = body.get("stream") == Some(&Value::Bool(true));
    let include_usage = body.pointer("/stream_options/include_usage") == Some(&Value::Bool(true));
    let tool_name =
        body.pointer("/tools/0/function/name").and_then(Value::as_str).filter(|_| script.tool).map(str::to_string);
    let pieces = reply_pieces(Wire::OpenAi.display_name());
    let completion_default = if tool_name.is_some() { TOOL_CALL_TOKENS } else { pieces.len() as u64 };
    let (p, c, cached) = script.usage(prompt_default, completion_default);
    let usage = json!({
        "prompt_tokens": p,
        "completion_tokens": c,
        "total_tokens": p + c,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    });
    let n = shared.next_id();
    let id = format!("chatcmpl-emu{n:08}");
    let call_id = format!("call_emu{n:08}");
    let created = unix_now();

    if !stream {
        let (message, finish) = match &tool_name {
            Some(name) => (
                json!({"role": "assistant", "content": null, "refusal": null, "annotations": [],
                       "tool_calls": [{"id": call_id, "type": "function",
                                       "function": {"name": name, "arguments": tool_args().to_string()}}]}),
                "tool_calls",
            ),
            None => {
                (json!({"role": "assistant", "content": pieces.concat(), "refusal": null, "annotations": []}), "stop")
            }
        };
        let answer = json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
            "usage": usage, "service_tier": "default", "system_fingerprint": "fp_emulator",
        });
        if script.malformed {
            return streamed_response("application/json", vec![Piece::text("{\"id\": \"chatcmpl-")]);
        }
        if script.break_stream {
            let text = answer.to_string();
            let half = text.len() / 2;
            return streamed_response("application/json", vec![Piece::text(&text[..half]), Piece::Abort]);
        }
        return json_response(StatusCode::OK, &answer);
    }

    let chunk = |delta: Value, finish: Value| -> Piece {
        let mut v = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "service_tier": "default", "system_fingerprint": "fp_emulator",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if include_usage {
            v["usage"] = Value::Null;
        }
        Piece::text(format!("data: {v}\n\n"))
    };
    let mut content: Vec<Piece> = Vec::new();
    let finish = match &tool_name {
        Some(name) => {
            content.push(chunk(
                json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": call_id, "type": "function",
                       "function": {"name": name, "arguments": ""}}], "refusal": null}),
                Value::Null,
            ));
            for part in ["{\"", "city", "\":\"", "Paris", "\"}"] {
                content
                    .push(chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}), Value::Null));
            }
            "tool_calls"
        }
        None => {
            content.push(chunk(json!({"role": "assistant", "content": "", "refusal": null}), Value::Null));
            for piece in &pieces {
                content.push(chunk(json!({"content": piece}), Value::Null));
            }
            "stop"
        }
    };
    let mut out: Vec<Piece> = Vec::new();
    if script.break_stream {
        // The role chunk and the first two content pieces, then a broken body.
        out.extend(content.into_iter().take(3));
        out.push(Piece::Abort);
        return crate::common::streamed_response_paced("text/event-stream; charset=utf-8", out, script.trickle_ms);
    }
    let mut content = content.into_iter();
    if script.malformed {
        out.extend(content.next());
        out.push(Piece::text("data: {\"id\": \"chatcmpl-broken\", \"choices\": [\n\n"));
    }
    out.extend(content);
    out.push(chunk(json!({}), Value::String(finish.into())));
    if include_usage {
        let v = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "service_tier": "default", "system_fingerprint": "fp_emulator", "choices": [], "usage": usage,
        });
        out.push(Piece::text(format!("data: {v}\n\n")));
    }
    out.push(Piece::text("data: [DONE]\n\n"));
    crate::common::streamed_response_paced("text/event-stream; charset=utf-8", out, script.trickle_ms)
}
