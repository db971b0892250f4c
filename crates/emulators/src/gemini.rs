//! Gemini emulator: `POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent` (`?alt=sse` for SSE, otherwise a JSON array).

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use crate::common::{
    emulated_message, json_response, prompt_tokens, reply_pieces, status_code, streamed_response, tool_args,
    with_retry_after, Piece, TOOL_CALL_TOKENS,
};
use crate::shared::{Incoming, Shared, Wire};

fn status_name(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "NOT_IMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        s if s >= 500 => "INTERNAL",
        _ => "FAILED_PRECONDITION",
    }
}

fn error(status: u16, message: &str) -> Response {
    let body = json!({"error": {"code": status, "message": message, "status": status_name(status)}});
    with_retry_after(json_response(status_code(status), &body), status)
}

fn invalid(message: &str) -> Response {
    error(400, message)
}

const PART_FIELDS: [&str; 8] = [
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
    "thought",
];

pub(crate) async fn handle(shared: &Shared, req: Incoming) -> Response {
    let rest = req.path.strip_prefix("/v1beta/models/");
    let Some((model, method)) = rest.and_then(|r| r.rsplit_once(':')) else {
        return error(404, &format!("The requested URL {} was not found on this server.", req.path));
    };
    if req.method != Method::POST || model.is_empty() || model.contains('/') {
        return error(404, &format!("The requested URL {} was not found on this server.", req.path));
    }
    let model = model.to_string();
    match method {
        "generateContent" => generate(shared, req, &model, false).await,
        "streamGenerateContent" => generate(shared, req, &model, true).await,
        "embedContent" => crate::embeddings::gemini(shared, req, &model, false).await,
        "batchEmbedContents" => crate::embeddings::gemini(shared, req, &model, true).await,
        other => error(404, &format!("Method not found: {other}")),
    }
}

fn validate_part(part: &Value, at: &str) -> Result<(), Response> {
    let Some(obj) = part.as_object() else {
        return Err(invalid(&format!("Invalid JSON payload received. {at}: expected an object.")));
    };
    if !PART_FIELDS.iter().any(|f| obj.contains_key(*f)) {
        return Err(invalid(&format!(
            "* GenerateContentRequest.{at}.data: required oneof field 'data' must have one initialized field"
        )));
    }
    if let Some(fr) = obj.get("functionResponse") {
        if fr.get("name").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(invalid(&format!(
                "* GenerateContentRequest.{at}.function_response.name: Name cannot be empty."
            )));
        }
        if !fr.get("response").is_some_and(Value::is_object) {
            return Err(invalid(&format!(
                "Invalid JSON payload received. Unknown name \"response\" at '{at}.function_response': Proto field is not repeating, cannot start list."
            )));
        }
    }
    if let Some(fc) = obj.get("functionCall") {
        if fc.get("name").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(invalid(&format!("* GenerateContentRequest.{at}.function_call.name: Name cannot be empty.")));
        }
    }
    if let Some(d) = obj.get("inlineData") {
        if d.get("mimeType").and_then(Value::as_str).is_none() || d.get("data").and_then(Value::as_str).is_none() {
            return Err(invalid(&format!("* GenerateContentRequest.{at}.inline_data: mimeType and data are required")));
        }
    }
    if let Some(d) = obj.get("fileData") {
        if d.get("fileUri").and_then(Value::as_str).is_none() {
            return Err(invalid(&format!("* GenerateContentRequest.{at}.file_data.file_uri: fileUri is required")));
        }
    }
    Ok(())
}

fn validate(req: &Incoming) -> Result<&Value, Response> {
    let has_key = req.header("x-goog-api-key").is_some_and(|k| !k.is_empty())
        || req.query_param("key").is_some_and(|k| !k.is_empty());
    if !has_key {
        return Err(error(
            403,
            "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
        ));
    }
    let Some(body) = req.body.as_ref().filter(|b| b.is_object()) else {
        return Err(invalid("Invalid JSON payload received."));
    };
    let contents = match body.get("contents") {
        Some(Value::Array(c)) if !c.is_empty() => c,
        _ => return Err(invalid("* GenerateContentRequest.contents: contents is not specified\n")),
    };
    for (i, c) in contents.iter().enumerate() {
        match c.get("role") {
            None => {}
            Some(Value::String(r)) if r == "user" || r == "model" => {}
            Some(_) => return Err(invalid("Please use a valid role: user, model.")),
        }
        let parts = match c.get("parts") {
            Some(Value::Array(p)) if !p.is_empty() => p,
            _ => {
                return Err(invalid(&format!(
                    "* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n"
                )))
            }
        };
        for (j, p) in parts.iter().enumerate() {
            validate_part(p, &format!("contents[{i}].parts[{j}]"))?;
        }
    }
    if let Some(si) = body.get("systemInstruction") {
        match si.get("parts") {
            Some(Value::Array(parts)) => {
                for (j, p) in parts.iter().enumerate() {
                    validate_part(p, &format!("system_instruction.parts[{j}]"))?;
                }
            }
            _ => return Err(invalid("* GenerateContentRequest.system_instruction.parts: parts must be a list")),
        }
    }
    if let Some(mode) = body.pointer("/toolConfig/functionCallingConfig/mode") {
        if !matches!(mode.as_str(), Some("AUTO" | "ANY" | "NONE" | "VALIDATED" | "MODE_UNSPECIFIED")) {
            return Err(invalid("Invalid value at 'tool_config.function_calling_config.mode'"));
        }
    }
    Ok(body)
}

fn part_texts(content: &Value, out: &mut Vec<String>) {
    if let Some(parts) = content.get("parts").and_then(Value::as_array) {
        for p in parts {
            if let Some(t) = p.get("text").and_then(Value::as_str) {
                out.push(t.to_string());
            }
        }
    }
}

async fn generate(shared: &Shared, req: Incoming, model: &str, stream: bool) -> Response {
    let body = match validate(&req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let sse = req.query_param("alt") == Some("sse");
    let contents = body.get("contents").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let mut texts = Vec::new();
    if let Some(si) = body.get("systemInstruction") {
        part_texts(si, &mut texts);
    }
    for c in contents {
        part_texts(c, &mut texts);
    }
    let prompt_default = prompt_tokens(texts.iter().map(String::as_str));
    let mut last_texts = Vec::new();
    if let Some(c) =
        contents.iter().rev().find(|c| matches!(c.get("role").and_then(Value::as_str), None | Some("user")))
    {
        part_texts(c, &mut last_texts);
    }
    let script = shared.script_for(&last_texts.join(" "));
    script.stall().await;
    if script.reset {
        return crate::common::reset_response();
    }
    if let Some(status) = script.error {
        return error(status, &emulated_message(status));
    }

    let tool_name = body
        .pointer("/tools/0/functionDeclarations/0/name")
        .and_then(Value::as_str)
        .filter(|_| script.tool)
        .map(str::to_string);
    let pieces = reply_pieces(Wire::Gemini.display_name());
    let completion_default = if tool_name.is_some() { TOOL_CALL_TOKENS } else { pieces.len() as u64 };
    let (p, c, cached) = script.usage(prompt_default, completion_default);
    let response_id = format!("emu{:08}", shared.next_id());
    let usage = |candidates: u64| {
        let mut u = json!({
            "promptTokenCount": p,
            "candidatesTokenCount": candidates,
            "totalTokenCount": p + candidates,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": p}],
        });
        if cached > 0 {
            u["cachedContentTokenCount"] = json!(cached);
            u["cacheTokensDetails"] = json!([{"modality": "TEXT", "tokenCount": cached}]);
        }
        u
    };
    let response = |parts: Value, finish: Option<&str>, usage: Value| {
        let mut cand = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
        if let Some(f) = finish {
            cand["finishReason"] = json!(f);
        }
        json!({"candidates": [cand], "usageMetadata": usage, "modelVersion": model, "responseId": response_id})
    };

    let blocked = json!({
        "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
            {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
            {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
            {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"},
        ]},
        "usageMetadata": {"promptTokenCount": p, "totalTokenCount": p},
        "modelVersion": model,
        "responseId": response_id,
    });

    if !stream {
        if script.safety {
            return json_response(StatusCode::OK, &blocked);
        }
        let parts = match &tool_name {
            Some(name) => json!([{"functionCall": {"name": name, "args": tool_args()}}]),
            None => json!([{"text": pieces.concat()}]),
        };
        let answer = response(parts, Some("STOP"), usage(c));
        if script.malformed {
            return streamed_response("application/json; charset=UTF-8", vec![Piece::text("{\"candidates\": [")]);
        }
        if script.break_stream {
            let text = answer.to_string();
            let half = text.len() / 2;
            return streamed_response(
                "application/json; charset=UTF-8",
                vec![Piece::text(&text[..half]), Piece::Abort],
            );
        }
        return json_response(StatusCode::OK, &answer);
    }

    let mut chunks: Vec<Value> = Vec::new();
    if script.safety {
        chunks.push(blocked);
    } else if let Some(name) = &tool_name {
        chunks.push(response(json!([{"functionCall": {"name": name, "args": tool_args()}}]), Some("STOP"), usage(c)));
    } else {
        let last = pieces.len().saturating_sub(1);
        for (i, piece) in pieces.iter().enumerate() {
            let (finish, so_far) = if i == last { (Some("STOP"), c) } else { (None, (i as u64 + 1).min(c)) };
            chunks.push(response(json!([{"text": piece}]), finish, usage(so_far)));
        }
    }

    let (content_type, open, sep, close) =
        if sse { ("text/event-stream", "", "", "") } else { ("application/json; charset=UTF-8", "[", ",\r\n", "]") };
    let frame = |v: &Value, first: bool| {
        if sse {
            Piece::text(format!("data: {v}\r\n\r\n"))
        } else if first {
            Piece::text(format!("{open}{v}"))
        } else {
            Piece::text(format!("{sep}{v}"))
        }
    };
    let mut out: Vec<Piece> = Vec::new();
    if script.break_stream {
        out.extend(chunks.iter().take(2).enumerate().map(|(i, v)| frame(v, i == 0)));
        out.push(Piece::Abort);
        return crate::common::streamed_response_paced(content_type, out, script.trickle_ms);
    }
    for (i, v) in chunks.iter().enumerate() {
        out.push(frame(v, i == 0));
        if i == 0 && script.malformed {
            out.push(Piece::text(if sse { "data: {\"candidates\": [\r\n\r\n" } else { ",{\"candidates\": [" }));
        }
    }
    if !sse {
        out.push(Piece::text(close));
    }
    crate::common::streamed_response_paced(content_type, out, script.trickle_ms)
}
