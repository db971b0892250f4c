//! Request translation: the client's OpenAI Chat Completions body as a
//! GenerateContentRequest.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

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

/// A MIME type guessed from a URL's file extension (`image/jpeg` otherwise).
pub fn mime_from_url(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        _ => "image/jpeg",
    }
}

fn image_part(part: &Value) -> Option<Value> {
    let url = match part.get("image_url") {
        Some(Value::String(s)) => s.as_str(),
        Some(v) => v.get("url").and_then(Value::as_str)?,
        None => return None,
    };
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest.split_once(',')?;
        let mime = meta.strip_suffix(";base64")?;
        let mime = if mime.is_empty() { "image/png" } else { mime };
        Some(json!({"inlineData": {"mimeType": mime, "data": data}}))
    } else {
        Some(json!({"fileData": {"mimeType": mime_from_url(url), "fileUri": url}}))
    }
}

fn parts_of(content: Option<&Value>) -> Vec<Value> {
    let mut out = Vec::new();
    match content {
        Some(Value::String(s)) if !s.is_empty() => out.push(json!({"text": s})),
        Some(Value::Array(parts)) => {
            for p in parts {
                match p.get("type").and_then(Value::as_str) {
                    Some("text") | Some("refusal") => {
                        let key = if p.get("text").is_some() { "text" } else { "refusal" };
                        if let Some(t) = p.get(key).and_then(Value::as_str).filter(|t| !t.is_empty()) {
                            out.push(json!({"text": t}));
                        }
                    }
                    Some("image_url") => out.extend(image_part(p)),
                    _ => {}
                }
            }
        }
        _ => {}
    }
    out
}

fn push_content(contents: &mut Vec<(String, Vec<Value>)>, role: &str, parts: Vec<Value>) {
    if parts.is_empty() {
        return;
    }
    match contents.last_mut() {
        Some((r, existing)) if r == role => existing.extend(parts),
        _ => contents.push((role.to_string(), parts)),
    }
}

/// Gemini rejects an OBJECT schema with no properties; such a tool takes no parameters.
fn declared_parameters(p: Option<&Value>) -> Option<Value> {
    let p = p?;
    let empty_object = p.get("type").and_then(Value::as_str) == Some("object")
        && p.get("properties").and_then(Value::as_object).is_none_or(Map::is_empty);
    (p.is_object() && !empty_object).then(|| p.clone())
}

/// Translates the client's OpenAI body into a GenerateContentRequest.
pub fn to_gemini(client: &Map<String, Value>) -> Value {
    let mut system: Vec<String> = Vec::new();
    let mut contents: Vec<(String, Vec<Value>)> = Vec::new();
    // tool_call_id → function name, from the assistant turns seen so far (the
    // latest wins, so reused ids resolve to the nearest preceding call).
    let mut call_names: HashMap<String, String> = HashMap::new();
    let empty = Vec::new();
    for m in client.get("messages").and_then(Value::as_array).unwrap_or(&empty) {
        match m.get("role").and_then(Value::as_str).unwrap_or("") {
            "system" | "developer" => {
                let t = text_of(m.get("content"));
                if !t.is_empty() {
                    system.push(t);
                }
            }
            "user" => push_content(&mut contents, "user", parts_of(m.get("content"))),
            "assistant" => {
                let mut parts = parts_of(m.get("content"));
                for c in m.get("tool_calls").and_then(Value::as_array).unwrap_or(&empty) {
                    let f = c.get("function");
                    let name = f.and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or("");
                    if let Some(id) = c.get("id").and_then(Value::as_str) {
                        call_names.insert(id.to_string(), name.to_string());
                    }
                    let args = match f.and_then(|f| f.get("arguments")) {
                        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                            Ok(v @ Value::Object(_)) => v,
                            _ => json!({}),
                        },
                        Some(v @ Value::Object(_)) => v.clone(),
                        _ => json!({}),
                    };
                    parts.push(json!({"functionCall": {"name": name, "args": args}}));
                }
                push_content(&mut contents, "model", parts);
            }
            "tool" => {
                let id = m.get("tool_call_id").and_then(Value::as_str).unwrap_or("");
                let name = call_names
                    .get(id)
                    .cloned()
                    .or_else(|| m.get("name").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_else(|| id.to_string());
                let text = text_of(m.get("content"));
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => json!({"result": text}),
                };
                push_content(
                    &mut contents,
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                );
            }
            _ => {}
        }
    }

    let mut out = Map::new();
    let contents: Vec<Value> =
        contents.into_iter().map(|(role, parts)| json!({"role": role, "parts": parts})).collect();
    out.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({"parts": [{"text": system.join("\n\n")}]}));
    }

    let declarations: Vec<Value> = client
        .get("tools")
        .and_then(Value::as_array)
        .unwrap_or(&empty)
        .iter()
        .filter(|t| t.get("type").and_then(Value::as_str).unwrap_or("function") == "function")
        .filter_map(|t| {
            let f = t.get("function")?;
            let mut d = json!({"name": f.get("name").and_then(Value::as_str)?});
            if let Some(desc) = f.get("description").and_then(Value::as_str) {
                d["description"] = Value::String(desc.to_string());
            }
            if let Some(p) = declared_parameters(f.get("parameters")) {
                d["parameters"] = p;
            }
            Some(d)
        })
        .collect();
    let has_tools = !declarations.is_empty();
    if has_tools {
        out.insert("tools".into(), json!([{"functionDeclarations": declarations}]));
        let config = match client.get("tool_choice") {
            Some(Value::String(s)) if s == "auto" => Some(json!({"mode": "AUTO"})),
            Some(Value::String(s)) if s == "none" => Some(json!({"mode": "NONE"})),
            Some(Value::String(s)) if s == "required" => Some(json!({"mode": "ANY"})),
            Some(Value::Object(o)) => o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .map(|name| json!({"mode": "ANY", "allowedFunctionNames": [name]})),
            _ => None,
        };
        if let Some(c) = config {
            out.insert("toolConfig".into(), json!({"functionCallingConfig": c}));
        }
    }

    let mut gen = Map::new();
    if let Some(t) = client.get("temperature").and_then(Value::as_f64) {
        gen.insert("temperature".into(), json!(t));
    }
    if let Some(p) = client.get("top_p").and_then(Value::as_f64) {
        gen.insert("topP".into(), json!(p));
    }
    if let Some(n) = client
        .get("max_completion_tokens")
        .and_then(Value::as_u64)
        .or_else(|| client.get("max_tokens").and_then(Value::as_u64))
    {
        gen.insert("maxOutputTokens".into(), json!(n));
    }
    let stops: Vec<Value> = match client.get("stop") {
        Some(Value::String(s)) if !s.is_empty() => vec![Value::String(s.clone())],
        Some(Value::Array(a)) => a.iter().filter(|s| s.as_str().is_some_and(|s| !s.is_empty())).cloned().collect(),
        _ => Vec::new(),
    };
    if !stops.is_empty() {
        gen.insert("stopSequences".into(), Value::Array(stops));
    }
    if let Some(n) = client.get("n").and_then(Value::as_u64) {
        gen.insert("candidateCount".into(), json!(n));
    }
    for (from, to) in [("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty")] {
        if let Some(v) = client.get(from).and_then(Value::as_f64) {
            gen.insert(to.into(), json!(v));
        }
    }
    if let Some(seed) = client.get("seed").and_then(Value::as_i64) {
        gen.insert("seed".into(), json!(seed));
    }
    match client.get("response_format").and_then(|f| f.get("type")).and_then(Value::as_str) {
        Some("json_object") => {
            gen.insert("responseMimeType".into(), json!("application/json"));
        }
        Some("json_schema") => {
            gen.insert("responseMimeType".into(), json!("application/json"));
            if let Some(schema) = client.get("response_format").and_then(|f| f.pointer("/json_schema/schema")) {
                gen.insert("responseSchema".into(), schema.clone());
            }
        }
        _ => {}
    }
    if !gen.is_empty() {
        out.insert("generationConfig".into(), Value::Object(gen));
    }
    Value::Object(out)
}
