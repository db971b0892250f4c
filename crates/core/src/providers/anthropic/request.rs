//! Request translation: the client's OpenAI Chat Completions body as an
//! Anthropic Messages request.

use serde_json::{json, Map, Value};

/// `max_tokens` is required by Anthropic; used when the client gives none.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

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
